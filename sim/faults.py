# Faults from the scenario, applied at their times to the simulated hosts, and recorded as really
# applied: the targets are resolved when the fault fires (a role such as `primary` means the node
# PostgreSQL really runs as primary on at that moment; the planner in pgha/faults asks the
# simulation through sim/faults_world.py), and `for:` undoes the fault on the same hosts it hit. A
# fault that cannot be applied (no primary to kill, say) is recorded as skipped with the reason,
# never silently dropped (docs/design.md, "Faults, as really applied"). The injector is this world's
# pgha.faults.FaultWorld, with one applier per fault kind of the registry (pgha.scenario's
# FAULT_KINDS). Operator requests (switchover, failover, config) and raw etcd writes are made in
# sim/faults_ops.py.
"""Applying and undoing scenario faults in the simulated world."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import simpy

from pgha.engine.values import FailoverKey
from pgha.events import jsonable
from pgha.faults import (
    Applied,
    ConfigChange,
    FaultResult,
    Firing,
    Resolver,
    Skip,
    Undo,
    appliers,
    config_ask,
    end_kills_on,
    end_network_faults,
    failover_ask,
    on,
    partition_pairs,
    switchover_ask,
)
from pgha.scenario import (
    ClockFault,
    ConfigFault,
    DiskFullFault,
    EtcdAction,
    EtcdFault,
    EtcdPutFault,
    FailoverFault,
    FaultSpec,
    HealFault,
    KillAgentFault,
    KillFault,
    KillPostgresFault,
    LatencyFault,
    LossFault,
    PartitionFault,
    PauseFault,
    PauseWhat,
    RestartFault,
    SwitchoverFault,
    Target,
)
from sim import faults_ops as ops
from sim.clock import WALL_EPOCH_S
from sim.faults_world import SimCluster, SimView
from sim.net import Latency
from sim.node import SimNode

Gen = Generator[simpy.Event, Any, Any]


class FaultInjector:
    """Schedules the scenario's faults on a built simulation (a pgha.faults.FaultWorld)."""

    def __init__(self, sim: SimCluster) -> None:
        self.sim = sim
        self.world = sim.world
        self.env = sim.world.env
        self.resolver = Resolver(SimView(sim), sim.world.rng("faults"))
        self._next_id = 1
        self.active: list[Applied] = []

    @property
    def now(self) -> float:
        """The simulated time."""
        return self.world.now

    def schedule(self, faults: tuple[FaultSpec, ...]) -> None:
        """Apply each fault at its time (and undo it after its `for`)."""
        for spec in faults:
            self.env.process(self._fire(spec))

    def _fire(self, spec: FaultSpec) -> Gen:
        yield self.env.timeout(max(0.0, spec.at_s - self.env.now))
        result = self.apply(spec)
        if not isinstance(result, Applied) or result.undo is None or not spec.undone_at_end:
            return  # skipped, nothing to undo, or written data that stays
        if spec.for_s is not None:
            yield self.env.timeout(spec.for_s)
            self.end(result)

    def apply(self, spec: FaultSpec) -> FaultResult:
        """Resolve the targets now, apply the fault, record its start or why it was skipped."""
        firing = Firing(id=self._next_id, spec=spec)
        self._next_id += 1
        try:
            applied = APPLY[spec.kind](self, firing)
        except Skip as skip:
            self._record("skipped", spec, firing.id, (), error=str(skip))
            return firing.skipped(str(skip))
        self._record("start", spec, firing.id, applied.hosts)
        if applied.undo is not None and spec.undone_at_end:
            # In force until its `for` ends, a `heal` (network faults), or the end of the run.
            self.active.append(applied)
        return applied

    def end(self, applied: Applied) -> float | None:
        """Undo one fault now (at its `for`, or when the run heals everything)."""
        if applied.ended_at is not None:
            return None
        applied.ended_at = self.now
        if applied.undo is not None:
            applied.undo()
        self._record("end", applied.spec, applied.id, applied.hosts)
        return applied.ended_at

    def heal_everything(self) -> float:
        """The end of the run: undo every fault still active, and heal the network."""
        for applied in list(self.active):
            self.end(applied)
        self.sim.net.heal_all()
        for node in self.sim.nodes.values():
            node.restart()
        return self.now

    def _record(
        self, phase: str, spec: FaultSpec, fault_id: int, hosts: tuple[str, ...], **extra: Any
    ) -> None:
        params = {k: v for k, v in jsonable(spec.params).items() if v is not None}
        label = spec.label_for(hosts)
        self.world.record(
            "fault",
            phase=phase,
            fault=spec.kind.value,
            targets=list(hosts),
            params=params,
            id=fault_id,
            label=label,
            **extra,
        )


