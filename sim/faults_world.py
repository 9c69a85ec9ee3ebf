# What applying faults needs of a built simulation, as a Protocol: sim/run.py's Simulation has all
# of it, and the fault modules (sim/faults.py, sim/faults_ops.py) depend on this instead of on the
# run, so the run imports the injector and nothing imports back. The simulation's answers to the
# planner's questions (pgha.faults.ClusterView: who runs as primary, as replicas, the synchronous
# standbys, the etcd leader) are read here from the simulated hosts, as the chaos harness reads
# them from the real ones.
"""The simulation as the fault injector sees it, and its answers to the planner."""

from __future__ import annotations

from typing import Protocol

from pgha.engine.values import SyncKey
from pgha.scenario import Scenario
from sim.clock import HostClock
from sim.dcs import SimDcs
from sim.etcd import EtcdCluster
from sim.net import Network
from sim.node import SimNode
from sim.world import World


class SimCluster(Protocol):
    """A built simulation (sim.run.Simulation), as faults are applied to it."""

    scenario: Scenario
    world: World
    net: Network
    etcd: EtcdCluster
    nodes: dict[str, SimNode]
    clocks: dict[str, HostClock]
    ctl: SimDcs  # the operator's own etcd client, on the `ctl` host

    def host_of(self, name: str) -> str:
        """The network host a scenario name lives on (etcd members may share node hosts)."""
        ...


class SimView:
    """The simulation's answers to the planner (a pgha.faults.ClusterView). etcd members are
    named by their hosts, as the simulated etcd cluster names them."""

    def __init__(self, sim: SimCluster) -> None:
        self.sim = sim

    def nodes(self) -> tuple[str, ...]:
        return tuple(self.sim.nodes)

    def etcd_members(self) -> tuple[str, ...]:
        return tuple(self.sim.etcd.members)

    def primary(self) -> str | None:
        primaries = [n for n, node in self.sim.nodes.items() if node.pg.state().is_primary]
        return primaries[0] if primaries else None

    def replicas(self) -> list[str]:
        return [
            name
            for name, node in self.sim.nodes.items()
            if node.machine_up and not node.pg.state().is_primary
        ]

    def sync_standbys(self) -> list[str]:
        entry = self.sim.etcd.kv.get("sync")
        value = None if entry is None else entry.value  # raw bytes (etcd_put): no standby
        return list(value.standbys) if isinstance(value, SyncKey) else []

    def etcd_leader(self) -> str | None:
        leader: str | None = self.sim.etcd.leader
        return leader

    def host_of(self, name: str) -> str:
        return self.sim.host_of(name)

    def member(self, name: str) -> str:
        return self.sim.host_of(name)
