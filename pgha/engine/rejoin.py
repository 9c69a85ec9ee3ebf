# Safety rule: a node may stream from a leader only if its WAL is a prefix of the leader's history.
# An old primary (or a replica that received WAL the new leader never had) has diverged and must be
# rewound with pg_rewind, or wiped and cloned again, before it follows (docs/patroni-rules.md
# §2.11). The decision uses the leader's timeline and the cluster `/history` switch points, never
# wall time. Positions are "end of local WAL": for a stopped node, the end of its last record from
# pg_controldata.
"""Rejoin: follow, pg_rewind or reinit, decided from timelines and LSNs."""

from __future__ import annotations

import enum
from collections.abc import Sequence

from pgha.engine.values import HistoryEntry


class Rejoin(enum.Enum):
    """How a non-leader must get back in line with the leader."""

    FOLLOW = "follow"  # same history: just stream
    REWIND = "rewind"  # diverged: pg_rewind from the leader
    REINIT = "reinit"  # diverged and rewind impossible or failed: clone again
    BROKEN = "broken"  # diverged, no automatic remedy allowed: needs a manual reinit
    UNKNOWN = "unknown"  # timelines or switch point unknown: do not touch the data yet


def needs_rewind(
    *,
    local_timeline: int,
    local_lsn: int,
    leader_timeline: int,
    history: Sequence[HistoryEntry],
) -> bool | None:
    """Whether the local WAL is not a prefix of the leader's timeline history.

    Args:
        local_timeline: the timeline of the local data.
        local_lsn: the end of local WAL.
        leader_timeline: the leader's current timeline.
        history: the cluster `/history` (each line: `timeline` ended at `switch_lsn`).

    Returns:
        True or False; None when `/history` has no line for the local timeline yet (a new
        leader appends it one loop after its promotion): unknown, decide on a later cycle.
    """
    if local_timeline >= leader_timeline:
        # Same timeline: a prefix. A higher local timeline was never on the leader's path.
        return local_timeline > leader_timeline
    switch = next((h for h in history if h.timeline == local_timeline), None)
    if switch is None:
        return None
    return local_lsn > switch.switch_lsn


def plan_rejoin(
    *,
    local_timeline: int | None,
    local_lsn: int,
    leader_timeline: int | None,
    history: Sequence[HistoryEntry],
    rewind_allowed: bool,
    rewind_failed: bool,
    reinit_on_diverged: bool,
    reinit_on_rewind_failure: bool,
) -> Rejoin:
    """Choose how to rejoin the leader.

    Args:
        local_timeline: timeline of the local data (None: unknown).
        local_lsn: end of local WAL.
        leader_timeline: the leader's timeline as published in its member key (None: unknown).
        history: the cluster `/history`.
        rewind_allowed: use_pg_rewind is on and the data has checksums or wal_log_hints.
        rewind_failed: a previous pg_rewind attempt failed.
        reinit_on_diverged: remove_data_directory_on_diverged_timelines.
        reinit_on_rewind_failure: remove_data_directory_on_rewind_failure.
    """
    if local_timeline is None or leader_timeline is None:
        return Rejoin.UNKNOWN
    diverged = needs_rewind(
        local_timeline=local_timeline,
        local_lsn=local_lsn,
        leader_timeline=leader_timeline,
        history=history,
    )
    if diverged is None:
        return Rejoin.UNKNOWN
    if not diverged:
        return Rejoin.FOLLOW
    if rewind_failed:
        return Rejoin.REINIT if reinit_on_rewind_failure else Rejoin.BROKEN
    if rewind_allowed:
        return Rejoin.REWIND
    return Rejoin.REINIT if reinit_on_diverged else Rejoin.BROKEN
