"""Hand-built histories for what the corpus and the generated runs do not pin down: the detail of
every measure, written to kill the checker's mutants (tests/checks/README.md)."""

from __future__ import annotations

import pytest

from pgha.checks import (
    LOST_WRITES,
    OPERATOR,
    SPLIT_BRAIN,
    FactsCollector,
    HistoryIntegrityError,
    collect_facts,
    run_checks,
    spec_from_history,
    summarize,
)
from pgha.history import Event, HistoryError
from pgha.scenario import ChecksSpec
from tests.history.histories import Run, steady

SAFETY = ChecksSpec()


# ---------------------------------------------------------------- the older reign of a pair


def _slow_first_ack_then_stale() -> tuple[Run, dict[str, int]]:
    """n1 (timeline 1)'s only honest ack returns late, after n2 (timeline 2) acknowledged its
    first; then n1 acknowledges a write sent after that: a stale ack."""
    run = Run()
    run.role(0.0, "n1", "primary", 1)
    run.role(0.0, "n2", "replica", 1)
    run.role(0.0, "n3", "replica", 1)
    run.role(2.0, "n1", "replica", 1)
    run.role(2.5, "n2", "primary", 2)
    run.role(2.5, "n3", "replica", 2)
    ids = {
        "slow": run.write(1.0, 4.0, "n1", timeline=1),
        "new_first": run.write(3.0, 3.01, "n2", timeline=2),
        "stale": run.write(3.5, 3.6, "n1", timeline=1),
        "new_last": run.write(5.0, 5.01, "n2", timeline=2),
    }
    return run, ids


def test_a_stale_ack_after_a_slow_first_ack_is_still_a_split_brain() -> None:
    run, _ = _slow_first_ack_then_stale()
    split = run_checks(run.events(), SAFETY).result(SPLIT_BRAIN)
    assert split is not None
    assert [v.detail["reason"] for v in split.violations] == ["interleaved_reigns"]


def test_the_stale_ack_is_the_older_timelines() -> None:
    """The older reign is the one that was sent writes first: with the reigns ordered by their
    first ack (as before), n2's honest ack was listed as the stale one."""
    run, ids = _slow_first_ack_then_stale()
    split = run_checks(run.events(), SAFETY).result(SPLIT_BRAIN)
    assert split is not None
    (v,) = split.violations
    assert v.detail["stale_first_ids"] == [ids["stale"]]
    assert [r["node"] for r in v.detail["reigns"]] == ["n1", "n2"]


# ---------------------------------------------------------------- unavailability per client path


def test_a_replica_refusing_direct_writes_is_no_outage() -> None:
    run = steady(Run())
    for k in range(5):
        t = 1.0 + k
        run.ev(t, "invoke", "c1", op="write", id=100 + k, target="n1")
        run.ev(t + 0.1, "ok", "c1", op="write", id=100 + k, served_by="n1", timeline=1)
        run.ev(t, "invoke", "c2", op="write", id=200 + k, target="n2")
        run.ev(t + 0.1, "fail", "c2", op="write", id=200 + k, error="read_only")
    run.ev(7.0, "run_end")
    s = run_checks(run.events(), SAFETY).summary
    assert s["unavailability_s"] == 0
    assert s["unavailable_periods"] == 0
    assert s["client_paths"] == ["n1", "n2"]
    assert s["writes_failed"] == 5


def test_unavailable_only_while_every_path_is_down() -> None:
    run = steady(Run())
    run.ev(1.0, "invoke", "c1", op="write", id=1, target="n1")
    run.ev(1.1, "ok", "c1", op="write", id=1, served_by="n1", timeline=1)
    run.ev(1.0, "invoke", "c2", op="write", id=2, target="n2")
    run.ev(1.2, "fail", "c2", op="write", id=2)
    run.ev(2.0, "invoke", "c1", op="write", id=3, target="n1")  # n1's path down from 2.0
    run.ev(2.5, "fail", "c1", op="write", id=3)
    run.ev(4.0, "invoke", "c2", op="write", id=4, target="n2")
    run.ev(4.5, "ok", "c2", op="write", id=4, served_by="n2", timeline=1)
    run.ev(9.0, "run_end")
    facts = collect_facts(run.events())
    assert facts.writes.unavailable_windows == ((2.0, 4.5),)
    assert facts.writes.unavailability_s == pytest.approx(2.5)
    assert facts.writes.longest_unavailability_s == pytest.approx(2.5)
    assert facts.writes.paths == ("n1", "n2")


# ---------------------------------------------------------------- ids beyond the dense range


