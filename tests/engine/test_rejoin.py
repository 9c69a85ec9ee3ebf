"""Rejoin of an old primary or diverged replica: follow, rewind or reinit
(docs/patroni-rules.md §2.11)."""

from __future__ import annotations

import pytest

from pgha.engine.rejoin import Rejoin, needs_rewind, plan_rejoin
from pgha.engine.values import HistoryEntry

HISTORY = (HistoryEntry(timeline=1, switch_lsn=5000), HistoryEntry(timeline=2, switch_lsn=9000))


@pytest.mark.parametrize(
    ("local_tl", "local_lsn", "leader_tl", "expected"),
    [
        (3, 9999, 3, False),  # same timeline: a prefix
        (4, 100, 3, True),  # ahead of the leader's timeline: never on its path
        (1, 5000, 3, False),  # stopped exactly at the switch point
        (1, 4000, 3, False),  # behind the switch point: can stream the rest
        (1, 5001, 3, True),  # wrote past the switch point: diverged (old primary)
        (2, 9001, 3, True),
        (2, 8000, 3, False),
        (0, 10, 3, None),  # no history line for that timeline (yet): unknown
    ],
)
def test_rewind_needed_iff_local_wal_is_not_a_prefix(
    local_tl: int, local_lsn: int, leader_tl: int, expected: bool | None
) -> None:
    got = needs_rewind(
        local_timeline=local_tl, local_lsn=local_lsn, leader_timeline=leader_tl, history=HISTORY
    )
    assert got is expected


@pytest.mark.parametrize(
    ("local_tl", "leader_tl", "allowed", "failed", "on_diverged", "on_failure", "expected"),
    [
        (None, 3, True, False, False, False, Rejoin.UNKNOWN),
        (1, None, True, False, False, False, Rejoin.UNKNOWN),
        (3, 3, True, False, False, False, Rejoin.FOLLOW),
        (4, 3, True, False, False, False, Rejoin.REWIND),
        (4, 3, False, False, True, False, Rejoin.REINIT),
        (4, 3, False, False, False, False, Rejoin.BROKEN),
        (4, 3, True, True, False, True, Rejoin.REINIT),
        (4, 3, True, True, True, False, Rejoin.BROKEN),
        (3, 5, True, False, False, False, Rejoin.UNKNOWN),  # /history lags the promotion
    ],
)
def test_plan_rejoin_prefers_rewind_then_reinit_when_allowed(
    local_tl: int | None,
    leader_tl: int | None,
    allowed: bool,
    failed: bool,
    on_diverged: bool,
    on_failure: bool,
    expected: Rejoin,
) -> None:
    got = plan_rejoin(
        local_timeline=local_tl,
        local_lsn=1,
        leader_timeline=leader_tl,
        history=HISTORY,
        rewind_allowed=allowed,
        rewind_failed=failed,
        reinit_on_diverged=on_diverged,
        reinit_on_rewind_failure=on_failure,
    )
    assert got is expected
