# Safety rule: only a node that holds every acknowledged commit may be promoted
# (docs/patroni-rules.md features 8-12, §2.4, §2.12; bug zoo 8, 9, 10, 15). Mode on (FIRST n): only
# the `/sync` leader and standbys may promote; `/sync` names only standbys PostgreSQL confirms: it
# shrinks before ssn and grows only after ssn settled, to standbys in state sync that are in `/sync`
# already or reached the primary's LSN at the ssn change (bug zoo 10). Mode on writes
# `/sync={leader: me}` even with no candidate (bug zoo 8). Quorum mode: ssn = ANY k (S) on primary
# P, `/sync` = {leader P, voters V, quorum q}. A commit is acknowledged once P and k members of S
# flushed it. A candidate wins with q votes (voters not ahead of it, itself included if a voter): it
# is at least as far as each node of some q + 1 voters, a "quorum set". P holds every commit, so
# quorum sets come from V' = V - {P} and ack sets from S' = S - {P}. Invariant: every quorum set
# meets every ack set, that is |V'| - max(0, min(k, |S'|) - |S' - V'|) <= q ('*' or k = 0: |V'| <=
# q), checked for every write. Commits acknowledged under an older ssn are covered too: a `/sync`
# write must keep an old quorum set inside each new one (q_new >= q_old + |V_new - V_old|) or put in
# each new quorum set a standby that flushed past the primary's LSN at the last ssn change (once
# settled, 2 s).
"""Synchronous replication: `synchronous_standby_names` (ssn) and the `/sync` key."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pgha.engine.actions import Action, SetSyncStandbyNames, WriteSync
from pgha.engine.config import DynamicConfig, SyncMode
from pgha.engine.values import (
    ClusterView,
    PeerStatus,
    PostgresState,
    Standby,
    SyncKey,
    SyncStandbyNames,
    SyncState,
)

SYNC_SETTLE_S = 2.0  # after an ssn change, wait this long before `/sync` may grow
_EMPTY = SyncStandbyNames()
_STAR = SyncStandbyNames(star=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncPlan:
    """What the primary does about synchronous replication this cycle.

    `actions` run in order (the shell stops at the first failure, so a failed `/sync`
    compare-and-set aborts the rest); the two memo values are to be stored for the next cycle.
    """

    actions: tuple[Action, ...] = ()
    sync_changed_mono: float | None = None
    sync_flush_lsn: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class _Primary:
    """One plan_sync call. An unknown ssn change time is adopted as now (wait a full settle)."""

    me: str
    cfg: DynamicConfig
    cluster: ClusterView
    pg: PostgresState
    now_mono: float
    memo: tuple[float, int]  # when ssn last changed, and the primary's LSN then

    @property
    def changed_mono(self) -> float:
        return self.memo[0]

    @property
    def flush_lsn(self) -> int:
        return self.memo[1]

    @property
    def settled(self) -> bool:
        return self.now_mono - self.changed_mono >= SYNC_SETTLE_S

    def keep(self, actions: tuple[Action, ...]) -> SyncPlan:
        """A plan that did not change ssn: the memo stays."""
        return SyncPlan(
            actions=actions, sync_changed_mono=self.memo[0], sync_flush_lsn=self.memo[1]
        )

    def changed(self, actions: tuple[Action, ...]) -> SyncPlan:
        """A plan that changes ssn: forget the memo, so the next cycle records it.

        The LSN that new standbys must reach is read on the first observation *after* the
        reload: a commit acknowledged between this observation and the reload is then covered.
        """
        return SyncPlan(actions=actions, sync_changed_mono=None, sync_flush_lsn=0)

    def write_sync(self, standbys: frozenset[str], quorum: int = 0) -> WriteSync:
        """Compare-and-set `/sync` on the version of the snapshot this decision read."""
        version = self.cluster.sync.version
        return WriteSync(leader=self.me, standbys=standbys, quorum=quorum, version=version)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Quorum:
    """Quorum mode: the current state, the target, and the standbys caught up since the change."""

    leader: str
    voters: frozenset[str]
    quorum: int
    version: int | None
    prior: bool  # `/sync` had a leader: its quorum sets already protected earlier commits
    ssn: SyncStandbyNames
    active: frozenset[str]
    target_ssn: SyncStandbyNames
    target_quorum: int
    caught_up: frozenset[str]


def quorum_invariant_holds(
    *, leader: str, voters: frozenset[str], quorum: int, ssn: SyncStandbyNames
) -> bool:
    """True when every quorum set of `/sync` meets every ack set of `ssn` (module comment).

    Args:
        leader: the primary, which holds every commit.
        voters: `/sync` standbys.
        quorum: `/sync` quorum.
        ssn: synchronous_standby_names on the primary (FIRST is treated as ANY: conservative).
    """
    others = voters - {leader}
    return len(others) - _acks_among(others, ssn, leader) <= quorum


def _acks_among(voters: frozenset[str], ssn: SyncStandbyNames, leader: str) -> int:
    # The fewest acknowledging standbys that must be voters: k minus the names outside the voters.
    if ssn.star:
        return 0
    names = ssn.names - {leader}
    return max(0, min(ssn.count, len(names)) - len(names - voters))


def plan_sync(
    *,
    me: str,
    cfg: DynamicConfig,
    cluster: ClusterView,
    pg: PostgresState,
    now_mono: float,
    sync_changed_mono: float | None,
    sync_flush_lsn: int,
    quorum_hold_until_mono: float | None,
) -> SyncPlan:
    """Primary, each cycle after a successful lock renewal: keep ssn and `/sync` in step.

    Args:
        me: this node (the lock holder).
        cfg: dynamic configuration.
        cluster: the view this cycle decided on (`/sync` writes CAS on its version).
        pg: this node's PostgreSQL (primary), with its ssn and pg_stat_replication rows.
        now_mono: local monotonic clock.
        sync_changed_mono: memo: when ssn was last changed (None: unknown, adopted as now).
        sync_flush_lsn: memo: the primary's LSN at that change.
        quorum_hold_until_mono: quorum mode makes no replication change before this time.
    """
    mode = cfg.synchronous_mode
    if mode is SyncMode.OFF:
        return _plan_off(cluster, pg)
    memo = (
        (now_mono, pg.wal_lsn) if sync_changed_mono is None else (sync_changed_mono, sync_flush_lsn)
    )
    p = _Primary(me=me, cfg=cfg, cluster=cluster, pg=pg, now_mono=now_mono, memo=memo)
    if cluster.sync.leader != me:  # explicit enable (bug zoo 8) or, in quorum mode, leader fix
        return p.keep((p.write_sync(frozenset()) if mode is SyncMode.ON else _leader_fix(p),))
    if mode is SyncMode.ON:
        return _plan_first(p)
    if quorum_hold_until_mono is not None and now_mono < quorum_hold_until_mono:
        return p.keep(())
    return _plan_quorum(p)


def _plan_off(cluster: ClusterView, pg: PostgresState) -> SyncPlan:
    # Removing: `/sync` (deactivate) before ssn. The memo is dropped: re-enabling starts afresh.
    actions: list[Action] = []
    if cluster.sync.leader is not None:
        actions.append(
            WriteSync(leader=None, standbys=frozenset(), quorum=0, version=cluster.sync.version)
        )
    if not pg.ssn.empty:
        actions.append(SetSyncStandbyNames(value=_EMPTY))
    return SyncPlan(actions=tuple(actions))


def _eligible(p: _Primary) -> tuple[Standby, ...]:
    """Streaming standbys that may be synchronous, best first.

    Known members, not nosync, within maximum_lag_on_syncnode; preferring names already in
    `/sync`, then members that can fail over, then more WAL, then the name.
    """
    members = {m.name: m for m in p.cluster.members}
    in_sync = p.cluster.sync.standbys
    max_lag_b = p.cfg.maximum_lag_on_syncnode_b
    rows: dict[str, tuple[tuple[bool, bool, int, str], Standby]] = {}
    for row in p.pg.standbys:
        member = members.get(row.name)
        if member is None or member.tags.nosync or row.name == p.me:
            continue
        if max_lag_b >= 0 and p.pg.wal_lsn - row.flush_lsn > max_lag_b:
            continue
        key = (row.name not in in_sync, not member.tags.can_failover, -row.flush_lsn, row.name)
        rows[row.name] = (key, row)
    return tuple(row for _, row in sorted(rows.values(), key=lambda kv: kv[0]))


def _same_ssn(a: SyncStandbyNames, b: SyncStandbyNames) -> bool:
    if a.star or b.star or a.empty or b.empty:
        return (a.star, a.empty) == (b.star, b.empty)
    return (a.count, a.names, a.quorum) == (b.count, b.names, b.quorum)


def _ssn(names: frozenset[str], count: int, *, quorum: bool, strict: bool) -> SyncStandbyNames:
    if names:
        return SyncStandbyNames(count=count, names=names, quorum=quorum)
    return _STAR if strict else _EMPTY


def _confirmed(p: _Primary, row: Standby) -> bool:
    # PostgreSQL waits for it, and it is in `/sync` already or reached the LSN of the ssn change.
    known = row.name in p.cluster.sync.standbys or row.flush_lsn >= p.flush_lsn
    return row.sync_state is SyncState.SYNC and known


def _plan_first(p: _Primary) -> SyncPlan:
    """Mode on: ssn = FIRST n (picked); `/sync` follows what PostgreSQL confirms (bug zoo 10)."""
    sync = p.cluster.sync
    picked = _eligible(p)[: p.cfg.synchronous_node_count]
    allow = frozenset(s.name for s in picked if _confirmed(p, s))
    names = frozenset(s.name for s in picked)
    want = _ssn(names, len(names), quorum=False, strict=p.cfg.synchronous_mode_strict)
    keep = sync.standbys & allow
    if not _same_ssn(want, p.pg.ssn):  # shrink `/sync` first, then ssn; grow on a later cycle
        shrink = () if keep == sync.standbys else (p.write_sync(keep),)
        return p.changed((*shrink, SetSyncStandbyNames(value=want)))
    new = allow if p.settled else keep
    return p.keep(() if new == sync.standbys else (p.write_sync(new),))


def _quorum_state(p: _Primary) -> _Quorum:
    active = frozenset(s.name for s in _eligible(p))
    numsync = min(p.cfg.synchronous_node_count, len(active))
    caught_up = frozenset(s.name for s in p.pg.standbys if s.flush_lsn >= p.flush_lsn)
    sync = p.cluster.sync
    return _Quorum(
        leader=p.me,
        voters=sync.standbys,
        quorum=sync.quorum,
        version=sync.version,
        prior=sync.leader is not None,
        ssn=p.pg.ssn,
        active=active,
        target_ssn=_ssn(active, numsync, quorum=True, strict=p.cfg.synchronous_mode_strict),
        target_quorum=len(active) - numsync,
        caught_up=caught_up if p.settled else frozenset(),
    )


def _min_quorum(st: _Quorum, voters: frozenset[str]) -> int:
    """The smallest safe quorum for a `/sync` write of `voters` (module comment).

    It must hold the invariant with the current ssn, and either keep every old quorum set inside
    every new one, or have a caught-up standby in every new quorum set.
    """
    others = voters - {st.leader}
    invariant = len(others) - _acks_among(others, st.ssn, st.leader)
    # Without an earlier `/sync`, nothing was protected before: only caught-up standbys count.
    nested = min(st.quorum + len(others - st.voters), len(others)) if st.prior else len(others)
    covered = len(others - st.caught_up)
    return max(0, invariant, min(nested, covered))


def _leader_fix(p: _Primary) -> WriteSync:
    # Quorum mode, first cycle as primary: record the pre-promote ssn as voters (even when held).
    st = _quorum_state(p)
    voters = frozenset() if st.ssn.star else st.ssn.names - {p.me}
    return p.write_sync(voters, _min_quorum(st, voters))


def _without_gone(st: _Quorum) -> SyncStandbyNames:
    # ssn without the names that stopped being active (same count, capped), or unchanged.
    kept = st.ssn.names & st.active
    if st.ssn.star or not kept:
        return st.ssn
    return SyncStandbyNames(count=min(st.ssn.count, len(kept)), names=kept, quorum=True)


def _quorum_step(st: _Quorum) -> Action | None:
    """One safe step toward the target, or None when there or when `/sync` must wait."""
    for ssn in (st.target_ssn, _without_gone(st)):
        if _same_ssn(ssn, st.ssn):
            continue
        if quorum_invariant_holds(leader=st.leader, voters=st.voters, quorum=st.quorum, ssn=ssn):
            return SetSyncStandbyNames(value=ssn)
    quorum = max(st.target_quorum, _min_quorum(st, st.active))
    if (st.active, quorum) == (st.voters, st.quorum):
        return None
    return WriteSync(leader=st.leader, standbys=st.active, quorum=quorum, version=st.version)


def _plan_quorum(p: _Primary) -> SyncPlan:
    """Quorum mode: at most one safe step per cycle (Patroni's QuorumStateResolver, 2.12)."""
    step = _quorum_step(_quorum_state(p))
    if isinstance(step, SetSyncStandbyNames):
        return p.changed((step,))
    if step is None or not p.settled:  # `/sync` changes wait for ssn to settle
        return p.keep(())
    return p.keep((step,))


def pre_promote_sync(*, me: str, cfg: DynamicConfig, cluster: ClusterView) -> tuple[Action, ...]:
    """Actions a node that just won the lock runs before Promote.

    Mode on: CAS `/sync = {leader: me}` (fences a concurrent old primary), then ssn '*' (strict) or
    empty. Quorum mode with an active `/sync`: ssn = ANY (|V| - q - 1) over V - me, one more when I
    was not a voter, so that every quorum set of the old `/sync` still meets every new ack set; the
    `/sync` leader is fixed by plan_sync on the next cycle.

    Args:
        me: this node.
        cfg: dynamic configuration.
        cluster: the view the race was decided on.
    """
    mode = cfg.synchronous_mode
    strict = cfg.synchronous_mode_strict
    if mode is SyncMode.OFF:
        return ()
    fallback = SetSyncStandbyNames(value=_STAR if strict else _EMPTY)
    sync = cluster.sync
    if mode is SyncMode.ON:
        write = WriteSync(leader=me, standbys=frozenset(), quorum=0, version=sync.version)
        return (write, fallback)
    if sync.leader is None:
        return (fallback,)
    names = sync.standbys - {me}
    count = len(sync.standbys) - sync.quorum - 1 + (0 if me in sync.standbys else 1)
    count = max(count, 1) if strict else count
    if count <= 0:
        return (fallback,)
    return (SetSyncStandbyNames(value=_ssn(names, count, quorum=True, strict=strict)),)


def demote_sync(*, cfg: DynamicConfig, pg: PostgresState) -> tuple[Action, ...]:
    """On demotion, clear ssn (any mode; `cfg` is unused but kept for a uniform call).

    Args:
        cfg: dynamic configuration.
        pg: this node's PostgreSQL.
    """
    del cfg
    return () if pg.ssn.empty else (SetSyncStandbyNames(value=_EMPTY),)


def sync_allows_race(*, me: str, cfg: DynamicConfig, cluster: ClusterView) -> bool:
    """May this node race for the lock as far as synchronous replication goes?

    Mode on with an active `/sync`: only its leader and standbys (bug zoo 7, 9). Quorum mode:
    anyone; the vote check (quorum_votes_ok) decides. Off or inactive: yes.

    Args:
        me: this node.
        cfg: dynamic configuration.
        cluster: the current view.
    """
    return cfg.synchronous_mode is not SyncMode.ON or cluster.sync.may_promote(me)


def quorum_votes_ok(
    *, me: str, sync: SyncKey, peers: Iterable[PeerStatus], my_wal_lsn: int
) -> bool:
    """Quorum mode: did I gather `sync.quorum` votes (docs/patroni-rules.md §2.4)?

    A reachable, running voter peer with 0 < wal_lsn <= mine is a vote; the count starts at -1
    when I am neither a voter nor the `/sync` leader. The `/sync` leader also passes when no peer
    is ahead of it.

    Args:
        me: this node.
        sync: the `/sync` key.
        peers: the peers' answers (each name counts once).
        my_wal_lsn: my WAL position.
    """
    votes = 0 if me in sync.standbys or me == sync.leader else -1
    ahead = False
    seen: set[str] = set()
    for peer in peers:
        if peer.name == me or peer.name in seen or not (peer.reachable and peer.running):
            continue
        seen.add(peer.name)
        if peer.wal_lsn > my_wal_lsn:
            ahead = True
        elif peer.wal_lsn > 0 and peer.name in sync.standbys:
            votes += 1
    return votes >= sync.quorum or (me == sync.leader and not ahead)


def sync_failover_candidates(
    *, me: str, cfg: DynamicConfig, cluster: ClusterView, manual_failover: bool
) -> frozenset[str] | None:
    """Leader side: who may take over as far as sync goes (None: no restriction).

    Mode on (even before `/sync` is written, bug zoo 8): the `/sync` standbys but me, unless a
    manual failover (no leader field) names an async node. Quorum mode: the voters but me, and
    none at all when fewer than quorum + 1 of them exist, since a winner needs `quorum` votes from
    other voters (bug zoo 15); `failover_votes_needed` gives the count that must qualify.

    Args:
        me: this node (the leader).
        cfg: dynamic configuration.
        cluster: the current view.
        manual_failover: a `/failover` key without a leader field.
    """
    if cfg.synchronous_mode is SyncMode.OFF or manual_failover:
        return None
    sync = cluster.sync
    names = sync.standbys - {me}
    if cfg.synchronous_mode is SyncMode.ON or len(names) > sync.quorum:
        return names
    return frozenset()


def failover_votes_needed(
    *, cfg: DynamicConfig, cluster: ClusterView, manual_failover: bool
) -> int:
    """How many of `sync_failover_candidates` must qualify for a failover to be possible.

    Quorum mode: quorum + 1 healthy voters, so that the most advanced of them gets `quorum` votes
    from the others (Patroni 4.0.5, bug zoo 15). Otherwise one.

    Args:
        cfg: dynamic configuration.
        cluster: the current view.
        manual_failover: a `/failover` key without a leader field.
    """
    if cfg.synchronous_mode is SyncMode.QUORUM and not manual_failover:
        return cluster.sync.quorum + 1
    return 1
