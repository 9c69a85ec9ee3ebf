"""Checkers on hand-built histories: verdicts, violation times and nodes, metric values."""

from __future__ import annotations

from typing import Any

import pytest

from pgha.checks import (
    FAILOVER,
    HEALTHY,
    LOST_WRITES,
    SPLIT_BRAIN,
    CheckReport,
    HistoryIntegrityError,
    Violation,
    check_eventually_healthy,
    collect_facts,
    eventually_healthy,
    failover_within,
    no_lost_acknowledged_writes,
    no_split_brain,
    run_checks,
    spec_from_history,
)
from pgha.history import Event, HistoryError
from pgha.scenario import ChecksSpec
from tests.history.histories import (
    Run,
    async_loss,
    clean_failover,
    never_healthy,
    split_brain,
    steady,
)

# ---------------------------------------------------------------- a clean failover


def test_clean_failover_passes_every_check() -> None:
    run, _ = clean_failover()
    spec = ChecksSpec(failover_within_s=15.0, eventually_healthy_s=5.0)
    report = run_checks(run.events(), spec)
    assert report.ok
    assert [r.name for r in report.results] == [SPLIT_BRAIN, LOST_WRITES, FAILOVER, HEALTHY]
    assert all(r.violations == () for r in report.results)
    assert report.spec == spec


def test_clean_failover_measures() -> None:
    run, ids = clean_failover()
    report = run_checks(run.events(), ChecksSpec(failover_within_s=15.0, eventually_healthy_s=5.0))
    failover = report.result(FAILOVER)
    assert failover is not None
    assert failover.metrics["failover_times_s"] == [pytest.approx(11.71)]
    [measured] = failover.metrics["failovers"]
    assert measured["old_primaries"] == ["n1"]
    assert measured["new_primary"] == "n2"
    assert measured["outcome"] == "failover"
    healthy = report.result(HEALTHY)
    assert healthy is not None
    assert healthy.metrics["last_fault_end_t"] == 30.5
    assert healthy.metrics["healthy_at_t"] == 32.0
    assert healthy.metrics["healthy_after_s"] == 1.5
    assert healthy.metrics["stable_since_t"] == 32.0
    split = report.result(SPLIT_BRAIN)
    assert split is not None
    assert split.metrics["dual_writable_s"] == 0.0
    assert split.metrics["split_brain_s"] == 0.0
    s = report.summary
    assert s["writes_acknowledged"] == len(ids["before"]) + len(ids["after"]) == 28
    assert s["writes_failed"] == 11
    assert s["writes_unknown"] == 0
    assert s["lost_writes"] == 0
    assert s["unavailability_s"] == pytest.approx(22.21 - 11.0)
    assert s["unavailable_periods"] == 1
    assert s["faults_applied"] == 1
    assert s["faults_skipped"] == 0
    assert s["final_primary"] == "n2"
    assert s["failed_writes_applied"] == 0
    assert s["duration_s"] == 45.0


# ---------------------------------------------------------------- split brain


def test_interleaved_reigns_are_a_split_brain() -> None:
    run, ids = split_brain()
    result = no_split_brain(run.events())
    assert not result.ok
    reasons = [v.detail["reason"] for v in result.violations]
    assert sorted(reasons) == ["acknowledged_while_both_primary", "interleaved_reigns"]
    [inter] = [v for v in result.violations if v.detail["reason"] == "interleaved_reigns"]
    assert inter.nodes == ("n1", "n2")
    assert (inter.t_start, inter.t_end) == (20.015, 29.01)  # n2's first ok .. n1's last
    assert inter.detail["stale_acks"] == 9  # n1's writes sent at 21 .. 29
    assert inter.detail["stale_first_ids"] == ids["late"][1:]
    assert inter.detail["timelines"] == {"n1": 1, "n2": 2}
    older, newer = inter.detail["reigns"]
    assert (older["node"], older["timeline"], older["acks"]) == ("n1", 1, 29)
    assert (newer["node"], newer["timeline"], newer["acks"]) == ("n2", 2, 20)
    [both] = [
        v for v in result.violations if v.detail["reason"] == "acknowledged_while_both_primary"
    ]
    assert both.detail["acks_by_node"] == {"n1": 10, "n2": 10}
    assert both.detail["primary_window"] == [20.0, 30.0]
    assert result.metrics["stale_acks"] == 9
    assert result.metrics["split_brain_s"] == pytest.approx(29.015 - 20.005)
    assert result.metrics["dual_writable_s"] == 10.0
    assert result.metrics["dual_primary_s"] == 10.0
    assert result.metrics["dual_writable_windows"] == [
        {"t_start": 20.0, "t_end": 30.0, "nodes": ["n1", "n2"]}
    ]
    assert [w["reason"] for w in result.metrics["windows"]] == reasons


