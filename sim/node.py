# A simulated database host: its PostgreSQL, its agent running the shared loop (`pgha.loop`) with
# the real engine, its REST API (answers from `pgha.health`, as a real agent's), its watchdog, and
# its clocks. The SimPy driver here only answers the loop's requests through simulated ports: the
# action table is the executor's (`pgha.executor.CALLS`), so no HA behaviour is chosen here. Faults
# act on the host: kill the machine, kill or pause the agent, kill or pause PostgreSQL, restart.
# A watchdog that is not kicked in time resets the machine, which comes back after a reboot.
"""One simulated database host: agent, REST API, watchdog, and the faults that hit it."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from typing import Any

import simpy
from mypy_extensions import mypyc_attr

from pgha.engine.actions import Action
from pgha.engine.heartbeat import heartbeat_refusal
from pgha.engine.operator import STATUS, refusal
from pgha.engine.rules import decide as engine_decide
from pgha.engine.state import NodeState
from pgha.engine.values import (
    FailoverKey,
    FailsafeHeartbeat,
    LocalConfig,
    Member,
    MemberRole,
    PeerStatus,
    PgRun,
    SyncStandbyNames,
)
from pgha.events import ActionsEvent, DecisionEvent, history_records
from pgha.executor import Act, AgentHalted, Now, bound_call, error_outcome
from pgha.health import answer, is_leader, patroni_body, peer_status_from_patroni
from pgha.loop import Decide, Emit, Observe, Sleep, agent_steps, observation
from pgha.ports import ActionFailed, DcsError
from pgha.status import AgentStatus
from sim.clock import HostClock
from sim.dcs import SimDcs
from sim.net import Network, Unreachable
from sim.postgres import SimPostgres
from sim.world import World

Gen = Generator[simpy.Event, Any, Any]
DCS_UNAVAILABLE = "dcs_unavailable"  # a 503: the agent could not read or write etcd
PEER_TIMEOUT_S = 2.0  # Patroni: GET /patroni during the race, 2 s, no retry
FAILSAFE_TIMEOUT_S = 2.0
REBOOT_S = 30.0  # a machine reset by its watchdog boots again after this long


class Refused(Exception):
    """Connection refused: nothing listens on the REST port (the agent is not running)."""


@dataclass(frozen=True, slots=True)
class OperatorAnswer:
    """A REST API's answer to a switchover or failover: the status, and why it was not done."""

    status: int
    error: str | None = None  # a Refusal value, or DCS_UNAVAILABLE (503)


def _instant(value: Any = None) -> Gen:
    return value
    yield  # pragma: no cover - a generator


@dataclass(frozen=True, slots=True)
class Ports:
    """The simulated ports; every method returns a SimPy generator (names as pgha.ports)."""

    dcs: NodeDcs
    postgres: NodePostgres
    watchdog: SimWatchdog
    peers: NodePeers
    callbacks: NodeCallbacks


@mypyc_attr(native_class=False)  # pgha compile: delegates with __getattr__
class NodeDcs:
    """The DCS port: the node's etcd client, plus the member key built from local state."""

    def __init__(self, node: SimNode, client: SimDcs) -> None:
        self.node, self.client = node, client

    def __getattr__(self, name: str) -> Any:
        # Delegate to the client, and keep the bound method: __getattr__ is slow, and the
        # executor looks a port method up for every action.
        method = getattr(self.client, name)
        setattr(self, name, method)
        return method

    def update_member(self, role: MemberRole) -> Gen:
        return (yield from self.client.update_member(self.node.member_value(role)))


@mypyc_attr(native_class=False)  # pgha compile: delegates with __getattr__
class NodePostgres:
    """The PostgreSQL port over the simulated server."""

    def __init__(self, pg: SimPostgres) -> None:
        self.pg = pg

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.pg, name)  # kept, as NodeDcs does
        setattr(self, name, method)
        return method

    def set_sync_standby_names(self, value: SyncStandbyNames) -> Gen:
        return (yield from self.pg.set_ssn(value))


