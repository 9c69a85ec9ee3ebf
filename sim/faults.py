# Faults from the scenario, applied at their times to the simulated hosts, and recorded as really
# applied: the targets are resolved when the fault fires (a role such as `primary` means the node
# PostgreSQL really runs as primary on at that moment), and `for:` undoes the fault on the same
# hosts it hit. A fault that cannot be applied (no primary to kill, say) is recorded as skipped
# with the reason, never silently dropped (DESIGN.md, "Faults, as really applied"). Operator
# requests (switchover, failover, config) and raw etcd writes are in sim/faults_ops.py.
"""Applying and undoing scenario faults in the simulated world."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import simpy

from pgha.engine.values import FailoverKey, SyncKey
from pgha.events import jsonable
from pgha.scenario import (
    ClockFault,
    ConfigFault,
    DiskFullFault,
    EtcdAction,
    EtcdFault,
    EtcdPutFault,
    FailoverFault,
    FaultKind,
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
    TargetRole,
)
from sim import faults_ops as ops
from sim.clock import WALL_EPOCH_S
from sim.net import Latency

if TYPE_CHECKING:
    from sim.node import SimNode
    from sim.run import Simulation

Gen = Generator[simpy.Event, Any, Any]
Undo = Callable[[], None]


class Skip(Exception):
    """The fault cannot be applied now (the message says why)."""


@dataclass
class Applied:
    """A fault that was applied: its id, hosts, and how to undo it."""

    id: int
    spec: FaultSpec
    hosts: tuple[str, ...]
    undo: Undo | None
    done: bool = False


class FaultInjector:
    """Schedules the scenario's faults on a built simulation (`sim.run.Simulation`)."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.world = sim.world
        self.env = sim.world.env
        self._rng = sim.world.rng("faults")
        self._next_id = 1
        self.firing_id = 0  # the id of the fault being applied (network faults are keyed by it)
        self.active: list[Applied] = []

    def schedule(self, faults: tuple[FaultSpec, ...]) -> None:
        for spec in faults:
            self.env.process(self._fire(spec))

    def _fire(self, spec: FaultSpec) -> Gen:
        yield self.env.timeout(max(0.0, spec.at_s - self.env.now))
        fault_id, self._next_id = self._next_id, self._next_id + 1
        self.firing_id = fault_id
        try:
            hosts, undo = APPLY[spec.kind](self, spec.params)
        except Skip as skip:
            self._record("skipped", spec, fault_id, (), error=str(skip))
            return
        applied = Applied(fault_id, spec, hosts, undo)
        self._record("start", spec, fault_id, hosts)
        if undo is None or not spec.undone_at_end:
            return
        # Still in force until its `for` ends, a `heal` (network faults), or the end of the run.
        self.active.append(applied)
        if spec.for_s is not None:
            yield self.env.timeout(spec.for_s)
            self.end(applied)

    def end(self, applied: Applied) -> None:
        """Undo one fault now (at its `for`, or when the run heals everything)."""
        if applied.done:
            return
        applied.done = True
        if applied.undo is not None:
            applied.undo()
        self._record("end", applied.spec, applied.id, applied.hosts)

    def heal_everything(self) -> None:
        """The end of the run: undo every fault still active, and heal the network."""
        for applied in list(self.active):
            self.end(applied)
        self.sim.net.heal_all()
        for node in self.sim.nodes.values():
            node.restart()

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

    # ---------------------------------------------------------------- target resolution

    def resolve(self, target: Target, *, etcd: bool = False) -> tuple[str, ...]:
        if target.role is None:
            return tuple(self.sim.host_of(name) for name in target.names)
        host = RESOLVE[target.role](self, etcd)
        if host is None:
            raise Skip(f"no {target.role.value} right now")
        return (host,)

    def one(self, target: Target) -> str:
        return self.resolve(target)[0]

    def _primary(self, _: bool) -> str | None:
        primaries = [n for n, node in self.sim.nodes.items() if node.pg.state().is_primary]
        return primaries[0] if primaries else None

    def _replica(self, _: bool) -> str | None:
        replicas = [
            n
            for n, node in sorted(self.sim.nodes.items())
            if node.machine_up and not node.pg.state().is_primary
        ]
        return self._rng.choice(replicas) if replicas else None

    def _sync_standby(self, etcd: bool) -> str | None:
        entry = self.sim.etcd.kv.get("sync")
        value = None if entry is None else entry.value  # raw bytes (etcd_put): no standby
        standbys = sorted(value.standbys) if isinstance(value, SyncKey) else []
        return self._rng.choice(standbys) if standbys else self._replica(etcd)

    def _etcd_leader(self, _: bool) -> str | None:
        leader: str | None = self.sim.etcd.leader
        return leader

    def _random(self, etcd: bool) -> str | None:
        pool = sorted(self.sim.etcd.members) if etcd else sorted(self.sim.nodes)
        return self._rng.choice(pool)


