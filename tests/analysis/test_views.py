"""Intervals agree with the checkers' summary.json; decisions and the timeline picture."""

from __future__ import annotations

import warnings

import pytest
from matplotlib.figure import Figure

from pgha.analysis import decisions, dual_writable, load_history, timeline, unavailability
from pgha.history import read_history
from pgha.report import figure_png
from tests.analysis.runs import Run


@pytest.mark.parametrize("name", ["crash_run", "partition_run", "split_brain_run"])
def test_unavailability_agrees_with_summary(name: str, request: pytest.FixtureRequest) -> None:
    run: Run = request.getfixturevalue(name)
    periods = unavailability(run.history)
    assert list(periods.columns) == ["start", "end", "duration_s"]
    assert len(periods) == run.summary["unavailable_periods"]
    assert periods.duration_s.sum() == pytest.approx(run.summary["unavailability_s"], abs=1e-5)
    longest = run.summary["longest_unavailability_s"]
    assert periods.duration_s.max() == pytest.approx(longest, abs=1e-6)
    assert (periods.end >= periods.start).all()
    assert periods.start.is_monotonic_increasing


def test_dual_writable_agrees_with_summary(split_brain_run: Run, crash_run: Run) -> None:
    windows = dual_writable(split_brain_run.history)
    assert list(windows.columns) == ["start", "end", "duration_s", "nodes"]
    total = split_brain_run.summary["dual_writable_s"]
    assert total > 10
    assert windows.duration_s.sum() == pytest.approx(total, abs=1e-5)
    assert all(len(nodes) >= 2 for nodes in windows.nodes)
    # cross-check against the raw events: both nodes of the first window turn writable by then
    first = windows.iloc[0]
    events = read_history(split_brain_run.history)
    writable = {
        e.node: e.get("writable") for e in events if e.kind == "writable" and e.t <= first.start
    }
    assert all(writable[node] is True for node in first.nodes)
    assert dual_writable(crash_run.history).empty
    assert crash_run.summary["dual_writable_s"] == 0


def test_decisions_table(crash_run: Run) -> None:
    events = read_history(crash_run.history)
    table = decisions(crash_run.history)
    assert list(table.columns) == [
        "t",
        "node",
        "role",
        "reason",
        "actions",
        "immediate",
        "changed",
    ]
    assert len(table) == sum(e.kind == "decision" for e in events)
    n2 = decisions(load_history(crash_run.history), node="n2", t_range=(80.0, 90.0))
    assert set(n2.node) == {"n2"}
    assert n2.t.between(80.0, 90.0).all()
    promote = n2[n2.reason == "promote"].iloc[0]
    assert "Promote" in promote.actions
    assert promote.changed
    follows = table[(table.node == "n1") & (table.t < 59) & (table.reason == "follow_leader")]
    assert len(follows) > 3
    assert follows.changed.iloc[0]  # the first follow_leader after cloning is a change ...
    assert not follows.changed.iloc[1:].any()  # ... the repeats are not


def _decision_markers(fig: Figure) -> int:
    (ax,) = fig.axes
    return sum(1 for line in ax.get_lines() if line.get_marker() == "v")


def test_timeline_zooms_and_marks_decisions(crash_run: Run) -> None:
    whole = timeline(crash_run.history)
    assert isinstance(whole, Figure)
    assert whole.axes[0].get_xlim() == (0.0, 300.0)
    assert _decision_markers(whole) == 0
    zoomed = timeline(crash_run.history, t_range=(55, 95), decisions=True)
    assert zoomed.axes[0].get_xlim() == (55.0, 95.0)
    changed = decisions(crash_run.history, t_range=(55, 95))
    assert _decision_markers(zoomed) == int(changed.changed.sum()) > 0  # only those in the zoom
    labels = {text.get_text() for text in zoomed.axes[0].texts}
    assert {"probe_peers", "promote", "race"} <= labels
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "constrained_layout not applied"
        png = figure_png(zoomed)
    assert png.startswith(b"\x89PNG")


def test_bad_time_range() -> None:
    with pytest.raises(ValueError, match="t_range: expected start < end"):
        timeline([], t_range=(10, 5))
    with pytest.raises(ValueError, match=r"t_range: expected \(start, end\)"):
        decisions([], t_range="soon")  # type: ignore[arg-type]