def test_split_brain_also_loses_writes_and_times_the_failover() -> None:
    run, ids = split_brain()
    events = run.events()
    lost = no_lost_acknowledged_writes(events)
    assert not lost.ok
    assert lost.metrics["lost_writes"] == 10
    assert lost.metrics["lost_by_node"] == {"n1": 10}
    [reign] = lost.metrics["lost_by_reign"]
    assert (reign["node"], reign["timeline"], reign["lost_writes"]) == ("n1", 1, 10)
    [v] = lost.violations
    assert v.nodes == ("n1",)
    assert v.detail["first_ids"] == ids["late"]
    assert "bound" not in v.detail["summary"]
    fo = failover_within(events, 15.0)
    assert fo.ok
    assert fo.metrics["failover_times_s"] == [pytest.approx(10.015)]


def test_an_honest_slow_acknowledgement_is_no_split_brain() -> None:
    """A write sent to n1 before it crashed returns after n2's first acknowledgement."""
    run, ids = clean_failover(finals=False)
    slow = run.write(10.4, 22.5, "n1")  # committed before the crash at 10.5, answered late
    run.finals(45.0, "n2", 2, [*ids["before"], *ids["after"], slow])
    result = no_split_brain(run.events())
    assert result.ok, result.violations
    assert result.metrics["split_brain_s"] == 0.0


def test_an_older_branch_that_resumes_is_a_split_brain() -> None:
    """n2 reigns on timeline 2 while n1's PostgreSQL stays primary on timeline 1 unused; then n1
    acknowledges again on timeline 1 and n2's branch is thrown away. No write of n1 is lost."""
    run = steady(Run())
    first = run.writes([1.0, 2.0], "n1")
    run.role(20.0, "n2", "primary", 2)
    lost = run.writes([21.0, 22.0], "n2", timeline=2)
    run.role(30.0, "n2", "crashed", 2)
    resumed = run.writes([40.0, 41.0], "n1")
    run.role(50.0, "n2", "replica", 1)
    run.finals(60.0, "n1", 1, first + resumed)
    result = no_split_brain(run.events())
    [v] = result.violations
    assert v.detail["reason"] == "interleaved_reigns"
    assert v.detail["stale_acks"] == 2
    assert v.detail["stale_first_ids"] == resumed
    assert (v.t_start, v.t_end) == (21.01, 22.01)
    assert no_lost_acknowledged_writes(run.events()).metrics["lost_by_reign"][0]["node"] == "n2"
    assert set(lost) == set(no_lost_acknowledged_writes(run.events()).metrics["lost_ids"])


def test_one_stale_acknowledgement_after_a_newer_reign_is_a_split_brain() -> None:
    run, ids = clean_failover(finals=False)
    stale = run.write(35.0, 35.01, "n1", timeline=1)
    run.finals(45.0, "n2", 2, [*ids["before"], *ids["after"], stale])
    [v] = no_split_brain(run.events()).violations
    assert v.detail["reason"] == "interleaved_reigns"
    assert v.detail["stale_first_ids"] == [stale]
    assert v.nodes == ("n1", "n2")


