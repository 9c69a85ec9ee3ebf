# The timed checks: a failover within a bound after each fault that hit the primary, and a
# healthy cluster (one primary, every other node replicating from it) within a bound after the
# last fault, still healthy at the end, with final reads that agree.
"""The failover_within and eventually_healthy checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pgha.checks._facts import RunFacts
from pgha.checks._faults import Failover
from pgha.checks._lost import final_primary
from pgha.checks._results import FAILOVER, HEALTHY, CheckResult, Violation, _r
from pgha.checks._roles import RoleChange, state_at


def check_failover_within(facts: RunFacts, within_s: float) -> CheckResult:
    """Each fault that hit the primary is followed by an ack from another node within `within_s`."""
    violations = tuple(
        _failover_violation(facts, f, within_s)
        for f in facts.failovers
        if f.outcome == "none" or (f.failover_s is not None and f.failover_s > within_s)
    )
    times = [_r(f.failover_s) for f in facts.failovers if f.failover_s is not None]
    metrics = {
        "within_s": within_s,
        "failover_times_s": times,
        "max_failover_s": max(times, default=None),
        "failovers": [f.to_dict() for f in facts.failovers],
    }
    return CheckResult(FAILOVER, not violations, violations, metrics)


def _failover_violation(facts: RunFacts, f: Failover, within_s: float) -> Violation:
    old = ", ".join(f.old_primaries)
    if f.failover_s is None:
        reason = "no_failover"
        text = f"no other node than {old} acknowledged a write before the run ended"
    else:
        reason = "failover_too_slow"
        text = f"{f.new_primary} acknowledged the first write {f.failover_s:.3f} s after the fault"
    return Violation(
        t_start=f.t_fault,
        t_end=facts.t_end if f.t_first_ok is None else f.t_first_ok,
        nodes=tuple(sorted({*f.old_primaries, *([f.new_primary] if f.new_primary else [])})),
        detail={
            "reason": reason,
            "summary": f"fault {f.label!r} (id {f.fault_id}) hit primary {old} at "
            f"t={f.t_fault:.3f}; {text} (limit {within_s} s)",
            **f.to_dict(),
            "within_s": within_s,
        },
    )


def check_eventually_healthy(facts: RunFacts, within_s: float) -> CheckResult:
    """After the last fault, within `within_s`: one primary, every other node a replica of it."""
    t_calm = max((f.t_over for f in facts.faults if not f.skipped), default=facts.t_start)
    deadline = t_calm + within_s
    reached, stable_since = _health_reached(facts, t_calm)
    healthy_at_end = _healthy(state_at(facts.roles, facts.t_end), facts.nodes)
    final_problem = _final_reads_problem(facts)
    metrics = {
        "within_s": within_s,
        "last_fault_end_t": _r(t_calm),
        "healthy_at_t": _r(reached),
        "healthy_after_s": _r(None if reached is None else reached - t_calm),
        "stable_since_t": _r(stable_since),
    }
    problems = []
    if reached is None or reached > deadline:
        problems.append("not_healthy_within")
    if not healthy_at_end:
        problems.append("unhealthy_at_end")
    if final_problem:
        problems.append("final_reads_disagree")
    if not problems:
        return CheckResult(HEALTHY, True, (), metrics)
    v = _health_violation(facts, t_calm, deadline, reached, problems, final_problem)
    return CheckResult(HEALTHY, False, (v,), metrics)


def _health_violation(
    facts: RunFacts,
    t_calm: float,
    deadline: float,
    reached: float | None,
    problems: list[str],
    final_problem: str | None,
) -> Violation:
    at_deadline = state_at(facts.roles, min(deadline, facts.t_end))
    at_end = state_at(facts.roles, facts.t_end)
    nodes = set(_unhealthy(at_deadline, facts.nodes)) | set(_unhealthy(at_end, facts.nodes))
    when = "never" if reached is None else f"only at t={reached:.3f}"
    return Violation(
        t_start=t_calm,
        t_end=facts.t_end,
        nodes=tuple(sorted(nodes)),
        detail={
            "reason": problems[0],
            "problems": problems,
            "summary": (
                f"last fault over at t={t_calm:.3f}; deadline t={deadline:.3f}; healthy {when}"
                + (f"; {final_problem}" if final_problem else "")
            ),
            "last_fault_end_t": _r(t_calm),
            "deadline_t": _r(deadline),
            "healthy_at_t": _r(reached),
            "roles_at_deadline": _describe_state(at_deadline, facts.nodes),
            "roles_at_end": _describe_state(at_end, facts.nodes),
            "final_reads": {
                n: {"role": r.role, "timeline": r.timeline}
                for n, r in sorted(facts.final_reads.items())
            },
        },
    )


def _follows(replica: RoleChange, primary: RoleChange) -> bool:
    if replica.role != "replica":
        return False
    if replica.upstream is not None:
        return replica.upstream == primary.node
    return None in (replica.timeline, primary.timeline) or replica.timeline == primary.timeline


def _unhealthy(state: Mapping[str, RoleChange], nodes: Sequence[str]) -> tuple[str, ...]:
    """Nodes that keep the cluster from being healthy (all of them when no single primary)."""
    primaries = [n for n in nodes if n in state and state[n].role == "primary"]
    if len(primaries) > 1:
        return tuple(primaries)
    if not primaries:
        return tuple(nodes)
    primary = state[primaries[0]]
    return tuple(
        n
        for n in nodes
        if n != primary.node and (n not in state or not _follows(state[n], primary))
    )


def _healthy(state: Mapping[str, RoleChange], nodes: Sequence[str]) -> bool:
    return bool(nodes) and not _unhealthy(state, nodes)


def _health_reached(facts: RunFacts, t_calm: float) -> tuple[float | None, float | None]:
    """The first time from `t_calm` on when the cluster was healthy, and when its last healthy
    stretch (lasting to the end of the run) began (None if unhealthy at the end)."""
    state = state_at(facts.roles, t_calm)
    healthy = _healthy(state, facts.nodes)
    reached = t_calm if healthy else None
    since = t_calm if healthy else None
    for c in facts.roles:
        if c.t <= t_calm:
            continue
        state[c.node] = c
        now = _healthy(state, facts.nodes)
        if now and not healthy:
            since = c.t
            reached = c.t if reached is None else reached
        healthy = now
    return reached, since if healthy else None


def _final_reads_problem(facts: RunFacts) -> str | None:
    if not facts.final_reads:
        return None
    final = final_primary(facts)
    if isinstance(final, Violation):
        return str(final.detail["summary"])
    behind = sorted(
        n
        for n, r in facts.final_reads.items()
        if n != final.node and (r.role != "replica" or r.timeline != final.timeline)
    )
    if behind:
        return f"final reads of {', '.join(behind)} are not replicas on timeline {final.timeline}"
    return None


def _describe_state(state: Mapping[str, RoleChange], nodes: Sequence[str]) -> dict[str, Any]:
    return {
        n: (
            {"role": state[n].role, "timeline": state[n].timeline, "since_t": _r(state[n].t)}
            if n in state
            else None
        )
        for n in nodes
    }