RESOLVE: dict[TargetRole, Callable[[FaultInjector, bool], str | None]] = {
    TargetRole.PRIMARY: FaultInjector._primary,
    TargetRole.REPLICA: FaultInjector._replica,
    TargetRole.SYNC_STANDBY: FaultInjector._sync_standby,
    TargetRole.ETCD_LEADER: FaultInjector._etcd_leader,
    TargetRole.RANDOM: FaultInjector._random,
}

Applier = Callable[[FaultInjector, Any], tuple[tuple[str, ...], Undo | None]]


def _each(nodes: list[SimNode], undo_one: Callable[[SimNode], None]) -> Undo:
    def undo() -> None:
        for node in nodes:
            undo_one(node)

    return undo


def _nodes(f: FaultInjector, target: Target) -> list[SimNode]:
    hosts = f.resolve(target)
    missing = [h for h in hosts if h not in f.sim.nodes]
    if missing:
        raise Skip(f"{', '.join(missing)} is not a database node")
    return [f.sim.nodes[h] for h in hosts]


def _kill(f: FaultInjector, p: KillFault) -> tuple[tuple[str, ...], Undo | None]:
    nodes = _nodes(f, p.target)
    for node in nodes:
        node.kill()
    return tuple(n.name for n in nodes), _each(nodes, lambda n: n.restart())


def _restart(f: FaultInjector, p: RestartFault) -> tuple[tuple[str, ...], Undo | None]:
    nodes = _nodes(f, p.target)
    running = [node for node in nodes if node.machine_up]
    names = {node.name for node in nodes}
    for applied in list(f.active):  # a kill still in force on these machines ends here
        if applied.spec.kind is FaultKind.KILL and names & set(applied.hosts):
            f.end(applied)
    for node in nodes:
        if node in running:
            node.reset()  # a running machine reboots
        else:
            node.restart()  # a dead one starts (if ending its kill has not started it already)
    return tuple(n.name for n in nodes), None


def _kill_agent(f: FaultInjector, p: KillAgentFault) -> tuple[tuple[str, ...], Undo | None]:
    nodes = _nodes(f, p.target)
    for node in nodes:
        node.kill_agent()

    def undo() -> None:
        for node in nodes:
            if node.machine_up and node.agent is None:
                node.start_agent()

    return tuple(n.name for n in nodes), undo


def _kill_postgres(f: FaultInjector, p: KillPostgresFault) -> tuple[tuple[str, ...], Undo | None]:
    nodes = _nodes(f, p.target)
    for node in nodes:
        node.pg.crash()
    return tuple(n.name for n in nodes), None


def _pause(f: FaultInjector, p: PauseFault) -> tuple[tuple[str, ...], Undo | None]:
    nodes = _nodes(f, p.target)
    for node in nodes:
        PAUSE[p.what][0](f, node)
    resume = PAUSE[p.what][1]
    return tuple(n.name for n in nodes), _each(nodes, lambda n: resume(f, n))


def _pause_node(f: FaultInjector, node: SimNode) -> None:
    f.sim.net.pause(node.name)
    node.pause_agent()
    node.pg.pause()


def _resume_node(f: FaultInjector, node: SimNode) -> None:
    node.pg.resume()
    node.resume_agent()
    f.sim.net.resume(node.name)


PAUSE: dict[PauseWhat, tuple[Callable[[FaultInjector, SimNode], None], ...]] = {
    PauseWhat.NODE: (_pause_node, _resume_node),
    PauseWhat.AGENT: (lambda f, n: n.pause_agent(), lambda f, n: n.resume_agent()),
    PauseWhat.POSTGRES: (lambda f, n: n.pg.pause(), lambda f, n: n.pg.resume()),
}


def _partition(f: FaultInjector, p: PartitionFault) -> tuple[tuple[str, ...], Undo | None]:
    fault_id = f.firing_id
    pairs, hosts = _partition_pairs(f, p)
    f.sim.net.block(pairs, fault_id)
    return hosts, lambda: f.sim.net.unblock(fault_id)


def _partition_pairs(
    f: FaultInjector, p: PartitionFault
) -> tuple[list[tuple[str, str]], tuple[str, ...]]:
    everyone = f.sim.net.hosts
    if p.isolate is not None:
        inside = f.resolve(p.isolate)
        return _split([list(inside), [h for h in everyone if h not in inside]]), inside
    if p.groups is not None:
        groups = [[h for t in group for h in f.resolve(t)] for group in p.groups]
        return _split(groups), tuple(h for g in groups for h in g)
    if p.one_way is not None:
        src, dst = f.resolve(p.one_way[0]), f.resolve(p.one_way[1])
        return [(s, d) for s in src for d in dst], (*src, *dst)
    assert p.bridge is not None
    a, b = f.resolve(p.bridge.a), f.resolve(p.bridge.b)
    return _split([list(a), list(b)]), (*a, *b, *f.resolve(p.bridge.bridge))


