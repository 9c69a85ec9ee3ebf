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
    ExpireLeaderKey,
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
    StopPostgres,
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
    dcs_error: bool = False  # the DCS did not answer (the actions left need it too: skip them)


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
        # Built directly rather than with dataclasses.replace (several times slower): once per
        # action of every step.
        return StepResults(
            lock_result=_later(outcome.lock_result, self.lock_result),
            peers=_later(outcome.peers, self.peers),
            failsafe_acks=_later(outcome.failsafe_acks, self.failsafe_acks),
            failure=_later(outcome.failure, self.failure),
            ran=(*self.ran, action),
            failed=self.failed,
            dropped=self.dropped,
            skipped=self.skipped,
        )


_T = TypeVar("_T")


def _later(new: _T | None, old: _T | None) -> _T | None:
    return old if new is None else new


# ---------------------------------------------------------------- one action
#
# Each action is one port call, described as data: which port, which method, which arguments, and
# how its return value becomes an Outcome. The blocking executor below and the simulator's SimPy
# executor both read this one table, so the worlds cannot drift apart.


def _ok(_: object) -> Outcome:
    return OK


def _cas(won: object) -> Outcome:
    return OK if won else NOT_OK


def _lock_outcome(result: object) -> Outcome:
    lock = result if isinstance(result, LockResult) else _won(result)
    return Outcome(ok=lock is LockResult.OK, lock_result=lock)


def _won(won: object) -> LockResult:
    return LockResult.OK if won else LockResult.CAS_FAILED


def _armed(armed: object) -> Outcome:
    return OK if armed else Outcome(ok=False, failure=Failure.WATCHDOG)


def _peers(peers: object) -> Outcome:
    return Outcome(peers=peers)  # type: ignore[arg-type]


def _acks(acks: object) -> Outcome:
    return Outcome(failsafe_acks=acks)  # type: ignore[arg-type]


def _none(_: object) -> tuple[object, ...]:
    return ()


@dataclass(frozen=True, slots=True)
class Call:
    """How one action type runs: `ports.<port>.<method>(*args(action))`, shaped into an Outcome.

    `lock`: a DCS error is the result (LockResult.DCS_ERROR) rather than a plain failure.
    `always`: runs even after an earlier action of the list failed, unless that failure was a
    DCS error (Patroni's touch_member in `finally`: the member key reports a PostgreSQL that
    failed to start instead of expiring).
    """

    port: str
    method: str
    args: Callable[[Any], tuple[object, ...]] = _none
    shape: Callable[[object], Outcome] = _ok
    lock: bool = False
    always: bool = False


CALLS: Mapping[type[Any], Call] = {
    AcquireInitialize: Call("dcs", "acquire_initialize", shape=_lock_outcome, lock=True),
    WriteInitialize: Call("dcs", "write_initialize", lambda a: (a.sysid,)),
    DeleteInitialize: Call("dcs", "delete_initialize"),
    WriteConfig: Call("dcs", "write_config"),
    Bootstrap: Call("postgres", "bootstrap"),
    CreateReplica: Call("postgres", "create_replica", lambda a: (a.source,)),
    AcquireLock: Call("dcs", "acquire_lock", shape=_lock_outcome, lock=True),
    RenewLock: Call("dcs", "renew_lock", lambda a: (a.version,), _lock_outcome, lock=True),
    ReleaseLock: Call("dcs", "release_lock", lambda a: (a.version,)),
    ExpireLeaderKey: Call("dcs", "expire_leader_key", lambda a: (a.version,), _cas),
    Promote: Call("postgres", "promote"),
    Demote: Call("postgres", "demote", lambda a: (a.mode,)),
    StartPostgres: Call("postgres", "start", lambda a: (a.as_primary,)),
    StopPostgres: Call("postgres", "stop", lambda a: (a.immediate,)),
    Follow: Call("postgres", "follow", lambda a: (a.leader,)),
    Rewind: Call("postgres", "rewind", lambda a: (a.source,)),
    Reinit: Call("postgres", "reinit", lambda a: (a.source,)),
    ArmWatchdog: Call("watchdog", "arm", lambda a: (a.timeout_s,), _armed),
    KickWatchdog: Call("watchdog", "kick"),
    DisableWatchdog: Call("watchdog", "disable"),
    FetchPeerStatus: Call("peers", "fetch_status", lambda a: (a.members,), _peers),
    PostFailsafe: Call("peers", "post_failsafe", lambda a: (a.members,), _acks),
    WriteFailsafe: Call("dcs", "write_failsafe", lambda a: (a.members,)),
    WriteSync: Call(
        "dcs", "write_sync", lambda a: (a.leader, a.standbys, a.quorum, a.version), _cas
    ),
    SetSyncStandbyNames: Call("postgres", "set_sync_standby_names", lambda a: (a.value,)),
    WriteStatus: Call("dcs", "write_status", lambda a: (a.optime_lsn,)),
    AppendHistory: Call("dcs", "append_history", lambda a: (a.entry,)),
    ClearFailover: Call("dcs", "clear_failover", lambda a: (a.version,), _cas),
    RunCallback: Call("callbacks", "run", lambda a: (a.event, a.role)),
    UpdateMember: Call("dcs", "update_member", lambda a: (a.role,), always=True),
}


