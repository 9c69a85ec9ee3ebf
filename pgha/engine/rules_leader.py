# Safety rule: only the lock holder may run a writable PostgreSQL, and it proves it holds the lock
# every cycle by a compare-and-set on the leader key *before* it does anything else
# (docs/patroni-rules.md §2.2). A failed CAS is not a DCS error: someone else owns the key, so a
# primary demotes at once without touching the lock (immediate-nolock; bug zoo 1, 12). Only after a
# successful renewal does the leader kick the watchdog, hand over for a switchover (if a candidate
# is healthy: §2.5, bug zoo 9, 14), restart a crashed PostgreSQL in place or fail over after
# primary_start_timeout (§2.7).
"""Rules for the node that holds (or is named as holding) the leader lock."""

from __future__ import annotations

from collections.abc import Callable

from pgha.engine.actions import (
    Action,
    ClearFailover,
    DemoteMode,
    DisableWatchdog,
    FetchPeerStatus,
    KickWatchdog,
    ReleaseLock,
    RenewLock,
    StartPostgres,
)
from pgha.engine.candidates import failover_possible, probe_targets
from pgha.engine.config import WatchdogMode
from pgha.engine.context import Ctx
from pgha.engine.decision import Decision, Reason
from pgha.engine.moves import demote, leader_steady, take_primary_role, watchdog_arm
from pgha.engine.roles import Role
from pgha.engine.state import Pending
from pgha.engine.values import FailoverKey, Failure, LockResult, PgRun


def renew_lock_first(ctx: Ctx) -> Decision | None:
    """The view names me: prove it with a compare-and-set before anything else this cycle.

    A key with my name but no lease is mine only while I still hold the lock (my own key,
    rewritten by hand): renewing puts my lease back. Otherwise it was never mine to take.
    """
    leader, memo = ctx.view.leader, ctx.state.memo
    if leader is None or not ctx.holder_is_me or memo.renew is not None or memo.acquire is not None:
        return None
    if not (leader.leased or ctx.holds_lock):
        return None
    renew = (RenewLock(version=leader.version),)
    return ctx.step(ctx.role, renew, Reason.RENEW_LOCK, Pending.RENEW)


def lock_renewal_failed(ctx: Ctx) -> Decision | None:
    """CAS failed: the key is someone else's. A primary demotes without touching the lock."""
    if ctx.state.memo.renew is not LockResult.CAS_FAILED:
        return None
    if ctx.pg.is_primary and not ctx.cfg.pause:
        return demote(ctx, DemoteMode.IMMEDIATE_NOLOCK, Reason.LOCK_CAS_FAILED_DEMOTE)
    return ctx.end(ctx.role, (), Reason.LOCK_CAS_FAILED)


def _peers_step(ctx: Ctx, reason: Reason) -> Decision:
    fetch = (FetchPeerStatus(members=probe_targets(ctx)),)
    return ctx.step(ctx.role, fetch, reason, Pending.PEERS)


def promote_failed(ctx: Ctx) -> Decision | None:
    """pre_promote (or the promotion) failed: give the lock back and stay out for ttl."""
    if ctx.obs.failure is not Failure.PROMOTE or not ctx.renewed or ctx.pg.is_primary:
        return None
    backoff = ctx.now + ctx.cfg.ttl_s
    release = (ReleaseLock(version=None),)
    return ctx.end(
        Role.REPLICA,
        release,
        Reason.PROMOTE_FAILED,
        lock_deadline_mono=None,
        promote_backoff_until_mono=backoff,
    )


def leader_watchdog_unusable(ctx: Ctx) -> Decision | None:
    """watchdog: required and it cannot be armed: a primary demotes, others release the lock."""
    if not ctx.renewed or ctx.cfg.watchdog_mode is not WatchdogMode.REQUIRED:
        return None
    if watchdog_arm(ctx) is not None and ctx.obs.failure is not Failure.WATCHDOG:
        return None
    if ctx.pg.is_primary:
        return demote(ctx, DemoteMode.IMMEDIATE, Reason.WATCHDOG_FAILED_DEMOTE)
    release = (ReleaseLock(version=None),)
    return ctx.end(ctx.role, release, Reason.WATCHDOG_UNAVAILABLE, lock_deadline_mono=None)


def _kick(ctx: Ctx) -> tuple[Action, ...]:
    if ctx.state.watchdog_timeout_s is None:
        return ()
    return (KickWatchdog(not_after_mono=ctx.lock_deadline),)


def _fail_over_if_possible(
    ctx: Ctx, reason: Reason, hand: Callable[[Ctx, Reason], Decision] | None = None
) -> Decision | None:
    # Hand over (demote immediate, or `hand`) only if some other member can take over.
    peers = ctx.state.memo.peers
    if peers is None:
        return _peers_step(ctx, reason)
    if not failover_possible(ctx, peers):
        return None
    return demote(ctx, DemoteMode.IMMEDIATE, reason) if hand is None else hand(ctx, reason)


