# Safety rule: the results of the previous step are folded into the state *before* any rule runs, so
# that every rule sees one consistent picture. The lock deadline is set only from a successful
# acquire or renewal (sent time + ttl) and cleared when the view names another holder, when a lock
# operation fails and when the deadline passes (docs/patroni-rules.md §2.0, bug zoo 1 and 2).
# Observed facts about PostgreSQL move the role along the transition table until nothing changes
# (h11's fixed point).
"""The per-step context rules read, and the helpers that build decisions from it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from pgha.engine.actions import Action, UpdateMember
from pgha.engine.config import DynamicConfig
from pgha.engine.decision import Decision, Reason
from pgha.engine.roles import Role, check_transition
from pgha.engine.state import CycleMemo, NodeState, Pending, UnleasedLeader
from pgha.engine.values import (
    ClusterView,
    Failure,
    LeaderKey,
    LocalConfig,
    LockResult,
    MemberRole,
    Observation,
    PgRun,
    PostgresState,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ctx:
    """One step: the absorbed state, the observation, local settings and the observed role."""

    state: NodeState
    obs: Observation
    local: LocalConfig
    role: Role
    view: ClusterView = field(default_factory=ClusterView)  # empty when the DCS read failed

    @property
    def me(self) -> str:
        return self.local.name

    @property
    def now(self) -> float:
        return self.obs.now_mono

    @property
    def cfg(self) -> DynamicConfig:
        return self.state.config

    @property
    def pg(self) -> PostgresState:
        return self.obs.postgres

    @property
    def dcs_ok(self) -> bool:
        """The view was read and no lock operation of this cycle hit a DCS error."""
        memo = self.state.memo
        return self.obs.cluster is not None and LockResult.DCS_ERROR not in (
            memo.renew,
            memo.acquire,
        )

    @property
    def holder_is_me(self) -> bool:
        """The view names me as the holder (a claim to check by compare-and-set, not proof)."""
        return self.view.leader is not None and self.view.leader.holder == self.me

    @property
    def holds_lock(self) -> bool:
        """Proof of leadership: the local deadline set by our own successful lock write."""
        return self.state.holds_lock(self.now)

    @property
    def renewed(self) -> bool:
        """This cycle's acquire or compare-and-set on the leader key succeeded, deadline holds."""
        memo = self.state.memo
        return LockResult.OK in (memo.renew, memo.acquire) and self.holds_lock

    @property
    def lock_deadline(self) -> float:
        return self.state.lock_deadline_mono or self.now

    def end(self, role: Role, actions: tuple[Action, ...], reason: Reason, **kw: Any) -> Decision:
        """End the cycle: publish the member key and sleep until the next loop."""
        if self.dcs_ok:
            actions = (*actions, UpdateMember(role=_member_role(self.obs.postgres)))
        wake = max(self.state.memo.start_mono + self.cfg.loop_wait_s, self.now)
        role = check_transition(self.role, role)
        state = replace(self.state, role=role, continuing=False, pending=Pending.NONE, **kw)
        return Decision(
            next_state=state,
            actions=actions,
            wake_at_mono=wake,
            immediate=False,
            wake_on_watch=not state.holds_lock(self.now),
            reason=reason,
        )

    def step(
        self,
        role: Role,
        actions: tuple[Action, ...],
        reason: Reason,
        pending: Pending,
        *,
        reread_dcs: bool = True,
        **kw: Any,
    ) -> Decision:
        """Continue the cycle at once; the next step reads the results of `actions`."""
        state = replace(
            self.state,
            role=check_transition(self.role, role),
            continuing=True,
            pending=pending,
            pending_sent_mono=self.now,
            **kw,
        )
        return Decision(
            next_state=state,
            actions=actions,
            wake_at_mono=self.now,
            immediate=True,
            wake_on_watch=False,
            reason=reason,
            reread_dcs=reread_dcs,
        )


def _member_role(pg: PostgresState) -> MemberRole:
    if not pg.data_present:
        return MemberRole.UNINITIALIZED
    return MemberRole.PRIMARY if pg.is_primary else MemberRole.REPLICA


def _memo(state: NodeState, obs: Observation) -> CycleMemo:
    # A new cycle forgets what the previous one learned; a continued one records the results.
    memo = state.memo if state.continuing else CycleMemo(start_mono=obs.now_mono)
    pending = state.pending if state.continuing else Pending.NONE
    if pending is Pending.RENEW:
        return replace(memo, renew=obs.lock_result)
    if pending is Pending.ACQUIRE:
        return replace(memo, acquire=obs.lock_result)
    if pending is Pending.INITIALIZE:
        return replace(memo, initialize=obs.lock_result)
    if pending is Pending.PEERS:
        return replace(memo, peers=obs.peers or ())
    if pending is Pending.FAILSAFE:
        acks = obs.failsafe_acks or ()
        return replace(memo, failsafe_acks=acks, failsafe_sent_mono=state.pending_sent_mono)
    return memo


