# Safety rule: a node that does not hold the lock never stays writable (outside pause): a primary
# that sees another holder demotes at once (immediate-nolock, docs/patroni-rules.md §2.2), and one
# that finds no holder may re-take the lock only through the stale-primary guard (bug zoo 3). A
# replica follows the leader only along the leader's timeline history, rewinding or re-cloning when
# it has diverged (§2.11). With no holder it races for the lock only after the candidate checks,
# with the peers' answers of this very cycle (§2.3, §2.4), and a win is an atomic create, never an
# overwrite (bug zoo 4).
"""Rules for nodes that do not hold the lock: demote, follow, rejoin, race."""

from __future__ import annotations

from pgha.engine.actions import (
    AcquireLock,
    Action,
    DemoteMode,
    FetchPeerStatus,
    Follow,
    Reinit,
    Rewind,
    StartPostgres,
)
from pgha.engine.candidates import (
    manual_failover_refusal,
    peers_refusal,
    probe_targets,
    race_refusal,
    stale_primary_refusal,
)
from pgha.engine.context import Ctx
from pgha.engine.decision import Decision, Reason
from pgha.engine.moves import demote
from pgha.engine.rejoin import Rejoin, plan_rejoin
from pgha.engine.roles import Role
from pgha.engine.state import Pending
from pgha.engine.sync import demote_sync
from pgha.engine.values import PgRun


def _other_leader(ctx: Ctx) -> str | None:
    leader = ctx.view.leader
    return None if leader is None or leader.holder == ctx.me else leader.holder


def demote_without_lock(ctx: Ctx) -> Decision | None:
    """A primary that sees another holder demotes at once, keeping its hands off the lock."""
    if _other_leader(ctx) is None or not ctx.pg.is_primary:
        return None
    return demote(ctx, DemoteMode.IMMEDIATE_NOLOCK, Reason.NOT_LOCK_HOLDER_DEMOTE)


def _upstream(ctx: Ctx, leader: str) -> str | None:
    # replicatefrom: cascade from that member while it runs, else from the leader. A holder that
    # is no member (garbage written into the key) has nothing to stream from: keep the upstream I
    # have, so the writes the old primary acknowledged until it demotes still reach me.
    wanted = ctx.local.tags.replicatefrom
    member = ctx.view.member(wanted)
    if wanted and member is not None and member.running:
        return wanted
    return leader if ctx.view.member(leader) is not None else ctx.pg.following


def _rejoin(ctx: Ctx, leader: str) -> Rejoin:
    member = ctx.view.member(leader)
    cfg = ctx.cfg
    return plan_rejoin(
        local_timeline=ctx.pg.timeline,
        local_lsn=ctx.pg.wal_lsn,
        leader_timeline=member.timeline if member is not None else None,
        history=ctx.view.history,
        rewind_allowed=cfg.use_pg_rewind and ctx.pg.rewind_possible,
        rewind_failed=ctx.state.rewind_failed,
        reinit_on_diverged=cfg.remove_data_directory_on_diverged_timelines,
        reinit_on_rewind_failure=cfg.remove_data_directory_on_rewind_failure,
    )


def _diverged(ctx: Ctx, leader: str) -> Decision | None:
    plan = _rejoin(ctx, leader)
    if plan is Rejoin.REWIND:
        return ctx.end(Role.REWINDING, (Rewind(source=leader),), Reason.REWIND)
    if plan is Rejoin.REINIT:
        reinit = (Reinit(source=leader),)
        return ctx.end(Role.CLONING, reinit, Reason.REINIT, rewind_failed=False)
    if plan is Rejoin.BROKEN:
        return ctx.end(ctx.role, (), Reason.NEEDS_MANUAL_REINIT)
    return None


def replica_postgres_down(ctx: Ctx) -> Decision | None:
    """PostgreSQL is down and I do not lead: rejoin first if diverged, then start as a replica."""
    if ctx.pg.run is not PgRun.STOPPED:
        return None
    leader = _other_leader(ctx)
    if leader is not None:
        rejoin = _diverged(ctx, leader)
        if rejoin is not None:
            return rejoin
    upstream = None if leader is None else _upstream(ctx, leader)
    start = (StartPostgres(as_primary=False), Follow(leader=upstream))
    return ctx.end(Role.STARTING, start, Reason.START_REPLICA)