def test_writes_sent_while_both_were_primary_and_acknowledged_by_both() -> None:
    """No interleaving (n1's last write was sent before n2's first ok), but both primaries
    acknowledged writes sent while both were primary."""
    run = steady(Run())
    run.writes([1.0, 2.0], "n1")
    run.role(10.0, "n2", "primary", 2)
    a = run.write(10.4, 11.5, "n1")
    b = run.write(10.5, 10.6, "n2", timeline=2)
    run.role(12.0, "n1", "replica", 2)
    run.finals(20.0, "n2", 2, [1, 2, a, b])
    [v] = no_split_brain(run.events()).violations
    assert v.detail["reason"] == "acknowledged_while_both_primary"
    assert v.nodes == ("n1", "n2")
    assert (v.t_start, v.t_end) == (10.5, 11.5)
    assert v.detail["first_ids"] == {"n1": [a], "n2": [b]}
    assert v.detail["timelines"] == {"n1": [1], "n2": [2]}


def test_only_one_of_two_primaries_acknowledging_is_no_split_brain() -> None:
    run = steady(Run())
    ids = run.writes([1.0, 10.5, 11.0], "n1")
    run.role(10.0, "n2", "primary", 2).role(12.0, "n1", "replica", 2)
    ids += run.writes([13.0], "n2", timeline=2)
    run.finals(20.0, "n2", 2, ids)
    result = no_split_brain(run.events())
    assert result.ok
    assert result.metrics["dual_primary_s"] == 2.0


def test_acks_that_only_touch_do_not_interleave() -> None:
    run = steady(Run())
    run.write(1.0, 2.0, "n1")
    run.write(2.0, 3.0, "n2")
    run.write(1.5, 2.0, "n1")
    assert no_split_brain(run.events()).ok


def test_reigns_are_ordered_and_keyed_by_node_and_timeline() -> None:
    run = steady(Run())
    run.writes([1.0], "n1", timeline=None)  # n1 is on timeline 1 by pg_role
    run.role(5.0, "n2", "primary", 2)
    run.writes([6.0], "n2", timeline=2)
    run.writes([7.0], "n2", timeline=None)
    result = no_split_brain(run.events())
    assert result.ok
    keys = [(r["node"], r["timeline"], r["acks"]) for r in result.metrics["reigns"]]
    assert keys == [("n1", 1, 1), ("n2", 2, 2)]


def test_the_same_node_on_two_timelines_is_no_split_brain() -> None:
    run = steady(Run(), primary="n2")
    run.writes([5.0, 20.0], "n2", timeline=1)
    run.writes([10.0], "n2", timeline=2)
    assert no_split_brain(run.events()).ok


def test_writes_lost_in_an_async_failover_are_no_split_brain() -> None:
    run, _ = async_loss()
    assert no_split_brain(run.events()).ok


def test_two_final_primaries_are_a_split_brain() -> None:
    run = steady(Run())
    run.writes([1.0], "n1")
    run.final(10.0, "n1", "primary", 1, [1]).final(10.0, "n2", "primary", 2, [1])
    run.final(10.0, "n3", "replica", 1, [1])
    [v] = no_split_brain(run.events()).violations
    assert v.detail["reason"] == "two_final_primaries"
    assert v.nodes == ("n1", "n2")


def test_split_brain_seconds_count_overlapping_windows_once() -> None:
    from pgha.checks._split_brain import union_s

    def v(a: float, b: float) -> Violation:
        return Violation(a, b, ("n1",))

    assert union_s((v(0.0, 10.0), v(5.0, 12.0), v(20.0, 21.0), v(11.0, 11.5))) == 13.0
    assert union_s(()) == 0.0


def test_dual_writable_is_measured_even_without_writes() -> None:
    run = steady(Run())
    run.writable(5.0, "n2", True).writable(6.0, "n3", True)
    run.writable(7.0, "n2", False).writable(8.0, "n3", False)
    run.writable(9.0, "n2", True).ev(12.0, "run_end")
    result = no_split_brain(run.events())
    assert result.ok  # reported, not a violation by itself
    assert result.metrics["dual_writable_s"] == 6.0
    windows = result.metrics["dual_writable_windows"]
    assert windows == [
        {"t_start": 5.0, "t_end": 8.0, "nodes": ["n1", "n2", "n3"]},
        {"t_start": 9.0, "t_end": 12.0, "nodes": ["n1", "n2"]},
    ]


# ---------------------------------------------------------------- lost writes


