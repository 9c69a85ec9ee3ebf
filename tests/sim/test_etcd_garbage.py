"""Garbage written to the simulated etcd halts nobody, and the leader repairs what it owns
(issue 13, item 7).

Raw bytes in a key are what `etcdctl put` writes; the simulator's etcd client decodes them with
the real agent's codec. A native value written without a lease (the leader key) is what etcdctl
writes for the holder's name. ttl 10, loop_wait 2, retry_timeout 3, 1 ms per message.
"""

from __future__ import annotations

from typing import Any

import pytest

from pgha.engine.values import Member, SyncKey, sysid_valid
from pgha.scenario import parse_scenario
from sim.run import Simulation, build
from tests.sim.simkit import finish, later, primary_of, scenario_sim

BAD_AT = 20.0
TTL_S, LOOP_WAIT_S = 10.0, 2.0


def _primaries(events: list[dict[str, Any]]) -> list[tuple[float, frozenset[str]]]:
    """(t, nodes whose PostgreSQL is primary) after every role change, from the history."""
    roles: dict[str, str] = {}
    out = []
    for e in events:
        if e["kind"] == "pg_role":
            roles[e["node"]] = e["role"]
            out.append((e["t"], frozenset(n for n, r in roles.items() if r == "primary")))
    return out


def _never_two(events: list[dict[str, Any]]) -> None:
    assert all(len(nodes) <= 1 for _, nodes in _primaries(events))


def _halted(events: list[dict[str, Any]]) -> list[str]:
    return [e["node"] for e in events if e["kind"] == "agent" and e.get("event") == "halted"]


def _acquired(events: list[dict[str, Any]], after: float) -> list[tuple[float, str]]:
    return [
        (e["t"], e["node"])
        for e in events
        if e["kind"] == "lock" and e["event"] == "acquired" and e["t"] > after
    ]


@pytest.mark.parametrize("garbage", ["garbage", b"garbage", b"\xff\xfe", "123"])
def test_garbage_in_initialize_halts_nobody_and_the_leader_rewrites_it(garbage: Any) -> None:
    sim = scenario_sim(duration=40)
    later(sim.world.env, BAD_AT, lambda: sim.etcd.put("initialize", garbage))
    events = finish(sim)
    assert _halted(events) == []
    lost = [e for e in events if e["kind"] == "lock" and e["event"] in ("lost", "expired")]
    assert lost == []
    assert len(_acquired(events, 0.0)) == 1  # the first leader keeps the lock throughout
    primary = primary_of(sim)
    assert primary is not None
    repaired = sim.etcd.kv["initialize"]
    assert repaired.value == sim.nodes[primary].pg.state().sysid
    assert sysid_valid(repaired.value)
    assert repaired.mod_rev > 0


@pytest.mark.parametrize("garbage", ["garbage", b"garbage"])
def test_a_leader_key_without_a_lease_is_deleted_after_ttl_and_one_primary_follows(
    garbage: Any,
) -> None:
    sim = scenario_sim(duration=60)
    later(sim.world.env, BAD_AT, lambda: sim.etcd.put("leader", garbage))
    events = finish(sim)
    assert _halted(events) == []
    _never_two(events)
    expired = [e for e in events if e.get("reason") == "unleased_leader_expired"]
    assert expired
    # Seen at most one loop after it was written, deleted ttl later on the node's own clock.
    assert BAD_AT + TTL_S <= expired[0]["t"] <= BAD_AT + TTL_S + LOOP_WAIT_S + 0.1
    [(t, winner)] = _acquired(events, BAD_AT)
    assert t <= BAD_AT + TTL_S + 2 * LOOP_WAIT_S
    assert primary_of(sim) == winner
    entry = sim.etcd.kv["leader"]
    assert (entry.value, entry.lease is not None) == (winner, True)


def test_my_own_name_without_a_lease_is_renewed_by_the_holder_no_outage() -> None:
    sim = scenario_sim(duration=40)
    holder: list[str] = []

    def overwrite() -> None:
        holder.append(sim.etcd.kv["leader"].value)
        sim.etcd.put("leader", holder[0])  # same name, no lease

    later(sim.world.env, BAD_AT, overwrite)
    events = finish(sim)
    assert [e for e in events if e["kind"] == "lock" and e["event"] != "renewed"] == [
        e for e in events if e["kind"] == "lock" and e["event"] == "acquired"
    ]
    assert len(_acquired(events, 0.0)) == 1
    assert primary_of(sim) == holder[0]
    assert sim.etcd.kv["leader"].lease is not None  # the renewal put its lease back


def test_another_members_name_without_a_lease_is_never_taken_over_by_it() -> None:
    # The named replica does not hold the lock, so it does not "renew" a key it never had: the
    # key expires like any other hand-written one, and the healthiest node wins the race.
    sim = scenario_sim(duration=60)
    named: list[str] = []

    def overwrite() -> None:
        primary = sim.etcd.kv["leader"].value
        named.append(next(n for n in sorted(sim.nodes) if n != primary))
        sim.etcd.put("leader", named[0])

    later(sim.world.env, BAD_AT, overwrite)
    events = finish(sim)
    _never_two(events)
    renewals = [
        e
        for e in events
        if e["kind"] == "decision" and e["node"] == named[0] and e["reason"] == "renew_lock"
        if BAD_AT < e["t"] < BAD_AT + TTL_S
    ]
    assert renewals == []
    assert [e for e in events if e.get("reason") == "unleased_leader_expired"]
    assert len(_acquired(events, BAD_AT)) == 1


SYNC_SCENARIO = """
name: garbage
seed: 1
duration: 60s
cluster: {nodes: 3, etcd: 3}
config: {ttl: 10, loop_wait: 2, retry_timeout: 3, synchronous_mode: true, watchdog: {mode: off}}
network: {latency: {median: 1ms, p99: 1ms}}
"""

GARBAGE_VALUES: list[Any] = [
    b"garbage",
    b"[" * 5000 + b"]" * 5000,
    b'{"leader": 5, "member": []}',
    b"1e999",
    "garbage",  # not bytes, and not what the agents write there: read as raw all the same
    {"leader": 5, "member": None, "sync_standby": 7},
]


def _sync_sim() -> Simulation:
    return build(parse_scenario(SYNC_SCENARIO))


@pytest.mark.parametrize(
    "value", GARBAGE_VALUES, ids=["text", "deep", "types", "number", "str", "object"]
)
@pytest.mark.parametrize(
    "key", ["sync", "failover", "members/n2", "members/zz", "history", "status", "failsafe"]
)
def test_garbage_in_any_other_key_crashes_nothing_and_the_leader_repairs_its_keys(
    key: str, value: Any
) -> None:
    sim = _sync_sim()
    later(sim.world.env, BAD_AT, lambda: sim.etcd.put(key, value))
    events = finish(sim)
    assert _halted(events) == []
    _never_two(events)
    lost = [e for e in events if e["kind"] == "lock" and e["event"] in ("lost", "expired")]
    assert lost == []
    primary = primary_of(sim)
    assert primary is not None
    kv = sim.etcd.kv
    if key == "sync":  # rewritten by the leader: a value the agents decode again
        assert isinstance(kv["sync"].value, SyncKey)
        assert kv["sync"].value.leader == primary
    if key == "failover":  # no valid request: deleted by the leader
        assert "failover" not in kv
    if key == "members/n2":  # n2 publishes its own key again
        assert isinstance(kv["members/n2"].value, Member)
