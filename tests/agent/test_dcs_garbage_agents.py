"""Real agents: garbage written to the cluster's keys with etcdctl halts nobody, and the leader
repairs what it owns (issue 13, item 7).

`etcdctl put /service/<scope>/initialize garbage` used to halt every agent within 0.4 s with a
system-identifier mismatch. A leader key written by hand (no lease) never expired, leaving the
cluster without a primary until someone deleted it. One three-node cluster (ttl 10, loop_wait 2)
serves the whole module; each test leaves it with one primary and every replica streaming.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pgha.agent.etcd.session import EtcdSession, EtcdSettings
from tests.agent.cluster import AgentCluster, running_cluster
from tests.agent.conftest import give_to_os_user
from tests.agent.test_agent_operations import ctl, settled
from tests.probes import holds_for, wait_for

pytestmark = pytest.mark.agent

TTL_S, LOOP_WAIT_S = 10.0, 2.0
SLACK_S = 2.0  # a promotion, the REST answer and this test's own polling


@pytest.fixture(scope="module")
def cluster() -> Iterator[AgentCluster]:
    root = Path(tempfile.mkdtemp(prefix="pgha-garbage-"))
    root.chmod(0o755)
    give_to_os_user(root)
    try:
        with running_cluster(root, dcs={"ttl": TTL_S, "loop_wait": LOOP_WAIT_S}) as agents:
            settled(agents)
            yield agents
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def session(cluster: AgentCluster) -> Iterator[EtcdSession]:
    settings = EtcdSettings(hosts=tuple(cluster.etcd.endpoints), scope=cluster.scope)
    etcd = EtcdSession(settings)
    try:
        yield etcd
    finally:
        etcd.close()


def etcdctl(cluster: AgentCluster, *args: str) -> str:
    endpoints = ",".join(f"{host}:{port}" for host, port in cluster.etcd.endpoints)
    done = subprocess.run(
        ["etcdctl", f"--endpoints={endpoints}", *args],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "ETCDCTL_API": "3"},
        timeout=20,
    )
    return done.stdout


def put(cluster: AgentCluster, key: str, value: str) -> None:
    """What an operator's typo does: a plain put, no lease."""
    etcdctl(cluster, "put", f"/service/{cluster.scope}/{key}", value)


def raw(session: EtcdSession, cluster: AgentCluster, key: str) -> tuple[bytes, int] | None:
    """The key's value and lease id, None when absent."""
    answer = session.range(f"/service/{cluster.scope}/{key}".encode(), what="test")
    return (bytes(answer.kvs[0].value), int(answer.kvs[0].lease)) if answer.kvs else None


def alive(cluster: AgentCluster) -> list[str]:
    """The nodes whose agent process still runs."""
    return [n for n, node in cluster.nodes.items() if node.agent and node.agent.poll() is None]


def primaries(cluster: AgentCluster) -> list[str]:
    """Every node whose /primary answers 200 right now."""
    return [n for n, node in cluster.nodes.items() if node.get("/primary")[0] == 200]


def sane(cluster: AgentCluster) -> bool:
    """Never two primaries, never a dead agent (asserted: a breach fails the test at once)."""
    assert len(primaries(cluster)) <= 1
    assert alive(cluster) == list(cluster.nodes)
    return True


def watch(
    cluster: AgentCluster,
    seconds: float,
    until: Callable[[], bool] | None = None,
    what: str = "",
) -> float:
    """Poll every 0.2 s for `seconds`, or until `until()` (`what`), which must come within them:
    never two primaries, never a dead agent. Returns how long it took until `until()` held."""
    start = time.monotonic()
    if until is None:
        holds_for(
            "one primary at most, every agent alive", lambda: sane(cluster), seconds, every_s=0.2
        )
        return seconds
    wait_for(what, lambda: sane(cluster) and until(), seconds, every_s=0.2)
    return time.monotonic() - start


