# One simulated run of a scenario: build the world it describes (network, etcd, database hosts with
# their agents, HAProxy, clients), apply its faults at their times, then heal everything, let the
# cluster settle, and read every node's data. Everything is keyed by the seed: the same scenario and
# seed give a byte-identical history. The run only writes the history; verdicts come from
# `pgha.checks`, which read the history and nothing else.
"""Build and run a simulation of one scenario."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from pgha.engine.rules import decide as engine_decide
from pgha.engine.values import LocalConfig
from pgha.events import jsonable
from pgha.scenario import EtcdPlacement, HAProxySpec, PostgresSpec, Scenario, WorkloadVia
from sim.clock import HostClock
from sim.dcs import SimDcs
from sim.etcd import EtcdCluster
from sim.faults import FaultInjector
from sim.haproxy import SimHAProxy
from sim.net import Latency, Network, Unreachable
from sim.node import Refused, SimNode
from sim.postgres import PgTiming, SimPostgres
from sim.workload import Workload
from sim.world import Recorder, World

if TYPE_CHECKING:
    from sim.variants import Variant

SETTLE_S = 60.0  # after the run's duration: heal everything, then let the cluster settle this long
CTL_HOST = "ctl"  # where operator actions (switchover, failover) come from
HAPROXY_HOST = "haproxy"


def _latency(spec: Any) -> Latency:
    return Latency(spec.median_s, max(spec.p99_s, spec.median_s))


@dataclass
class Simulation:
    """A built world, ready to run (faults see it as a sim.faults_world.SimCluster)."""

    scenario: Scenario
    world: World
    net: Network
    etcd: EtcdCluster
    nodes: dict[str, SimNode]
    clocks: dict[str, HostClock]
    ctl: SimDcs
    haproxy: SimHAProxy | None
    workload: Workload | None
    faults: FaultInjector | None = None

    def host_of(self, name: str) -> str:
        """The network host a scenario name lives on (etcd members may share node hosts)."""
        if self.scenario.etcd_placement is EtcdPlacement.ON_NODES and name in self.scenario.etcd:
            return self.scenario.node_names[self.scenario.etcd.index(name)]
        return name


def _expired(world: World, key: str, value: Any) -> None:
    if key == "leader":
        world.record("lock", node=value, event="expired")


def _etcd_hosts(scenario: Scenario) -> list[str]:
    if scenario.etcd_placement is EtcdPlacement.ON_NODES:
        return list(scenario.node_names[: len(scenario.etcd)])
    return list(scenario.etcd)


def _network(world: World, scenario: Scenario) -> Network:
    spec = scenario.network
    net = Network(world, _latency(spec.latency))
    net.down_fails_fast = spec.down_hosts == "unreachable"
    if spec.inter_dc_latency is not None:
        net.inter_dc_latency = _latency(spec.inter_dc_latency)
    dc_of = {host: dc for dc, hosts in spec.datacenters.items() for host in hosts}
    hosts = [*scenario.node_names, *_etcd_hosts(scenario), HAPROXY_HOST, CTL_HOST]
    clients = scenario.workload.clients if scenario.workload is not None else 0
    hosts += [f"c{i}" for i in range(1, clients + 1)]
    for host in dict.fromkeys(hosts):
        net.add_host(host, dc_of.get(host))
    if spec.loss:
        net.set_loss(net.hosts, spec.loss, fault_id=0)
    return net


def _clock(world: World, scenario: Scenario, host: str) -> HostClock:
    spec = scenario.clocks.get(host)
    origin = world.rng(f"clock/{host}").uniform(1_000.0, 1_000_000.0)
    if spec is None:
        return HostClock(mono_origin_s=origin)
    return HostClock(mono_origin_s=origin, offset_s=spec.offset_s, drift_ppm=spec.drift_ppm)


def pg_timing(spec: PostgresSpec) -> PgTiming:
    """The scenario's `postgres:` timings for the simulated servers (fields of the same names)."""
    return PgTiming(**asdict(spec))


def _node(
    sim: Simulation, spec: Any, pgs: dict[str, SimPostgres], variant: Variant | None
) -> SimNode:
    world, name = sim.world, spec.name
    local = LocalConfig(
        name=name, tags=spec.tags, api_url=f"http://{name}:8008", conn_url=f"postgres://{name}"
    )
    options = variant.dcs if variant is not None else None
    dcs = SimDcs(
        world,
        sim.net,
        sim.etcd,
        name,
        bootstrap_config=sim.scenario.config,
        linearizable=options.linearizable if options is not None else True,
        trust_lower_terms=options.trust_lower_terms if options is not None else False,
        unbounded_retries=options.unbounded_retries if options is not None else False,
    )
    pgs[name] = SimPostgres(world, sim.net, name, pgs, timing=pg_timing(sim.scenario.postgres))
    return SimNode(
        world,
        sim.net,
        local=local,
        pg=pgs[name],
        dcs=dcs,
        clock=sim.clocks[name],
        registry=sim.nodes,
        decide=variant.decide if variant is not None else engine_decide,
    )


