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
    silent_divergence,
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
    assert split.metrics["divergence_checked"] is True
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


def test_overlapping_acknowledgements_are_a_split_brain() -> None:
    run, ids = split_brain()
    result = no_split_brain(run.events())
    assert not result.ok
    overlap, divergent = result.violations
    assert overlap.detail["reason"] == "overlapping_acknowledgements"
    assert overlap.nodes == ("n1", "n2")
    assert overlap.t_start == 20.0
    assert overlap.t_end == pytest.approx(29.015)
    assert overlap.detail["acks_by_node"] == {"n1": 10, "n2": 10}
    first = overlap.detail["first_conflict"]
    assert first["n1"] == {"id": ids["late"][0], "invoke_t": 20.0, "ok_t": 20.01}
    assert first["n2"]["id"] == ids["on_n2"][0]
    assert divergent.detail["reason"] == "acknowledged_on_divergent_branch"
    assert divergent.nodes == ("n1", "n2")
    assert divergent.detail["lost_writes"] == 10
    assert divergent.detail["first_ids"] == ids["late"]
    assert divergent.detail["branch_created_t"] == 20.0
    assert (divergent.t_start, divergent.t_end) == (20.01, 29.01)
    assert result.metrics["dual_writable_s"] == 10.0
    assert result.metrics["dual_writable_windows"] == [
        {"t_start": 20.0, "t_end": 30.0, "nodes": ["n1", "n2"]}
    ]
    assert result.metrics["overlap_windows"] == 1
    assert result.metrics["divergent_acks"] == 10


def test_split_brain_also_loses_writes_and_times_the_failover() -> None:
    run, ids = split_brain()
    events = run.events()
    lost = no_lost_acknowledged_writes(events)
    assert not lost.ok
    assert lost.metrics["lost_writes"] == 10
    assert lost.metrics["lost_by_node"] == {"n1": 10}
    [v] = lost.violations
    assert v.nodes == ("n1",)
    assert v.detail["first_ids"] == ids["late"]
    assert "bound" not in v.detail["summary"]
    fo = failover_within(events, 15.0)
    assert fo.ok
    assert fo.metrics["failover_times_s"] == [pytest.approx(10.015)]


def test_overlap_windows_of_one_pair_far_apart_stay_separate() -> None:
    run = steady(Run())
    run.write(1.0, 1.5, "n1")
    run.write(1.2, 1.6, "n2")  # overlaps the first
    run.write(20.0, 20.5, "n2")
    run.write(20.1, 20.6, "n1")  # overlaps again, 18 s later
    run.write(21.0, 21.4, "n3")  # overlaps nothing (n1's last ack ended at 20.6)
    result = no_split_brain(run.events())
    assert [(v.t_start, v.t_end) for v in result.violations] == [(1.0, 1.6), (20.0, 20.6)]
    assert result.metrics["divergence_checked"] is False  # no final reads


def test_acks_that_only_touch_do_not_overlap() -> None:
    run = steady(Run())
    run.write(1.0, 2.0, "n1")
    run.write(2.0, 3.0, "n2")
    assert no_split_brain(run.events()).ok


def test_divergence_without_overlap_is_a_split_brain() -> None:
    run, ids = silent_divergence()
    result = no_split_brain(run.events())
    [v] = result.violations
    assert v.detail["reason"] == "acknowledged_on_divergent_branch"
    assert v.detail["served_by"] == "n1"
    assert v.detail["timeline"] == 1
    assert v.detail["branch_timeline"] == 2
    assert v.detail["first_ids"] == ids["late"][:10]
    assert v.detail["lost_writes"] == 11
    assert (v.t_start, v.t_end) == (20.01, 30.01)
    assert "n2 had created timeline 2 at t=20.000" in v.detail["summary"]


def test_writes_lost_before_the_fork_are_no_split_brain() -> None:
    run, _ = async_loss()
    result = no_split_brain(run.events())
    assert result.ok
    assert result.metrics["divergence_checked"] is True


def test_a_branch_off_an_older_timeline_is_found() -> None:
    """n3 forks timeline 3 from timeline 1 while n2 (timeline 2) keeps writing: n2's later acks
    are on a branch the final data (timeline 3) does not contain."""
    run = steady(Run())
    run.role(10.0, "n2", "primary", 2)
    lost = run.writes([12.0, 13.0], "n2", timeline=2)
    run.role(11.0, "n3", "primary", 3)
    run.role(20.0, "n2", "replica", 3).role(20.0, "n1", "replica", 3)
    for node, role in (("n1", "replica"), ("n2", "replica"), ("n3", "primary")):
        run.final(30.0, node, role, 3, [])
    [v] = no_split_brain(run.events()).violations
    assert v.detail["branch_node"] == "n3"
    assert v.detail["branch_created_t"] == 11.0
    assert v.detail["first_ids"] == lost