def test_async_loss_within_the_bound_passes() -> None:
    run, ids = async_loss()
    result = no_lost_acknowledged_writes(run.events(), max_lost_writes=5)
    assert result.ok
    assert result.violations == ()
    assert result.metrics["lost_writes"] == 2
    assert result.metrics["lost_ids"] == ids["lost"]
    assert result.metrics["max_lost_writes"] == 5


def test_async_loss_beyond_the_bound_fails() -> None:
    run, _ids = async_loss()
    result = no_lost_acknowledged_writes(run.events(), max_lost_writes=1)
    [v] = result.violations
    assert (v.t_start, v.t_end) == (9.01, 10.01)
    assert v.detail["total_lost"] == 2
    assert "bound 1" in v.detail["summary"]
    assert not no_lost_acknowledged_writes(run.events()).ok


def test_final_ids_need_not_be_sorted() -> None:
    run = steady(Run())
    ids = run.writes([1.0, 2.0, 3.0], "n1")
    run.ev(10.0, "final_read", "n1", ids=ids[::-1], role="primary", timeline=1, lsn=0)
    run.final(10.0, "n2", "replica", 1, ids).final(10.0, "n3", "replica", 1, ids)
    result = no_lost_acknowledged_writes(run.events())
    assert result.ok
    assert list(collect_facts(run.events()).final_reads["n1"].ids) == ids


def test_lost_writes_need_a_single_final_primary() -> None:
    run = steady(Run())
    run.writes([1.0], "n1")
    run.final(10.0, "n1", "primary", 1, [1]).final(10.0, "n2", "primary", 1, [1])
    run.final(10.0, "n3", "replica", 1, [1])
    result = no_lost_acknowledged_writes(run.events())
    [v] = result.violations
    assert v.detail["reason"] == "no_single_final_primary"
    assert v.nodes == ("n1", "n2")
    assert result.metrics["lost_writes"] is None
    missing = steady(Run())
    missing.writes([1.0], "n1")
    missing.auto_finals = False
    with pytest.raises(HistoryIntegrityError, match="1 acknowledged writes but no final_read"):
        no_lost_acknowledged_writes(missing.events())
    none = steady(Run()).final(1.0, "n1", "replica", 1, []).final(1.0, "n2", "replica", 1, [])
    none.final(1.0, "n3", "stopped", 1, [])
    [v] = no_lost_acknowledged_writes(none.events()).violations
    assert v.detail["final_roles"] == {"n1": "replica", "n2": "replica", "n3": "stopped"}


def test_unknown_and_failed_writes_found_in_final_data_are_counted() -> None:
    run = steady(Run())
    applied = run.write(1.0, 2.0, "n1", "info")
    failed = run.write(3.0, 4.0, "n1", "fail")
    run.write(5.0, 6.0, "n1", "info")
    run.finals(10.0, "n1", 1, [applied, failed])
    s = run_checks(run.events()).summary
    assert s["writes_unknown"] == 2
    assert s["unknown_writes_applied"] == 1
    assert s["failed_writes_applied"] == 1


# ---------------------------------------------------------------- failover


def test_a_slow_failover_is_a_violation() -> None:
    run, _ = clean_failover()
    result = failover_within(run.events(), 10.0)
    [v] = result.violations
    assert v.detail["reason"] == "failover_too_slow"
    assert v.nodes == ("n1", "n2")
    assert (v.t_start, v.t_end) == (10.5, 22.21)
    assert v.detail["failover_s"] == pytest.approx(11.71)
    assert v.detail["within_s"] == 10.0
    assert result.metrics["max_failover_s"] == pytest.approx(11.71)


def test_no_failover_before_the_end_is_a_violation() -> None:
    run = steady(Run())
    run.writes([1.0], "n1")
    run.fault(5.0, None, "kill", ["n1"])
    run.role(5.0, "n1", "crashed").ev(60.0, "run_end")
    result = failover_within(run.events(), 30.0)
    [v] = result.violations
    assert v.detail["reason"] == "no_failover"
    assert (v.t_start, v.t_end) == (5.0, 60.0)
    assert v.nodes == ("n1",)
    assert result.metrics["failover_times_s"] == []
    assert result.metrics["max_failover_s"] is None