@pytest.mark.parametrize("write_id", [-5, 0, (1 << 24) - 1, 1 << 24, 1 << 40])
def test_any_integer_id_keeps_its_integrity(write_id: int) -> None:
    def run(oks: int) -> Run:
        built = steady(Run())
        built.ev(1.0, "invoke", "c1", op="write", id=write_id, target="haproxy")
        for k in range(oks):
            built.ev(1.1 + k, "ok", "c1", op="write", id=write_id, served_by="n1", timeline=1)
        return built

    with pytest.raises(HistoryIntegrityError, match=f"write {write_id}: ok after its ok"):
        collect_facts(run(2).events())
    report = run_checks(run(1).events(), SAFETY)
    assert report.ok
    assert report.summary["writes_acknowledged"] == 1
    assert report.summary["lost_writes"] == 0


# ---------------------------------------------------------------- operator requests

OPERATOR_CHECKS = {
    "no_split_brain": True,
    "no_lost_acknowledged_writes": True,
    "operator_requests_succeed": True,
}


def _operator(run: Run, t: float, outcome: str, **fields: object) -> None:
    request = {"request": "switchover", "fault_id": 1, "leader": "n1", "candidate": "n2"}
    run.ev(t, "operator", "ctl", outcome=outcome, **{**request, "status": 200, **fields})


def test_refused_and_failed_operator_requests_are_violations() -> None:
    run = steady(Run(checks=OPERATOR_CHECKS))
    _operator(run, 1.0, "accepted")
    _operator(run, 2.0, "refused", candidate="n3", fault_id=2, status=412, error="not sync")
    _operator(run, 3.0, "failed", request="failover", leader=None, fault_id=None, status=None)
    report = run_checks(run.events())
    result = report.result(OPERATOR)
    assert result is not None
    assert not result.ok
    refused, failed = result.violations
    assert [v.detail["reason"] for v in result.violations] == [
        "operator_request_refused",
        "operator_request_failed",
    ]
    assert (refused.t_start, refused.t_end, refused.nodes) == (2.0, 2.0, ("n1", "n3"))
    assert (failed.t_start, failed.nodes) == (3.0, ("n2",))
    assert refused.detail["status"] == 412
    assert refused.detail["error"] == "not sync"
    assert refused.detail["fault_id"] == 2
    assert refused.detail["candidate"] == "n3"
    assert refused.detail["request"] == "switchover"
    assert failed.detail["request"] == "failover"
    assert failed.detail["leader"] is None
    assert failed.detail["status"] is None
    assert failed.detail["outcome"] == "failed"
    assert "not sync" in refused.detail["summary"]
    assert "412" in refused.detail["summary"]
    assert result.metrics == {"requests": 3, "not_accepted": 2}
    s = report.summary
    assert (s["operator_requests"], s["operator_requests_refused"]) == (3, 1)
    assert s["operator_requests_failed"] == 1
    assert [o["outcome"] for o in s["operator_outcomes"]] == ["accepted", "refused", "failed"]
    assert s["operator_outcomes"][0] == {
        "t": 1.0,
        "request": "switchover",
        "outcome": "accepted",
        "fault_id": 1,
        "leader": "n1",
        "candidate": "n2",
        "status": 200,
        "error": None,
    }


def test_accepted_operator_requests_pass() -> None:
    run = steady(Run(checks=OPERATOR_CHECKS))
    _operator(run, 1.0, "accepted")
    result = run_checks(run.events()).result(OPERATOR)
    assert result is not None
    assert result.ok
    assert result.metrics == {"requests": 1, "not_accepted": 0}
    off = run_checks(run.events(), SAFETY)
    assert off.result(OPERATOR) is None


# ---------------------------------------------------------------- check specs


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("45s", 45.0), ("1500ms", 1.5), ("2m", 120.0), ("1h", 3600.0), (" 0.5s ", 0.5)],
)
def test_durations_in_specs(text: str, seconds: float) -> None:
    spec = spec_from_history({"failover_within": text, "eventually_healthy_s": text})
    assert spec.failover_within_s == seconds
    assert spec.eventually_healthy_s == seconds


@pytest.mark.parametrize("text", ["45", "s", "ms", "4 5s", "45sec", "m45"])
def test_bad_durations_in_specs(text: str) -> None:
    with pytest.raises(HistoryError, match="failover_within"):
        spec_from_history({"failover_within": text})


# ---------------------------------------------------------------- timelines