def test_writes_lost_on_the_final_timeline_are_no_divergence() -> None:
    run = steady(Run())
    run.writes([1.0], "n1")
    run.final(10.0, "n1", "primary", 1, [])
    assert no_split_brain(run.events()).ok
    assert not no_lost_acknowledged_writes(run.events()).ok


def test_unknown_timelines_are_not_judged_for_divergence() -> None:
    run = Run()
    run.ev(0.5, "pg_role", "n3", role="stopped")  # a role without a timeline
    run.writes([1.0], "n1", timeline=None)  # no pg_role for n1: timeline unknown
    run.writes([2.0], "n1", timeline=7)  # a timeline no pg_role created
    run.final(10.0, "n1", "primary", 2, [])
    result = no_split_brain(run.events())
    assert result.ok
    assert result.metrics["divergence_checked"] is True


def test_final_primary_without_timeline_skips_divergence() -> None:
    run = steady(Run())
    run.writes([1.0], "n1")
    run.ev(10.0, "final_read", "n1", ids=[], role="primary", timeline=None)
    assert no_split_brain(run.events()).metrics["divergence_checked"] is False


def test_the_ack_timeline_defaults_to_the_node_timeline() -> None:
    run = steady(Run())
    run.role(10.0, "n2", "primary", 2)
    lost = run.writes([12.0], "n1", timeline=None)  # n1 is on timeline 1 by pg_role
    run.final(30.0, "n2", "primary", 2, [])
    [v] = no_split_brain(run.events()).violations
    assert v.detail["timeline"] == 1
    assert v.detail["first_ids"] == lost


def test_a_node_acking_on_its_own_new_branch_is_not_divergent() -> None:
    """n2 creates timeline 2 and its own acks on timeline 1 (before) are not judged against it."""
    run = steady(Run(), primary="n2")
    lost = run.writes([5.0], "n2", timeline=1)
    run.role(10.0, "n2", "primary", 2)
    run.final(30.0, "n2", "primary", 2, [])
    result = no_split_brain(run.events())
    assert result.ok
    assert no_lost_acknowledged_writes(run.events()).metrics["lost_ids"] == lost


def test_timeline_cycles_in_a_garbled_history_terminate() -> None:
    run = Run()
    run.role(0.0, "n1", "replica", 3).role(1.0, "n1", "primary", 2)  # 2 from 3
    run.role(0.0, "n2", "replica", 2).role(2.0, "n2", "primary", 3)  # 3 from 2
    run.writes([3.0], "n1", timeline=4)
    run.final(10.0, "n2", "primary", 3, [])
    assert no_split_brain(run.events()).ok


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
    result = no_lost_acknowledged_writes(run.events())
    assert result.ok
    assert list(collect_facts(run.events()).final_reads["n1"].ids) == ids


def test_lost_writes_need_a_single_final_primary() -> None:
    run = steady(Run())
    run.writes([1.0], "n1")
    run.final(10.0, "n1", "primary", 1, [1]).final(10.0, "n2", "primary", 1, [1])
    result = no_lost_acknowledged_writes(run.events())
    [v] = result.violations
    assert v.detail["reason"] == "no_single_final_primary"
    assert v.nodes == ("n1", "n2")
    assert result.metrics["lost_writes"] is None
    missing = steady(Run())
    missing.writes([1.0], "n1")
    [v] = no_lost_acknowledged_writes(missing.events()).violations
    assert v.detail["final_roles"] == {}


def test_unknown_and_failed_writes_found_in_final_data_are_counted() -> None:
    run = steady(Run())
    applied = run.write(1.0, 2.0, "n1", "info")
    failed = run.write(3.0, 4.0, "n1", "fail")
    run.write(5.0, 6.0, "n1", "info")
    run.final(10.0, "n1", "primary", 1, [applied, failed])
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


def test_an_ok_without_invoke_counts_from_its_own_time() -> None:
    run = steady(Run())
    run.ev(1.0, "ok", "c1", op="write", id=1, served_by="n1", timeline=1, lsn=1)
    run.ev(1.0, "ok", "c2", op="write", id=2, served_by="n2", timeline=1, lsn=1)
    assert no_split_brain(run.events()).ok  # zero-length intervals touching only


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
        ({"no_split_brian": True}, "unknown keys"),
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
    assert violation["t_start"] == 20.0
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
