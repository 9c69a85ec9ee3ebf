# The agent loop, written once for every world: observe, decide, act in order, sleep until the wake
# time or a leader-key change (docs/design.md, "The engine contract"). It is a generator of requests
# so that a blocking driver (the real agent, tests on a virtual clock) and a SimPy driver run the
# very same steps; drivers only answer requests and never choose HA behaviour. The not_after rule
# lives in `executor.action_steps`, which this loop delegates to. After each decision the loop
# publishes an `AgentStatus` (pgha.status: what the REST API answers from) and emits history events
# (pgha.events).
"""The world-independent agent loop, its requests and a blocking driver."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any

from pgha.engine.decision import Decision
from pgha.engine.rules import decide
from pgha.engine.state import NodeState
from pgha.engine.values import (
    ClusterView,
    FailsafeHeartbeat,
    LocalConfig,
    Observation,
    PostgresState,
)
from pgha.events import Event, actions_event, decision_event
from pgha.executor import Act, Now, StepResults, action_steps, answer_action_request
from pgha.ports import DcsError, Ports
from pgha.status import AgentStatus, next_status

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


def observation(
    results: StepResults,
    *,
    cluster: ClusterView | None,
    postgres: PostgresState,
    heartbeat: FailsafeHeartbeat | None,
    watchdog_available: bool,
    now_mono: float,
    now_wall: float,
) -> Observation:
    """The one place an Observation is assembled, for every driver: what the world showed this
    cycle (read in this order: DCS, PostgreSQL, peers, watchdog, then the clock, so that `now` is
    never early) and the results the previous step's actions left."""
    return Observation(
        now_mono=now_mono,
        now_wall=now_wall,
        cluster=cluster,
        postgres=postgres,
        lock_result=results.lock_result,
        peers=results.peers,
        failsafe_acks=results.failsafe_acks,
        failsafe_heartbeat=heartbeat,
        failure=results.failure,
        watchdog_available=watchdog_available,
    )


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
    return observation(
        results,
        cluster=cluster,
        postgres=postgres,
        heartbeat=heartbeat,
        watchdog_available=watchdog,
        now_mono=ports.clock.now_mono(),
        now_wall=ports.clock.now_wall(),
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
