"""failover_within: a crash of PostgreSQL recovered in place is no missing failover."""

from __future__ import annotations

from pgha.checks._faults import Faults
from pgha.history import Event


def _fault(kind: str, t: float, phase: str = "start") -> Event:
    fields = {"id": 1, "fault": kind, "phase": phase, "targets": ["n1"], "label": kind}
    return Event(t=t, kind="fault", node=None, fields=fields)


def test_a_postgres_crash_restarted_in_place_kept_serving() -> None:
    faults = Faults()
    faults.fault(_fault("kill_postgres", 60.0), ("n1",))
    faults.ack("n1", 62.5)  # the first ack after the crash: restarted as primary in place
    _, failovers = faults.finish()
    assert [(f.outcome, f.new_primary) for f in failovers] == [("kept_serving", None)]


def test_a_paused_primary_still_acking_is_not_kept_serving_until_the_pause_ends() -> None:
    faults = Faults()
    faults.fault(_fault("pause", 60.0), ("n1",))
    faults.ack("n1", 61.0)
    _, failovers = faults.finish()
    assert [f.outcome for f in failovers] == ["none"]


def test_a_postgres_crash_followed_by_a_failover() -> None:
    faults = Faults()
    faults.fault(_fault("kill_postgres", 60.0), ("n1",))
    faults.ack("n2", 75.0)
    _, failovers = faults.finish()
    assert [(f.outcome, f.new_primary, f.failover_s) for f in failovers] == [
        ("failover", "n2", 15.0)
    ]