def test_an_ack_without_timeline_takes_the_nodes_pg_role_timeline_or_none() -> None:
    run = Run()
    run.role(0.0, "n1", "primary", 4)
    run.ev(1.0, "invoke", "c1", op="write", id=1, target="haproxy")
    run.ev(1.1, "ok", "c1", op="write", id=1, served_by="n1")
    run.ev(1.2, "invoke", "c1", op="write", id=2, target="haproxy")
    run.ev(1.3, "ok", "c1", op="write", id=2, served_by="n2")  # no pg_role of n2 at all
    run.finals(2.0, "n1", 4, [1, 2])
    split = run_checks(run.events(), SAFETY).result(SPLIT_BRAIN)
    assert split is not None
    assert [(r["node"], r["timeline"]) for r in split.metrics["reigns"]] == [
        ("n1", 4),
        ("n2", None),
    ]


# ---------------------------------------------------------------- the timed checks' violations


def test_failover_violations_carry_their_measures() -> None:
    run = steady(Run())
    run.writes([1.0], "n1")
    run.fault(5.0, 6.0, "kill", ["n1"], reason="test")
    run.role(5.0, "n1", "crashed")
    run.role(9.0, "n2", "primary", 2)
    run.writes([9.5], "n2", timeline=2)
    run.fault(20.0, None, "kill", ["n2"])
    run.role(20.0, "n2", "crashed", 2).ev(40.0, "run_end")
    result = run_checks(run.events(), ChecksSpec(failover_within_s=2.0)).result("failover_within")
    assert result is not None
    slow, none = result.violations
    keys = {"reason", "summary", "within_s", "fault_id", "fault", "label", "t_fault"}
    keys |= {"old_primaries", "outcome", "new_primary", "t_first_ok", "failover_s"}
    assert set(slow.detail) == set(none.detail) == keys
    assert slow.detail["reason"] == "failover_too_slow"
    assert (slow.t_start, slow.t_end, slow.nodes) == (5.0, 9.51, ("n1", "n2"))
    assert slow.detail["outcome"] == "failover"
    assert slow.detail["new_primary"] == "n2"
    assert slow.detail["label"] == "kill n1"
    assert slow.detail["old_primaries"] == ["n1"]
    assert none.detail["reason"] == "no_failover"
    assert (none.t_start, none.t_end, none.nodes) == (20.0, 40.0, ("n2",))
    assert none.detail["outcome"] == "none"
    assert none.detail["new_primary"] is None
    assert none.detail["t_first_ok"] is None
    for v in (slow, none):
        assert v.detail["within_s"] == 2.0
        assert all(node in v.detail["summary"] for node in v.nodes)


def test_health_violations_carry_the_roles_and_final_reads() -> None:
    run = steady(Run())
    run.writes([1.0], "n1")
    run.role(2.0, "n3", "stopped", 1)
    run.finals(5.0, "n1", 1, [1])
    result = run_checks(run.events(), ChecksSpec(eventually_healthy_s=1.0)).result(
        "eventually_healthy"
    )
    assert result is not None
    (v,) = result.violations
    assert set(v.detail) == {
        "reason",
        "problems",
        "summary",
        "last_fault_end_t",
        "deadline_t",
        "healthy_at_t",
        "roles_at_deadline",
        "roles_at_end",
        "final_reads",
    }
    assert v.detail["reason"] == "unhealthy_at_end"
    assert v.detail["problems"] == ["unhealthy_at_end"]
    assert v.detail["healthy_at_t"] == 0.0
    assert v.detail["last_fault_end_t"] == 0.0
    assert v.detail["deadline_t"] == 1.0
    assert v.nodes == ("n3",)
    assert v.detail["roles_at_end"]["n3"] == {"role": "stopped", "timeline": 1, "since_t": 2.0}
    assert v.detail["roles_at_deadline"]["n3"]["role"] == "replica"
    assert v.detail["final_reads"] == {
        "n1": {"role": "primary", "timeline": 1},
        "n2": {"role": "replica", "timeline": 1},
        "n3": {"role": "replica", "timeline": 1},
    }
    assert result.metrics["stable_since_t"] is None


# ---------------------------------------------------------------- lost writes and the report