def test_an_old_primary_serving_after_the_fault_needs_no_failover() -> None:
    run = steady(Run())
    run.fault(5.0, 8.0, "pause", ["n1"], what="agent")
    run.writes([6.0, 9.0], "n1")  # one during the fault, one after it ended
    run.fault(20.0, 25.0, "partition", ["n2"])  # a replica: not measured
    run.fault(30.0, 31.0, "clock", ["n1"], jump=40)  # not a failover fault kind
    result = failover_within(run.events(), 1.0)
    assert result.ok
    [measured] = result.metrics["failovers"]
    assert measured["outcome"] == "kept_serving"
    assert measured["failover_s"] is None


def test_primary_by_agent_role_when_no_pg_role() -> None:
    run = Run()
    run.ev(1.0, "agent_role", "n1", role="primary", reason="leader")
    run.ev(1.0, "agent_role", "n2", role="replica", reason="follow")
    run.fault(5.0, 30.0, "kill_agent", ["n1"])
    run.writes([10.0], "n2")
    [measured] = failover_within(run.events(), 20.0).metrics["failovers"]
    assert measured["old_primaries"] == ["n1"]
    assert measured["failover_s"] == pytest.approx(5.01)


# ---------------------------------------------------------------- eventually healthy


def test_never_healthy_explains_itself() -> None:
    result = eventually_healthy(never_healthy().events(), 10.0)
    assert not result.ok
    [v] = result.violations
    assert v.nodes == ("n3",)
    assert v.detail["problems"] == [
        "not_healthy_within",
        "unhealthy_at_end",
        "final_reads_disagree",
    ]
    assert v.detail["deadline_t"] == 30.0
    assert v.detail["roles_at_deadline"]["n3"] == {"role": "stopped", "timeline": 1, "since_t": 6.0}
    assert "final reads of n3" in v.detail["summary"]
    assert (v.t_start, v.t_end) == (20.0, 50.0)
    assert result.metrics["healthy_at_t"] is None


def test_health_reached_too_late() -> None:
    run, _ = clean_failover()
    result = eventually_healthy(run.events(), 1.0)
    [v] = result.violations
    assert v.detail["problems"] == ["not_healthy_within"]
    assert "only at t=32.000" in v.detail["summary"]
    assert v.nodes == ("n1",)  # still starting at the deadline (31.5)
    assert v.detail["roles_at_deadline"]["n1"]["role"] == "starting"
    assert result.metrics["healthy_after_s"] == 1.5


def test_healthy_without_faults_from_the_start() -> None:
    run = steady(Run())
    run.ev(10.0, "run_end")
    result = eventually_healthy(run.events(), 5.0)
    assert result.ok
    assert result.metrics["healthy_at_t"] == 0.0
    assert result.metrics["last_fault_end_t"] == 0.0


def test_a_flap_after_health_shows_in_stable_since() -> None:
    run = steady(Run())
    run.fault(1.0, 2.0, "partition", ["n2"])
    run.role(3.0, "n2", "stopped").role(4.0, "n2", "replica").ev(10.0, "run_end")
    result = eventually_healthy(run.events(), 5.0)
    assert result.ok
    assert result.metrics["healthy_at_t"] == 2.0
    assert result.metrics["stable_since_t"] == 4.0


def test_replicas_follow_by_upstream_when_given() -> None:
    run = steady(Run())
    run.fault(1.0, 2.0, "partition", ["n3"])
    run.role(3.0, "n3", "replica", 1, upstream="n2")  # cascading from a replica: not healthy
    run.ev(10.0, "run_end")
    [v] = eventually_healthy(run.events(), 5.0).violations
    assert v.nodes == ("n3",)
    fixed = steady(Run())
    fixed.role(3.0, "n3", "replica", 1, upstream="n1").ev(10.0, "run_end")
    assert eventually_healthy(fixed.events(), 5.0).ok