def _release_down(ctx: Ctx, reason: Reason) -> Decision:
    # PostgreSQL is down: nothing to stop. Disable the watchdog, then give the lock back; the next
    # cycle starts PostgreSQL as a replica of whoever takes over (Patroni's post_recover).
    disable: tuple[Action, ...] = (DisableWatchdog(),) if ctx.state.watchdog_timeout_s else ()
    release = (ReleaseLock(version=None),)
    return ctx.end(
        ctx.role,
        (*disable, *release),
        reason,
        lock_deadline_mono=None,
        watchdog_timeout_s=None,
        failsafe_active=False,
        start_failed=False,
        start_began_mono=None,
    )


def leader_start_failed(ctx: Ctx) -> Decision | None:
    """My PostgreSQL failed to start and is still down: release the lock at once (post_recover)."""
    if not ctx.renewed or ctx.pg.run is not PgRun.STOPPED or not ctx.state.start_failed:
        return None
    return _release_down(ctx, Reason.START_FAILED_RELEASE)


def leader_postgres_down(ctx: Ctx) -> Decision | None:
    """My PostgreSQL is down while I hold the lock: restart it in place, or fail over.

    Failing over: at once with primary_start_timeout 0 (demote immediate, as Patroni), else once
    the timeout has passed since the first start attempt of this outage (release the lock).
    """
    if not ctx.renewed or ctx.pg.run is not PgRun.STOPPED:
        return None
    timeout = ctx.cfg.primary_start_timeout_s
    began = ctx.state.start_began_mono
    began = ctx.now if began is None else began
    if timeout == 0:
        handed = _fail_over_if_possible(ctx, Reason.CRASH_FAILOVER_DEMOTE)
    elif ctx.now - began >= timeout:
        handed = _fail_over_if_possible(ctx, Reason.START_TIMEOUT_DEMOTE, _release_down)
    else:
        handed = None
    if handed is not None:
        return handed
    start = StartPostgres(as_primary=True, not_after_mono=ctx.lock_deadline)
    return ctx.end(
        Role.STARTING,
        (*_kick(ctx), start),
        Reason.PRIMARY_RESTART_IN_PLACE,
        start_began_mono=began,
    )


def leader_postgres_starting(ctx: Ctx) -> Decision | None:
    """Still starting: after primary_start_timeout, fail over if someone can take over."""
    if not ctx.renewed or ctx.pg.run is not PgRun.STARTING:
        return None
    began = ctx.state.start_began_mono
    began = ctx.now if began is None else began
    if ctx.now - began >= ctx.cfg.primary_start_timeout_s:
        handed = _fail_over_if_possible(ctx, Reason.START_TIMEOUT_DEMOTE)
        if handed is not None:
            return handed
    return ctx.end(ctx.role, _kick(ctx), Reason.PRIMARY_STARTING, start_began_mono=began)


def _switchover_schedule(ctx: Ctx, failover: FailoverKey) -> Decision | None:
    # Scheduled: wait while more than loop_wait away; drop it when 1.5 loop_wait late.
    at = failover.scheduled_at_wall
    if at is None:
        return None
    ahead_s = at - ctx.obs.now_wall
    if ahead_s > ctx.cfg.loop_wait_s:
        return leader_steady(ctx, Reason.SWITCHOVER_SCHEDULED)
    if -ahead_s > 1.5 * ctx.cfg.loop_wait_s:
        clear = (ClearFailover(version=failover.version),)
        return leader_steady(ctx, Reason.SWITCHOVER_STALE, clear)
    if ahead_s > 0:
        return leader_steady(ctx, Reason.SWITCHOVER_SCHEDULED, wake_mono=ctx.now + ahead_s)
    return None


def leader_manual_failover(ctx: Ctx) -> Decision | None:
    """A switchover or failover key while I lead a running primary (docs/patroni-rules.md §2.5)."""
    failover = ctx.view.failover
    if failover is None or not ctx.renewed or not ctx.pg.is_primary:
        return None
    waiting = _switchover_schedule(ctx, failover)
    if waiting is not None:
        return waiting
    clear = (ClearFailover(version=failover.version),)
    if failover.leader not in (None, ctx.me) or failover.candidate == ctx.me:
        return leader_steady(ctx, Reason.SWITCHOVER_INVALID, clear)
    peers = ctx.state.memo.peers
    if peers is None:
        return _peers_step(ctx, Reason.SWITCHOVER_CHECK)
    if failover_possible(ctx, peers):
        return demote(ctx, DemoteMode.GRACEFUL, Reason.SWITCHOVER_DEMOTE)
    return leader_steady(ctx, Reason.SWITCHOVER_IMPOSSIBLE, clear)


def leader_enforce_primary(ctx: Ctx) -> Decision | None:
    """Proven holder: promote if needed (a won race clears `/failover`), else steady work."""
    if not ctx.renewed:
        return None
    failover = ctx.view.failover
    clear = () if failover is None else (ClearFailover(version=failover.version),)
    return take_primary_role(ctx, clear)
