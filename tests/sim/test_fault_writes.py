"""The `config` (PATCH /config) and `etcd_put` (raw bytes, as etcdctl puts them) faults in the
simulator (sim/faults_ops.py), in exact virtual time, and the verdicts of the two bundled
scenarios that use them.

The component cluster (tests/sim/simkit.py): n1..n3, etcd1..etcd3, ttl 10, loop_wait 2,
retry_timeout 3, every message 1 ms. n2 is primary from 3 s on. A REST request from the operator
costs 1 ms there and 1 ms back; an etcd request from n1 costs 6 ms (through a follower: 1 ms to
it, 1 ms on to the leader, a 2 ms majority round trip, 2 ms back) and from n3 4 ms (its endpoint
is the etcd leader).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pgha.checks import run_checks
from pgha.history import iter_history
from sim.run import run_scenario
from tests.sim.simkit import close, fault_events, finish, later, primary_of, probe, scenario_sim

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = {"ttl": 10, "loop_wait": 2, "retry_timeout": 3, "watchdog": {"mode": False}}
HUGE = 99999999999999999999999999


def operators(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == "operator"]


def answer(e: dict[str, Any]) -> tuple[Any, ...]:
    # Virtual times are sums of 1 ms steps: exact up to float rounding.
    return (round(e["t"], 9), e["outcome"], e["status"], e["error"], e["via"], e["restore"])


# ---------------------------------------------------------------- config


def test_an_accepted_change_is_in_force_until_for_puts_the_old_document_back() -> None:
    sim = scenario_sim("[{at: 20s, config: {patch: {ttl: 20, loop_wait: 5}}, for: 10s}]")
    stored = probe(sim.world.env, [19.0, 25.0, 35.0], lambda: sim.etcd.kv["config"].value)
    ttls = probe(
        sim.world.env, [25.0, 35.0], lambda: {n.dcs.config.ttl_s for n in sim.nodes.values()}
    )
    events = finish(sim)

    first, restore = operators(events)
    # A read and a compare-and-set from n1: 1 + 6 + 6 + 1 ms.
    assert answer(first) == (20.014, "accepted", 200, None, "n1", False)
    assert answer(restore) == (30.014, "accepted", 200, None, "n1", True)
    assert (first["request"], first["fault_id"], first["node"], first["detail"]) == (
        "config",
        1,
        "ctl",
        None,
    )
    assert stored[25.0] == {**BOOTSTRAP, "ttl": 20, "loop_wait": 5}
    assert stored[35.0] == BOOTSTRAP
    assert ttls == {25.0: {20.0}, 35.0: {10.0}}
    assert [(e["t"], e["phase"], e["targets"], e["label"]) for e in fault_events(events)] == [
        (20.0, "start", [], "config ttl,loop_wait"),
        (30.0, "end", [], "config ttl,loop_wait"),
    ]


def test_a_refused_change_writes_nothing_and_has_nothing_to_restore() -> None:
    sim = scenario_sim(f"[{{at: 20s, config: {{patch: {{ttl: {HUGE}}}, node: n3}}, for: 10s}}]")
    version = probe(sim.world.env, [19.0, 40.0], lambda: sim.etcd.kv["config"].mod_rev)
    events = finish(sim)

    (refused,) = operators(events)  # no restore: nothing was changed
    assert answer(refused) == (20.006, "refused", 400, "invalid_config", "n3", False)  # one read
    assert (
        refused["detail"]
        == "ttl: expected a number of seconds from 3 to 3600, got an integer of 26 digits"
    )
    assert version[19.0] == version[40.0]
    assert [e for e in events if e["kind"] == "config_rejected"] == []
    assert primary_of(sim) == "n2"


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        ("{ttl: 0}", "ttl"),
        ("{ttl: -5}", "ttl"),
        ("{ttl: thirty}", "ttl"),
        ("{ttl: 10000000000}", "ttl"),
        ("{loop_wait: 1.5e+308}", "loop_wait"),
        ("{retry_timeout: 0}", "retry_timeout"),
        ("{no_such_setting: 1}", "no_such_setting"),
        ("{watchdog: {mode: sometimes}}", "watchdog"),
    ],
)
def test_every_mistake_the_api_must_refuse_is_refused(patch: str, key: str) -> None:
    sim = scenario_sim(f"[{{at: 20s, config: {{patch: {patch}}}}}]", duration=30)
    (refused,) = operators(finish(sim))
    assert (refused["outcome"], refused["status"], refused["error"]) == (
        "refused",
        400,
        "invalid_config",
    )
    assert key in refused["detail"]


def test_loop_wait_above_ttl_is_accepted_and_adjusted_as_patroni_does() -> None:
    sim = scenario_sim("[{at: 20s, config: {patch: {loop_wait: 60}}}]", duration=30)
    events = finish(sim)
    assert operators(events)[0]["outcome"] == "accepted"
    assert {n.dcs.config.loop_wait_s for n in sim.nodes.values()} == {4.0}  # ttl - 2 * retry


def test_without_for_the_change_stays_after_the_run() -> None:
    sim = scenario_sim("[{at: 20s, config: {patch: {ttl: 20}}}]", duration=30)
    events = finish(sim)
    assert [e["phase"] for e in fault_events(events)] == ["start"]
    assert sim.etcd.kv["config"].value == {**BOOTSTRAP, "ttl": 20}


def test_the_named_node_is_asked_first_and_one_without_an_agent_is_passed_over() -> None:
    faults = "[{at: 10s, kill_agent: n2}, {at: 20s, config: {patch: {ttl: 20}, node: n2}}]"
    events = finish(scenario_sim(faults, duration=30))
    (accepted,) = operators(events)
    # n2 refuses the connection (1 ms there, 1 ms back), then n1 takes it (14 ms).
    assert answer(accepted) == (20.016, "accepted", 200, None, "n1", False)
    assert fault_events(events)[1]["targets"] == ["n2"]


def test_no_agent_answering_is_a_failed_request_and_no_direct_write() -> None:
    faults = "[{at: 10s, kill_agent: [n1, n2, n3]}, {at: 20s, config: {patch: {ttl: 20}}}]"
    sim = scenario_sim(faults, duration=30)
    version = probe(sim.world.env, [19.0, 29.0], lambda: sim.etcd.kv["config"].mod_rev)
    (failed,) = operators(finish(sim))
    assert answer(failed) == (20.006, "failed", None, "unreachable", None, False)
    assert version[19.0] == version[29.0]


def test_an_agent_cut_off_from_etcd_answers_503() -> None:
    faults = (
        "[{at: 20s, partition: {groups: [[n1], [etcd1, etcd2, etcd3]]}, for: 10s},"
        " {at: 21s, config: {patch: {ttl: 20}, node: n1}}]"
    )
    (failed,) = operators(finish(scenario_sim(faults, duration=40)))
    # n1 gives etcd its retry_timeout (3 s) before it answers.
    assert (failed["outcome"], failed["status"], failed["error"], failed["via"]) == (
        "failed",
        503,
        "dcs_unavailable",
        "n1",
    )
    assert close(failed["t"], 24.002)


# ---------------------------------------------------------------- etcd_put


def test_a_put_writes_raw_bytes_without_a_lease_and_for_puts_the_old_entry_back() -> None:
    sim = scenario_sim("[{at: 20s, etcd_put: {key: members/n3, value: garbage}, for: 0.5s}]")
    seen = probe(sim.world.env, [19.9, 20.0001, 20.6], lambda: sim.etcd.kv["members/n3"])
    events = finish(sim)

    assert (seen[20.0001].value, seen[20.0001].lease) == (b"garbage", None)
    before, after = seen[19.9], seen[20.6]
    assert (after.value, after.lease) == (before.value, before.lease)  # on its live lease
    assert after.mod_rev > seen[20.0001].mod_rev
    assert [(e["t"], e["phase"], e["label"], e["params"]) for e in fault_events(events)] == [
        (20.0, "start", "etcd_put members/n3", {"key": "members/n3", "value": "garbage"}),
        (20.5, "end", "etcd_put members/n3", {"key": "members/n3", "value": "garbage"}),
    ]


def test_a_key_that_was_absent_is_deleted_again() -> None:
    sim = scenario_sim("[{at: 20s, etcd_put: {key: failsafe, value: '{'}, for: 5s}]", duration=30)
    seen = probe(sim.world.env, [21.0, 26.0], lambda: sim.etcd.kv.get("failsafe"))
    finish(sim)
    assert seen[21.0] is not None
    assert seen[21.0].value == b"{"
    assert seen[26.0] is None


def test_a_key_repaired_or_replaced_since_is_left_as_the_cluster_wrote_it() -> None:
    # n3's agent writes its member key again every loop (2 s): the garbage is gone long before
    # the fault ends, and the undo must not put back the stale value it saw at 20 s.
    sim = scenario_sim("[{at: 20s, etcd_put: {key: members/n3, value: x}, for: 10s}]")
    seen = probe(sim.world.env, [29.99, 30.01], lambda: sim.etcd.kv["members/n3"].mod_rev)
    finish(sim)
    assert seen[29.99] == seen[30.01]


def test_a_key_whose_lease_has_ended_is_deleted_as_etcd_would_have() -> None:
    sim = scenario_sim("[{at: 20s, etcd_put: {key: members/n3, value: x}, for: 5s}]")
    later(sim.world.env, 20.0001, lambda: sim.nodes["n3"].kill())  # its member key is ours now
    lease = probe(sim.world.env, [19.0], lambda: sim.etcd.kv["members/n3"].lease)
    later(sim.world.env, 24.0, lambda: sim.etcd.revoke(lease[19.0]))
    seen = probe(sim.world.env, [24.5, 25.5], lambda: sim.etcd.kv.get("members/n3"))
    finish(sim)
    assert seen[24.5] is not None
    assert seen[25.5] is None


def test_without_an_etcd_leader_the_put_cannot_commit_and_is_skipped() -> None:
    faults = (
        "[{at: 20s, etcd: {member: etcd1}, for: 10s}, {at: 20s, etcd: {member: etcd2}, for: 10s},"
        " {at: 21s, etcd_put: {key: leader, value: garbage}}]"
    )
    events = fault_events(finish(scenario_sim(faults, duration=40)))
    skipped = [e for e in events if e["fault"] == "etcd_put"]
    assert [(e["phase"], e["error"]) for e in skipped] == [
        ("skipped", "etcd has no leader: a put cannot commit")
    ]


def test_a_sync_standby_is_still_chosen_with_garbage_in_the_sync_key() -> None:
    faults = "[{at: 20s, etcd_put: {key: sync, value: garbage}}, {at: 21s, pause: sync_standby}]"
    events = fault_events(finish(scenario_sim(faults, duration=30)))
    assert events[1]["phase"] == "start"
    assert events[1]["targets"][0] in ("n2", "n3")


# ---------------------------------------------------------------- the bundled scenarios


def _run(name: str, tmp_path: Path) -> tuple[list[dict[str, Any]], Any]:
    from pgha.history import HistoryWriter
    from pgha.scenario import load_scenario

    history = tmp_path / "history.jsonl"
    with HistoryWriter(history) as writer:
        run_scenario(load_scenario(ROOT / "scenarios" / f"{name}.yaml"), recorder=writer)
    events = [json.loads(line) for line in history.read_text().splitlines()]
    return events, run_checks(iter_history(history))


def test_operator_config_mistakes_are_refused_and_the_change_is_undone(tmp_path: Path) -> None:
    events, report = _run("operator-config-mistakes", tmp_path)
    assert report.ok, [r.name for r in report.results if not r.ok]
    # n1 is primary; its endpoint is the etcd leader (4 ms a request), n3's a follower (6 ms).
    assert [answer(e) for e in operators(events)] == [
        (30.01, "accepted", 200, None, "n1", False),
        (60.006, "refused", 400, "invalid_config", "n1", False),  # node: primary
        (70.008, "refused", 400, "invalid_config", "n3", False),  # node: replica (seeded)
        (80.006, "refused", 400, "invalid_config", "n1", False),
        (210.01, "accepted", 200, None, "n1", True),  # for: 3m puts ttl 30 back
    ]
    assert [e for e in events if e["kind"] in ("config_rejected", "agent")] == []
    acquired = [
        (e["t"], e["node"]) for e in events if e["kind"] == "lock" and e["event"] == "acquired"
    ]
    assert acquired[0] == (3.028, "n1")
    assert [node for _, node in acquired[1:]] == ["n2"]  # n1's machine died at 100 s


def test_a_ttl_change_applies_to_the_lock() -> None:
    faults = "[{at: 20s, config: {patch: {ttl: 20}}}, {at: 40s, kill: primary}]"
    events = finish(scenario_sim(faults, duration=90))
    expired = [e["t"] for e in events if e["kind"] == "lock" and e["event"] == "expired"]
    assert 40.0 + 18 <= expired[0] <= 40.0 + 20  # ttl 20 from n1's last keepalive, not 10


def test_etcd_garbage_halts_nobody_and_costs_one_ttl_of_unavailability(tmp_path: Path) -> None:
    events, report = _run("etcd-garbage", tmp_path)
    assert report.ok, [r.name for r in report.results if not r.ok]
    lost = report.result("no_lost_acknowledged_writes")
    assert lost is not None
    assert lost.metrics["lost_writes"] == 0  # not even within the scenario's bound
    starts = [(e["t"], e["label"]) for e in fault_events(events) if e["phase"] == "start"]
    assert starts == [
        (30.0, "etcd_put initialize"),
        (45.0, "etcd_put sync"),
        (60.0, "etcd_put failover"),
        (75.0, "etcd_put config"),
        (120.0, "etcd_put leader"),
        (180.0, "etcd_put members/n2"),
        (200.0, "etcd_put history"),
        (210.0, "etcd_put status"),
        (220.0, "etcd_put failsafe"),
    ]
    assert [e for e in events if e["kind"] == "agent"] == []  # nobody halted or crashed
    rejected = [(e["node"], e["key"]) for e in events if e["kind"] == "config_rejected"]
    assert sorted(rejected) == [("n1", "ttl"), ("n2", "ttl"), ("n3", "ttl")]  # each says it once
    assert all(75.0 < e["t"] < 75.0 + 5 + 0.1 for e in events if e["kind"] == "config_rejected")
    # The foreign leader key: the primary loses the lock at its next renewal and demotes; a
    # primary is back once the key is gone, about one ttl (20 s) after it was written.
    acquired = [e["t"] for e in events if e["kind"] == "lock" and e["event"] == "acquired"]
    assert acquired[0] == 3.028
    assert len(acquired) == 2
    assert 120.0 + 20 <= acquired[1] <= 120.0 + 20 + 5 + 1
