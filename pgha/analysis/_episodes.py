# A failover episode, step by step, from the history alone: the fault, the first surviving node
# that reacts, the old lock expiring, the new primary taking the lock, promoting and acknowledging
# its first write. Which faults count and what the new primary and first write are is the
# checkers' answer (pgha.checks Failover); operator switchovers and failovers, which the checkers
# do not count as failovers, are measured the same way here.
"""`episodes`: one row per fault that hit a primary, with the times of each failover step."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pgha.analysis._frames import History, as_events
from pgha.checks import FaultRecord, RunFacts, collect_facts
from pgha.history import Event

OPERATOR_FAULT_KINDS = frozenset({"switchover", "failover"})
# Reasons a healthy cluster repeats every loop: a decision with one of these is not a reaction.
STEADY_REASONS = frozenset({"follow_leader", "leader", "renew_lock", "paused", "paused_leader"})

DURATION_STEPS = ("detect", "lock_expired", "lock_acquired", "promoted")
COLUMNS = (
    "fault_id",
    "fault",
    "label",
    "old_primary",
    "new_primary",
    "outcome",
    "t_request",
    "t_fault",
    "t_detect",
    "detect_node",
    "detect_reason",
    "t_lock_expired",
    "t_lock_released",
    "t_lock_acquired",
    "t_promoted",
    "t_first_ok",
    "detect_s",
    "lock_expired_s",
    "lock_acquired_s",
    "promoted_s",
    "failover_s",
)


@dataclass(frozen=True, slots=True)
class _Start:
    """What an episode starts from: the fault, when it took effect, what came of it."""

    fault: FaultRecord
    t_fault: float
    old: tuple[str, ...]
    outcome: str
    new_primary: str | None
    t_first_ok: float | None


def episodes(history: History) -> pd.DataFrame:
    """One row per fault that hit a primary, ordered by t_fault (NaN: the step did not happen).

    Rows: the checkers' failovers (faults of kinds kill, partition, pause, kill_agent,
    kill_postgres, etcd whose targets included the primary), plus every operator `switchover` /
    `failover` fault that was applied. Columns:

    - fault_id, fault (kind), label; old_primary (the primary when the fault started, comma-joined
      if several); new_primary; outcome: `failover` (another node acknowledged a write),
      `kept_serving` (the fault ended and the old primary acknowledged first) or `none`.
    - t_request: the fault event's time; t_fault: when it took effect (a scheduled switchover's
      `scheduled_at_s`, else t_request).
    - t_detect: the first engine decision at or after t_fault on a node other than the old
      primary whose reason is not one a healthy cluster repeats every loop (STEADY_REASONS:
      follow_leader, leader, renew_lock, paused, paused_leader), up to t_first_ok (or the end of
      the run); detect_node and detect_reason say whose and why. The old primary's own reactions
      (e.g. dcs_unreachable_demote) do not count: detection is by the survivors.
    - t_lock_expired / t_lock_released: the old primary's leader key expiring in etcd (lock event
      `expired`) / being released (`released`), within the same span; NaN when it did not.
    - t_lock_acquired: the new primary's lock `acquired` event; t_promoted: its PostgreSQL
      becoming primary (`pg_role` primary); t_first_ok: its first acknowledged write.
    - detect_s, lock_expired_s, lock_acquired_s, promoted_s, failover_s: those times minus
      t_fault (failover_s is the checkers' failover_s for their failovers).
    """
    events = as_events(history)
    return episodes_of(events, collect_facts(events, partial=True))


def episodes_of(events: Sequence[Event], facts: RunFacts) -> pd.DataFrame:
    """`episodes` of events whose facts were already collected."""
    index = _Index(events)
    starts = [*_checker_starts(facts), *_operator_starts(facts)]
    starts.sort(key=lambda s: (s.t_fault, s.fault.id))
    rows = [_row(start, index, facts.t_end) for start in starts]
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    floats = [c for c in COLUMNS if c.startswith("t_") or c.endswith("_s")]
    return frame.astype(dict.fromkeys(floats, "float64") | {"fault_id": "int64"})


def _checker_starts(facts: RunFacts) -> list[_Start]:
    records = {f.id: f for f in facts.faults}
    return [
        _Start(
            records[f.fault_id],
            f.t_fault,
            f.old_primaries,
            f.outcome,
            f.new_primary,
            f.t_first_ok,
        )
        for f in facts.failovers
    ]


def _operator_starts(facts: RunFacts) -> list[_Start]:
    starts = []
    for fault in facts.faults:
        if fault.kind not in OPERATOR_FAULT_KINDS or fault.skipped or fault.error:
            continue
        scheduled = fault.params.get("scheduled_at_s")
        t_fault = max(fault.t_start, float(scheduled)) if scheduled is not None else fault.t_start
        old = fault.primaries_at_start
        new, t_ok = _first_ack_elsewhere(facts, old, t_fault)
        outcome = "failover" if new is not None else "none"
        starts.append(_Start(fault, t_fault, old, outcome, new, t_ok))
    return starts


def _first_ack_elsewhere(
    facts: RunFacts, old: tuple[str, ...], t_from: float
) -> tuple[str | None, float | None]:
    acks = facts.acks
    for k in range(bisect_left(acks.t_ok, t_from), len(acks)):
        if acks.node(k) not in old:
            return acks.node(k), acks.t_ok[k]
    return None, None


class _Index:
    """The events an episode looks at (decision, lock, pg_role), by kind, in time order."""

    KINDS = ("decision", "lock", "pg_role")

    def __init__(self, events: Sequence[Event]) -> None:
        self._events: dict[str, list[Event]] = {kind: [] for kind in self.KINDS}
        for e in events:
            if e.kind in self._events:
                self._events[e.kind].append(e)
        self._times = {kind: [e.t for e in found] for kind, found in self._events.items()}

    def first(
        self, kind: str, t_from: float, t_to: float, match: Callable[[Event], bool]
    ) -> Event | None:
        """The first `kind` event with t_from <= t <= t_to for which `match` holds."""
        found = self._events[kind]
        for e in found[bisect_left(self._times[kind], t_from) :]:
            if e.t > t_to:
                return None
            if match(e):
                return e
        return None


def _row(start: _Start, index: _Index, t_end: float) -> dict[str, Any]:
    old, new, t0 = start.old, start.new_primary, start.t_fault
    t_to = start.t_first_ok if start.t_first_ok is not None else t_end
    first = index.first
    detect = first(
        "decision",
        t0,
        t_to,
        lambda e: e.node not in old and e.get("reason") not in STEADY_REASONS,
    )

    def lock(what: str, nodes: Sequence[str | None]) -> float | None:
        found = first("lock", t0, t_to, lambda e: e.get("event") == what and e.node in nodes)
        return None if found is None else found.t

    promoted = first("pg_role", t0, t_to, lambda e: e.node == new and e.get("role") == "primary")
    times = {
        "t_detect": None if detect is None else detect.t,
        "t_lock_expired": lock("expired", old),
        "t_lock_released": lock("released", old),
        "t_lock_acquired": lock("acquired", [new]) if new is not None else None,
        "t_promoted": None if promoted is None or new is None else promoted.t,
        "t_first_ok": start.t_first_ok,
    }
    durations = {f"{step}_s": _since(times[f"t_{step}"], t0) for step in DURATION_STEPS}
    return {
        "fault_id": start.fault.id,
        "fault": start.fault.kind,
        "label": start.fault.label,
        "old_primary": ",".join(old) or None,
        "new_primary": new,
        "outcome": start.outcome,
        "t_request": start.fault.t_start,
        "t_fault": t0,
        **times,
        "detect_node": None if detect is None else detect.node,
        "detect_reason": None if detect is None else detect.get("reason"),
        **durations,
        "failover_s": _since(times["t_first_ok"], t0),
    }


def _since(t: float | None, t0: float) -> float:
    return math.nan if t is None else t - t0
