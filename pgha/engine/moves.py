# Safety rule: the compound moves are ordered so that a failure part-way leaves the node safe.
# Taking the primary role arms the watchdog before promoting and fences `/sync` before the promotion
# (docs/patroni-rules.md §2.3, §2.9, §2.12); demotion stops PostgreSQL first and disables the
# watchdog at that safepoint, when no backend is left, then starts it again as a replica and
# releases the lock only after the stop (bug zoo 13, 14). The shell stops at the first failed
# action, so a failed `/sync` CAS postpones a promotion.
"""Compound moves shared by several rules: promote, demote, and the leader's steady work."""

from __future__ import annotations

from dataclasses import replace

from pgha.engine.actions import (
    Action,
    AppendHistory,
    ArmWatchdog,
    Callback,
    ClearFailover,
    Demote,
    DemoteMode,
    DisableWatchdog,
    KickWatchdog,
    Promote,
    ReleaseLock,
    RunCallback,
    StartPostgres,
    WriteConfig,
    WriteFailsafe,
    WriteInitialize,
    WriteStatus,
)
from pgha.engine.config import WatchdogMode
from pgha.engine.context import Ctx
from pgha.engine.decision import Decision, Reason
from pgha.engine.roles import Role
from pgha.engine.sync import demote_sync, plan_sync, pre_promote_sync
from pgha.engine.values import HistoryEntry

PROMOTE_RECHECK_S = 1.0  # after issuing a promotion, the next cycle starts this much later


def watchdog_arm(ctx: Ctx) -> tuple[Action, ...] | None:
    """Actions that (re)arm the watchdog; None when the watchdog is required but unusable."""
    cfg = ctx.cfg
    usable = ctx.obs.watchdog_available and cfg.watchdog_slack_s >= 0
    if cfg.watchdog_mode is WatchdogMode.OFF or not usable:
        return None if cfg.watchdog_mode is WatchdogMode.REQUIRED else ()
    if ctx.state.watchdog_timeout_s == cfg.watchdog_timeout_s:
        return ()
    return (ArmWatchdog(timeout_s=cfg.watchdog_timeout_s),)


def _armed_after(ctx: Ctx, arm: tuple[Action, ...]) -> float | None:
    return ctx.cfg.watchdog_timeout_s if arm else ctx.state.watchdog_timeout_s


def demote_actions(ctx: Ctx, mode: DemoteMode) -> tuple[Action, ...]:
    """Stop; disable the watchdog at that safepoint; start again as a replica; then the
    role-change callback, the release of the lock and clearing ssn.

    The disable comes right after the stop, before the start (Patroni disables it at the stop's
    safepoint): a stopped server needs no fencing, and a slow start (crash recovery after an
    immediate stop, on a loaded host) must not outlast the watchdog and reset a node that is
    already safe. It comes before the release too: if the release fails, the shell stops there,
    and the watchdog must not stay armed with nobody kicking it.
    """
    release: tuple[Action, ...] = ()
    if mode.releases_lock and ctx.view.leader is not None and ctx.holder_is_me:
        release = (ReleaseLock(version=ctx.view.leader.version),)
    disable: tuple[Action, ...] = (DisableWatchdog(),) if ctx.state.watchdog_timeout_s else ()
    callback = RunCallback(event=Callback.ON_ROLE_CHANGE, role=Role.REPLICA.value)
    sync = demote_sync(cfg=ctx.cfg, pg=ctx.pg)
    start = StartPostgres(as_primary=False)
    return (Demote(mode=mode), *disable, start, callback, *release, *sync)


def demote(ctx: Ctx, mode: DemoteMode, reason: Reason) -> Decision:
    """End the cycle demoting with `mode`: the lock proof and the watchdog are gone after it."""
    return ctx.end(
        Role.DEMOTING,
        demote_actions(ctx, mode),
        reason,
        lock_deadline_mono=None,
        watchdog_timeout_s=None,
        failsafe_active=False,
    )


