# The executor turns the engine's actions into port calls, mechanically: one small function per
# action type, chosen from a table, and no `if` that looks at roles or the cluster. Its only rules
# are the engine contract's: run in order, stop at the first action that did not succeed, and drop
# an action whose `not_after_mono` deadline the node's own monotonic clock has reached (the rest of
# the list is skipped with it), because the observation it was decided from is stale by then.
# A DCS error on a lock operation is reported as LockResult.DCS_ERROR; a lost compare-and-set is
# not ok; `ActionFailed` carries the engine's Failure; Halt raises AgentHalted.
"""Run engine actions against the ports, and report their results for the next observation."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from pgha.engine.actions import (
    AcquireInitialize,
    AcquireLock,
    Action,
    AppendHistory,
    ArmWatchdog,
    Bootstrap,
    ClearFailover,
    CreateReplica,
    DeleteInitialize,
    Demote,
    DisableWatchdog,
    FetchPeerStatus,
    Follow,
    Halt,
    KickWatchdog,
    PostFailsafe,
    Promote,
    Reinit,
    ReleaseLock,
    RenewLock,
    Rewind,
    RunCallback,
    SetSyncStandbyNames,
    StartPostgres,
    UpdateMember,
    WriteConfig,
    WriteFailsafe,
    WriteInitialize,
    WriteStatus,
    WriteSync,
)
from pgha.engine.values import Failure, LockResult, PeerStatus
from pgha.ports import ActionFailed, DcsError, Ports


class AgentHalted(Exception):
    """The engine asked the agent to stop (Halt): continuing would be unsafe."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What running one action gave."""

    ok: bool = True
    lock_result: LockResult | None = None
    peers: tuple[PeerStatus, ...] | None = None
    failsafe_acks: tuple[str, ...] | None = None
    failure: Failure | None = None


