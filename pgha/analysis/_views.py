# Tables and the picture a notebook shows next to a history. Every number comes from the checkers'
# facts (pgha.checks.collect_facts) or straight from events; nothing here re-decides what counts
# as unavailable or writable. The timeline is the HTML report's picture (pgha.report).
"""`unavailability`, `dual_writable`, `decisions` and `timeline` of a history."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import pandas as pd

from pgha.analysis._frames import History, as_events
from pgha.checks import collect_facts

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TimeRange = tuple[float, float]


def unavailability(history: History) -> pd.DataFrame:
    """Periods without a successful write while clients were writing: start, end, duration_s.

    The checkers' definition (pgha.checks): a period starts at the invoke of the first write after
    the last success that fails, returns `info` or never returns, and ends at the next
    acknowledgement (or the end of the run). The durations sum to summary.json's unavailability_s.
    """
    windows = collect_facts(as_events(history), partial=True).writes.unavailable_windows
    return pd.DataFrame(
        {
            "start": pd.Series([w[0] for w in windows], dtype="float64"),
            "end": pd.Series([w[1] for w in windows], dtype="float64"),
            "duration_s": pd.Series([w[1] - w[0] for w in windows], dtype="float64"),
        }
    )


def dual_writable(history: History) -> pd.DataFrame:
    """Windows in which two or more PostgreSQL instances accepted writes at once (whether or not a
    client wrote): start, end, duration_s, nodes (a tuple). Sums to summary.json's dual_writable_s.
    """
    windows = collect_facts(as_events(history), partial=True).dual_writable
    return pd.DataFrame(
        {
            "start": pd.Series([w.t_start for w in windows], dtype="float64"),
            "end": pd.Series([w.t_end for w in windows], dtype="float64"),
            "duration_s": pd.Series([w.duration_s for w in windows], dtype="float64"),
            "nodes": pd.Series([w.nodes for w in windows], dtype=object),
        }
    )


def decisions(
    history: History,
    *,
    node: str | None = None,
    t_range: TimeRange | None = None,
) -> pd.DataFrame:
    """Engine decisions: t, node, role, reason, actions (a list), immediate, changed.

    `changed` is True where the node's reason differs from its previous decision's (the decisions
    the timeline marks). `node` keeps one node's; `t_range` (start, end) keeps start <= t <= end.
    """
    if t_range is not None:
        t_range = _checked_range(t_range)
    rows: list[dict[str, Any]] = []
    last_reason: dict[str | None, Any] = {}
    for e in as_events(history):
        if e.kind != "decision":
            continue
        reason = e.get("reason")
        changed = last_reason.get(e.node) != reason
        last_reason[e.node] = reason
        if node is not None and e.node != node:
            continue
        if t_range is not None and not t_range[0] <= e.t <= t_range[1]:
            continue
        rows.append(
            {
                "t": e.t,
                "node": e.node,
                "role": e.get("role"),
                "reason": reason,
                "actions": list(e.get("actions") or []),
                "immediate": bool(e.get("immediate", False)),
                "changed": changed,
            }
        )
    columns = ["t", "node", "role", "reason", "actions", "immediate", "changed"]
    return pd.DataFrame(rows, columns=columns).astype({"t": "float64", "changed": "bool"})


def timeline(
    history: History,
    *,
    t_range: TimeRange | None = None,
    decisions: bool = False,
) -> Figure:
    """The HTML report's timeline (pgha.report.timeline_figure) as a matplotlib Figure.

    One lane per database node: PostgreSQL role, lock holder, acknowledged writes, faults,
    split-brain and two-writable windows, failover arrows. `t_range` (start, end) zooms the time
    axis; `decisions=True` marks each engine decision where a node's reason changed, labelled
    with the reason. In Jupyter the figure displays itself as the cell's value.
    """
    from pgha.report import timeline_figure

    if t_range is not None:
        t_range = _checked_range(t_range)
    figure = timeline_figure(as_events(history), t_range=t_range, show_decisions=decisions)
    _display_in_ipython(type(figure))
    return figure


def _display_in_ipython(figure_type: type) -> None:
    """In IPython / Jupyter, show figures as PNG even where pyplot was never imported (the
    report's figures are made without pyplot, so matplotlib's inline backend is not active)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return
    from pgha.report import figure_png

    formatter = shell.display_formatter.formatters["image/png"]
    try:
        formatter.lookup_by_type(figure_type)  # matplotlib's inline backend, when active
    except KeyError:
        formatter.for_type(figure_type, figure_png)


def _checked_range(t_range: Any) -> TimeRange:
    try:
        start, end = (float(t) for t in t_range)
    except (TypeError, ValueError):
        raise ValueError(f"t_range: expected (start, end) in seconds, got {t_range!r}") from None
    if not start < end:
        raise ValueError(f"t_range: expected start < end, got ({start}, {end})")
    return start, end
