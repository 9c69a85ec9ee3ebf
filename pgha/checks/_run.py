# Running the checks a scenario (or a history's run_start, or the caller) names, and the run's
# summary: the numbers every verdict line, summary.json, report and notebook shows.
"""run_checks, the operator-requests check, and the run summary."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pgha.checks._facts import FinalRead, RunFacts, collect_facts
from pgha.checks._lost import Lost, check_no_lost_acknowledged_writes, ids_detail, lost_writes
from pgha.checks._results import (
    OPERATOR,
    CheckReport,
    CheckResult,
    Violation,
    _r,
    spec_from_history,
)
from pgha.checks._split_brain import check_no_split_brain
from pgha.checks._timed import check_eventually_healthy, check_failover_within
from pgha.history import Event
from pgha.scenario import ChecksSpec


def check_operator_requests(facts: RunFacts) -> CheckResult:
    """Every operator request (switchover, failover) was accepted by the cluster."""
    refused = [r for r in facts.operator_requests if not r.succeeded]
    violations = tuple(
        Violation(
            t_start=r.t,
            t_end=r.t,
            nodes=tuple(n for n in (r.leader, r.candidate) if n),
            detail={
                "reason": f"operator_request_{r.outcome}",
                "summary": (
                    f"{r.request} (fault {r.fault_id}) {r.outcome}"
                    + (f": {r.error}" if r.error else "")
                    + (f" (HTTP {r.status})" if r.status is not None else "")
                ),
                **r.to_dict(),
            },
        )
        for r in refused
    )
    metrics = {"requests": len(facts.operator_requests), "not_accepted": len(refused)}
    return CheckResult(OPERATOR, not violations, violations, metrics)


def run_checks(
    events: Iterable[Event] | RunFacts,
    checks_spec: ChecksSpec | Mapping[str, Any] | None = None,
    *,
    source: str = "<history>",
    partial: bool = False,
) -> CheckReport:
    """Run the enabled checks in one pass over `events` (or on facts already collected).

    `checks_spec` None: the `checks` of the history's `run_start`; failing that, the two safety
    invariants (the scenario defaults, `ChecksSpec()`). `source` names the history in errors;
    `partial` judges a run still going (no run_end or final reads expected yet).

    Raises:
        HistoryError: a malformed event, or a history that contradicts itself
            (`HistoryIntegrityError`), located by `source` and line.
    """
    facts = (
        events if isinstance(events, RunFacts) else collect_facts(events, source, partial=partial)
    )
    spec = _resolve_spec(checks_spec, facts)
    split, lost = check_no_split_brain(facts), lost_writes(facts)
    results: list[CheckResult] = []
    if spec.no_split_brain:
        results.append(split)
    if spec.no_lost_acknowledged_writes:
        results.append(check_no_lost_acknowledged_writes(facts, spec.max_lost_writes, lost))
    if spec.failover_within_s is not None:
        results.append(check_failover_within(facts, spec.failover_within_s))
    if spec.eventually_healthy_s is not None:
        results.append(check_eventually_healthy(facts, spec.eventually_healthy_s))
    if spec.operator_requests_succeed:
        results.append(check_operator_requests(facts))
    return CheckReport(tuple(results), summarize(facts, split, lost), spec)


def _resolve_spec(spec: ChecksSpec | Mapping[str, Any] | None, facts: RunFacts) -> ChecksSpec:
    if isinstance(spec, ChecksSpec):
        return spec
    if spec is not None:
        return spec_from_history(spec)
    from_history = facts.run.get("checks")
    if isinstance(from_history, Mapping):
        return spec_from_history(from_history)
    return ChecksSpec()


def summarize(
    facts: RunFacts, split: CheckResult | None = None, lost: Lost | Violation | None = None
) -> dict[str, Any]:
    """The run's metrics, whether or not a check uses them (`split` and `lost` when known)."""
    w = facts.writes
    split = split if split is not None else check_no_split_brain(facts)
    lost = lost if lost is not None else lost_writes(facts)
    final = None if isinstance(lost, Violation) else lost.final
    operators = facts.operator_requests
    return {
        "duration_s": _r(facts.t_end - facts.t_start),
        "writes_invoked": w.invoked,
        "writes_acknowledged": w.acknowledged,
        "writes_failed": w.failed,
        "writes_unknown": w.unknown,
        "unknown_writes_applied": _present(final, facts.unknown_ids),
        "failed_writes_applied": _present(final, facts.failed_ids),
        "lost_writes": _lost_count(lost, facts),
        "lost_write_ids": []
        if isinstance(lost, Violation)
        else ids_detail(facts.acks, lost.indices),
        "final_primary": None if final is None else final.node,
        "client_paths": list(w.paths),
        "unavailability_s": _r(w.unavailability_s),
        "unavailable_periods": w.unavailable_periods,
        "longest_unavailability_s": _r(w.longest_unavailability_s),
        "split_brain_s": split.metrics["split_brain_s"],
        "stale_acks": split.metrics["stale_acks"],
        "dual_writable_s": _r(facts.dual_writable_s),
        "dual_primary_s": split.metrics["dual_primary_s"],
        "failover_times_s": [_r(f.failover_s) for f in facts.failovers if f.failover_s is not None],
        "failovers": [f.to_dict() for f in facts.failovers],
        "faults_applied": sum(1 for f in facts.faults if not f.skipped),
        "faults_skipped": sum(1 for f in facts.faults if f.skipped),
        "operator_requests": len(operators),
        "operator_requests_refused": sum(1 for r in operators if r.outcome == "refused"),
        "operator_requests_failed": sum(1 for r in operators if r.outcome == "failed"),
        "operator_outcomes": [r.to_dict() for r in operators],
    }


def _lost_count(lost: Lost | Violation, facts: RunFacts) -> int | None:
    """How many acknowledged writes the final data lacks; None when no final data says."""
    if isinstance(lost, Lost):
        return len(lost.indices)
    return 0 if not len(facts.acks) else None


def _present(final: FinalRead | None, ids: Iterable[int]) -> int | None:
    return None if final is None else sum(1 for i in ids if final.has(i))


# ---------------------------------------------------------------- one check on raw events


def no_split_brain(events: Iterable[Event]) -> CheckResult:
    return check_no_split_brain(collect_facts(events))


def no_lost_acknowledged_writes(
    events: Iterable[Event], max_lost_writes: int | None = None
) -> CheckResult:
    return check_no_lost_acknowledged_writes(collect_facts(events), max_lost_writes)


def failover_within(events: Iterable[Event], within_s: float) -> CheckResult:
    return check_failover_within(collect_facts(events), within_s)


def eventually_healthy(events: Iterable[Event], within_s: float) -> CheckResult:
    return check_eventually_healthy(collect_facts(events), within_s)