class NodeCallbacks:
    def run(self, event: object, role: str) -> Gen:
        return (yield from _instant())


class SimWatchdog:
    """A watchdog device: armed with a timeout, kicked, disabled; resets the machine if starved."""

    def __init__(self, node: SimNode) -> None:
        self.node = node
        self.timeout_s: float | None = None
        self._generation = 0

    def available(self) -> bool:
        return self.node.watchdog_device

    def arm(self, timeout_s: float) -> Gen:
        self.timeout_s = timeout_s
        self._restart()
        self.node.world.record("watchdog", node=self.node.name, event="armed", timeout=timeout_s)
        return (yield from _instant(True))

    def kick(self) -> Gen:
        if self.timeout_s is not None:
            self._restart()
        return (yield from _instant())

    def disable(self) -> Gen:
        self.stop()
        self.node.world.record("watchdog", node=self.node.name, event="disabled")
        return (yield from _instant())

    def stop(self) -> None:
        self.timeout_s = None
        self._generation += 1

    def _restart(self) -> None:
        self._generation += 1
        assert self.timeout_s is not None
        generation = self._generation
        timer = self.node.world.env.timeout(self.timeout_s)  # a timer, not a process per kick
        timer.callbacks.append(lambda _: self._expire(generation))

    def _expire(self, generation: int) -> None:
        if generation == self._generation and self.timeout_s is not None:
            self.stop()
            self.node.world.record("watchdog", node=self.node.name, event="fired")
            self.node.reset()


class NodePeers:
    """REST calls to other database hosts: status probes and failsafe heartbeats."""

    def __init__(self, node: SimNode) -> None:
        self.node = node
        self.heartbeat: FailsafeHeartbeat | None = None

    def fetch_status(self, names: tuple[str, ...]) -> Gen:
        calls = [self.node.world.env.process(self._probe(name)) for name in names]
        if calls:
            yield simpy.AllOf(self.node.world.env, calls)
        return tuple(call.value for call in calls)

    def _probe(self, name: str) -> Gen:
        node = self.node
        if name not in node.registry:  # a name from a garbage /failsafe: no such host
            return PeerStatus(name=name, reachable=False)
        try:
            body = yield from node.net.call(
                node.name, name, node.rest_handler(name, "/patroni"), PEER_TIMEOUT_S
            )
        except (Unreachable, Refused):
            return PeerStatus(name=name, reachable=False)
        return peer_status_from_patroni(name, body)

    def post_failsafe(self, names: tuple[str, ...]) -> Gen:
        calls = [self.node.world.env.process(self._post(name)) for name in names]
        if calls:
            yield simpy.AllOf(self.node.world.env, calls)
        return tuple(name for name, call in zip(names, calls, strict=True) if call.value)

    def _post(self, name: str) -> Gen:
        node = self.node
        if name not in node.registry:  # no such host answers
            return False
        try:
            return (
                yield from node.net.call(
                    node.name, name, node.failsafe_handler(name, node.name), FAILSAFE_TIMEOUT_S
                )
            )
        except (Unreachable, Refused):
            return False

    def last_failsafe_heartbeat(self) -> FailsafeHeartbeat | None:
        return self.heartbeat