def bound_call(
    action: Action, ports: object
) -> tuple[Call, Callable[..., Any], tuple[object, ...]]:
    """The Call of `action`, the bound port method and its arguments.

    Raises:
        AgentHalted: the action is Halt.
    """
    if isinstance(action, Halt):
        raise AgentHalted("the engine halted the agent")
    call = CALLS[type(action)]
    method = getattr(getattr(ports, call.port), call.method)
    return call, method, call.args(action)


def error_outcome(call: Call, error: Exception) -> Outcome:
    """The outcome of a call that raised DcsError or ActionFailed."""
    if isinstance(error, ActionFailed):
        return Outcome(ok=False, failure=error.failure)
    lock = LockResult.DCS_ERROR if call.lock else None
    return Outcome(ok=False, lock_result=lock, dcs_error=True)


def execute(action: Action, ports: Ports) -> Outcome:
    """Run one action.

    Returns:
        Its outcome: ok False for a lost compare-and-set, a DCS error or an ActionFailed.

    Raises:
        AgentHalted: the action is Halt.
    """
    call, method, args = bound_call(action, ports)
    try:
        result = method(*args)
    except (DcsError, ActionFailed) as error:
        return error_outcome(call, error)
    return call.shape(result)


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


def runs_always(action: Action) -> bool:
    """True for an action that runs even after an earlier one failed (`Call.always`)."""
    call = CALLS.get(type(action))
    return call is not None and call.always


def action_steps(actions: tuple[Action, ...]) -> Generator[Now | Act, Any, StepResults]:
    """Run `actions` in order as requests (the one place the not_after rule is written).

    Yields Now() before an action with a deadline (answer: the monotonic time) and Act(action)
    (answer: its Outcome). An action whose deadline is reached is dropped and the rest skipped;
    after an outcome that is not ok, the rest is skipped but for the `always` actions, which
    still run unless the failure was a DCS error.
    """
    results = StepResults()
    for index, action in enumerate(actions):
        deadline = not_after(action)
        if deadline is not None and (yield Now()) >= deadline:
            return replace(results, dropped=action, skipped=actions[index + 1 :])
        outcome: Outcome = yield Act(action)
        results = results.merged(action, outcome)
        if not outcome.ok:
            rest = actions[index + 1 :]
            if outcome.dcs_error:
                return replace(results, failed=action, skipped=rest)
            skipped = tuple(a for a in rest if not runs_always(a))
            results = replace(results, failed=action, skipped=skipped)
            return (yield from _run_always(results, rest))
    return results


def _run_always(
    results: StepResults, rest: tuple[Action, ...]
) -> Generator[Now | Act, Any, StepResults]:
    # After a failure: the `always` actions of the rest, in order (`failed` stays the first).
    for action in rest:
        if runs_always(action):
            outcome: Outcome = yield Act(action)
            results = results.merged(action, outcome)
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
