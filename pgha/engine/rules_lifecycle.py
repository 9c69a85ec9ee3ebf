# Safety rule: a node acts on the cluster only with its own identity and a working DCS. A data
# directory from another cluster halts the agent (docs/patroni-rules.md, §2.1 row 9), but only a
# value that can be a system identifier names another cluster: garbage in `initialize` halts nobody,
# and the leader rewrites it (Patroni's sysid_valid). A leader key without a lease is no live
# leader's (agents always write it on a lease); once it has not changed for ttl on this node's own
# monotonic clock, it is deleted by a compare-and-set on its version, so a rewrite in between wins.
# When the DCS cannot be reached, a primary stops accepting writes (demote offline) unless failsafe
# mode proves, within this cycle, that every member listed in `/failsafe` still accepts it as the
# primary (§2.1 row E, §2.10; bug zoo 5). Bootstrap is a race on the atomic create of `initialize`
# (§2.13); a standalone server is taken over by writing its sysid only when no cluster exists yet
# (row 9).
"""Rules for identity, DCS outages, bootstrap and taking over a standalone server."""

from __future__ import annotations

from pgha.engine.actions import (
    AcquireInitialize,
    Bootstrap,
    CreateReplica,
    DeleteInitialize,
    DemoteMode,
    ExpireLeaderKey,
    Halt,
    KickWatchdog,
    PostFailsafe,
    ReleaseLock,
    WriteInitialize,
)
from pgha.engine.context import Ctx
from pgha.engine.decision import Decision, Reason
from pgha.engine.moves import demote
from pgha.engine.roles import Role
from pgha.engine.state import Pending
from pgha.engine.values import Failure, LockResult, PgRun, sysid_valid


def halt_on_foreign_sysid(ctx: Ctx) -> Decision | None:
    """My data belongs to another cluster: stop the agent rather than touch anything.

    Only a valid-looking identifier in `initialize` is another cluster's; garbage is not.
    """
    init, sysid = ctx.view.initialize, ctx.pg.sysid
    if not (ctx.pg.data_present and sysid_valid(init) and sysid and sysid != init):
        return None
    return ctx.end(ctx.role, (Halt(),), Reason.SYSID_MISMATCH)


def expire_unleased_leader(ctx: Ctx) -> Decision | None:
    """A leader key without a lease that nobody rewrote for ttl: delete it at its version.

    A holder that still proves its lock (its own key, overwritten by hand with its name) renews
    it instead, putting its lease back.
    """
    leader, seen = ctx.view.leader, ctx.state.unleased_leader
    if leader is None or seen is None or (ctx.holder_is_me and ctx.holds_lock):
        return None
    if ctx.now - seen.since_mono < ctx.cfg.ttl_s:
        return None
    expire = (ExpireLeaderKey(version=leader.version),)
    return ctx.end(ctx.role, expire, Reason.UNLEASED_LEADER_EXPIRED)


def _failsafe_peers(ctx: Ctx) -> tuple[str, ...] | None:
    listed = ctx.state.last_failsafe
    if not (ctx.cfg.failsafe_mode and listed and ctx.me in listed):
        return None
    return tuple(n for n in listed if n != ctx.me)


def _failsafe(ctx: Ctx, others: tuple[str, ...]) -> Decision:
    acks = ctx.state.memo.failsafe_acks
    if others and acks is None:
        post = (PostFailsafe(members=others),)
        return ctx.step(ctx.role, post, Reason.FAILSAFE_CHECK, Pending.FAILSAFE, reread_dcs=False)
    # Every replica treats us as the leader for ttl from when it received the POST (a member
    # alone needs no POST). A missing answer, or a proof that old, is no proof: demote.
    sent = ctx.state.memo.failsafe_sent_mono if others else ctx.now
    deadline = sent + ctx.cfg.ttl_s
    missing = acks is not None and not set(others) <= set(acks)
    if missing or deadline <= ctx.now:
        return demote(ctx, DemoteMode.OFFLINE, Reason.FAILSAFE_INCOMPLETE_DEMOTE)
    kick = (KickWatchdog(not_after_mono=deadline),) if ctx.state.watchdog_timeout_s else ()
    return ctx.end(
        ctx.role, kick, Reason.FAILSAFE_CONTINUE, lock_deadline_mono=deadline, failsafe_active=True
    )


