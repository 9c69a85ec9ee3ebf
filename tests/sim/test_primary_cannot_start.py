"""The primary's PostgreSQL cannot start again (issue 13, item 4), in exact virtual time.

The primary's disk fills at 44 s (`disk_full`: no write, no start), then its PostgreSQL is killed
at 45 s (`kill_postgres`). Every message takes exactly 1 ms; an etcd request costs 4 ms through a
follower. n1 is primary from 3.012 s and renews at 40.02 s, 50.024 s, ...
"""

from __future__ import annotations

from typing import Any

import pytest

from pgha.scenario import parse_scenario
from sim.run import build
from tests.sim.simkit import close, finish, probe

SCENARIO = """
name: primary-cannot-start
seed: 3
duration: 2m
cluster: {{nodes: 3, etcd: 3}}
config: {{ttl: 30, loop_wait: 10, retry_timeout: 10, primary_start_timeout: {timeout}}}
network: {{latency: {{median: 1ms, p99: 1ms}}}}
workload: {{rate: 10/s, via: haproxy}}
faults:
  - {{at: 44s, disk_full: primary}}
  - {{at: 45s, kill_postgres: primary}}
"""


def _run(timeout: int) -> tuple[list[dict[str, Any]], dict[float, Any]]:
    sim = build(parse_scenario(SCENARIO.format(timeout=timeout)))

    def n1_member() -> Any:
        entry = sim.etcd.kv.get("members/n1")
        return None if entry is None else entry.value

    seen = probe(sim.world.env, [100.0, 119.0], n1_member)
    return finish(sim), seen


def _firsts(events: list[dict[str, Any]]) -> dict[tuple[str, str, str], float]:
    at: dict[tuple[str, str, str], float] = {}
    for e in events:
        what = e.get("reason") or e.get("event") or e.get("role")
        if e["kind"] in ("decision", "lock", "pg_role"):
            at.setdefault((e["kind"], e["node"], what), e["t"])
    return at


@pytest.mark.parametrize("timeout", [20, 300])
def test_a_primary_whose_postgres_cannot_start_releases_the_lock_at_once(timeout: int) -> None:
    events, n1_member = _run(timeout)
    at = _firsts(events)
    assert close(at[("pg_role", "n1", "crashed")], 45.0)
    # 50.032: n1 renews and restarts in place; the start fails at once (disk full), and its
    # member key is still published in the same cycle.
    assert close(at[("decision", "n1", "primary_restart_in_place")], 50.032)
    # 60.036: the next cycle knows the start failed: release now, not after the start timeout.
    assert close(at[("decision", "n1", "start_failed_release")], 60.036)
    assert close(at[("lock", "n1", "released")], 60.044)
    # n3, woken by its watch, probes the peers (n1 answers "not running"), races and promotes.
    assert close(at[("lock", "n3", "acquired")], 60.055)
    assert close(at[("pg_role", "n3", "primary")], 60.559)
    assert ("lock", "n2", "acquired") not in at
    assert ("decision", "n1", "start_timeout_demote") not in at
    # A write is acknowledged by the new primary on its new timeline.
    acked = [e for e in events if e["kind"] == "ok" and e["op"] == "write" and e["t"] > 60.559]
    assert acked[0]["served_by"] == "n3"
    assert acked[0]["timeline"] == 2
    # n1's starts keep failing, but its member key stays, long after ttl (issue 13, item 5).
    for t in (100.0, 119.0):
        assert n1_member[t] is not None
        assert not n1_member[t].running