def healthy(cluster: AgentCluster) -> str:
    primary = settled(cluster)
    assert alive(cluster) == list(cluster.nodes)
    return primary


def test_garbage_in_initialize_halts_nobody_and_the_leader_rewrites_it(
    cluster: AgentCluster, session: EtcdSession
) -> None:
    primary = healthy(cluster)
    sysid = raw(session, cluster, "initialize")
    assert sysid is not None
    put(cluster, "initialize", "garbage")

    def rewritten() -> bool:
        return raw(session, cluster, "initialize") == sysid

    took = watch(cluster, 3 * LOOP_WAIT_S, rewritten, "the leader to rewrite /initialize")
    assert took <= LOOP_WAIT_S + SLACK_S
    watch(cluster, 2 * LOOP_WAIT_S)  # and nobody halts afterwards either
    assert primaries(cluster) == [primary]
    assert healthy(cluster) == primary


def test_a_leader_key_without_a_lease_expires_and_one_primary_takes_over(
    cluster: AgentCluster, session: EtcdSession
) -> None:
    healthy(cluster)
    put(cluster, "leader", "garbage")
    written = time.monotonic()
    listed = ctl(cluster, "list")
    assert listed.returncode == 0, listed.stderr
    assert "the leader key is held by 'garbage', which is not a member" in listed.stderr
    assert "no lease" in listed.stderr

    def taken_over() -> bool:
        key = raw(session, cluster, "leader")
        return key is not None and key[0] != b"garbage" and len(primaries(cluster)) == 1

    watch(cluster, TTL_S + 2 * LOOP_WAIT_S + SLACK_S + 10, taken_over, "a leased leader key")
    took = time.monotonic() - written
    assert taken_over(), "no primary after the garbage leader key"
    print(f"garbage leader key: a new primary after {took:.1f} s")
    assert took <= TTL_S + 2 * LOOP_WAIT_S + SLACK_S, took
    key = raw(session, cluster, "leader")
    assert key is not None
    holder, lease = key
    assert lease != 0  # an agent's key again
    assert primaries(cluster) == [holder.decode()]
    assert healthy(cluster) == holder.decode()


def test_garbage_in_every_other_key_crashes_nothing_and_the_leader_repairs(
    cluster: AgentCluster, session: EtcdSession
) -> None:
    primary = healthy(cluster)
    replica = sorted(set(cluster.nodes) - {primary})[0]
    _, config_before = cluster.nodes[primary].get("/config")
    for key, value in [
        ("sync", "garbage"),
        ("failover", '{"leader": 5}'),
        (f"members/{replica}", "[[[["),
        ("members/zz", "garbage"),
        ("history", '[["x"], 1, {"a": null}]'),
        ("status", '{"optime": "--5"}'),
        ("failsafe", "7"),
        ("config", "garbage"),
    ]:
        put(cluster, key, value)

    def repaired() -> bool:
        sync, failover = raw(session, cluster, "sync"), raw(session, cluster, "failover")
        member = raw(session, cluster, f"members/{replica}")
        return (
            failover is None
            and sync is not None
            and isinstance(json.loads(sync[0]), dict)
            and member is not None
            and member[0].startswith(b"{")
        )

    took = watch(cluster, 4 * LOOP_WAIT_S + SLACK_S, repaired, "the leader's repairs")
    assert repaired(), "the leader did not repair /sync and /failover"
    assert took <= 2 * LOOP_WAIT_S + SLACK_S
    watch(cluster, 2 * LOOP_WAIT_S)
    assert primaries(cluster) == [primary]
    for node in cluster.nodes.values():  # each keeps its last good configuration, and says so
        assert node.get("/patroni")[1].get("config_error")
    put(cluster, "config", json.dumps(config_before))  # leave the module's cluster clean
    etcdctl(cluster, "del", f"/service/{cluster.scope}/members/zz")
    assert healthy(cluster) == primary