def _split(groups: list[list[str]]) -> list[tuple[str, str]]:
    # Hosts in different groups cannot reach each other, both ways.
    pairs: list[tuple[str, str]] = []
    for i, group in enumerate(groups):
        for other in groups[i + 1 :]:
            for a in group:
                pairs.extend(pair for b in other for pair in ((a, b), (b, a)))
    return pairs


def _heal(f: FaultInjector, _: HealFault) -> tuple[tuple[str, ...], Undo | None]:
    for applied in list(f.active):
        if applied.spec.kind in (FaultKind.PARTITION, FaultKind.LOSS, FaultKind.LATENCY):
            f.end(applied)
    f.sim.net.heal_all()
    return (), None


def _clock(f: FaultInjector, p: ClockFault) -> tuple[tuple[str, ...], Undo | None]:
    hosts = f.resolve(p.target)
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
    return hosts, None if only_jump else undo


def _etcd(f: FaultInjector, p: EtcdFault) -> tuple[tuple[str, ...], Undo | None]:
    hosts = f.resolve(p.member, etcd=True)
    cluster = f.sim.etcd
    for host in hosts:
        cluster.stop(host) if p.action is EtcdAction.KILL else f.sim.net.pause(host)

    def undo() -> None:
        for host in hosts:
            cluster.start(host) if p.action is EtcdAction.KILL else f.sim.net.resume(host)

    return hosts, undo


def _loss(f: FaultInjector, p: LossFault) -> tuple[tuple[str, ...], Undo | None]:
    hosts = f.resolve(p.targets)
    fault_id = f.firing_id
    f.sim.net.set_loss(hosts, p.rate, fault_id)
    return hosts, lambda: f.sim.net.clear(fault_id)


def _latency(f: FaultInjector, p: LatencyFault) -> tuple[tuple[str, ...], Undo | None]:
    hosts = f.resolve(p.targets)
    fault_id = f.firing_id
    f.sim.net.set_latency(hosts, Latency(p.median_s, p.p99_s), fault_id)
    return hosts, lambda: f.sim.net.clear(fault_id)


def _disk_full(f: FaultInjector, p: DiskFullFault) -> tuple[tuple[str, ...], Undo | None]:
    nodes = _nodes(f, p.target)
    for node in nodes:
        node.pg.disk_full(True)
    return tuple(n.name for n in nodes), _each(nodes, lambda n: n.pg.disk_full(False))


def _switchover(f: FaultInjector, p: SwitchoverFault) -> tuple[tuple[str, ...], Undo | None]:
    leader = f.one(p.leader) if p.leader is not None else f._primary(False)
    if leader is None:
        raise Skip("no primary to switch over from")
    candidate = f.one(p.candidate) if p.candidate is not None else None
    at = None if p.scheduled_at_s is None else WALL_EPOCH_S + p.scheduled_at_s
    key = FailoverKey(leader=leader, candidate=candidate, scheduled_at_wall=at)
    ops.ask(f, ops.Request("switchover", key, f.firing_id), ops.first(f, leader))
    return tuple(h for h in (leader, candidate) if h), None


def _failover(f: FaultInjector, p: FailoverFault) -> tuple[tuple[str, ...], Undo | None]:
    candidate = f.one(p.candidate)
    request = ops.Request("failover", FailoverKey(candidate=candidate), f.firing_id)
    ops.ask(f, request, ops.first(f, candidate))
    return (candidate,), None


def _config(f: FaultInjector, p: ConfigFault) -> tuple[tuple[str, ...], Undo | None]:
    return ops.change_config(f, p)


def _etcd_put(f: FaultInjector, p: EtcdPutFault) -> tuple[tuple[str, ...], Undo | None]:
    if f.sim.etcd.leader is None:
        raise Skip("etcd has no leader: a put cannot commit")
    return ops.put_raw(f, p)


APPLY: dict[FaultKind, Applier] = {
    FaultKind.KILL: _kill,
    FaultKind.RESTART: _restart,
    FaultKind.KILL_AGENT: _kill_agent,
    FaultKind.KILL_POSTGRES: _kill_postgres,
    FaultKind.PAUSE: _pause,
    FaultKind.PARTITION: _partition,
    FaultKind.HEAL: _heal,
    FaultKind.CLOCK: _clock,
    FaultKind.ETCD: _etcd,
    FaultKind.LOSS: _loss,
    FaultKind.LATENCY: _latency,
    FaultKind.DISK_FULL: _disk_full,
    FaultKind.SWITCHOVER: _switchover,
    FaultKind.FAILOVER: _failover,
    FaultKind.CONFIG: _config,
    FaultKind.ETCD_PUT: _etcd_put,
}