def test_two_primaries_or_none_are_unhealthy() -> None:
    two = steady(Run())
    two.role(3.0, "n2", "primary", 2).ev(10.0, "run_end")
    [v] = eventually_healthy(two.events(), 5.0).violations
    assert v.nodes == ("n1", "n2")
    none = Run()
    none.role(0.0, "n1", "replica").role(0.0, "n2", "replica").ev(10.0, "run_end")
    [v] = eventually_healthy(none.events(), 5.0).violations
    assert v.nodes == ("n1", "n2", "n3")  # n3 never reported
    nobody = Run(nodes=())
    nobody.ev(5.0, "run_end")
    assert not eventually_healthy(nobody.events(), 5.0).ok


def test_final_reads_with_two_primaries_disagree() -> None:
    run = steady(Run())
    run.final(5.0, "n1", "primary", 1, []).final(5.0, "n2", "primary", 1, [])
    run.final(5.0, "n3", "replica", 1, [])
    [v] = eventually_healthy(run.events(), 5.0).violations
    assert v.detail["problems"] == ["final_reads_disagree"]
    assert "2 final reads with role primary" in v.detail["summary"]


def test_faults_skipped_or_instantaneous_count_as_over_at_start() -> None:
    run = steady(Run())
    run.fault(3.0, None, "clock", ["n3"], jump=40)
    run.ev(4.0, "fault", phase="skipped", fault="latency", targets=["n2"], id=9, error="no netem")
    run.ev(6.0, "run_end")
    facts = collect_facts(run.events())
    result = check_eventually_healthy(facts, 1.0)
    assert result.metrics["last_fault_end_t"] == 3.0
    skipped = [f for f in facts.faults if f.skipped]
    assert skipped[0].error == "no netem"
    assert skipped[0].label == "latency"
    assert run_checks(facts).summary["faults_skipped"] == 1


def test_unmatched_fault_end_and_odd_params_are_kept() -> None:
    run = Run()
    run.ev(2.0, "fault", phase="end", fault="heal", targets=[], id=4, params=[1])
    facts = collect_facts(run.events())
    [f] = facts.faults
    assert (f.t_start, f.t_end, f.t_over) == (2.0, 2.0, 2.0)
    assert f.params == {"value": [1]}


# ---------------------------------------------------------------- unavailability


def test_unavailability_counts_from_the_first_unsuccessful_invoke() -> None:
    run = steady(Run())
    run.write(1.0, 1.1, "n1")
    run.write(0.9, 2.0, "n1", "info")  # invoked before the last success: counts from 1.1
    run.write(3.0, 3.5, "n1", "fail")
    run.write(4.0, 4.2, "n1")
    run.write(5.0, 6.0, "n1", "fail")
    run.ev(5.5, "invoke", "c2", op="write", id=99, target="haproxy")  # never answered
    run.ev(10.0, "run_end")
    s = run_checks(run.events(), ChecksSpec()).summary
    assert s["unavailability_s"] == pytest.approx((4.2 - 1.1) + (10.0 - 5.0))
    assert s["unavailable_periods"] == 2
    assert s["longest_unavailability_s"] == 5.0
    assert s["writes_unknown"] == 2  # one info, one never answered
    assert s["writes_invoked"] == 6


def test_pending_writes_at_the_end_open_unavailability() -> None:
    run = steady(Run())
    run.write(1.0, 1.1, "n1")
    run.ev(2.0, "invoke", "c1", op="write", id=50, target="haproxy")
    run.ev(4.0, "run_end")
    assert run_checks(run.events(), ChecksSpec()).summary["unavailability_s"] == 2.0


def test_operations_other_than_writes_are_ignored() -> None:
    run = steady(Run())
    for kind in ("invoke", "ok", "fail", "info"):
        run.ev(1.0, kind, "c1", op="read", id=1)
    s = run_checks(run.events(), ChecksSpec()).summary
    assert (s["writes_invoked"], s["writes_acknowledged"], s["writes_failed"]) == (0, 0, 0)


def test_reads_and_other_operations_need_no_integrity() -> None:
    run = steady(Run())
    run.ev(1.0, "ok", "c1", op="read", id=1, served_by="n1")
    run.ev(1.0, "ok", "c1", op="read", id=1, served_by="n1")
    assert no_split_brain(run.events()).ok


