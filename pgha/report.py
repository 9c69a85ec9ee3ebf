# Reports read a history and a CheckReport and nothing else (docs/design.md: notebooks and reports
# read histories, not simulator internals). The timeline picture is public (`timeline_figure`) so
# that notebooks draw the same thing. Figures are made without pyplot and rendered with the Agg
# canvas: nothing opens a window, and the global matplotlib backend is left alone.
"""Run reports: summary.json, junit.xml and a self-contained report.html with the timeline."""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from pgha.checks import (
    CheckReport,
    FactsCollector,
    RunFacts,
    check_no_split_brain,
    run_checks,
)
from pgha.history import Event, iter_history
from pgha.report_files import junit_xml_of, summary_of
from pgha.report_html import report_html

ROLE_COLORS: Mapping[str, str] = {
    "primary": "#2166ac",
    "replica": "#5aae61",
    "starting": "#fdb863",
    "stopped": "#bababa",
    "crashed": "#4d4d4d",
}
OTHER_ROLE_COLOR = "#e0e0e0"
LOCK_COLOR = "#6a3d9a"
WRITES_COLOR = "#35978f"
FAULT_COLOR = "#f4a582"
SPLIT_BRAIN_COLOR = "#d6001c"
MAX_BINS = 600  # write-count bins across the plotted span

LOCK_HELD = frozenset({"acquired", "renewed"})
LOCK_GONE = frozenset({"lost", "released", "expired"})

# lane layout, in lane units (each node's lane is [y, y + 1))
ROLE_Y, ROLE_H = 0.45, 0.42
LOCK_Y, LOCK_H = 0.34, 0.07
WRITES_Y, WRITES_H = 0.05, 0.25


# ---------------------------------------------------------------- what the picture needs


@dataclass(frozen=True, slots=True)
class DecisionMark:
    t: float
    node: str
    reason: str


@dataclass(slots=True)
class _LocksAndDecisions:
    """From one pass: lock holding intervals per node, and decisions where the reason changed."""

    keep_decisions: bool = False
    holds: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    decisions: list[DecisionMark] = field(default_factory=list)
    _since: dict[str, float] = field(default_factory=dict)
    _last_reason: dict[str, str] = field(default_factory=dict)

    def feed(self, e: Event) -> None:
        if e.kind == "lock" and e.node is not None:
            self._lock(e.node, str(e.get("event")), e.t)
        elif e.kind == "decision" and self.keep_decisions and e.node is not None:
            reason = str(e.get("reason"))
            if self._last_reason.get(e.node) != reason:
                self.decisions.append(DecisionMark(e.t, e.node, reason))
                self._last_reason[e.node] = reason

    def _lock(self, node: str, what: str, t: float) -> None:
        if what in LOCK_HELD:
            self._since.setdefault(node, t)
        elif what in LOCK_GONE and node in self._since:
            self.holds.setdefault(node, []).append((self._since.pop(node), t))

    def finish(self, t_end: float) -> None:
        for node, since in sorted(self._since.items()):
            self.holds.setdefault(node, []).append((since, t_end))
        self._since.clear()


def _collect(
    events: Iterable[Event], *, keep_decisions: bool
) -> tuple[RunFacts, _LocksAndDecisions]:
    facts_in, extra = FactsCollector(), _LocksAndDecisions(keep_decisions=keep_decisions)
    for e in events:
        facts_in.feed(e)
        extra.feed(e)
    facts = facts_in.finish()
    extra.finish(facts.t_end)
    return facts, extra


# ---------------------------------------------------------------- the timeline picture


def timeline_figure(
    events: Iterable[Event],
    *,
    t_range: tuple[float, float] | None = None,
    show_decisions: bool = False,
) -> Figure:
    """One lane per database node: PostgreSQL role over time, lock holder, acknowledged writes.

    Faults are shaded on the lanes they hit (all lanes, lighter, for hosts that are not database
    nodes) and labelled; split-brain windows are red, two-writable windows hatched red; each
    failover is an arrow from the fault to the new primary's first acknowledged write. With
    `show_decisions`, engine decisions are marked where a node's reason changed. `t_range`
    limits the time axis. Nothing is shown: the figure is rendered with Agg (`savefig`).
    """
    facts, extra = _collect(events, keep_decisions=show_decisions)
    return _draw(facts, extra, t_range=t_range)


