"""The agent's own decisions outside the HA loop, as tables: its shutdown, whether it may be
reinitialized, and which members its primary keeps slots for."""

from __future__ import annotations

import pytest

from pgha.engine.actions import Action, DisableWatchdog, ReleaseLock, StopPostgres, UpdateMember
from pgha.engine.operator import ReinitRefusal, reinit_source
from pgha.engine.shutdown import Stopping, shutdown_actions
from pgha.engine.slots import member_slots
from pgha.engine.values import ClusterView, LeaderKey, Member, MemberRole

STOP = StopPostgres(immediate=False)
LET_GO = (
    DisableWatchdog(),
    UpdateMember(role=MemberRole.REPLICA),
    ReleaseLock(version=None),
)


@pytest.mark.parametrize(
    ("paused", "holds_key", "stopped", "actions"),
    [
        # In pause nothing of PostgreSQL or the key is touched; the watchdog is disarmed.
        (True, True, None, (DisableWatchdog(),)),
        (True, False, None, (DisableWatchdog(),)),
        # First the stop, whoever holds the key.
        (False, True, None, (STOP,)),
        (False, False, None, (STOP,)),
        # Stopped: the holder disarms, publishes replica and releases; others only disarm.
        (False, True, True, LET_GO),
        (False, False, True, (DisableWatchdog(),)),
        # Not stopped: the key stays (it expires) and the watchdog stays armed.
        (False, True, False, ()),
        (False, False, False, ()),
    ],
)
def test_shutdown(
    paused: bool, holds_key: bool, stopped: bool | None, actions: tuple[Action, ...]
) -> None:
    stopping = Stopping(paused=paused, holds_leader_key=holds_key, postgres_stopped=stopped)
    assert shutdown_actions(stopping) == actions


VIEW = ClusterView(
    leader=LeaderKey(holder="n1", version=3),
    members=(Member(name="n1"), Member(name="n2"), Member(name="n3")),
)


@pytest.mark.parametrize(
    ("view", "holds_lock", "pg_is_primary", "answer"),
    [
        (VIEW, False, False, "n1"),  # a replica clones from the leader
        (VIEW, True, False, ReinitRefusal.IS_LEADER),  # promoting: holds the lock already
        (VIEW, False, True, ReinitRefusal.IS_LEADER),  # a running primary is never wiped
        (ClusterView(members=VIEW.members), False, False, ReinitRefusal.NO_LEADER),
        (None, False, False, ReinitRefusal.NO_LEADER),  # the cluster was never read
    ],
)
def test_reinit_source(
    view: ClusterView | None, holds_lock: bool, pg_is_primary: bool, answer: object
) -> None:
    got = reinit_source(view, holds_lock=holds_lock, pg_is_primary=pg_is_primary)
    assert got == answer


@pytest.mark.parametrize(
    ("view", "running", "holds_lock", "pg_is_primary", "members"),
    [
        (VIEW, True, True, True, ("n1", "n3")),  # every other member, not itself
        (VIEW, False, True, True, None),  # PostgreSQL down: nothing to reconcile
        (VIEW, True, False, True, None),  # a primary without the lock leaves slots alone
        (VIEW, True, True, False, None),  # promoting: not primary yet
        (None, True, True, True, None),  # no read of the cluster
        (ClusterView(members=(Member(name="n2"),)), True, True, True, ()),  # the last one: none
    ],
)
def test_member_slots(
    view: ClusterView | None,
    running: bool,
    holds_lock: bool,
    pg_is_primary: bool,
    members: tuple[str, ...] | None,
) -> None:
    got = member_slots(
        view, name="n2", running=running, holds_lock=holds_lock, pg_is_primary=pg_is_primary
    )
    assert got == members
