"""Operator requests in the simulator: the REST API checks them with the engine's rule
(pgha.engine.operator) against one fresh read, and every request ends in one `operator` event.

Nodes n1..n3, etcd members etcd1..etcd3 on hosts of their own, ttl 10, loop_wait 2, retry_timeout
3, no watchdog, every message 1 ms. With seed 1, n2 is the primary from 3.012 s on; in
synchronous mode n1 is its synchronous standby and n3 is asynchronous.
"""

from __future__ import annotations

from typing import Any

import pytest

from pgha.scenario import parse_scenario
from sim.run import Simulation, build
from tests.sim.simkit import finish, primary_of, probe, scenario_sim

SYNC = """
name: sync-switchover
seed: 1
duration: 60s
cluster: {{nodes: 3, etcd: 3}}
config: {{ttl: 10, loop_wait: 2, retry_timeout: 3, synchronous_mode: true, watchdog: {{mode: off}}}}
network: {{latency: {{median: 1ms, p99: 1ms}}}}
faults: {faults}
"""


def sync_sim(faults: str) -> Simulation:
    return build(parse_scenario(SYNC.format(faults=faults)))


def operator_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == "operator"]


def demotes(events: list[dict[str, Any]]) -> list[float]:
    return [e["t"] for e in events if e.get("reason") == "switchover_demote"]


def test_a_switchover_to_an_async_standby_is_refused_and_the_leader_stays() -> None:
    sim = sync_sim("[{at: 20s, switchover: {leader: n2, candidate: n3}}]")
    seen = probe(
        sim.world.env, [19.9, 20.1, 59.9], lambda: (primary_of(sim), sim.etcd.kv.get("failover"))
    )
    events = finish(sim)
    # The POST and its answer take 1 ms each; n2's read of the cluster through etcd 4 ms.
    assert operator_events(events) == [
        {
            "t": pytest.approx(20.006, abs=1e-9),
            "kind": "operator",
            "node": "ctl",
            "request": "switchover",
            "fault_id": 1,
            "leader": "n2",
            "candidate": "n3",
            "scheduled": False,
            "outcome": "refused",
            "status": 412,
            "error": "candidate_not_sync",
            "via": "n2",
        }
    ]
    assert seen == {19.9: ("n2", None), 20.1: ("n2", None), 59.9: ("n2", None)}
    assert demotes(events) == []


def test_a_switchover_to_the_sync_standby_is_accepted_and_done() -> None:
    sim = sync_sim("[{at: 20s, switchover: {leader: primary, candidate: sync_standby}}]")
    primaries = probe(sim.world.env, [19.9, 30.0], lambda: primary_of(sim))
    events = finish(sim)
    [event] = operator_events(events)
    # The POST, n2's read and its write of the key (4 ms each through etcd), the answer.
    assert event["t"] == pytest.approx(20.010, abs=1e-9)
    assert {k: event[k] for k in ("leader", "candidate", "outcome", "status", "error", "via")} == {
        "leader": "n2",
        "candidate": "n1",
        "outcome": "accepted",
        "status": 200,
        "error": None,
        "via": "n2",
    }
    assert (primaries[19.9], primaries[30.0]) == ("n2", "n1")
    assert len(demotes(events)) == 1


def test_each_request_names_the_fault_that_made_it() -> None:
    faults = (
        "[{at: 20s, switchover: {leader: n2, candidate: n3}},"
        " {at: 30s, switchover: {leader: n2, candidate: n1, at: 50s}},"
        " {at: 40s, failover: {candidate: n3}}]"
    )
    events = finish(sync_sim(faults))
    answers = [
        (e["fault_id"], e["request"], e["scheduled"], e["outcome"], e["status"], e["error"])
        for e in operator_events(events)
    ]
    assert answers == [
        (1, "switchover", False, "refused", 412, "candidate_not_sync"),
        (2, "switchover", True, "accepted", 202, None),
        (3, "failover", False, "refused", 409, "already_scheduled"),
    ]


def test_without_an_agent_the_operator_checks_and_writes_etcd_directly() -> None:
    # No REST API answers (every agent was killed at 20 s): three refused connections (2 ms
    # each), then the operator reads the cluster and writes the key through an etcd follower
    # (6 ms each).
    faults = (
        "[{at: 20s, kill_agent: n1}, {at: 20s, kill_agent: n2}, {at: 20s, kill_agent: n3},"
        " {at: 22s, switchover: {leader: n2, candidate: n1}}]"
    )
    events = finish(scenario_sim(faults))
    [event] = operator_events(events)
    assert (event["outcome"], event["status"], event["error"], event["via"]) == (
        "accepted",
        None,
        None,
        None,
    )
    assert event["t"] == pytest.approx(22.018, abs=1e-9)


def test_a_failed_request_says_so() -> None:
    # etcd is cut off from everyone: n2's REST API answers 503 after retry_timeout (3 s).
    faults = (
        "[{at: 20s, partition: {isolate: [etcd1, etcd2, etcd3]}, for: 30s},"
        " {at: 25s, switchover: {leader: n2, candidate: n1}}]"
    )
    events = finish(scenario_sim(faults, duration=60))
    [event] = operator_events(events)
    assert event["t"] == pytest.approx(28.002, abs=1e-9)
    assert (event["outcome"], event["status"], event["error"], event["via"]) == (
        "failed",
        503,
        "dcs_unavailable",
        "n2",
    )