def dcs_unreachable(ctx: Ctx) -> Decision | None:
    """The DCS failed within retry_timeout: a primary demotes offline unless failsafe holds."""
    if ctx.dcs_ok:
        return None
    if ctx.cfg.pause or not ctx.pg.is_primary:
        return ctx.end(ctx.role, (), Reason.DCS_UNREACHABLE)
    others = _failsafe_peers(ctx)
    if others is not None:
        return _failsafe(ctx, others)
    return demote(ctx, DemoteMode.OFFLINE, Reason.DCS_UNREACHABLE_DEMOTE)


def _clone_source(ctx: Ctx, leader: str) -> str:
    # A running clonefrom member other than the leader, else the leader (§2.13).
    sources = sorted(
        m.name
        for m in ctx.view.members
        if m.tags.clonefrom and m.running and m.name not in (leader, ctx.me)
    )
    return sources[0] if sources else leader


def _bootstrap_race(ctx: Ctx) -> Decision:
    won = ctx.state.memo.initialize
    if won is LockResult.OK:
        # initdb runs to completion; the next step at once claims `initialize` and the lock.
        boot = (Bootstrap(),)
        return ctx.step(Role.BOOTSTRAPPING, boot, Reason.BOOTSTRAP_WON, Pending.NONE)
    if won is None:
        race = (AcquireInitialize(),)
        return ctx.step(ctx.role, race, Reason.BOOTSTRAP_RACE, Pending.INITIALIZE)
    return ctx.end(ctx.role, (), Reason.WAITING_FOR_BOOTSTRAP)


def _failed_start(ctx: Ctx) -> Decision | None:
    failure = ctx.obs.failure
    if failure is Failure.BOOTSTRAP:
        return ctx.end(Role.UNINITIALIZED, (DeleteInitialize(),), Reason.BOOTSTRAP_FAILED)
    if failure is Failure.CREATE_REPLICA:
        return ctx.end(Role.UNINITIALIZED, (), Reason.CLONE_FAILED)
    return None


def no_data_directory(ctx: Ctx) -> Decision | None:
    """No data yet: release a lock I hold, clone from the leader, or race to bootstrap."""
    if ctx.pg.data_present:
        return None
    leader = ctx.view.leader
    if leader is not None and leader.holder == ctx.me:
        release = (ReleaseLock(version=leader.version),)
        return ctx.end(ctx.role, release, Reason.RELEASE_LOCK_NO_DATA, lock_deadline_mono=None)
    failed = _failed_start(ctx)
    if failed is not None or ctx.cfg.pause:
        return failed or ctx.end(ctx.role, (), Reason.PAUSED)
    if leader is not None:
        clone = (CreateReplica(source=_clone_source(ctx, leader.holder)),)
        return ctx.end(Role.CLONING, clone, Reason.CLONE)
    return _without_leader(ctx)


def _without_leader(ctx: Ctx) -> Decision:
    # Race to bootstrap a new cluster, or restore with a method that needs no leader, or wait.
    init = ctx.view.initialize
    racing = ctx.state.memo.initialize is not None  # the re-read view shows our "" claim
    if racing or (init is None and ctx.local.can_bootstrap and ctx.local.tags.can_failover):
        return _bootstrap_race(ctx)
    if init and ctx.local.replica_method_without_leader:
        return ctx.end(Role.CLONING, (CreateReplica(source=None),), Reason.CLONE)
    return ctx.end(ctx.role, (), Reason.WAITING_FOR_BOOTSTRAP)


def take_over_standalone(ctx: Ctx) -> Decision | None:
    """Data present and no cluster yet (or my own bootstrap): claim it with my sysid."""
    init, sysid = ctx.view.initialize, ctx.pg.sysid
    mine = init is None or (init == "" and ctx.role is Role.BOOTSTRAPPING)
    if not mine or sysid is None or ctx.view.leader is not None or ctx.cfg.pause:
        return None
    if ctx.pg.in_recovery or ctx.pg.run is PgRun.STOPPED:
        # A replica's data, or a server that is down: the operator starts the primary first.
        return ctx.end(ctx.role, (), Reason.START_PRIMARY_FIRST)
    claim = (WriteInitialize(sysid=sysid),)
    return ctx.step(ctx.role, claim, Reason.TAKE_OVER_STANDALONE, Pending.NONE)