def _lock_deadline(state: NodeState, memo: CycleMemo, obs: Observation) -> float | None:
    deadline = state.lock_deadline_mono
    if state.pending in (Pending.RENEW, Pending.ACQUIRE) and state.continuing:
        ok = obs.lock_result is LockResult.OK
        deadline = state.pending_sent_mono + state.config.ttl_s if ok else None
    view = obs.cluster
    if view is not None and (view.leader is None or view.leader.holder != state.name):
        deadline = None
    if deadline is not None and obs.now_mono >= deadline:
        deadline = None
    return deadline


def absorb(state: NodeState, obs: Observation) -> NodeState:
    """Fold the observation and the previous step's results into the state."""
    memo = _memo(state, obs)
    changes: dict[str, Any] = {"memo": memo, "lock_deadline_mono": _lock_deadline(state, memo, obs)}
    if obs.failure is Failure.WATCHDOG:
        changes["watchdog_timeout_s"] = None
    if obs.failure is Failure.REWIND:  # not REWIND_SOURCE: an unreachable source is no verdict
        changes["rewind_failed"] = True
    changes.update(_start_memory(obs))
    view = obs.cluster
    if view is not None:
        changes["config"] = view.config
        changes["last_failsafe"] = view.failsafe
        changes["unleased_leader"] = _unleased(state.unleased_leader, view.leader, obs.now_mono)
        changes.update(_leader_memory(state.name, view))
    return replace(state, **changes)


def _unleased(
    seen: UnleasedLeader | None, leader: LeaderKey | None, now_mono: float
) -> UnleasedLeader | None:
    # A leader key without a lease, timed from the first read that showed this very version: a
    # mod revision names one write, so the same version means nobody has written the key since.
    if leader is None or leader.leased:
        return None
    if seen is not None and seen.version == leader.version:
        return seen
    return UnleasedLeader(version=leader.version, since_mono=now_mono)


def _start_memory(obs: Observation) -> dict[str, Any]:
    # A start that failed with PostgreSQL still down is a certain failure (Patroni's post_recover);
    # a server that runs ends the outage, whose first start attempt the leader times from.
    run = obs.postgres.run
    if run is PgRun.RUNNING:
        return {"start_failed": False, "start_began_mono": None}
    if run is PgRun.STARTING:
        return {"start_failed": False}
    return {"start_failed": True} if obs.failure is Failure.START else {}


def _leader_memory(name: str, view: ClusterView) -> dict[str, Any]:
    # Remember the last view that had a leader (Patroni's old_cluster); another holder ends
    # any failsafe leadership of ours.
    leader = view.leader
    if leader is None:
        return {}
    memory: dict[str, Any] = {"former_leader": leader.holder, "old_members": view.members}
    if leader.holder != name:
        memory["failsafe_active"] = False
    return memory


def _derive_once(role: Role, pg: PostgresState, holds: bool) -> Role:
    # One derived transition from what PostgreSQL is really doing (priority: data, run state, role).
    if not pg.data_present:
        # Long actions run to completion before the next observation: no data after a
        # bootstrap or a clone means it failed, whether or not the failure was reported.
        if role in (Role.UNINITIALIZED, Role.STOPPED, Role.BOOTSTRAPPING, Role.CLONING):
            return Role.UNINITIALIZED
        return Role.STOPPED
    if role is Role.UNINITIALIZED or pg.run is PgRun.STOPPED:
        return Role.STOPPED
    if pg.run is PgRun.STARTING:
        return Role.STARTING if role in _ADOPTS_STARTING else role
    if pg.in_recovery:
        return _derive_recovering(role)
    return _derive_writable(role, holds)


def _derive_writable(role: Role, holds: bool) -> Role:
    # PostgreSQL runs read-write: it is the primary the agent steered to, or not taken on yet.
    if role in (Role.PROMOTING, Role.STARTING, Role.CANDIDATE) and holds:
        return Role.PRIMARY
    return Role.STARTING if role in _ADOPTS_STARTING or role is Role.REPLICA else role


_ADOPTS_STARTING = frozenset({Role.STOPPED, Role.CLONING, Role.REWINDING, Role.DEMOTING})


def _derive_recovering(role: Role) -> Role:
    if role is Role.PRIMARY:
        return Role.DEMOTING
    # BOOTSTRAPPING too: a bootstrap method may produce a standby.
    if role in _ADOPTS_STARTING or role in (Role.STARTING, Role.BOOTSTRAPPING):
        return Role.REPLICA
    return role


def observed_role(role: Role, pg: PostgresState, holds: bool) -> Role:
    """Move `role` along allowed edges until it agrees with what PostgreSQL is doing."""
    nxt = _derive_once(role, pg, holds)
    return role if nxt is role else observed_role(check_transition(role, nxt), pg, holds)


def make_context(state: NodeState, obs: Observation, local: LocalConfig) -> Ctx:
    """Absorb the observation and derive the role: the input every rule reads."""
    state = absorb(state, obs)
    role = observed_role(state.role, obs.postgres, state.holds_lock(obs.now_mono))
    view = obs.cluster if obs.cluster is not None else ClusterView()
    return Ctx(state=state, obs=obs, local=local, role=role, view=view)