def _draw(
    facts: RunFacts, extra: _LocksAndDecisions, *, t_range: tuple[float, float] | None
) -> Figure:
    nodes = list(facts.nodes)
    lanes = {n: len(nodes) - 1 - i for i, n in enumerate(nodes)}
    fig = Figure(figsize=(14, 1.6 + 1.0 * max(1, len(nodes))), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    t0, t1 = (
        t_range if t_range is not None else (facts.t_start, max(facts.t_end, facts.t_start + 1))
    )
    _draw_faults(ax, facts, lanes)
    _draw_roles(ax, facts, lanes)
    _draw_locks(ax, extra.holds, lanes)
    _draw_writes(ax, facts, lanes, t0, t1)
    _draw_split_brain(ax, facts, lanes)
    _draw_failovers(ax, facts, lanes)
    _draw_decisions(ax, extra.decisions, lanes, t0, t1)
    for label in ax.texts:  # labels outside a zoomed range would stretch the layout
        label.set_clip_on(True)
    ax.set_xlim(t0, t1)
    ax.set_ylim(-0.1, len(nodes) + 0.5)
    ax.set_yticks([lanes[n] + 0.5 for n in nodes], nodes)
    ax.set_xlabel("true time (s)")
    ax.set_title(_title(facts), fontsize=10, loc="left")
    fig.legend(handles=_legend(), loc="outside lower center", fontsize=7, ncols=10, frameon=False)
    return fig


def _title(facts: RunFacts) -> str:
    scenario = facts.run.get("scenario", "run")
    seed, world = facts.run.get("seed"), facts.run.get("world")
    return f"{scenario}  (world {world}, seed {seed})"


def _legend() -> list[Patch]:
    roles = [Patch(color=c, label=r) for r, c in ROLE_COLORS.items()]
    return [
        *roles,
        Patch(color=LOCK_COLOR, label="holds lock"),
        Patch(color=WRITES_COLOR, label="acked writes / bin"),
        Patch(color=FAULT_COLOR, alpha=0.5, label="fault"),
        Patch(color=SPLIT_BRAIN_COLOR, alpha=0.35, label="split-brain"),
        Patch(fill=False, hatch="///", edgecolor=SPLIT_BRAIN_COLOR, label="two writable"),
    ]


def _role_segments(facts: RunFacts, node: str) -> list[tuple[float, float, str]]:
    changes = [c for c in facts.roles if c.node == node]
    if not changes:
        return []
    ends = [c.t for c in changes[1:]] + [facts.t_end]
    return [(c.t, end, c.role) for c, end in zip(changes, ends, strict=True) if end > c.t]


def _draw_roles(ax: Any, facts: RunFacts, lanes: Mapping[str, int]) -> None:
    for node, y in lanes.items():
        segments = _role_segments(facts, node)
        ax.broken_barh(
            [(s, e - s) for s, e, _ in segments],
            (y + ROLE_Y, ROLE_H),
            facecolors=[ROLE_COLORS.get(r, OTHER_ROLE_COLOR) for _, _, r in segments],
            edgecolor="none",
        )


def _draw_locks(
    ax: Any, holds: Mapping[str, list[tuple[float, float]]], lanes: Mapping[str, int]
) -> None:
    for node, spans in holds.items():
        if node in lanes and spans:
            ax.broken_barh(
                [(s, e - s) for s, e in spans],
                (lanes[node] + LOCK_Y, LOCK_H),
                facecolors=LOCK_COLOR,
            )


def bin_width_s(span_s: float) -> float:
    """Width of the write-count bins: 1 s, or coarser so that a span has at most MAX_BINS."""
    return float(max(1, math.ceil(span_s / MAX_BINS)))


def write_counts(facts: RunFacts, t0: float, t1: float) -> tuple[float, dict[str, dict[int, int]]]:
    """Acknowledged writes per serving node per bin in [t0, t1): (bin width s, node -> bin -> n)."""
    width_s = bin_width_s(t1 - t0)
    counts: dict[str, dict[int, int]] = {}
    acks = facts.acks
    for k in range(len(acks)):
        t = acks.t_ok[k]
        if t0 <= t < t1:
            per_node = counts.setdefault(acks.node(k), {})
            b = int((t - t0) // width_s)
            per_node[b] = per_node.get(b, 0) + 1
    return width_s, counts


def _draw_writes(ax: Any, facts: RunFacts, lanes: Mapping[str, int], t0: float, t1: float) -> None:
    width_s, counts = write_counts(facts, t0, t1)
    peak = max((n for per in counts.values() for n in per.values()), default=0)
    for node, per_bin in counts.items():
        if node not in lanes:
            continue
        y = lanes[node] + WRITES_Y
        xs = [t0 + b * width_s for b in sorted(per_bin)]
        heights = [WRITES_H * per_bin[b] / peak for b in sorted(per_bin)]
        ax.bar(xs, heights, width=width_s, bottom=y, align="edge", color=WRITES_COLOR, lw=0)


def _draw_faults(ax: Any, facts: RunFacts, lanes: Mapping[str, int]) -> None:
    top = len(lanes)
    for i, f in enumerate(facts.faults):
        label_y = top + 0.05 + 0.2 * (i % 2)
        if f.skipped:
            ax.axvline(f.t_start, color="grey", ls=":", lw=1)
            ax.text(f.t_start, label_y, f"{f.label} (skipped)", fontsize=7, color="grey")
            continue
        width = max(f.t_over - f.t_start, 0.0)
        hit = [lanes[t] for t in f.targets if t in lanes]
        spans = [(float(y), 1.0, 0.35) for y in hit] or [(0.0, float(top), 0.2)]
        for y, height, alpha in spans:
            ax.add_patch(
                Rectangle(
                    (f.t_start, y), width, height, fc=FAULT_COLOR, alpha=alpha, lw=0, zorder=3
                )
            )
        ax.axvline(f.t_start, color=FAULT_COLOR, lw=1, zorder=3)
        ax.text(f.t_start, label_y, f.label, fontsize=7, color="#b2182b")


def _draw_split_brain(ax: Any, facts: RunFacts, lanes: Mapping[str, int]) -> None:
    for v in check_no_split_brain(facts).violations:
        t_end = max(v.t_end, v.t_start)
        ax.axvspan(v.t_start, t_end, color=SPLIT_BRAIN_COLOR, alpha=0.25, lw=0, zorder=4)
    for w in facts.dual_writable:
        for node in w.nodes:
            if node in lanes:
                ax.add_patch(
                    Rectangle(
                        (w.t_start, lanes[node] + ROLE_Y),
                        w.duration_s,
                        ROLE_H,
                        fill=False,
                        hatch="///",
                        edgecolor=SPLIT_BRAIN_COLOR,
                        lw=0.8,
                        zorder=4,
                    )
                )


def _draw_failovers(ax: Any, facts: RunFacts, lanes: Mapping[str, int]) -> None:
    for f in facts.failovers:
        lane = lanes.get(f.new_primary or "")
        if lane is not None and f.t_first_ok is not None and f.failover_s is not None:
            y = lane + 0.95
            ax.annotate(
                "",
                xy=(f.t_first_ok, y),
                xytext=(f.t_fault, y),
                arrowprops={"arrowstyle": "<->", "color": "black", "lw": 1},
            )
            mid = (f.t_fault + f.t_first_ok) / 2
            ax.text(mid, y + 0.02, f"failover {f.failover_s:.1f} s", fontsize=7, ha="center")
        elif f.outcome == "none":
            y = max((lanes[n] for n in f.old_primaries if n in lanes), default=0) + 0.95
            ax.text(f.t_fault, y, "no failover", fontsize=7, color=SPLIT_BRAIN_COLOR)


def _draw_decisions(
    ax: Any, decisions: Sequence[DecisionMark], lanes: Mapping[str, int], t0: float, t1: float
) -> None:
    """Decisions inside [t0, t1] only (labels outside a zoom would stretch the layout); labels
    of one node closer together than 1 % of the span are stacked rather than drawn over."""
    close_s = (t1 - t0) / 100
    last: dict[str, tuple[float, int]] = {}
    for d in decisions:
        if d.node not in lanes or not t0 <= d.t <= t1:
            continue
        prev_t, level = last.get(d.node, (-math.inf, -1))
        level = level + 1 if d.t - prev_t < close_s else 0
        last[d.node] = (d.t, level)
        y = lanes[d.node] + ROLE_Y + ROLE_H / 2
        ax.plot([d.t], [y], marker="v", color="black", ms=3)
        ax.text(
            d.t,
            y + 0.03 + 0.1 * level,
            d.reason,
            fontsize=5,
            rotation=30,
            rotation_mode="anchor",
            clip_on=True,
        )


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes (Agg)."""
    buffer = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


# ---------------------------------------------------------------- files


@dataclass(frozen=True, slots=True)
class ReportFiles:
    summary_json: Path
    junit_xml: Path
    report_html: Path


def write_report(
    history: str | os.PathLike[str] | Iterable[Event],
    check_report: CheckReport | None,
    out_dir: str | os.PathLike[str],
    *,
    show_decisions: bool = False,
) -> ReportFiles:
    """Write summary.json, junit.xml and report.html for one run into `out_dir`.

    Args:
        history: the history file (read in one streaming pass), or its events.
        check_report: the checks' results; None runs the checks the history names.
        out_dir: created if missing.
        show_decisions: mark engine decisions on the timeline.
    """
    events = iter_history(history) if isinstance(history, str | os.PathLike) else history
    facts, extra = _collect(events, keep_decisions=show_decisions)
    report = check_report if check_report is not None else run_checks(facts)
    name = os.fspath(history) if isinstance(history, str | os.PathLike) else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(out / "summary.json", out / "junit.xml", out / "report.html")
    document = summary_document(facts, report, history_name=name)
    files.summary_json.write_text(json.dumps(document, sort_keys=True, indent=2) + "\n")
    files.junit_xml.write_bytes(junit_xml(facts, report))
    fig = _draw(facts, extra, t_range=None)
    files.report_html.write_text(report_html(facts, report, figure_png(fig)), encoding="utf-8")
    return files


def summary_document(
    facts: RunFacts, report: CheckReport, *, history_name: str | None = None
) -> dict[str, Any]:
    """What summary.json holds: verdict, run, per-check results, summary metrics."""
    return summary_of(facts.run, report, history_name=history_name)


def junit_xml(facts: RunFacts, report: CheckReport) -> bytes:
    """One testsuite, one testcase per check, a failure element listing the violations."""
    return junit_xml_of(facts.run, report)
