"""A demoted primary disarms its watchdog once PostgreSQL has stopped, before it starts again as a
replica (Patroni's safepoint), in exact virtual time.

A switchover demotes n1 at 60 s; its PostgreSQL then needs 12 s to start again, longer than the
watchdog's 8 s (ttl 10 - safety_margin 2). A watchdog still armed during that start (it was
disarmed only after the restart) reset the node while it was already a stopped, safe server.
"""

from __future__ import annotations

from typing import Any

from pgha.scenario import parse_scenario
from sim.run import build
from tests.sim.simkit import finish

SCENARIO = """
name: demote-safepoint
seed: 5
duration: 2m
cluster: {nodes: 3, etcd: 3}
config: {ttl: 10, loop_wait: 2, retry_timeout: 2, watchdog: {mode: required, safety_margin: 2}}
postgres: {start: 12s}
network: {latency: {median: 1ms, p99: 1ms}}
workload: {rate: 10/s, via: haproxy}
faults:
  - {at: 60s, switchover: {leader: n1, candidate: n2}}
"""


def _watchdog(events: list[dict[str, Any]], node: str) -> list[tuple[float, str]]:
    return [(e["t"], e["event"]) for e in events if e["kind"] == "watchdog" and e["node"] == node]


def test_a_slow_restart_after_the_stop_does_not_outlast_the_watchdog() -> None:
    events = finish(build(parse_scenario(SCENARIO)))
    after = [(t, what) for t, what in _watchdog(events, "n1") if t >= 60.0]
    assert "fired" not in [what for _, what in after]
    disabled = next(t for t, what in after if what == "disabled")
    started = [e["t"] for e in events if e["kind"] == "pg_role" and e["node"] == "n1"]
    # disarmed before the replica's start ended (12 s after the stop)
    assert any(t > disabled + 11.0 for t in started)
    roles = {e["node"]: e["role"] for e in events if e["kind"] == "pg_role"}
    assert roles["n2"] == "primary"
    assert roles["n1"] == "replica"
