"""Failover episodes of real simulated runs, every time cross-checked against the raw events and
against the checkers' own failover times (summary.json)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from pgha.analysis import STEADY_REASONS, episodes, load_history
from pgha.history import Event, read_history
from tests.analysis.runs import Run

TTL_S = 30.0  # primary-crash and primary-partition


def _first(events: list[Event], t_from: float, **want: Any) -> Event:
    """The first event at or after t_from whose kind / node / fields are `want`."""
    for e in events:
        if e.t < t_from:
            continue
        seen = {"kind": e.kind, "node": e.node, **e.fields}
        if all(seen.get(key) == value for key, value in want.items()):
            return e
    raise AssertionError(f"no event {want} after t={t_from}")


def _check_steps(episode: pd.Series, events: list[Event]) -> None:
    """Each step's time is the raw event it stands for, and the steps come in order."""
    t0, old, new = episode.t_fault, episode.old_primary, episode.new_primary
    first_ok = _first(events, t0, kind="ok", served_by=new)
    assert episode.t_first_ok == first_ok.t
    others_ok = [e for e in events if e.kind == "ok" and t0 <= e.t < first_ok.t]
    assert all(e.get("served_by") == old for e in others_ok)  # nobody else wrote before
    assert episode.t_promoted == _first(events, t0, kind="pg_role", node=new, role="primary").t
    assert episode.t_lock_acquired == _first(events, t0, kind="lock", node=new, event="acquired").t
    detect = _first(events, t0, kind="decision", node=episode.detect_node)
    reactions = [
        e
        for e in events
        if e.kind == "decision" and t0 <= e.t and e.node != old
        if e.get("reason") not in STEADY_REASONS
    ]
    assert reactions[0].t == episode.t_detect
    assert (reactions[0].node, reactions[0].get("reason")) == (
        episode.detect_node,
        episode.detect_reason,
    )
    assert detect.t <= episode.t_detect
    assert t0 <= episode.t_detect <= episode.t_lock_acquired
    assert episode.t_lock_acquired <= episode.t_promoted <= episode.t_first_ok
    for step in ("detect", "lock_acquired", "promoted"):
        assert episode[f"{step}_s"] == pytest.approx(episode[f"t_{step}"] - t0, abs=1e-9)
    assert episode.failover_s == pytest.approx(episode.t_first_ok - t0, abs=1e-9)


def _checkers(run: Run) -> dict[str, Any]:
    (failover,) = run.summary["failovers"]
    return dict(failover)


def test_primary_crash(crash_run: Run) -> None:
    events = read_history(crash_run.history)
    (episode,) = (row for _, row in episodes(crash_run.history).iterrows())
    checkers = _checkers(crash_run)
    fault = _first(events, 0.0, kind="fault", phase="start")
    assert (episode.fault_id, episode.fault, episode.label) == (1, "kill", fault.get("label"))
    assert episode.t_fault == episode.t_request == fault.t == 60.0
    assert episode.old_primary == fault.get("targets")[0] == checkers["old_primaries"][0]
    assert (episode.new_primary, episode.outcome) == (checkers["new_primary"], "failover")
    assert episode.failover_s == pytest.approx(checkers["failover_s"], abs=1e-6)
    assert episode.t_first_ok == pytest.approx(checkers["t_first_ok"], abs=1e-6)
    expired = _first(events, 60.0, kind="lock", node=episode.old_primary, event="expired")
    assert episode.t_lock_expired == expired.t
    assert 0 < episode.lock_expired_s <= TTL_S  # the lease ran out within one ttl of the crash
    assert math.isnan(episode.t_lock_released)
    assert episode.t_lock_expired <= episode.t_detect  # survivors react once the lock is gone
    _check_steps(episode, events)


def test_primary_partition(partition_run: Run) -> None:
    events = read_history(partition_run.history)
    (episode,) = (row for _, row in episodes(partition_run.history).iterrows())
    checkers = _checkers(partition_run)
    assert (episode.fault, episode.label, episode.old_primary) == ("partition", "cut n1", "n1")
    assert episode.new_primary == checkers["new_primary"] != "n1"
    assert episode.failover_s == pytest.approx(checkers["failover_s"], abs=1e-6)
    expired = _first(events, 60.0, kind="lock", node="n1", event="expired")
    assert episode.t_lock_expired == expired.t
    # the cut-off primary's own reaction (it demotes) is not the survivors' detection
    demote = _first(events, 60.0, kind="decision", node="n1", reason="dcs_unreachable_demote")
    assert demote.t < episode.t_detect
    assert episode.detect_node != "n1"
    _check_steps(episode, events)


def test_switchovers_are_episodes_though_not_checker_failovers(switchover_run: Run) -> None:
    events = read_history(switchover_run.history)
    assert switchover_run.summary["failovers"] == []
    found = episodes(switchover_run.history)
    assert list(found.fault) == ["switchover", "switchover"]
    assert list(found.old_primary) == ["n3", "n2"]  # the primary when each was requested
    assert list(found.new_primary) == ["n2", "n1"]  # the candidates
    assert list(found.t_request) == [60.0, 120.0]
    assert list(found.t_fault) == [60.0, 150.0]  # the second one was scheduled for 150 s
    for _, episode in found.iterrows():
        released = _first(events, episode.t_fault, kind="lock", event="released")
        assert (released.node, released.t) == (episode.old_primary, episode.t_lock_released)
        assert math.isnan(episode.t_lock_expired)
        assert episode.outcome == "failover"
        assert 0 < episode.failover_s < 15
        _check_steps(episode, events)


def test_same_answer_from_path_events_and_frame(crash_run: Run) -> None:
    by_path = episodes(str(crash_run.history))
    pd.testing.assert_frame_equal(by_path, episodes(read_history(crash_run.history)))
    pd.testing.assert_frame_equal(by_path, episodes(load_history(crash_run.history)))


def test_no_fault_no_episode(crash_run: Run) -> None:
    before_fault = [e for e in read_history(crash_run.history) if e.t < 59.0]
    found = episodes(before_fault)
    assert found.empty
    assert {"t_fault", "t_detect", "failover_s", "new_primary"} <= set(found.columns)