class SimNode:
    """A database host in the simulated world."""

    def __init__(
        self,
        world: World,
        net: Network,
        *,
        local: LocalConfig,
        pg: SimPostgres,
        dcs: SimDcs,
        clock: HostClock,
        registry: dict[str, SimNode],
        watchdog_device: bool = True,
        decide: Decide = engine_decide,
    ) -> None:
        self.world, self.net, self.env = world, net, world.env
        self.decide = decide
        self.name = local.name
        self.local = local
        self.pg = pg
        self.clock = clock
        self.registry = registry
        self.watchdog_device = watchdog_device
        self.watchdog = SimWatchdog(self)
        self.peers = NodePeers(self)
        self.ports = Ports(
            NodeDcs(self, dcs), NodePostgres(pg), self.watchdog, self.peers, NodeCallbacks()
        )
        self.dcs = dcs
        self.status: AgentStatus | None = None
        self.agent: simpy.Process | None = None
        self.agent_paused: simpy.Event | None = None
        self._wake: simpy.Event | None = None  # set while the agent sleeps: wake() ends the sleep
        self.machine_up = True

    # ---------------------------------------------------------------- clocks

    def now_mono(self) -> float:
        return self.clock.mono(self.env.now)

    def now_wall(self) -> float:
        return self.clock.wall(self.env.now)

    # ---------------------------------------------------------------- the agent

    def start_agent(self) -> None:
        self.status = AgentStatus(name=self.name, tags=self.local.tags)
        self.agent = self.env.process(self._run_agent())

    def _run_agent(self) -> Gen:
        steps = agent_steps(self.local, NodeState(name=self.name), decide=self.decide)
        request = next(steps)
        try:
            while True:
                if self.agent_paused is not None:
                    yield from self._agent_resumed()
                # The requests that take simulated time are generators; the others are answered
                # here at once (no generator per request: this loop runs for every step).
                answer: Any = None
                if isinstance(request, Act):
                    answer = yield from self._act(request.action)
                elif isinstance(request, Observe):
                    answer = yield from self._observe(request)
                elif isinstance(request, Sleep):
                    yield from self._sleep(request)
                elif isinstance(request, Now):
                    answer = self.now_mono()
                elif isinstance(request, Emit):
                    self._emit(request.event)
                else:
                    self._publish(request.status)
                request = steps.send(answer)
        except simpy.Interrupt:
            return
        except AgentHalted:
            self.world.record("agent", node=self.name, event="halted")
        self.status = None
        self.agent = None

    def _agent_resumed(self) -> Gen:
        while self.agent_paused is not None:
            yield self.agent_paused

    def _observe(self, request: Observe) -> Gen:
        cluster = request.previous_view
        if request.reread_dcs:
            try:
                cluster = yield from self.dcs.read_cluster()
            except DcsError:
                cluster = None
                self.world.record("dcs_error", node=self.name, op="read")
        postgres = self.pg.state()
        return observation(
            request.results,
            cluster=cluster,
            postgres=postgres,
            heartbeat=self.peers.heartbeat,
            watchdog_available=self.watchdog_device,
            now_mono=self.now_mono(),
            now_wall=self.now_wall(),
        )

    def _act(self, action: Action) -> Gen:
        call, method, args = bound_call(action, self.ports)
        try:
            result = yield from method(*args)
        except (DcsError, ActionFailed) as error:
            return error_outcome(call, error)
        return call.shape(result)

    def _sleep(self, request: Sleep) -> Gen:
        until = self.clock.true_time_at_mono(request.until_mono)
        timer = self.env.timeout(max(0.0, until - self.env.now))
        # Wake at the first of the timer, the watch (when asked) and wake(), as
        # `yield timer | watch` would, but without building a Condition for every sleep.
        wake = self._wake = self.env.event()

        def first(_: simpy.Event) -> None:
            if not wake.triggered:
                wake.succeed()

        timer.callbacks.append(first)
        if request.watch:
            self.dcs.watch().callbacks.append(first)
        yield wake
        self._wake = None

    def wake(self) -> None:
        """End the agent's sleep now, as the REST API does after an operator's request."""
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def _publish(self, status: AgentStatus) -> None:
        old = self.status
        self.status = status
        if old is None or old.role is not status.role:
            self.world.record("agent_role", node=self.name, role=status.role.value)

    def _emit(self, event: DecisionEvent | ActionsEvent) -> None:
        for kind, fields in history_records(event):
            self.world.record(kind, node=self.name, **fields)

    # ---------------------------------------------------------------- REST

    def member_value(self, role: MemberRole) -> Member:
        pg = self.pg.state()
        return Member(
            name=self.name,
            api_url=self.local.api_url,
            conn_url=self.local.conn_url,
            role=role,
            running=pg.run is not PgRun.STOPPED,
            timeline=pg.timeline,
            wal_lsn=pg.wal_lsn,
            tags=self.local.tags,
        )

    def rest_handler(self, name: str, path: str) -> Callable[[float], Gen]:
        """A handler that answers GET `path` on host `name` (its agent's REST API)."""
        target = self.registry[name]
        return lambda deadline: target._serve_rest(path, deadline)

    def _rest_resumed(self, deadline: float) -> Gen:
        # The REST API lives in the agent's process: a frozen agent answers nothing.
        while self.agent_paused is not None:
            if self.env.now >= deadline:
                raise Unreachable(f"{self.name}: the agent is frozen")
            yield self.agent_paused | self.env.timeout(deadline - self.env.now)

    def _serve_rest(self, path: str, deadline: float) -> Gen:
        if self.agent_paused is not None:
            yield from self._rest_resumed(deadline)
        status = self.status
        if status is None:
            raise Refused(self.name)
        live = replace(status, postgres=self.pg.state())
        if path == "/patroni":
            return patroni_body(live, self.now_mono())
        code, _ = answer(path, live, self.now_mono(), {})
        return code

    def operator_handler(self, name: str, key: FailoverKey) -> Callable[[float], Gen]:
        """POST /switchover or /failover on host `name`: its agent reads the cluster once, asks
        the engine's rule (`pgha.engine.operator`), writes `key` through its own etcd connection
        and wakes its loop at once (pgha's and Patroni's REST APIs do all of this). The answer
        is an OperatorAnswer; the request is answered once the key is written."""
        target = self.registry[name]
        return lambda deadline: target._accept_operator(key, deadline)

    def _accept_operator(self, key: FailoverKey, deadline: float) -> Gen:
        yield from self._rest_resumed(deadline)
        if self.status is None:
            raise Refused(self.name)
        try:
            view = yield from self.dcs.read_view()
        except DcsError:
            return OperatorAnswer(503, DCS_UNAVAILABLE)
        why = refusal(view, key, now_wall=self.now_wall())
        if why is not None:
            return OperatorAnswer(STATUS[why], why.value)
        try:
            yield from self.dcs.write_failover(key)
        except DcsError:
            return OperatorAnswer(503, DCS_UNAVAILABLE)
        self.wake()
        return OperatorAnswer(200 if key.scheduled_at_wall is None else 202)

    def failsafe_handler(self, name: str, leader: str) -> Callable[[float], Gen]:
        target = self.registry[name]
        return lambda deadline: target._accept_failsafe(leader, deadline)

    def _accept_failsafe(self, leader: str, deadline: float) -> Gen:
        yield from self._rest_resumed(deadline)
        if self.status is None:
            raise Refused(self.name)
        holds_lock = is_leader(self.status, self.now_mono())
        if heartbeat_refusal(pg_is_primary=self.pg.state().is_primary, holds_lock=holds_lock):
            return False
        self.peers.heartbeat = FailsafeHeartbeat(leader=leader, received_mono=self.now_mono())
        return True

    # ---------------------------------------------------------------- faults

    def kill_agent(self) -> None:
        if self.agent is not None and self.agent.is_alive:
            self.agent.interrupt()
        self.agent, self.status, self.agent_paused = None, None, None

    def pause_agent(self) -> None:
        if self.agent_paused is None:
            self.agent_paused = self.env.event()

    def resume_agent(self) -> None:
        paused, self.agent_paused = self.agent_paused, None
        if paused is not None:
            paused.succeed()

    def kill(self) -> None:
        """The machine dies: everything on it stops, its network goes silent."""
        self.kill_agent()
        self.pg.crash()
        self.watchdog.stop()
        self.peers.heartbeat = None
        self.machine_up = False
        self.net.set_down(self.name, True)

    def restart(self) -> None:
        """The machine comes back: network up, agent started; PostgreSQL waits for the agent."""
        if self.machine_up:
            return
        self.machine_up = True
        self.net.set_down(self.name, False)
        self.start_agent()

    def reset(self) -> None:
        """What a watchdog does: an immediate reset, and the machine boots again."""
        self.kill()
        self.env.process(self._reboot())

    def _reboot(self) -> Gen:
        yield self.env.timeout(REBOOT_S)
        self.restart()