def _haproxy(sim: Simulation) -> SimHAProxy:
    def probe(backend: str) -> Any:
        node = sim.nodes[backend]
        try:
            code = yield from sim.net.call(
                HAPROXY_HOST, backend, node.rest_handler(backend, "/primary"), 1.0
            )
        except (Unreachable, Refused):
            return False
        return code == 200

    spec = sim.scenario.workload.haproxy if sim.scenario.workload else HAProxySpec()
    return SimHAProxy(
        sim.world,
        sim.net,
        HAPROXY_HOST,
        list(sim.scenario.node_names),
        probe,
        interval_s=spec.check_interval_s,
        fall=spec.fall,
        rise=spec.rise,
    )


def build(
    scenario: Scenario,
    *,
    seed: int | None = None,
    recorder: Recorder | None = None,
    variant: Variant | None = None,
) -> Simulation:
    """Build the world of `scenario` (nothing runs yet).

    `variant`: a known-bad engine from `sim.variants` runs on every node instead of the real one.
    """
    world = World(seed=scenario.seed if seed is None else seed, recorder=recorder)
    net = _network(world, scenario)
    etcd = EtcdCluster(world, net, _etcd_hosts(scenario), pre_vote=scenario.network.etcd_pre_vote)
    etcd.on_expired.append(lambda key, value: _expired(world, key, value))
    clocks = {host: _clock(world, scenario, host) for host in net.hosts}
    ctl = SimDcs(world, net, etcd, CTL_HOST, bootstrap_config=scenario.config)
    sim = Simulation(scenario, world, net, etcd, {}, clocks, ctl, None, None)
    pgs: dict[str, SimPostgres] = {}
    for spec in scenario.nodes:
        sim.nodes[spec.name] = _node(sim, spec, pgs, variant)
    workload = scenario.workload
    if workload is not None:
        via_haproxy = workload.via is WorkloadVia.HAPROXY
        sim.haproxy = _haproxy(sim) if via_haproxy else None
        sim.workload = Workload(
            world,
            net,
            rate_per_s=workload.rate_per_s,
            via="haproxy" if via_haproxy else "direct",
            nodes=list(scenario.node_names),
            pg_of=lambda name: pgs[name] if sim.nodes[name].machine_up else None,
            haproxy=sim.haproxy,
            clients=workload.clients,
            timeout_s=workload.timeout_s,
        )
    sim.faults = FaultInjector(sim)
    return sim


def _record_start(sim: Simulation) -> None:
    scenario = sim.scenario
    sim.world.record(
        "run_start",
        scenario=scenario.name,
        seed=sim.world.seed,
        world="sim",
        nodes=list(scenario.node_names),
        etcd=list(scenario.etcd),
        config=scenario.config_json(),
        checks=jsonable(scenario.checks),
        duration=scenario.duration_s,
    )


def _final_reads(sim: Simulation) -> None:
    for name, node in sorted(sim.nodes.items()):
        sim.world.record("final_read", node=name, **node.pg.final_read())


def run(sim: Simulation, *, settle_s: float = SETTLE_S) -> Simulation:
    """Run the scenario to its end, heal, settle, read every node's data."""
    scenario, env = sim.scenario, sim.world.env
    _record_start(sim)
    for name in scenario.node_names:
        sim.nodes[name].pg.announce()
    for name in scenario.node_names:
        sim.nodes[name].start_agent()
    if sim.haproxy is not None:
        sim.haproxy.start()
    if sim.workload is not None:
        sim.workload.start(scenario.duration_s)
    assert sim.faults is not None
    sim.faults.schedule(scenario.faults)
    env.run(until=scenario.duration_s)
    sim.faults.heal_everything()
    env.run(until=scenario.duration_s + settle_s)
    _final_reads(sim)
    sim.world.record("run_end")
    return sim


def run_scenario(
    scenario: Scenario,
    *,
    seed: int | None = None,
    recorder: Recorder | None = None,
    variant: Variant | None = None,
) -> Simulation:
    """Build and run `scenario` (with `seed` instead of the scenario's own, if given)."""
    return run(build(scenario, seed=seed, recorder=recorder, variant=variant))
