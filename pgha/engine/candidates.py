# Safety rule: a replica may race for the lock only if no other node is a better or live primary:
# not while any reachable PostgreSQL (the former leader included, kept from the last view that had a
# leader) reports it is a primary, not while a peer has more WAL, not beyond maximum_lag_on_failover
# of `/status`, not behind the cluster timeline, and only within the sync set (docs/patroni-rules.md
# §2.4; bug zoo 3, 6, 7, 8, 9, 15). A running primary without the lock may re-take it only if its
# timeline is not behind `/history` (bug zoo 3). The leader hands over (switchover, start timeout)
# only if some candidate passes the same checks (`failover_possible`).
"""Candidate health: is this node the healthiest, and is a failover possible at all."""

from __future__ import annotations

from collections.abc import Iterable

from pgha.engine.config import SyncMode, WatchdogMode
from pgha.engine.context import Ctx
from pgha.engine.decision import Reason
from pgha.engine.sync import (
    failover_votes_needed,
    quorum_votes_ok,
    sync_allows_race,
    sync_failover_candidates,
)
from pgha.engine.values import FailoverKey, Member, PeerStatus

_R = Reason


def probe_targets(ctx: Ctx) -> tuple[str, ...]:
    """Every known member but me: the current view, the former leader's view, failsafe entries."""
    names = {m.name for m in (*ctx.state.old_members, *ctx.view.members)}
    names.update(ctx.view.failsafe or ())
    names.discard(ctx.me)
    return tuple(sorted(names))


def _identity_refusal(ctx: Ctx) -> Reason | None:
    # Checks that do not depend on WAL positions (is_healthiest_node steps 1, 3, 5, 7, 8).
    backoff = ctx.state.promote_backoff_until_mono
    if backoff is not None and ctx.now < backoff:
        return _R.NOT_HEALTHIEST_BACKOFF
    if not ctx.local.tags.can_failover:
        return _R.NOT_HEALTHIEST_NOFAILOVER
    cfg = ctx.cfg
    if cfg.watchdog_mode is WatchdogMode.REQUIRED and not _watchdog_usable(ctx):
        return _R.NOT_HEALTHIEST_WATCHDOG
    failsafe = ctx.view.failsafe
    if cfg.failsafe_mode and failsafe and ctx.me not in failsafe:
        return _R.NOT_HEALTHIEST_NOT_IN_FAILSAFE
    if not sync_allows_race(me=ctx.me, cfg=cfg, cluster=ctx.view):
        return _R.NOT_HEALTHIEST_NOT_SYNC
    return None


def _watchdog_usable(ctx: Ctx) -> bool:
    return ctx.obs.watchdog_available and ctx.cfg.watchdog_slack_s >= 0


def _position_refusal(ctx: Ctx) -> Reason | None:
    # Lag against `/status` and check_timeline (is_healthiest_node lag and timeline rules).
    optime = ctx.view.status_optime_lsn
    if optime is not None and optime - ctx.pg.wal_lsn > ctx.cfg.maximum_lag_on_failover_b:
        return _R.NOT_HEALTHIEST_LAG
    timeline = ctx.pg.timeline
    if ctx.cfg.check_timeline and (timeline is None or timeline < ctx.view.timeline):
        return _R.NOT_HEALTHIEST_TIMELINE
    return None


def stale_primary_refusal(ctx: Ctx) -> Reason | None:
    """A running primary without the lock may race only if its timeline is not behind."""
    timeline = ctx.pg.timeline
    if timeline is None or timeline < ctx.view.timeline:
        return _R.NOT_HEALTHIEST_STALE_PRIMARY
    return None


def race_refusal(ctx: Ctx) -> Reason | None:
    """Reasons not to race that need no peer answers (None: go on and probe the peers).

    A manual failover naming me skips the lag and timeline checks (docs/patroni-rules.md §2.5).
    """
    refusal = _identity_refusal(ctx)
    if refusal is not None:
        return refusal
    failover = ctx.view.failover
    if failover is not None and failover.candidate == ctx.me:
        return None
    return _position_refusal(ctx)


def _peer_refusal(ctx: Ctx, peer: PeerStatus, my_priority: int) -> Reason | None:
    my_wal = ctx.pg.wal_lsn
    if not peer.in_recovery:
        return _R.NOT_HEALTHIEST_PRIMARY_ALIVE
    # A former sync leader ahead of me is ignored: an isolated old primary may still answer.
    sync_leader = ctx.cfg.sync_active_mode and peer.name == ctx.view.sync.leader
    if peer.wal_lsn > my_wal and not sync_leader:
        return _R.NOT_HEALTHIEST_PEER_AHEAD
    former = peer.name == ctx.state.former_leader
    if peer.wal_lsn == my_wal and peer.failover_priority > my_priority and not former:
        return _R.NOT_HEALTHIEST_PRIORITY
    return None


