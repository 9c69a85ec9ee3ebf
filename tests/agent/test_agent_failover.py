"""Real agents on real etcd and PostgreSQL: bootstrap, crash failover, rewind, sync mode, watchdog.

Every test starts a 3-member etcd cluster and three agents with their PostgreSQL servers on
loopback (tests/agent/cluster.py), at ttl 10 / loop_wait 2 / retry_timeout 2, each agent with the
softdog emulation as its watchdog (mode required, timeout ttl - safety_margin 2 = 8 s).
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest

from tests.agent.cluster import AgentCluster, running_cluster
from tests.agent.conftest import OS_USER, PG_BIN
from tests.probes import wait_for

pytestmark = pytest.mark.agent

TTL_S, LOOP_WAIT_S = 10, 2


def first_write(cluster: AgentCluster, candidates: list[str], value: int, timeout_s: float) -> str:
    """Write `value` to each candidate in turn until one acknowledges; returns its name."""

    def probe() -> str | None:
        return next((n for n in candidates if cluster.try_write(n, value)), None)

    return wait_for("an acknowledged write on a new primary", probe, timeout_s, every_s=0.1)


def decisions(cluster: AgentCluster, name: str) -> list[dict[str, object]]:
    return [e for e in cluster.nodes[name].history() if e["kind"] == "decision"]


def test_bootstrap_gives_one_primary_and_two_streaming_replicas(workdir: Path) -> None:
    with running_cluster(workdir) as cluster:
        primary = cluster.wait_for_primary()
        replicas = set(cluster.nodes) - {primary}
        wait_for(
            "two streaming replicas",
            lambda: cluster.streaming_replicas(primary) == replicas,
            60,
            ignoring=(psycopg.Error,),
        )
        assert cluster.try_write(primary, 1)
        for name in replicas:
            node = cluster.nodes[name]
            wait_for("/replica 200", lambda node=node: node.get("/replica")[0] == 200, 5)
            assert node.get("/primary")[0] == 503
            assert not cluster.try_write(name, 2)  # read-only
            wait_for(
                "the row on a replica",
                lambda n=name: cluster.ids(n) == {1},
                10,
                ignoring=(psycopg.Error,),
            )
        code, body = cluster.nodes[primary].get("/patroni")
        assert (code, body["role"], body["timeline"]) == (200, "primary", 1)
        bootstraps = [d for d in decisions(cluster, primary) if "Bootstrap" in d["actions"]]
        assert len(bootstraps) == 1
        for name in replicas:
            assert not any("Bootstrap" in d["actions"] for d in decisions(cluster, name))


def test_kill_9_of_the_primary_gives_a_new_primary_within_ttl_plus_loop_wait(
    workdir: Path,
) -> None:
    with running_cluster(workdir) as cluster:
        old = cluster.wait_for_primary()
        others = sorted(set(cluster.nodes) - {old})
        wait_for(
            "replicas",
            lambda: cluster.streaming_replicas(old) == set(others),
            60,
            ignoring=(psycopg.Error,),
        )
        assert cluster.try_write(old, 1)
        killed_at = time.monotonic()
        cluster.kill_agent(old)
        cluster.kill_postgres(old)
        new = first_write(cluster, others, 2, timeout_s=TTL_S + LOOP_WAIT_S + 10)
        failover_s = time.monotonic() - killed_at
        assert failover_s <= TTL_S + LOOP_WAIT_S, failover_s
        assert cluster.wait_for_primary(30, not_=old) == new
        assert {1, 2} <= cluster.ids(new)
        code, body = cluster.nodes[new].get("/patroni")
        assert (code, body["timeline"]) == (200, 2)


def _start_diverged_old_primary(cluster: AgentCluster, name: str) -> None:
    """Start the crashed old primary by hand as a primary and commit a row nobody else has."""
    node = cluster.nodes[name]
    pg_ctl = [f"{PG_BIN}/pg_ctl", "-D", str(node.data_dir), "-w", "-t", "60"]
    subprocess.run(
        [*pg_ctl, "start", "-l", str(node.root / "manual.log")], check=True, user=OS_USER
    )
    assert cluster.try_write(name, 999)
    subprocess.run([*pg_ctl, "stop", "-m", "fast"], check=True, user=OS_USER)


def test_old_primary_rejoins_with_pg_rewind_after_writes_diverged(workdir: Path) -> None:
    with running_cluster(workdir) as cluster:
        old = cluster.wait_for_primary()
        others = sorted(set(cluster.nodes) - {old})
        wait_for(
            "replicas",
            lambda: cluster.streaming_replicas(old) == set(others),
            60,
            ignoring=(psycopg.Error,),
        )
        assert cluster.try_write(old, 1)
        cluster.kill_agent(old)
        cluster.kill_postgres(old)
        new = first_write(cluster, others, 2, timeout_s=30)
        _start_diverged_old_primary(cluster, old)  # timeline 1 goes on past the switch point
        cluster.start_agent(cluster.nodes[old])
        wait_for(
            "the old primary streaming from the new one",
            lambda: old in cluster.streaming_replicas(new),
            90,
            ignoring=(psycopg.Error,),
        )
        wait_for(
            "the new row on the old primary",
            lambda: 2 in cluster.ids(old),
            20,
            ignoring=(psycopg.Error,),
        )
        assert 999 not in cluster.ids(old)  # the diverged write was rewound away
        assert any("Rewind" in d["actions"] for d in decisions(cluster, old))
        node = cluster.nodes[old]

        def on_timeline_2() -> bool:  # the agent publishes its status once a loop: not at once
            code, body = node.get("/patroni")
            return code == 200 and body.get("timeline") == 2

        wait_for("the old primary on timeline 2", on_timeline_2, 10)
        assert node.get("/patroni")[1]["role"] == "replica"


class Writer(threading.Thread):
    """Writes increasing ids to one node until stopped; remembers the acknowledged ones."""

    def __init__(self, cluster: AgentCluster, name: str) -> None:
        super().__init__(daemon=True)
        self.cluster, self.name_ = cluster, name
        self.acked: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        value = 1000
        while not self.stop.is_set():
            value += 1
            if self.cluster.try_write(self.name_, value):
                self.acked.append(value)


def test_synchronous_mode_loses_no_acknowledged_write_across_a_failover(workdir: Path) -> None:
    with running_cluster(workdir, dcs={"synchronous_mode": True}) as cluster:
        old = cluster.wait_for_primary()
        others = sorted(set(cluster.nodes) - {old})
        sync = wait_for(  # listed in /sync: the only node that may be promoted
            "a synchronous standby",
            lambda: [n for n in others if cluster.nodes[n].get("/sync")[0] == 200],
            60,
        )
        assert len(sync) == 1
        writer = Writer(cluster, old)
        writer.start()
        wait_for("acknowledged writes", lambda: len(writer.acked) >= 50, 30)
        cluster.kill_agent(old)
        cluster.kill_postgres(old)
        writer.stop.set()
        writer.join(10)
        new = first_write(cluster, others, 1, timeout_s=TTL_S + LOOP_WAIT_S + 10)
        assert new == sync[0]  # only the synchronous standby may be promoted
        lost = set(writer.acked) - cluster.ids(new)
        assert not lost, f"{len(lost)} acknowledged writes lost"


def _softdog_fired_mono(cluster: AgentCluster, name: str) -> float | None:
    """When that node's softdog emulation fired (host monotonic clock), if it did."""
    log = cluster.nodes[name].root / "softdog.jsonl"
    lines = log.read_text().splitlines() if log.exists() else []
    fired = [json.loads(line) for line in lines if '"fired"' in line]
    return fired[0]["t_mono"] if fired else None


