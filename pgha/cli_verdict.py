"""The verdict lines that ``pgha sim run`` and ``pgha check`` print after checking a history."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def verdict(name: str, seed: int | None, report: object, how: str, page: Path | str) -> str:
    """The verdict: a headline (`how` in brackets), one line per check, the metrics, `page`.

    `how` says where the history came from, e.g. "120 s simulated in 0.30 s, 400x"; `seed` None
    (a history that does not name one) leaves the seed out; `page` is the report to open.
    """
    from pgha.checks import CheckReport

    assert isinstance(report, CheckReport)
    seeded = "" if seed is None else f" (seed {seed})"
    lines = [f"{name}{seeded}: {'PASS' if report.ok else 'FAIL'}  [{how}]"]
    for result in report.results:
        mark = "ok  " if result.ok else "FAIL"
        lines.append(f"  {mark} {result.name}{first_violation(result)}")
    summary = report.summary
    measured = ", ".join(f"{s:.1f} s" for s in summary["failover_times_s"]) or "none"
    lines.append(
        f"  writes acknowledged: {summary['writes_acknowledged']}; failovers: {measured}; "
        f"lost writes: {summary['lost_writes']}; "
        f"split-brain: {summary['split_brain_s']:.1f} s ({summary['stale_acks']} stale acks); "
        f"dual-writable: {summary['dual_writable_s']:.1f} s; "
        f"unavailable: {summary['unavailability_s']:.1f} s"
    )
    if summary["operator_requests"]:
        lines.append(f"  operator requests: {_operator_line(summary)}")
    lines.append(f"  report: {page}")
    return "\n".join(lines)


def _operator_line(summary: Mapping[str, Any]) -> str:
    """ "2 (1 refused: switchover candidate_not_sync at t=20.0 s)" """
    not_accepted = [o for o in summary["operator_outcomes"] if o["outcome"] != "accepted"]
    if not not_accepted:
        return f"{summary['operator_requests']} (all accepted)"
    shown = ", ".join(
        f"{o['outcome']} {o['request']} {o['error'] or ''} at t={o['t']:.1f} s".replace("  ", " ")
        for o in not_accepted[:3]
    )
    return f"{summary['operator_requests']} ({len(not_accepted)} not accepted: {shown})"


def first_violation(result: object) -> str:
    """ ": t=START-END s NODES WHAT" for the first violation of a check result, or ""."""
    violations = getattr(result, "violations", ())
    if not violations:
        return ""
    first = violations[0]
    nodes = ",".join(first.nodes)
    what = first.detail.get("reason") or ""
    return f": t={first.t_start:.1f}-{first.t_end:.1f} s {nodes} {what}".rstrip()


def simulated(simulated_s: float, wall_s: float) -> str:
    """How ``pgha sim run`` got its history: "300 s simulated in 0.32 s, 947x"."""
    speed = simulated_s / wall_s if wall_s > 0 else float("inf")
    return f"{simulated_s:.0f} s simulated in {wall_s:.2f} s, {speed:,.0f}x"
