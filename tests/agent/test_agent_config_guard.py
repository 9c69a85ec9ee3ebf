"""Real agents: no request and no value in etcd's `/config` may take the cluster down (issue 13).

Items 1 and 2: `PATCH /config {"ttl": 99999999999999999999999999}` (does not fit etcd's int64) and
`{"ttl": 10000000000}` (above etcd's MaxLeaseTTL) used to answer 200 and kill every agent or every
lease grant. Now every door refuses them, and a value written past the doors (`etcdctl put`) leaves
every agent alive on its last good configuration, with one primary, and says so.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.agent.cluster import REST_AUTH, AgentCluster, http, running_cluster
from tests.agent.test_agent_operations import ctl, settled
from tests.probes import holds_for, wait_for

pytestmark = pytest.mark.agent

HUGE = 99999999999999999999999999
GOOD = {"ttl": 10, "loop_wait": 2, "retry_timeout": 2}


def etcdctl_put(cluster: AgentCluster, key: str, value: str) -> None:
    endpoints = ",".join(f"{host}:{port}" for host, port in cluster.etcd.endpoints)
    subprocess.run(
        ["etcdctl", f"--endpoints={endpoints}", "put", f"/service/{cluster.scope}/{key}", value],
        check=True,
        capture_output=True,
        env={**os.environ, "ETCDCTL_API": "3"},
        timeout=20,
    )


def every_agent_alive(cluster: AgentCluster) -> bool:
    return all(
        node.agent is not None and node.agent.poll() is None for node in cluster.nodes.values()
    )


def unharmed(cluster: AgentCluster, primary: str) -> bool:
    """Every agent runs, and `primary` is still the one primary (asserted)."""
    assert every_agent_alive(cluster)
    assert cluster.primary() == primary
    return True


def config_errors(cluster: AgentCluster) -> dict[str, str | None]:
    return {
        name: node.get("/patroni")[1].get("config_error") for name, node in cluster.nodes.items()
    }


def test_every_door_refuses_an_unusable_ttl(workdir: Path) -> None:
    with running_cluster(workdir) as cluster:
        primary = settled(cluster)
        url = cluster.nodes[primary].api_url
        _, before = http("GET", url + "/config")
        for method, body in [
            ("PATCH", {"ttl": HUGE}),
            ("PATCH", {"ttl": 10000000000}),
            ("PUT", {"ttl": HUGE}),
            ("PUT", {}),
        ]:
            code, message = http(method, url + "/config", body, auth=REST_AUTH)
            assert code == 400, (method, body, code, message)
        refused = ctl(cluster, "edit-config", "--force", "--set", f"ttl={HUGE}")
        assert refused.returncode == 2, refused.stderr
        assert "ttl: expected a number of seconds from 3 to 3600" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert http("GET", url + "/config")[1] == before
        holds_for("every agent alive, the same primary", lambda: unharmed(cluster, primary), 3)


@pytest.mark.parametrize("ttl", [HUGE, 10000000000])
def test_a_bad_ttl_written_to_etcd_keeps_every_agent_alive_and_one_primary(
    workdir: Path, ttl: int
) -> None:
    with running_cluster(workdir) as cluster:
        primary = settled(cluster)
        etcdctl_put(cluster, "config", json.dumps({**GOOD, "ttl": ttl}))
        wait_for(
            "every agent reporting the rejected config",
            lambda: all(config_errors(cluster).values()),
            15,
        )
        holds_for(  # past a whole ttl: the lock was renewed every loop
            "every agent alive, the same primary",
            lambda: unharmed(cluster, primary),
            GOOD["ttl"] + GOOD["loop_wait"] + 4,
            every_s=0.5,
        )
        assert cluster.try_write(primary, 1)
        for name, error in config_errors(cluster).items():
            assert error is not None
            assert "ttl: expected a number of seconds from 3 to 3600" in error, name
        for name, node in cluster.nodes.items():
            rejected = [e for e in node.history() if e["kind"] == "config_rejected"]
            assert [e["key"] for e in rejected] == ["ttl"], name  # said once, not every loop
        listed = ctl(cluster, "list")
        assert listed.returncode == 0, listed.stderr
        assert listed.stderr.count("refuses the stored /config") == len(cluster.nodes)

        # A restarted agent reads the bad value at once: it runs on its bootstrap configuration.
        replica = sorted(set(cluster.nodes) - {primary})[0]
        cluster.kill_agent(replica)
        cluster.start_agent(cluster.nodes[replica])
        wait_for(
            "the restarted agent's REST API",
            lambda: cluster.nodes[replica].get("/patroni")[0] == 200,
            30,
        )
        wait_for("the restarted agent reporting", lambda: config_errors(cluster)[replica], 15)
        holds_for(  # two loops on the bad value: nobody dies, the primary stays
            "every agent alive, the same primary",
            lambda: unharmed(cluster, primary),
            GOOD["loop_wait"] * 2,
        )

        # Repaired through the REST API (the merged result is valid): in use, errors gone.
        code, _ = http(
            "PATCH", cluster.nodes[primary].api_url + "/config", {"ttl": 12}, auth=REST_AUTH
        )
        assert code == 200
        wait_for("no config error", lambda: not any(config_errors(cluster).values()), 15)
        assert every_agent_alive(cluster)
        assert cluster.primary() == primary
