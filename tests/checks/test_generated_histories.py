"""Hypothesis: histories of correct runs pass every check; one stale acknowledgement, one lost
id or one duplicated line in them never goes unnoticed (issue 12, deliverable 4)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import assume, event, given
from hypothesis import strategies as st

from pgha.checks import (
    LOST_WRITES,
    SPLIT_BRAIN,
    CheckReport,
    HistoryIntegrityError,
    collect_facts,
    interleave,
    reigns,
    run_checks,
)
from pgha.history import HistoryError, iter_history
from pgha.scenario import ChecksSpec
from tests.checks.strategies import Story, correct_histories

ALL_CHECKS = ChecksSpec(
    no_split_brain=True,
    no_lost_acknowledged_writes=True,
    max_lost_writes=None,
    failover_within_s=None,
    eventually_healthy_s=None,
)


def check(lines: list[dict[str, Any]], spec: ChecksSpec | None = None) -> CheckReport:
    texts = [json.dumps(line, separators=(",", ":")) for line in lines]
    return run_checks(iter_history(texts), spec or ChecksSpec(), source="gen")


def _has_slow_ack(story: Story) -> bool:
    return any(a.t_ok > b.t_promote for a in story.acks for b in story.reigns[a.reign + 1 :])


@given(correct_histories())
def test_a_correct_run_passes_every_check(story: Story) -> None:
    event(f"reigns: {len(story.reigns)}")
    event(f"honest slow ack: {_has_slow_ack(story)}")
    report = check(story.lines)
    assert report.ok, [v.detail for r in report.results for v in r.violations]
    assert [r.name for r in report.results] == [SPLIT_BRAIN, LOST_WRITES]
    s = report.summary
    assert s["writes_acknowledged"] == len(story.acks)
    assert s["lost_writes"] == 0
    assert s["stale_acks"] == 0
    assert s["split_brain_s"] == 0
    assert s["dual_primary_s"] == 0
    assert s["final_primary"] == story.reigns[-1].node
    split = report.result(SPLIT_BRAIN)
    assert split is not None
    keys = {(r["node"], r["timeline"]) for r in split.metrics["reigns"]}
    assert keys == {
        (story.reigns[a.reign].node, story.reigns[a.reign].timeline) for a in story.acks
    }


@given(correct_histories(), st.data())
def test_one_stale_ack_is_interleaved_reigns(story: Story, data: st.DataObject) -> None:
    """An ack by an earlier reign (its node, its timeline) for a write sent after a later reign's
    first ok. The earlier reign must have an ack that returned before the later reign's last write
    was sent (else the clients saw nothing out of order: see `interleave`)."""
    pairs = [
        (i, j)
        for j in range(len(story.reigns))
        for i in range(j)
        if story.reigns[i].node != story.reigns[j].node
        and story.reign_acks(j)
        and story.reign_acks(i)
        and min(a.t_ok for a in story.reign_acks(i)) < max(a.t_invoke for a in story.reign_acks(j))
    ]
    assume(pairs)
    i, j = data.draw(st.sampled_from(pairs))
    old, new = story.reigns[i], story.reigns[j]
    first_ok = min(a.t_ok for a in story.reign_acks(j))
    sent = first_ok + data.draw(st.integers(1, 3000)) / 1000
    returned = sent + data.draw(st.integers(1, 3000)) / 1000
    stale_id = 1 + max(line["id"] for line in story.lines if line["kind"] == "invoke")
    invoke = {"t": sent, "kind": "invoke", "node": "c9", "op": "write", "id": stale_id}
    ok = {
        "t": returned,
        "kind": "ok",
        "node": "c9",
        "op": "write",
        "id": stale_id,
        "served_by": old.node,
        "timeline": old.timeline,
    }
    lines = story.lines[:-1]  # run_end last, whatever the times
    lines = sorted([*lines, invoke, ok], key=lambda line: line["t"])  # stable
    end = max(line["t"] for line in lines)
    finals = [{**line, "t": end} for line in lines if line["kind"] == "final_read"]
    lines = [line for line in lines if line["kind"] != "final_read"] + finals
    lines.append({"t": end, "kind": "run_end"})
    report = check(lines, ChecksSpec(no_lost_acknowledged_writes=False))
    assert not report.ok
    split = report.result(SPLIT_BRAIN)
    assert split is not None
    ours = [
        v
        for v in split.violations
        if v.detail["reason"] == "interleaved_reigns"
        and v.detail["timelines"].get(old.node) == old.timeline
        and v.detail["timelines"].get(new.node) == new.timeline
    ]
    assert ours
    assert any(stale_id in v.detail["stale_first_ids"] for v in ours)
    assert all([r["node"] for r in v.detail["reigns"]] == [old.node, new.node] for v in ours)
    assert split.metrics["stale_acks"] >= 1


@given(correct_histories(), st.data())
def test_a_lost_acknowledged_write_is_found(story: Story, data: st.DataObject) -> None:
    assume(story.acks)
    victim = data.draw(st.sampled_from(story.acks))
    primary = story.reigns[-1].node
    lines = [
        {**line, "ids": [i for i in line["ids"] if i != victim.id]}
        if line["kind"] == "final_read" and line["node"] == primary
        else line
        for line in story.lines
    ]
    report = check(lines)
    assert report.result(SPLIT_BRAIN).ok  # type: ignore[union-attr]
    lost = report.result(LOST_WRITES)
    assert lost is not None
    assert not lost.ok
    reign = story.reigns[victim.reign]
    assert lost.metrics["lost_ids"] == [victim.id]
    assert [
        (r["node"], r["timeline"], r["lost_writes"]) for r in lost.metrics["lost_by_reign"]
    ] == [(reign.node, reign.timeline, 1)]
    assert check(lines, ChecksSpec(max_lost_writes=1)).ok


@given(correct_histories(), st.data())
def test_a_duplicated_write_event_is_a_located_error(story: Story, data: st.DataObject) -> None:
    candidates = [
        k for k, line in enumerate(story.lines) if line["kind"] in ("invoke", "ok", "fail", "info")
    ]
    assume(candidates)
    k = data.draw(st.sampled_from(candidates))
    lines = [*story.lines[: k + 1], story.lines[k], *story.lines[k + 1 :]]
    with pytest.raises(HistoryIntegrityError) as raised:
        check(lines)
    assert str(raised.value).startswith(f"gen:{k + 2}: ")


@given(correct_histories())
def test_reigns_of_a_correct_run_never_interleave(story: Story) -> None:
    found = reigns(collect_facts(iter_history(story.texts())).acks)
    for a in found:
        for b in found:
            assert not interleave(a, b)
    assert len(found) == len({(a.reign) for a in story.acks})


def test_an_error_is_a_history_error() -> None:
    assert issubclass(HistoryIntegrityError, HistoryError)