def test_loss_violations_per_reign() -> None:
    run = steady(Run())
    first = run.writes([1.0, 2.0], "n1")
    run.role(3.0, "n1", "crashed")
    run.role(4.0, "n2", "primary", 2)
    second = run.writes([5.0, 6.0, 7.0], "n2", timeline=2)
    run.ev(8.0, "invoke", "c1", op="write", id=90, target="haproxy")
    run.ev(8.1, "ok", "c1", op="write", id=90, served_by="n2")  # no timeline: n2's pg_role one
    run.finals(9.0, "n2", 2, [second[1]])
    report = run_checks(run.events(), ChecksSpec(max_lost_writes=3))
    lost = report.result(LOST_WRITES)
    assert lost is not None
    assert not lost.ok
    old, new = lost.violations
    assert set(old.detail) == {
        "reason",
        "summary",
        "served_by",
        "timeline",
        "lost_writes",
        "first_ids",
        "final_primary",
        "total_lost",
        "max_lost_writes",
    }
    assert (old.t_start, old.t_end, old.nodes) == (1.01, 2.01, ("n1",))
    assert (old.detail["served_by"], old.detail["timeline"], old.detail["lost_writes"]) == (
        "n1",
        1,
        2,
    )
    assert old.detail["first_ids"] == first
    assert (new.detail["served_by"], new.detail["timeline"], new.detail["lost_writes"]) == (
        "n2",
        2,
        3,
    )
    assert new.detail["first_ids"] == [second[0], second[2], 90]
    for v in (old, new):
        assert v.detail["reason"] == "acknowledged_writes_lost"
        assert v.detail["final_primary"] == "n2"
        assert v.detail["total_lost"] == 5
        assert v.detail["max_lost_writes"] == 3
    assert lost.metrics["lost_by_node"] == {"n1": 2, "n2": 3}
    assert lost.metrics["acknowledged"] == 6
    assert lost.metrics["final_primary"] == "n2"
    assert lost.metrics["max_lost_writes"] == 3
    assert [r["lost_writes"] for r in lost.metrics["lost_by_reign"]] == [2, 3]
    assert lost.metrics["lost_by_reign"][1]["t_last_ok"] == 8.1
    assert report.to_dict()["summary"]["lost_writes"] == 5
    assert set(report.to_dict()) == {"ok", "checks", "summary"}
    assert run_checks(run.events(), ChecksSpec(max_lost_writes=5)).ok


def test_ten_ids_at_most_are_listed() -> None:
    run = steady(Run())
    ids = run.writes([1.0 + k / 10 for k in range(12)], "n1")
    run.finals(9.0, "n1", 1, [])
    report = run_checks(run.events(), SAFETY)
    lost = report.result(LOST_WRITES)
    assert lost is not None
    assert lost.metrics["lost_ids"] == ids[:10]
    assert lost.metrics["lost_writes"] == 12
    assert report.summary["lost_write_ids"] == ids[:10]


def test_a_write_sent_the_instant_the_newer_reign_first_acked_is_not_stale() -> None:
    run = steady(Run())
    run.writes([1.0], "n1")
    run.role(2.0, "n2", "primary", 2)
    run.write(3.0, 3.5, "n2", timeline=2)
    run.write(3.5, 3.6, "n1", timeline=1)  # sent at n2's first ok
    run.write(3.7, 3.8, "n1", timeline=1)  # sent after it: stale
    run.write(4.0, 4.1, "n2", timeline=2)
    split = run_checks(run.events(), SAFETY).result(SPLIT_BRAIN)
    assert split is not None
    interleaved = [v for v in split.violations if v.detail["reason"] == "interleaved_reigns"]
    (v,) = interleaved
    assert v.detail["stale_acks"] == 1
    assert v.detail["stale_first_ids"] == [4]
    assert (v.detail["stale_t_first"], v.detail["stale_t_last"]) == (3.8, 3.8)


# ---------------------------------------------------------------- boundaries of the timed checks


def test_a_failover_exactly_at_the_limit_passes() -> None:
    run = steady(Run())
    run.writes([1.0], "n1")
    run.fault(5.0, None, "kill", ["n1"])
    run.role(5.0, "n1", "crashed")
    run.role(6.0, "n2", "primary", 2)
    run.write(6.5, 7.0, "n2", timeline=2)  # 2.0 s after the fault
    events = run.events()
    at_limit = run_checks(events, ChecksSpec(failover_within_s=2.0)).result("failover_within")
    assert at_limit is not None
    assert at_limit.ok is True
    assert at_limit.metrics["failover_times_s"] == [2.0]
    below = run_checks(events, ChecksSpec(failover_within_s=1.999)).result("failover_within")
    assert below is not None
    assert below.ok is False


def test_health_reached_exactly_at_the_deadline_passes() -> None:
    run = steady(Run())
    run.writes([1.0], "n1")
    run.fault(2.0, 3.0, "kill", ["n3"])
    run.role(2.0, "n3", "crashed")
    run.role(5.0, "n3", "replica", 1)  # healthy again 2.0 s after the fault ended
    run.ev(9.0, "run_end")
    events = run.events()
    at = run_checks(events, ChecksSpec(eventually_healthy_s=2.0)).result("eventually_healthy")
    assert at is not None
    assert at.ok is True
    assert (at.metrics["healthy_at_t"], at.metrics["stable_since_t"]) == (5.0, 5.0)
    late = run_checks(events, ChecksSpec(eventually_healthy_s=1.5)).result("eventually_healthy")
    assert late is not None
    assert late.ok is False
    assert late.violations[0].detail["problems"] == ["not_healthy_within"]