def take_primary_role(ctx: Ctx, prefix: tuple[Action, ...] = ()) -> Decision:
    """Holding the lock: arm the watchdog, fence `/sync`, promote (`enforce_primary_role`)."""
    # A required watchdog that cannot arm was handled by `leader_watchdog_unusable` already.
    arm = watchdog_arm(ctx) or ()
    if ctx.pg.is_primary:
        return leader_steady(ctx, Reason.LEADER, prefix)
    callback = RunCallback(event=Callback.ON_ROLE_CHANGE, role=Role.PRIMARY.value)
    actions = (
        *prefix,
        *arm,
        *pre_promote_sync(me=ctx.me, cfg=ctx.cfg, cluster=ctx.view),
        Promote(not_after_mono=ctx.lock_deadline),
        callback,
    )
    decision = ctx.end(
        Role.PROMOTING,
        actions,
        Reason.PROMOTE,
        watchdog_timeout_s=_armed_after(ctx, arm),
        failsafe_active=False,
        quorum_hold_until_mono=ctx.now + ctx.cfg.loop_wait_s,
    )
    # Look again soon rather than a whole loop_wait later: the steady cycle after the promotion
    # appends `/history`, and until it does, the stale-primary guard of an old primary has no
    # newer timeline to compare with (bug zoo 3 names this window).
    recheck = min(decision.wake_at_mono, ctx.now + PROMOTE_RECHECK_S)
    return replace(decision, wake_at_mono=recheck)


def _bookkeeping(ctx: Ctx) -> tuple[Action, ...]:
    # /status, /failsafe, /history, /initialize and /config as the leader keeps them.
    view, pg = ctx.view, ctx.pg
    out: list[Action] = [WriteStatus(optime_lsn=pg.wal_lsn)]
    if ctx.cfg.failsafe_mode:
        out.append(WriteFailsafe(members=tuple(sorted({m.name for m in view.members} | {ctx.me}))))
    if pg.timeline is not None and pg.timeline > view.timeline:
        entry = HistoryEntry(
            timeline=pg.timeline - 1, switch_lsn=pg.timeline_start_lsn, new_leader=ctx.me
        )
        out.append(AppendHistory(entry=entry))
    if pg.sysid and view.initialize != pg.sysid:
        out.append(WriteInitialize(sysid=pg.sysid))
    if view.config_version is None:
        out.append(WriteConfig())
    return tuple(out)


def _repairs(ctx: Ctx) -> tuple[Action, ...]:
    # A `/failover` that is no valid request is deleted (last: a lost compare-and-set stops the
    # actions after it, and nothing else should wait for it).
    invalid = ctx.view.failover_invalid_version
    return () if invalid is None else (ClearFailover(version=invalid),)


def leader_steady(
    ctx: Ctx, reason: Reason, extra: tuple[Action, ...] = (), wake_mono: float | None = None
) -> Decision:
    """The renewed leader with a primary: kick the watchdog, keep the keys and sync state."""
    arm = watchdog_arm(ctx) or ()
    plan = plan_sync(
        me=ctx.me,
        cfg=ctx.cfg,
        cluster=ctx.view,
        pg=ctx.pg,
        now_mono=ctx.now,
        sync_changed_mono=ctx.state.sync_changed_mono,
        sync_flush_lsn=ctx.state.sync_flush_lsn,
        quorum_hold_until_mono=ctx.state.quorum_hold_until_mono,
    )
    kick: tuple[Action, ...] = ()
    if arm or ctx.state.watchdog_timeout_s is not None:
        kick = (KickWatchdog(not_after_mono=ctx.lock_deadline),)
    actions = (*arm, *kick, *_bookkeeping(ctx), *plan.actions, *extra, *_repairs(ctx))
    decision = ctx.end(
        Role.PRIMARY,
        actions,
        reason,
        watchdog_timeout_s=_armed_after(ctx, arm),
        sync_changed_mono=plan.sync_changed_mono,
        sync_flush_lsn=plan.sync_flush_lsn,
    )
    if wake_mono is None or wake_mono >= decision.wake_at_mono:
        return decision
    return replace(decision, wake_at_mono=max(wake_mono, ctx.now))
