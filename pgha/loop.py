# The agent loop, written once for every world: observe, decide, act in order, sleep until the wake
# time or a leader-key change (DESIGN.md, "The engine contract"). It is a generator of requests so
# that a blocking driver (the real agent, tests on a virtual clock) and a SimPy driver run the very
# same steps; drivers only answer requests and never choose HA behaviour. The not_after rule lives
# in `executor.action_steps`, which this loop delegates to. After each decision the loop publishes
# an `AgentStatus` (what the REST API answers from) and emits history events.
"""The world-independent agent loop, its requests, its status snapshot and a blocking driver."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum
from typing import Any

from pgha.engine.actions import AcquireLock, Action, ReleaseLock, RenewLock
from pgha.engine.config import DynamicConfig, WatchdogMode
from pgha.engine.decision import Decision, Reason
from pgha.engine.roles import Role
from pgha.engine.rules import decide
from pgha.engine.state import NodeState
from pgha.engine.values import (
    ClusterView,
    Failure,
    LocalConfig,
    LockResult,
    Observation,
    PostgresState,
    Tags,
)
from pgha.executor import Act, Now, StepResults, action_steps, answer_action_request
from pgha.ports import DcsError, Ports

# ---------------------------------------------------------------- status and events


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStatus:
    """What the agent knows about itself after its latest decision; the REST API reads it.

    `holds_lock` is as of `last_loop_mono`; health answers compare `lock_deadline_mono` with the
    time of the request instead. `cluster` is the last view read successfully.
    """

    name: str
    role: Role = Role.UNINITIALIZED
    holds_lock: bool = False
    lock_deadline_mono: float | None = None
    postgres: PostgresState = field(default_factory=lambda: PostgresState(data_present=False))
    reason: Reason | None = None
    paused: bool = False
    failsafe_active: bool = False
    watchdog_failed: bool = False
    dcs_reachable: bool = False  # the latest read of the DCS succeeded
    dcs_last_seen_mono: float | None = None
    dcs_last_seen_wall: float | None = None
    last_loop_mono: float | None = None
    tags: Tags = field(default_factory=Tags)
    cluster: ClusterView | None = None
    config: DynamicConfig = field(default_factory=DynamicConfig)


def _watchdog_failed(cfg: DynamicConfig, obs: Observation) -> bool:
    usable = obs.watchdog_available and cfg.watchdog_slack_s >= 0
    broken = not usable or obs.failure is Failure.WATCHDOG
    return cfg.watchdog_mode is WatchdogMode.REQUIRED and broken


def next_status(
    status: AgentStatus,
    local: LocalConfig,
    obs: Observation,
    decision: Decision,
    *,
    dcs_read: bool = True,
) -> AgentStatus:
    """The status after deciding `decision` on `obs` (the DCS fields keep their last good value).

    `dcs_read` False: `obs` reused the previous view without reading the DCS, so the DCS fields
    describe the latest real read and stay as they were.
    """
    state = decision.next_state
    seen = dcs_read and obs.cluster is not None
    return AgentStatus(
        name=local.name,
        role=state.role,
        holds_lock=state.holds_lock(obs.now_mono),
        lock_deadline_mono=state.lock_deadline_mono,
        postgres=obs.postgres,
        reason=decision.reason,
        paused=state.config.pause,
        failsafe_active=state.failsafe_active,
        watchdog_failed=_watchdog_failed(state.config, obs),
        dcs_reachable=seen if dcs_read else status.dcs_reachable,
        dcs_last_seen_mono=obs.now_mono if seen else status.dcs_last_seen_mono,
        dcs_last_seen_wall=obs.now_wall if seen else status.dcs_last_seen_wall,
        last_loop_mono=obs.now_mono,
        tags=local.tags,
        cluster=obs.cluster if seen else status.cluster,
        config=state.config,
    )


def jsonable(value: object) -> Any:
    """A JSON-ready copy of an engine value: enums by value, sets sorted, dataclasses as dicts."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, frozenset | set):
        return sorted(jsonable(v) for v in value)
    if isinstance(value, tuple | list):
        return [jsonable(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in fields(value)}
    return value


def describe(action: Action) -> dict[str, Any]:
    """One action for the history: its type name and its fields."""
    described: dict[str, Any] = jsonable(action)
    return {"action": type(action).__name__, **described}


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionEvent:
    """History: one decision, with its reason, before its actions run."""

    node: str
    now_mono: float
    reason: Reason
    role: Role
    actions: tuple[Action, ...]
    wake_at_mono: float
    immediate: bool
    wake_on_watch: bool
    dcs_ok: bool

    def record(self) -> dict[str, Any]:
        return {"kind": "decision", **jsonable(self)}


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionsEvent:
    """History: what one decision's actions did (ran, failed, dropped for lateness, skipped)."""

    node: str
    ran: tuple[Action, ...]
    failed: Action | None
    dropped: Action | None
    skipped: tuple[Action, ...]
    lock_result: LockResult | None
    failure: Failure | None

    def record(self) -> dict[str, Any]:
        one = [self.failed, self.dropped]
        failed, dropped = (None if a is None else describe(a) for a in one)
        return {
            "kind": "actions",
            "node": self.node,
            "ran": [describe(a) for a in self.ran],
            "failed": failed,
            "dropped": dropped,
            "skipped": [describe(a) for a in self.skipped],
            "lock_result": jsonable(self.lock_result),
            "failure": jsonable(self.failure),
        }


Event = DecisionEvent | ActionsEvent


def decision_event(node: str, obs: Observation, decision: Decision) -> DecisionEvent:
    return DecisionEvent(
        node=node,
        now_mono=obs.now_mono,
        reason=decision.reason,
        role=decision.next_state.role,
        actions=decision.actions,
        wake_at_mono=decision.wake_at_mono,
        immediate=decision.immediate,
        wake_on_watch=decision.wake_on_watch,
        dcs_ok=obs.cluster is not None,
    )


def actions_event(node: str, results: StepResults) -> ActionsEvent:
    return ActionsEvent(
        node=node,
        ran=results.ran,
        failed=results.failed,
        dropped=results.dropped,
        skipped=results.skipped,
        lock_result=results.lock_result,
        failure=results.failure,
    )


def lock_events(event: ActionsEvent) -> list[dict[str, Any]]:
    """The `lock` history events of one step, from what ran (docs/history.md)."""
    out: list[dict[str, Any]] = []
    for action in event.ran:
        ok = action is not event.failed
        if isinstance(action, AcquireLock) and ok:
            out.append({"event": "acquired"})
        elif isinstance(action, RenewLock):
            lost = event.lock_result is LockResult.CAS_FAILED
            out.append({"event": "renewed" if ok else ("lost" if lost else "error")})
        elif isinstance(action, ReleaseLock) and ok:
            out.append({"event": "released"})
    return out


def history_records(event: Event) -> list[tuple[str, dict[str, Any]]]:
    """The history events (kind, fields) of one loop event, as both worlds write them."""
    if isinstance(event, DecisionEvent):
        decided = {
            "reason": event.reason.value,
            "role": event.role.value,
            "actions": [type(a).__name__ for a in event.actions],
            "immediate": event.immediate,
        }
        return [("decision", decided)]
    records = [("lock", record) for record in lock_events(event)]
    if event.dropped is not None:
        records.append(("dropped", {"action": type(event.dropped).__name__}))
    return records


# ---------------------------------------------------------------- requests and the loop


@dataclass(frozen=True, slots=True)
class Observe:
    """Request: observe now (answer: an Observation carrying these results of the last step).

    `reread_dcs` False (the previous decision said so): do not read the DCS, reuse
    `previous_view`, the view of the previous step (None when that read failed).
    """

    results: StepResults
    reread_dcs: bool = True
    previous_view: ClusterView | None = None


@dataclass(frozen=True, slots=True)
class Emit:
    """Request: record this history event (answer: None)."""

    event: Event


@dataclass(frozen=True, slots=True)
class Publish:
    """Request: make this status what the REST API answers from (answer: None)."""

    status: AgentStatus


@dataclass(frozen=True, slots=True)
class Sleep:
    """Request: sleep until `until_mono`, or until the leader key changes when `watch`."""

    until_mono: float
    watch: bool


Request = Observe | Now | Act | Emit | Publish | Sleep


Decide = Callable[[NodeState, Observation, LocalConfig], Decision]


def agent_steps(
    local: LocalConfig, state: NodeState, *, decide: Decide = decide
) -> Generator[Request, Any, None]:
    """The agent loop as requests; it runs until the driver stops asking.

    `decide` is the engine's; the simulator's bug-zoo variants pass a broken one instead.

    Each step: Observe, decide, Publish the status, Emit the decision, run the actions (Now/Act,
    with the not_after rule), Emit what they did, and Sleep unless the decision is immediate. The
    next Observe reads the DCS again unless the decision says `reread_dcs=False`; then it carries
    this step's view (None when this step's read failed) for the driver to reuse.
    """
    request = Observe(StepResults())
    status = AgentStatus(name=local.name, tags=local.tags)
    while True:
        obs: Observation = yield request
        decision = decide(state, obs, local)
        state = decision.next_state
        status = next_status(status, local, obs, decision, dcs_read=request.reread_dcs)
        yield Publish(status)
        yield Emit(decision_event(local.name, obs, decision))
        results = yield from action_steps(decision.actions)
        yield Emit(actions_event(local.name, results))
        if not decision.immediate:
            yield Sleep(decision.wake_at_mono, decision.wake_on_watch)
        request = Observe(results)
        if not decision.reread_dcs:
            request = Observe(results, reread_dcs=False, previous_view=obs.cluster)


# ---------------------------------------------------------------- drivers' helpers


def read_cluster(ports: Ports) -> ClusterView | None:
    """The DCS view, or None when the read failed within retry_timeout."""
    try:
        return ports.dcs.read_cluster()
    except DcsError:
        return None


def build_observation(
    ports: Ports,
    results: StepResults,
    *,
    reread_dcs: bool = True,
    previous_view: ClusterView | None = None,
) -> Observation:
    """Observe through the ports; the clock is read last, so `now` is never early.

    With `reread_dcs` False the DCS is not read: the observation carries `previous_view`.
    """
    cluster = read_cluster(ports) if reread_dcs else previous_view
    postgres = ports.postgres.state()
    heartbeat = ports.peers.last_failsafe_heartbeat()
    watchdog = ports.watchdog.available()
    return Observation(
        now_mono=ports.clock.now_mono(),
        now_wall=ports.clock.now_wall(),
        cluster=cluster,
        postgres=postgres,
        lock_result=results.lock_result,
        peers=results.peers,
        failsafe_acks=results.failsafe_acks,
        failsafe_heartbeat=heartbeat,
        failure=results.failure,
        watchdog_available=watchdog,
    )


def answer_port_request(request: Observe | Now | Act, ports: Ports) -> Any:
    """Answer the requests that only need the ports (Observe, Now, Act)."""
    if isinstance(request, Observe):
        return build_observation(
            ports,
            request.results,
            reread_dcs=request.reread_dcs,
            previous_view=request.previous_view,
        )
    return answer_action_request(request, ports)


def _ignore(_: object) -> None:
    return None


def run_blocking(
    local: LocalConfig,
    state: NodeState,
    ports: Ports,
    *,
    sleep: Callable[[float, bool], None],
    stop: Callable[[], bool],
    on_event: Callable[[Event], None] = _ignore,
    on_status: Callable[[AgentStatus], None] = _ignore,
) -> None:
    """Drive `agent_steps` with real (blocking) ports until `stop()` says so before a step.

    Args:
        local: this node's local settings.
        state: the engine state to start from (usually `NodeState(name=local.name)`).
        ports: the world.
        sleep: `sleep(until_mono, watch)` blocks until then, or a leader-key change if `watch`.
        stop: asked before every observation; True ends the loop.
        on_event: receives every history event.
        on_status: receives every published status.

    Raises:
        AgentHalted: the engine halted the agent.
    """
    handlers: Mapping[type[Any], Callable[[Any], Any]] = {
        Observe: lambda r: answer_port_request(r, ports),
        Now: lambda r: answer_port_request(r, ports),
        Act: lambda r: answer_port_request(r, ports),
        Emit: lambda r: on_event(r.event),
        Publish: lambda r: on_status(r.status),
        Sleep: lambda r: sleep(r.until_mono, r.watch),
    }
    steps = agent_steps(local, state)
    request = next(steps)
    while not (isinstance(request, Observe) and stop()):
        request = steps.send(handlers[type(request)](request))
    steps.close()