def test_empty_history() -> None:
    facts = collect_facts([])
    assert (facts.t_start, facts.t_end, facts.nodes) == (0.0, 0.0, ())
    assert facts.writes.acknowledged == 0


# ---------------------------------------------------------------- specs and run_checks


def test_spec_from_history_reads_the_scenario_checks_as_written() -> None:
    spec = spec_from_history(
        {
            "no_split_brain": True,
            "no_lost_acknowledged_writes": False,
            "max_lost_writes": 200,
            "failover_within_s": 45,
            "eventually_healthy_s": None,
        }
    )
    assert spec == ChecksSpec(
        no_lost_acknowledged_writes=False, max_lost_writes=200, failover_within_s=45.0
    )
    off = ChecksSpec(no_split_brain=False, no_lost_acknowledged_writes=False)
    assert spec_from_history({}) == off


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        ({"no_split_brian": True}, "unknown key"),
        ({"max_lost_writes": "10"}, "max_lost_writes"),
        ({"max_lost_writes": True}, "max_lost_writes"),
        ({"failover_within_s": "soon"}, "failover_within_s"),
        ({"failover_within_s": True}, "failover_within_s"),
        ({"no_split_brain": 1}, "no_split_brain"),
    ],
)
def test_bad_specs_in_a_history(spec: dict[str, Any], key: str) -> None:
    with pytest.raises(HistoryError, match=key):
        spec_from_history(spec)


def test_run_checks_takes_the_spec_from_the_history_or_defaults_to_safety() -> None:
    run = Run(checks={"failover_within_s": 10.0})
    run.ev(1.0, "run_end")
    assert [r.name for r in run_checks(run.events()).results] == [FAILOVER]
    plain = Run()
    plain.ev(1.0, "run_end")
    report = run_checks(plain.events())
    assert [r.name for r in report.results] == [SPLIT_BRAIN, LOST_WRITES]
    assert report.spec == ChecksSpec()
    mapped = run_checks(plain.events(), {"eventually_healthy_s": 5})
    assert [r.name for r in mapped.results] == [HEALTHY]
    assert mapped.result("nope") is None


def test_report_serializes() -> None:
    run, _ = split_brain()
    report = run_checks(run.events())
    document = report.to_dict()
    assert document["ok"] is False
    assert [c["name"] for c in document["checks"]] == [SPLIT_BRAIN, LOST_WRITES]
    violation = document["checks"][0]["violations"][0]
    assert violation["nodes"] == ["n1", "n2"]
    assert violation["t_start"] == 20.005
    assert CheckReport(()).ok


def test_violation_values_are_frozen() -> None:
    v = Violation(1.0, 2.0, ("n1",), {"reason": "x"})
    with pytest.raises(AttributeError):
        v.t_start = 3.0  # type: ignore[misc]


# ---------------------------------------------------------------- malformed events


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (Event(1.0, "invoke", "c1", {"op": "write"}), "field 'id' must be an integer"),
        (Event(1.0, "invoke", "c1", {"id": True}), "field 'id' must be an integer"),
        (Event(1.0, "ok", "c1", {"id": 1}), "field 'served_by' must be a string"),
        (Event(1.0, "ok", "c1", {"id": 1, "served_by": "n1", "timeline": "2"}), "'timeline'"),
        (Event(1.0, "pg_role", None, {"role": "primary"}), "needs a 'node'"),
        (Event(1.0, "writable", "n1", {"writable": 1}), "must be true or false"),
        (Event(1.0, "final_read", "n1", {"ids": [1, "2"]}), "list of write ids"),
        (Event(1.0, "fault", None, {"id": 1, "phase": "start"}), "field 'fault'"),
        (
            Event(1.0, "fault", None, {"id": 1, "phase": "start", "fault": "k", "targets": "n1"}),
            "a list of names",
        ),
        (
            Event(1.0, "fault", None, {"id": 1, "phase": "start", "fault": "k", "label": 3}),
            "field 'label' must be a string",
        ),
    ],
)
def test_malformed_events_raise_with_time_and_kind(event: Event, message: str) -> None:
    with pytest.raises(HistoryError, match=message):
        collect_facts([event])