def peers_refusal(
    ctx: Ctx, peers: Iterable[PeerStatus], exclude: str | None = None
) -> Reason | None:
    """Compare with the peers' answers (`_is_healthiest_node`); None means I am the healthiest.

    In synchronous mode only the sync candidates are compared (docs/patroni-rules.md §2.4, step
    8): an async replica may hold WAL of commits still waiting for the sync standby, never
    acknowledged, and being behind it must not stop the one node allowed to take over (found by
    the soak: a switchover while the sync standby's PostgreSQL was frozen left no primary for good).
    """
    others = [p for p in peers if p.name not in (ctx.me, exclude)]
    if ctx.cfg.synchronous_mode is SyncMode.ON:
        others = [p for p in others if ctx.view.sync.may_promote(p.name)]
    for peer in (p for p in others if p.counts):
        refusal = _peer_refusal(ctx, peer, ctx.local.tags.failover_priority)
        if refusal is not None:
            return refusal
    sync = ctx.view.sync
    quorum = ctx.cfg.synchronous_mode is SyncMode.QUORUM and sync.leader is not None
    # Voters vote whatever their tags: nofailover members are voters too (Patroni 4.x).
    voters = [p for p in others if p.reachable and p.running]
    wal = ctx.pg.wal_lsn
    if quorum and not quorum_votes_ok(me=ctx.me, sync=sync, peers=voters, my_wal_lsn=wal):
        return _R.NOT_HEALTHIEST_QUORUM
    return None


def manual_failover_refusal(
    ctx: Ctx, failover: FailoverKey, peers: tuple[PeerStatus, ...]
) -> Reason | None:
    """The leader is gone and `/failover` exists (`manual_failover_process_no_leader`)."""
    if failover.candidate == ctx.me:
        return None
    candidate = next((p for p in peers if p.name == failover.candidate), None)
    if candidate is not None and candidate.counts:
        return _R.NOT_HEALTHIEST_WAIT_CANDIDATE
    if ctx.me == ctx.state.former_leader:
        if failover_possible(ctx, peers, exclude=failover.candidate):
            return _R.NOT_HEALTHIEST_FORMER_LEADER
        return None
    return peers_refusal(ctx, peers, exclude=ctx.state.former_leader)


def _manual(ctx: Ctx) -> bool:
    failover = ctx.view.failover
    return failover is not None and not failover.is_switchover


def _candidate_members(ctx: Ctx, exclude: str | None) -> list[Member]:
    members = [m for m in ctx.view.members if m.name not in (ctx.me, exclude)]
    members = [m for m in members if m.tags.can_failover and m.api_url]
    failover = ctx.view.failover
    if failover is not None and failover.candidate and exclude is None:
        members = [m for m in members if m.name == failover.candidate]
    allowed = sync_failover_candidates(
        me=ctx.me, cfg=ctx.cfg, cluster=ctx.view, manual_failover=_manual(ctx)
    )
    return [m for m in members if allowed is None or m.name in allowed]


def _qualifies(ctx: Ctx, peer: PeerStatus) -> bool:
    if not peer.counts or ctx.pg.wal_lsn - peer.wal_lsn > ctx.cfg.maximum_lag_on_failover_b:
        return False
    timeline = ctx.pg.timeline or ctx.view.timeline
    return not ctx.cfg.check_timeline or (peer.timeline or 0) >= timeline


def failover_possible(ctx: Ctx, peers: Iterable[PeerStatus], *, exclude: str | None = None) -> bool:
    """Leader side: would at least one other member pass the candidate checks?

    A graceful demotion releases the lock only after PostgreSQL stopped, so no minimum LSN is
    needed here (bug zoo 14 is avoided by that order, not by this check).

    Args:
        ctx: the leader's step.
        peers: the members' answers fetched this cycle.
        exclude: a member not to count (the named candidate, when it proved unhealthy).
    """
    names = {m.name for m in _candidate_members(ctx, exclude)}
    healthy = {p.name for p in peers if p.name in names and _qualifies(ctx, p)}
    # Quorum mode needs quorum + 1 healthy voters, so one of them can gather its votes.
    needed = failover_votes_needed(cfg=ctx.cfg, cluster=ctx.view, manual_failover=_manual(ctx))
    return len(healthy) >= needed