def follow_leader(ctx: Ctx) -> Decision | None:
    """Another node leads: rewind or reinit if diverged, else stream from it (or its cascade)."""
    leader = _other_leader(ctx)
    if leader is None:
        return None
    rejoin = _diverged(ctx, leader) if ctx.pg.run is PgRun.RUNNING else None
    if rejoin is not None:
        return rejoin
    upstream = _upstream(ctx, leader)
    actions: tuple[Action, ...] = demote_sync(cfg=ctx.cfg, pg=ctx.pg)
    if ctx.pg.following != upstream:
        actions = (*actions, Follow(leader=upstream))
    role = Role.REPLICA if ctx.pg.run is PgRun.RUNNING else ctx.role
    return ctx.end(role, actions, Reason.FOLLOW_LEADER)


def replica_starting(ctx: Ctx) -> Decision | None:
    """A replica still starting up: its WAL position is not known yet, so it does not race."""
    if ctx.pg.run is not PgRun.STARTING or not ctx.pg.in_recovery:
        return None
    return ctx.end(ctx.role, (), Reason.START_REPLICA)


def failsafe_cached_leader(ctx: Ctx) -> Decision | None:
    """No leader in the DCS, but a primary's failsafe POST reached me within ttl: no race."""
    beat = ctx.obs.failsafe_heartbeat
    if beat is None or beat.leader == ctx.me or ctx.now - beat.received_mono >= ctx.cfg.ttl_s:
        return None
    if ctx.pg.is_primary:
        return demote(ctx, DemoteMode.IMMEDIATE_NOLOCK, Reason.NOT_LOCK_HOLDER_DEMOTE)
    follow = () if ctx.pg.following == beat.leader else (Follow(leader=beat.leader),)
    return ctx.end(ctx.role, follow, Reason.FAILSAFE_LEADER_CACHED)


def race_lost(ctx: Ctx) -> Decision | None:
    """The atomic create of the leader key failed (a won race is a proven holder's business)."""
    if ctx.state.memo.acquire is None:
        return None
    return _stand_down(ctx, Reason.LOST_RACE)


def _stand_down(ctx: Ctx, reason: Reason) -> Decision:
    # Not (or no longer) entitled to lead with no leader around: a primary demotes.
    if ctx.pg.is_primary:
        return demote(ctx, DemoteMode.IMMEDIATE_NOLOCK, Reason.NOT_HEALTHIEST_DEMOTE)
    role = Role.REPLICA if ctx.role is Role.CANDIDATE else ctx.role
    follow = () if ctx.pg.following is None else (Follow(leader=None),)
    return ctx.end(role, follow, reason)


def not_healthiest(ctx: Ctx) -> Decision | None:
    """Checks that need no peer answers; a running primary faces only the stale-primary guard."""
    refusal = stale_primary_refusal(ctx) if ctx.pg.is_primary else race_refusal(ctx)
    return None if refusal is None else _stand_down(ctx, refusal)


def probe_peers(ctx: Ctx) -> Decision | None:
    """Ask every known member for its status before racing (a running primary need not)."""
    if ctx.pg.is_primary or ctx.state.memo.peers is not None:
        return None
    fetch = (FetchPeerStatus(members=probe_targets(ctx)),)
    return ctx.step(ctx.role, fetch, Reason.PROBE_PEERS, Pending.PEERS)


def peers_say_not_healthiest(ctx: Ctx) -> Decision | None:
    """Compare with this cycle's peer answers (a manual failover has its own rules)."""
    peers = ctx.state.memo.peers
    if peers is None:
        return None
    failover = ctx.view.failover
    if failover is not None:
        refusal = manual_failover_refusal(ctx, failover, peers)
    else:
        refusal = peers_refusal(ctx, peers)
    return None if refusal is None else _stand_down(ctx, refusal)


def acquire_lock(ctx: Ctx) -> Decision:
    """Healthiest: race by atomic create. Always matches: the last rule."""
    race = (AcquireLock(not_after_mono=ctx.now + ctx.cfg.retry_timeout_s),)
    return ctx.step(Role.CANDIDATE, race, Reason.RACE, Pending.ACQUIRE)