OK = Outcome()
NOT_OK = Outcome(ok=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class StepResults:
    """The merged results of one step's actions, and what ran, failed, was dropped or skipped."""

    lock_result: LockResult | None = None
    peers: tuple[PeerStatus, ...] | None = None
    failsafe_acks: tuple[str, ...] | None = None
    failure: Failure | None = None
    ran: tuple[Action, ...] = ()
    failed: Action | None = None  # the action that ran and did not succeed (it is in `ran`)
    dropped: Action | None = None  # the action whose not_after deadline had passed
    skipped: tuple[Action, ...] = ()  # the actions after the failed or dropped one

    def merged(self, action: Action, outcome: Outcome) -> StepResults:
        """These results after `action` ran with `outcome` (a later result replaces an earlier)."""
        return replace(
            self,
            lock_result=_later(outcome.lock_result, self.lock_result),
            peers=_later(outcome.peers, self.peers),
            failsafe_acks=_later(outcome.failsafe_acks, self.failsafe_acks),
            failure=_later(outcome.failure, self.failure),
            ran=(*self.ran, action),
        )


_T = TypeVar("_T")


def _later(new: _T | None, old: _T | None) -> _T | None:
    return old if new is None else new


# ---------------------------------------------------------------- one action


def _lock(call: Callable[[], LockResult]) -> Outcome:
    try:
        result = call()
    except DcsError:
        result = LockResult.DCS_ERROR
    return Outcome(ok=result is LockResult.OK, lock_result=result)


def _cas(won: bool) -> Outcome:
    return OK if won else NOT_OK


def _acquire_initialize(_: AcquireInitialize, p: Ports) -> Outcome:
    return _lock(lambda: LockResult.OK if p.dcs.acquire_initialize() else LockResult.CAS_FAILED)


def _write_initialize(a: WriteInitialize, p: Ports) -> Outcome:
    p.dcs.write_initialize(a.sysid)
    return OK


def _delete_initialize(_: DeleteInitialize, p: Ports) -> Outcome:
    p.dcs.delete_initialize()
    return OK


def _write_config(_: WriteConfig, p: Ports) -> Outcome:
    p.dcs.write_config()
    return OK


def _bootstrap(_: Bootstrap, p: Ports) -> Outcome:
    p.postgres.bootstrap()
    return OK


def _create_replica(a: CreateReplica, p: Ports) -> Outcome:
    p.postgres.create_replica(a.source)
    return OK


def _acquire_lock(_: AcquireLock, p: Ports) -> Outcome:
    return _lock(p.dcs.acquire_lock)


def _renew_lock(a: RenewLock, p: Ports) -> Outcome:
    return _lock(lambda: p.dcs.renew_lock(a.version))


def _release_lock(a: ReleaseLock, p: Ports) -> Outcome:
    p.dcs.release_lock(a.version)
    return OK


def _promote(_: Promote, p: Ports) -> Outcome:
    p.postgres.promote()
    return OK


def _demote(a: Demote, p: Ports) -> Outcome:
    p.postgres.demote(a.mode)
    return OK


def _start(a: StartPostgres, p: Ports) -> Outcome:
    p.postgres.start(a.as_primary)
    return OK


def _follow(a: Follow, p: Ports) -> Outcome:
    p.postgres.follow(a.leader)
    return OK


def _rewind(a: Rewind, p: Ports) -> Outcome:
    p.postgres.rewind(a.source)
    return OK


def _reinit(a: Reinit, p: Ports) -> Outcome:
    p.postgres.reinit(a.source)
    return OK


def _arm_watchdog(a: ArmWatchdog, p: Ports) -> Outcome:
    armed = p.watchdog.arm(a.timeout_s)
    return OK if armed else Outcome(ok=False, failure=Failure.WATCHDOG)


def _kick_watchdog(_: KickWatchdog, p: Ports) -> Outcome:
    p.watchdog.kick()
    return OK


def _disable_watchdog(_: DisableWatchdog, p: Ports) -> Outcome:
    p.watchdog.disable()
    return OK


def _fetch_peers(a: FetchPeerStatus, p: Ports) -> Outcome:
    return Outcome(peers=p.peers.fetch_status(a.members))


def _post_failsafe(a: PostFailsafe, p: Ports) -> Outcome:
    return Outcome(failsafe_acks=p.peers.post_failsafe(a.members))


def _write_failsafe(a: WriteFailsafe, p: Ports) -> Outcome:
    p.dcs.write_failsafe(a.members)
    return OK


def _write_sync(a: WriteSync, p: Ports) -> Outcome:
    return _cas(p.dcs.write_sync(a.leader, a.standbys, a.quorum, a.version))


def _set_ssn(a: SetSyncStandbyNames, p: Ports) -> Outcome:
    p.postgres.set_sync_standby_names(a.value)
    return OK


def _write_status(a: WriteStatus, p: Ports) -> Outcome:
    p.dcs.write_status(a.optime_lsn)
    return OK


def _append_history(a: AppendHistory, p: Ports) -> Outcome:
    p.dcs.append_history(a.entry)
    return OK


def _clear_failover(a: ClearFailover, p: Ports) -> Outcome:
    return _cas(p.dcs.clear_failover(a.version))


def _run_callback(a: RunCallback, p: Ports) -> Outcome:
    p.callbacks.run(a.event, a.role)
    return OK


def _update_member(a: UpdateMember, p: Ports) -> Outcome:
    p.dcs.update_member(a.role)
    return OK


def _halt(_: Halt, __: Ports) -> Outcome:
    raise AgentHalted("the engine halted the agent")


Handler = Callable[[Any, Ports], Outcome]

HANDLERS: Mapping[type[Any], Handler] = {
    AcquireInitialize: _acquire_initialize,
    WriteInitialize: _write_initialize,
    DeleteInitialize: _delete_initialize,
    WriteConfig: _write_config,
    Bootstrap: _bootstrap,
    CreateReplica: _create_replica,
    AcquireLock: _acquire_lock,
    RenewLock: _renew_lock,
    ReleaseLock: _release_lock,
    Promote: _promote,
    Demote: _demote,
    StartPostgres: _start,
    Follow: _follow,
    Rewind: _rewind,
    Reinit: _reinit,
    ArmWatchdog: _arm_watchdog,
    KickWatchdog: _kick_watchdog,
    DisableWatchdog: _disable_watchdog,
    FetchPeerStatus: _fetch_peers,
    PostFailsafe: _post_failsafe,
    WriteFailsafe: _write_failsafe,
    WriteSync: _write_sync,
    SetSyncStandbyNames: _set_ssn,
    WriteStatus: _write_status,
    AppendHistory: _append_history,
    ClearFailover: _clear_failover,
    RunCallback: _run_callback,
    UpdateMember: _update_member,
    Halt: _halt,
}


def execute(action: Action, ports: Ports) -> Outcome:
    """Run one action.

    Returns:
        Its outcome: ok False for a lost compare-and-set, a DCS error or an ActionFailed.

    Raises:
        AgentHalted: the action is Halt.
    """
    try:
        return HANDLERS[type(action)](action, ports)
    except DcsError:
        return NOT_OK
    except ActionFailed as failed:
        return Outcome(ok=False, failure=failed.failure)


# ---------------------------------------------------------------- a list of actions


@dataclass(frozen=True, slots=True)
class Now:
    """Request: the node's monotonic clock now (answered with a float)."""


@dataclass(frozen=True, slots=True)
class Act:
    """Request: run this action (answered with its Outcome)."""

    action: Action


def not_after(action: Action) -> float | None:
    """The action's deadline on the node's monotonic clock, if it has one."""
    deadline: float | None = getattr(action, "not_after_mono", None)
    return deadline


def action_steps(actions: tuple[Action, ...]) -> Generator[Now | Act, Any, StepResults]:
    """Run `actions` in order as requests (the one place the not_after rule is written).

    Yields Now() before an action with a deadline (answer: the monotonic time) and Act(action)
    (answer: its Outcome). An action whose deadline is reached is dropped and the rest skipped;
    after an outcome that is not ok, the rest is skipped.
    """
    results = StepResults()
    for index, action in enumerate(actions):
        deadline = not_after(action)
        if deadline is not None and (yield Now()) >= deadline:
            return replace(results, dropped=action, skipped=actions[index + 1 :])
        outcome: Outcome = yield Act(action)
        results = results.merged(action, outcome)
        if not outcome.ok:
            return replace(results, failed=action, skipped=actions[index + 1 :])
    return results


def answer_action_request(request: Now | Act, ports: Ports) -> float | Outcome:
    """Answer one request of `action_steps` with the ports."""
    if isinstance(request, Now):
        return ports.clock.now_mono()
    return execute(request.action, ports)


def run_actions(actions: tuple[Action, ...], ports: Ports) -> StepResults:
    """Run `actions` in order with the not_after rule, reading `ports.clock`.

    Raises:
        AgentHalted: one of the actions is Halt.
    """
    steps = action_steps(actions)
    try:
        request = next(steps)
        while True:
            request = steps.send(answer_action_request(request, ports))
    except StopIteration as stop:
        results: StepResults = stop.value
        return results