def test_healthy_throughout_is_stable_since_the_calm() -> None:
    run = steady(Run())
    run.writes([1.0], "n1")
    run.fault(2.0, 3.0, "partition", ["n3"])
    run.ev(9.0, "run_end")
    result = run_checks(run.events(), ChecksSpec(eventually_healthy_s=1.0)).result(
        "eventually_healthy"
    )
    assert result is not None
    assert result.ok
    assert result.metrics == {
        "within_s": 1.0,
        "last_fault_end_t": 3.0,
        "healthy_at_t": 3.0,
        "healthy_after_s": 0.0,
        "stable_since_t": 3.0,
    }


def test_durations_in_specs_are_floats() -> None:
    spec = spec_from_history(
        {"failover_within_s": 45, "eventually_healthy": 60, "max_lost_writes": 3}
    )
    assert type(spec.failover_within_s) is float
    assert type(spec.eventually_healthy_s) is float
    assert type(spec.max_lost_writes) is int


# ---------------------------------------------------------------- reigns that touch, windows' edges


def _timeline_writes(run: Run, writes: list[tuple[float, float, str, int]]) -> None:
    for t_invoke, t_ok, node, timeline in writes:
        run.write(t_invoke, t_ok, node, timeline=timeline)


def test_a_newer_first_ack_at_the_older_last_send_is_no_interleaving() -> None:
    run = Run()  # no pg_role: only the clients' evidence
    _timeline_writes(run, [(1.0, 2.0, "n1", 1), (3.0, 3.1, "n1", 1), (2.5, 3.0, "n2", 2)])
    run.write(4.0, 4.1, "n2", timeline=2)
    split = run_checks(run.events(), SAFETY).result(SPLIT_BRAIN)
    assert split is not None
    assert split.ok
    assert split.metrics["interleaved_reigns"] == 0


def test_an_older_first_ack_at_the_newer_last_send_is_no_interleaving() -> None:
    run = Run()
    _timeline_writes(run, [(1.0, 2.0, "n1", 1), (3.0, 3.5, "n1", 1), (2.0, 2.5, "n2", 2)])
    split = run_checks(run.events(), SAFETY).result(SPLIT_BRAIN)
    assert split is not None
    assert split.ok


def test_both_primary_counts_writes_sent_inside_the_window_only() -> None:
    run = Run()
    run.role(0.0, "n1", "primary", 1)
    run.role(2.0, "n2", "primary", 2)
    run.role(5.0, "n1", "replica", 2)  # both primary in [2, 5)
    _timeline_writes(run, [(1.0, 2.5, "n1", 1), (3.0, 3.1, "n1", 1), (5.0, 5.1, "n2", 2)])
    facts = collect_facts(run.events())
    assert [(w.t_start, w.t_end, w.nodes) for w in facts.dual_primary] == [(2.0, 5.0, ("n1", "n2"))]
    split = run_checks(facts, SAFETY).result(SPLIT_BRAIN)
    assert split is not None
    assert split.ok  # n2's write was sent as the window closed
    assert split.metrics["dual_primary_s"] == 3.0


def test_both_primary_after_an_ack_sent_before_the_window() -> None:
    run = Run()
    run.role(0.0, "n1", "primary", 1)
    run.role(2.0, "n2", "primary", 2)
    run.role(5.0, "n1", "replica", 2)
    _timeline_writes(run, [(1.0, 2.5, "n1", 1), (3.0, 3.1, "n1", 1), (3.2, 3.3, "n2", 2)])
    split = run_checks(run.events(), SAFETY).result(SPLIT_BRAIN)
    assert split is not None
    (v,) = [v for v in split.violations if v.detail["reason"] == "acknowledged_while_both_primary"]
    assert v.detail["acks_by_node"] == {"n1": 1, "n2": 1}
    assert v.detail["primary_window"] == [2.0, 5.0]
    assert (v.t_start, v.t_end) == (3.2, 3.3)


# ---------------------------------------------------------------- facts