# ---------------------------------------------------------------- machines and processes


def _each(nodes: list[SimNode], undo_one: Callable[[SimNode], None]) -> Undo:
    def undo() -> None:
        for node in nodes:
            undo_one(node)

    return undo


def _nodes(f: FaultInjector, target: Target) -> list[SimNode]:
    return [f.sim.nodes[host] for host in f.resolver.nodes(target)]


def _names(nodes: list[SimNode]) -> tuple[str, ...]:
    return tuple(node.name for node in nodes)


def _kill(f: FaultInjector, p: KillFault, firing: Firing) -> Applied:
    nodes = _nodes(f, p.target)
    for node in nodes:
        node.kill()
    return firing.applied(_names(nodes), _each(nodes, lambda n: n.restart()), at=f.now)


def _restart(f: FaultInjector, p: RestartFault, firing: Firing) -> Applied:
    nodes = _nodes(f, p.target)
    running = [node for node in nodes if node.machine_up]
    end_kills_on(f, _names(nodes))
    for node in nodes:
        if node in running:
            node.reset()  # a running machine reboots
        else:
            node.restart()  # a dead one starts (if ending its kill has not started it already)
    return firing.applied(_names(nodes), None, at=f.now)


def _kill_agent(f: FaultInjector, p: KillAgentFault, firing: Firing) -> Applied:
    nodes = _nodes(f, p.target)
    for node in nodes:
        node.kill_agent()

    def undo() -> None:
        for node in nodes:
            if node.machine_up and node.agent is None:
                node.start_agent()

    return firing.applied(_names(nodes), undo, at=f.now)


def _kill_postgres(f: FaultInjector, p: KillPostgresFault, firing: Firing) -> Applied:
    nodes = _nodes(f, p.target)
    for node in nodes:
        node.pg.crash()
    return firing.applied(_names(nodes), None, at=f.now)


def _pause(f: FaultInjector, p: PauseFault, firing: Firing) -> Applied:
    nodes = _nodes(f, p.target)
    pause, resume = PAUSE[p.what]
    for node in nodes:
        pause(f, node)
    return firing.applied(_names(nodes), _each(nodes, lambda n: resume(f, n)), at=f.now)


def _pause_node(f: FaultInjector, node: SimNode) -> None:
    f.sim.net.pause(node.name)
    node.pause_agent()
    node.pg.pause()


def _resume_node(f: FaultInjector, node: SimNode) -> None:
    node.pg.resume()
    node.resume_agent()
    f.sim.net.resume(node.name)


Pauser = Callable[[FaultInjector, SimNode], None]
PAUSE: dict[PauseWhat, tuple[Pauser, Pauser]] = {
    PauseWhat.NODE: (_pause_node, _resume_node),
    PauseWhat.AGENT: (lambda f, n: n.pause_agent(), lambda f, n: n.resume_agent()),
    PauseWhat.POSTGRES: (lambda f, n: n.pg.pause(), lambda f, n: n.pg.resume()),
}


def _disk_full(f: FaultInjector, p: DiskFullFault, firing: Firing) -> Applied:
    nodes = _nodes(f, p.target)
    for node in nodes:
        node.pg.disk_full(True)
    return firing.applied(_names(nodes), _each(nodes, lambda n: n.pg.disk_full(False)), at=f.now)


# ---------------------------------------------------------------- network


def _partition(f: FaultInjector, p: PartitionFault, firing: Firing) -> Applied:
    net = f.sim.net
    pairs, hosts = partition_pairs(p, f.resolver.resolve, net.hosts)
    net.block(pairs, firing.id)
    return firing.applied(hosts, lambda: net.unblock(firing.id), at=f.now)


def _heal(f: FaultInjector, _: HealFault, firing: Firing) -> Applied:
    end_network_faults(f)
    f.sim.net.heal_all()
    return firing.applied((), None, at=f.now)


