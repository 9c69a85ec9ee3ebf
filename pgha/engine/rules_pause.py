# Safety rule: in pause (maintenance) mode the agent changes nothing about PostgreSQL on its own: no
# failover, no demotion of a parallel primary, and no watchdog (docs/patroni-rules.md feature 7,
# §2.1 row 1). It still renews the lock while its PostgreSQL is the primary, gives the lock back
# when it is not, takes a free lock for a running primary of this cluster, and honours an explicit
# manual failover.
"""The pause-mode rule."""

from __future__ import annotations

from pgha.engine.actions import (
    AcquireLock,
    Action,
    Callback,
    DisableWatchdog,
    Promote,
    ReleaseLock,
    RunCallback,
    WriteStatus,
)
from pgha.engine.context import Ctx
from pgha.engine.decision import Decision, Reason
from pgha.engine.roles import Role
from pgha.engine.state import Pending
from pgha.engine.values import PgRun


def _promote(ctx: Ctx, off: tuple[Action, ...]) -> Decision:
    callback = RunCallback(event=Callback.ON_ROLE_CHANGE, role=Role.PRIMARY.value)
    actions = (*off, Promote(not_after_mono=ctx.lock_deadline), callback)
    return ctx.end(Role.PROMOTING, actions, Reason.PROMOTE, watchdog_timeout_s=None)


def _i_am_candidate(ctx: Ctx) -> bool:
    failover = ctx.view.failover
    return failover is not None and failover.candidate == ctx.me


def _paused_holder(ctx: Ctx, off: tuple[Action, ...]) -> Decision:
    if ctx.pg.is_primary:
        keep = (*off, WriteStatus(optime_lsn=ctx.pg.wal_lsn))
        return ctx.end(ctx.role, keep, Reason.PAUSED_LEADER, watchdog_timeout_s=None)
    if _i_am_candidate(ctx) and ctx.pg.run is PgRun.RUNNING:
        return _promote(ctx, off)
    release = (*off, ReleaseLock(version=None))
    return ctx.end(
        ctx.role,
        release,
        Reason.PAUSED_RELEASE_LOCK,
        lock_deadline_mono=None,
        watchdog_timeout_s=None,
    )


def _may_take_free_lock(ctx: Ctx) -> bool:
    init = ctx.view.initialize
    own_primary = ctx.pg.is_primary and init in (None, ctx.pg.sysid)
    return own_primary or (_i_am_candidate(ctx) and ctx.pg.run is PgRun.RUNNING)


def paused(ctx: Ctx) -> Decision | None:
    """Maintenance mode: observe, keep or return the lock, act only on an explicit failover."""
    if not ctx.cfg.pause:
        return None
    off: tuple[Action, ...] = (DisableWatchdog(),) if ctx.state.watchdog_timeout_s else ()
    if ctx.renewed:
        return _paused_holder(ctx, off)
    if ctx.view.leader is None and ctx.state.memo.acquire is None and _may_take_free_lock(ctx):
        take = (AcquireLock(not_after_mono=ctx.now + ctx.cfg.retry_timeout_s),)
        return ctx.step(Role.CANDIDATE, take, Reason.PAUSED_TAKE_LOCK, Pending.ACQUIRE)
    return ctx.end(_settled(ctx), off, Reason.PAUSED, watchdog_timeout_s=None)


def _settled(ctx: Ctx) -> Role:
    # A candidate that did not get the lock in pause goes back to what PostgreSQL is.
    if ctx.role is not Role.CANDIDATE:
        return ctx.role
    return Role.STARTING if ctx.pg.is_primary else Role.REPLICA