def test_facts_keep_final_read_lsns_params_and_run_times() -> None:
    run = Run()
    run.ev(100.0, "pg_role", "n1", role="primary", timeline=1, lsn=5)
    run.write(101.0, 101.5, "n1")
    run.fault(102.0, 103.0, "pause", ["n1"], what="agent")
    run.ev(150.0, "final_read", "n1", role="primary", timeline=1, lsn=4242, ids=[1])
    for node in ("n2", "n3"):
        run.ev(150.0, "final_read", node, role="replica", timeline=1, lsn=4000, ids=[1])
    events = [e for e in run.events() if e.kind != "run_start"]  # starts at t=100
    facts = collect_facts(events)
    assert facts.final_reads["n1"].lsn == 4242
    assert facts.final_reads["n2"].lsn == 4000
    assert facts.faults[0].params == {"what": "agent"}
    assert (facts.t_start, facts.t_end) == (100.0, 150.0)
    assert facts.nodes == ("n1",)  # no run_start: the nodes pg_role names
    assert run_checks(facts, SAFETY).summary["duration_s"] == 50.0


@pytest.mark.parametrize("declared", [[], "n1n2", None])
def test_nodes_come_from_pg_role_unless_declared_as_a_list(declared: object) -> None:
    run = Run()
    run.role(1.0, "n2", "replica", 1)
    run.role(1.0, "n1", "primary", 1)
    events = run.events()
    start = events[0]
    events[0] = type(start)(start.t, start.kind, None, {**start.fields, "nodes": declared})
    assert collect_facts(events).nodes == ("n1", "n2")


def test_unsorted_final_ids_with_negative_ids() -> None:
    run = steady(Run())
    for k, write_id in enumerate([7, -3, 2]):
        run.ev(1.0 + k, "invoke", "c1", op="write", id=write_id, target="haproxy")
        run.ev(1.5 + k, "ok", "c1", op="write", id=write_id, served_by="n1", timeline=1)
    run.ev(9.0, "final_read", "n1", role="primary", timeline=1, ids=[7, 2, -3, -9])
    for node in ("n2", "n3"):
        run.ev(9.0, "final_read", node, role="replica", timeline=1, ids=[2])
    facts = collect_facts(run.events())
    assert list(facts.final_reads["n1"].ids) == [-9, -3, 2, 7]
    assert facts.final_reads["n1"].has(-3)
    assert not facts.final_reads["n1"].has(3)
    assert run_checks(facts, SAFETY).ok


def test_summarize_alone_gives_run_checks_summary() -> None:
    run, _ = _slow_first_ack_then_stale()
    facts = collect_facts(run.events())
    assert summarize(facts) == run_checks(facts, SAFETY).summary
    assert summarize(facts)["stale_acks"] == 1


def test_lost_by_node_adds_up_the_reigns_of_a_node() -> None:
    run = Run()
    run.role(0.0, "n1", "primary", 1)
    run.write(1.0, 1.1, "n1", timeline=1)
    run.role(2.0, "n1", "primary", 3)
    run.write(3.0, 3.1, "n1", timeline=3)
    run.write(4.0, 4.1, "n1", timeline=3)
    run.finals(5.0, "n2", 3, [])
    lost = run_checks(run.events(), SAFETY).result(LOST_WRITES)
    assert lost is not None
    assert lost.metrics["lost_by_node"] == {"n1": 3}
    assert [(r["timeline"], r["lost_writes"]) for r in lost.metrics["lost_by_reign"]] == [
        (1, 1),
        (3, 2),
    ]


def test_nothing_written_and_nothing_read_loses_nothing() -> None:
    run = steady(Run())
    run.ev(5.0, "run_end")
    lost = run_checks(run.events(), SAFETY).result(LOST_WRITES)
    assert lost is not None
    assert lost.to_dict() == {
        "name": LOST_WRITES,
        "ok": True,
        "violations": [],
        "metrics": {"acknowledged": 0, "lost_writes": 0},
    }


def test_no_single_final_primary_is_a_loss_violation_at_the_end() -> None:
    run = steady(Run())
    run.writes([1.0], "n1")
    run.finals(7.0, "n1", 1, [1])
    events = [
        type(e)(e.t, e.kind, e.node, {**e.fields, "role": "replica"}, e.line)
        if e.kind == "final_read"
        else e
        for e in run.events()
    ]
    lost = run_checks(events, SAFETY).result(LOST_WRITES)
    assert lost is not None
    assert lost.ok is False
    (v,) = lost.violations
    assert (v.t_start, v.t_end, v.nodes) == (7.0, 7.0, ())
    assert v.detail["final_roles"] == {"n1": "replica", "n2": "replica", "n3": "replica"}