def _loss(f: FaultInjector, p: LossFault, firing: Firing) -> Applied:
    hosts = f.resolver.resolve(p.targets)
    f.sim.net.set_loss(hosts, p.rate, firing.id)
    return firing.applied(hosts, lambda: f.sim.net.clear(firing.id), at=f.now)


def _latency(f: FaultInjector, p: LatencyFault, firing: Firing) -> Applied:
    hosts = f.resolver.resolve(p.targets)
    f.sim.net.set_latency(hosts, Latency(p.median_s, p.p99_s), firing.id)
    return firing.applied(hosts, lambda: f.sim.net.clear(firing.id), at=f.now)


# ---------------------------------------------------------------- clocks and etcd


def _clock(f: FaultInjector, p: ClockFault, firing: Firing) -> Applied:
    hosts = f.resolver.resolve(p.target)
    clocks = [f.sim.clocks[h] for h in hosts]
    now = f.env.now
    before = [(c.wall(now) - now, c.drift_ppm) for c in clocks]
    for clock in clocks:
        if p.offset_s is not None:
            clock.jump(now, p.offset_s - (clock.wall(now) - now - WALL_EPOCH_S))
        if p.drift_ppm is not None:
            clock.set_drift(now, p.drift_ppm)
        if p.jump_s is not None:
            clock.jump(now, p.jump_s)

    def undo() -> None:
        t = f.env.now
        for clock, (offset, drift) in zip(clocks, before, strict=True):
            clock.set_drift(t, drift)
            clock.jump(t, offset - (clock.wall(t) - t))

    # A jump is a one-off step of the wall clock: nothing to undo.
    only_jump = p.offset_s is None and p.drift_ppm is None
    return firing.applied(hosts, None if only_jump else undo, at=f.now)


def _etcd(f: FaultInjector, p: EtcdFault, firing: Firing) -> Applied:
    hosts = f.resolver.resolve(p.member, etcd=True)
    cluster = f.sim.etcd
    for host in hosts:
        cluster.stop(host) if p.action is EtcdAction.KILL else f.sim.net.pause(host)

    def undo() -> None:
        for host in hosts:
            cluster.start(host) if p.action is EtcdAction.KILL else f.sim.net.resume(host)

    return firing.applied(hosts, undo, at=f.now)


# ---------------------------------------------------------------- operator requests, etcd writes


def _switchover(f: FaultInjector, p: SwitchoverFault, firing: Firing) -> Applied:
    ask = switchover_ask(p, f.resolver)
    at = None if p.scheduled_at_s is None else WALL_EPOCH_S + p.scheduled_at_s
    key = FailoverKey(leader=ask.leader, candidate=ask.candidate, scheduled_at_wall=at)
    ops.ask(f.sim, ops.Request("switchover", key, firing.id), ask.order)
    return firing.applied(ask.parties, None, at=f.now)


def _failover(f: FaultInjector, p: FailoverFault, firing: Firing) -> Applied:
    ask = failover_ask(p, f.resolver)
    key = FailoverKey(candidate=ask.candidate)
    ops.ask(f.sim, ops.Request("failover", key, firing.id), ask.order)
    return firing.applied(ask.parties, None, at=f.now)


def _config(f: FaultInjector, p: ConfigFault, firing: Firing) -> Applied:
    ask = config_ask(p, f.resolver)
    undo = ops.change_config(f.sim, ConfigChange.of(firing.id, p, ask))
    return firing.applied(ask.asked, undo, at=f.now)


def _etcd_put(f: FaultInjector, p: EtcdPutFault, firing: Firing) -> Applied:
    if f.sim.etcd.leader is None:
        raise Skip("etcd has no leader: a put cannot commit")
    return firing.applied((), ops.put_raw(f.sim.etcd, p), at=f.now)


APPLY = appliers(
    "sim",
    on(KillFault, _kill),
    on(RestartFault, _restart),
    on(KillAgentFault, _kill_agent),
    on(KillPostgresFault, _kill_postgres),
    on(PauseFault, _pause),
    on(PartitionFault, _partition),
    on(HealFault, _heal),
    on(ClockFault, _clock),
    on(EtcdFault, _etcd),
    on(LossFault, _loss),
    on(LatencyFault, _latency),
    on(DiskFullFault, _disk_full),
    on(SwitchoverFault, _switchover),
    on(FailoverFault, _failover),
    on(ConfigFault, _config),
    on(EtcdPutFault, _etcd_put),
)