def _promoted_mono(cluster: AgentCluster, name: str) -> float | None:
    promotions = [d["t"] for d in decisions(cluster, name) if "Promote" in d["actions"]]
    return float(promotions[0]) if promotions else None  # type: ignore[arg-type]


def test_frozen_primary_agent_is_fenced_by_the_watchdog_before_any_promotion(
    workdir: Path,
) -> None:
    with running_cluster(workdir) as cluster:
        old = cluster.wait_for_primary()
        others = sorted(set(cluster.nodes) - {old})
        wait_for(
            "replicas",
            lambda: cluster.streaming_replicas(old) == set(others),
            60,
            ignoring=(psycopg.Error,),
        )
        frozen_mono = time.monotonic()
        cluster.kill_agent(old, signal.SIGSTOP)
        fired_mono = wait_for("the softdog", lambda: _softdog_fired_mono(cluster, old), TTL_S)
        assert fired_mono - frozen_mono < TTL_S - 1  # ttl - safety_margin, before the lock expires
        assert not cluster.try_write(old, 5)  # its PostgreSQL is gone: fenced
        new = first_write(cluster, others, 6, timeout_s=TTL_S + LOOP_WAIT_S + 10)
        promoted_mono = _promoted_mono(cluster, new)
        assert promoted_mono is not None
        assert fired_mono < promoted_mono  # fenced before any replica promoted
        agent = cluster.nodes[old].agent
        assert agent is not None
        assert agent.wait(timeout=10) == -signal.SIGKILL  # the emulation killed the agent too