def test_a_pending_write_on_a_path_already_down_opens_no_outage() -> None:
    run = steady(Run())
    run.ev(1.0, "invoke", "c1", op="write", id=1, target="a")
    run.ev(1.2, "fail", "c1", op="write", id=1)
    run.ev(1.0, "invoke", "c2", op="write", id=2, target="b")
    run.ev(1.5, "ok", "c2", op="write", id=2, served_by="n1", timeline=1)
    run.ev(2.0, "invoke", "c1", op="write", id=3, target="a")  # never returns
    run.ev(3.0, "invoke", "c2", op="write", id=4, target="b")
    run.ev(3.1, "ok", "c2", op="write", id=4, served_by="n1", timeline=1)
    run.ev(6.0, "run_end")
    s = run_checks(run.events(), SAFETY).summary
    assert (s["unavailability_s"], s["unavailable_periods"]) == (0, 0)
    assert s["longest_unavailability_s"] == 0
    assert s["writes_unknown"] == 1


def test_a_fault_end_is_over_at_the_ack_that_lands_on_it() -> None:
    run = steady(Run())
    run.fault(5.0, 8.0, "pause", ["n1"], what="agent")
    run.write(7.0, 8.0, "n1")  # acknowledged the instant the fault ended
    facts = collect_facts(run.events())
    (f,) = facts.failovers
    assert (f.outcome, f.new_primary, f.t_first_ok) == ("kept_serving", None, None)


def test_a_node_outside_the_both_primary_window_is_skipped() -> None:
    run = Run()
    run.role(0.0, "n1", "primary", 1)
    run.role(2.0, "n2", "primary", 2)
    run.role(5.0, "n1", "replica", 2)
    _timeline_writes(run, [(2.9, 3.0, "n3", 2), (3.0, 3.1, "n1", 1), (3.2, 3.3, "n2", 2)])
    split = run_checks(run.events(), SAFETY).result(SPLIT_BRAIN)
    assert split is not None
    both = [v for v in split.violations if v.detail["reason"] == "acknowledged_while_both_primary"]
    (v,) = both
    assert v.detail["acks_by_node"] == {"n1": 1, "n2": 1}
    assert split.metrics["both_primary_windows"] == 1


def test_two_final_primaries_detail() -> None:
    run = steady(Run())
    run.writes([1.0], "n1")
    run.final(4.0, "n1", "primary", 1, [1]).final(4.0, "n2", "primary", 1, [1])
    run.final(4.0, "n3", "replica", 1, [1])
    split = run_checks(run.events(), SAFETY).result(SPLIT_BRAIN)
    assert split is not None
    (v,) = split.violations
    assert set(v.detail) == {"reason", "summary"}
    assert (v.t_start, v.t_end, v.nodes) == (4.0, 4.0, ("n1", "n2"))
    assert type(split.metrics["dual_primary_s"]) is float
    assert split.metrics["windows"] == [
        {
            "t_start": 4.0,
            "t_end": 4.0,
            "nodes": ["n1", "n2"],
            "timelines": None,
            "reason": v.detail["reason"],
        }
    ]


def test_operations_without_op_are_writes() -> None:
    run = steady(Run())
    run.ev(1.0, "invoke", "c1", id=1, target="haproxy")
    run.ev(1.1, "ok", "c1", id=1, served_by="n1", timeline=1)
    run.ev(2.0, "invoke", "c1", id=2, target="haproxy")
    run.ev(2.1, "fail", "c1", id=2)
    run.ev(3.0, "invoke", "c1", id=3, target="haproxy")
    run.ev(3.1, "info", "c1", id=3)
    run.finals(4.0, "n1", 1, [1])
    s = run_checks(run.events(), SAFETY).summary
    assert (s["writes_invoked"], s["writes_acknowledged"]) == (3, 1)
    assert (s["writes_failed"], s["writes_unknown"]) == (1, 1)


def test_a_partial_run_is_judged_so_far() -> None:
    run = steady(Run())
    run.writes([1.0, 2.0], "n1")
    events = [e for e in run.events() if e.kind not in ("final_read", "run_end")]
    with pytest.raises(HistoryIntegrityError):
        run_checks(events, SAFETY)
    report = run_checks(events, SAFETY, partial=True)
    assert report.summary["writes_acknowledged"] == 2
    split = report.result(SPLIT_BRAIN)
    assert split is not None
    assert split.ok


# ---------------------------------------------------------------- integrity at the edges


@pytest.mark.parametrize("kind", ["invoke", "ok", "fail", "info"])
@pytest.mark.parametrize("bad_id", ["1", True, None, 1.5])
def test_a_write_id_must_be_an_integer(kind: str, bad_id: object) -> None:
    run = steady(Run())
    run.auto_finals = False
    run.ev(1.0, "invoke", "c1", op="write", id=1, target="haproxy")
    run.ev(1.5, kind, "c1", op="write", id=bad_id, served_by="n1", timeline=1)
    with pytest.raises(HistoryError, match="'id'") as raised:
        collect_facts(run.events())
    assert not isinstance(raised.value, HistoryIntegrityError)


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("pg_role", {"role": "primary", "timeline": "2"}),
        ("pg_role", {"role": "primary", "timeline": False}),
        ("fault", {"id": "1", "phase": "start", "fault": "kill", "targets": ["n1"]}),
        ("fault", {"id": 1.0, "phase": "start", "fault": "kill", "targets": ["n1"]}),
        ("operator", {"request": "switchover", "outcome": "refused", "status": "412"}),
    ],
)
def test_integer_fields_must_be_integers(kind: str, fields: dict[str, object]) -> None:
    node = "n1" if kind == "pg_role" else None
    with pytest.raises(HistoryError, match="must be an integer"):
        collect_facts([Event(1.0, kind, node, fields)])


def test_id_zero_among_other_ids_keeps_its_integrity() -> None:
    def run(*extra: tuple[float, str, int]) -> list[Event]:
        built = steady(Run())
        built.ev(1.0, "invoke", "c1", op="write", id=5, target="haproxy")
        built.ev(1.1, "fail", "c1", op="write", id=5)
        for t, kind, write_id in extra:
            built.ev(t, kind, "c1", op="write", id=write_id, served_by="n1", timeline=1)
        return built.events()

    with pytest.raises(HistoryIntegrityError, match="write 0"):
        collect_facts(run((2.0, "invoke", 0), (2.1, "invoke", 0)))
    with pytest.raises(HistoryIntegrityError, match="write 0"):
        collect_facts(run((2.0, "invoke", 0), (2.1, "ok", 0), (2.2, "fail", 0)))
    with pytest.raises(HistoryIntegrityError, match="write 4096"):
        collect_facts(run((2.0, "ok", 4096)))  # just past the ids seen so far
    facts = collect_facts(run((2.0, "invoke", 0), (2.1, "ok", 0)))
    assert list(facts.acks.ids) == [0]


def test_negative_ids_can_fail_or_stay_unknown() -> None:
    run = steady(Run())
    for k, (write_id, outcome) in enumerate([(-1, "fail"), (-2, "info"), (-3, "fail")]):
        run.ev(1.0 + k, "invoke", "c1", op="write", id=write_id)  # no target
        run.ev(1.5 + k, outcome, "c1", op="write", id=write_id)
    facts = collect_facts(run.events())
    assert list(facts.failed_ids) == [-1, -3]
    assert list(facts.unknown_ids) == [-2]
    assert facts.writes.paths == ("?",)


def test_run_start_must_come_first() -> None:
    run = steady(Run())
    events = run.events()
    moved = [events[1], events[0], *events[2:]]
    with pytest.raises(HistoryIntegrityError) as raised:
        collect_facts(moved)
    assert str(raised.value).startswith("<history>: event 2: ")


def test_any_event_after_run_end_is_refused() -> None:
    run = steady(Run())
    run.ev(5.0, "run_end")
    events = [*run.events(), Event(5.0, "decision", "n1", {"reason": "late"})]
    with pytest.raises(HistoryIntegrityError) as raised:
        collect_facts(events, "h.jsonl")
    assert str(raised.value).startswith(f"h.jsonl: event {len(events)}: ")


def test_a_run_starting_late_measures_from_its_start() -> None:
    run = Run()
    start = run.events()[0]
    events = [Event(100.0, "run_start", None, start.fields)]
    events += [Event(120.0, "pg_role", "n1", {"role": "primary", "timeline": 1})]
    events += [Event(130.0, "run_end", None, {})]
    facts = collect_facts(events)
    assert (facts.t_start, facts.t_end) == (100.0, 130.0)
    assert summarize(facts)["duration_s"] == 30.0


def test_a_collector_is_strict_unless_told_partial() -> None:
    run = steady(Run())
    run.writes([1.0], "n1")
    events = [e for e in run.events() if e.kind not in ("final_read", "run_end")]
    strict, partial = FactsCollector(), FactsCollector(partial=True)
    for e in events:
        strict.feed(e)
        partial.feed(e)
    with pytest.raises(HistoryIntegrityError, match="run_end"):
        strict.finish()
    assert partial.finish().writes.acknowledged == 1
    assert collect_facts(events, partial=True).writes.acknowledged == 1
