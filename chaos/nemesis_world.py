# What the appliers of the Docker world (chaos/nemesis_faults.py, chaos/nemesis_writes.py) need of
# the nemesis, as a Protocol: chaos/nemesis.py's Nemesis has all of it, and the appliers depend on
# this instead of on the nemesis, so the nemesis imports its appliers and nothing imports back. It
# is the shared pgha.faults.FaultWorld, plus the cluster, its primitives (chaos/nemesis_ops.py),
# the planner that resolves targets, the machine room's state (machines a fault killed, boots
# due) and the history the nemesis writes.
"""The nemesis as its appliers see it."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from pgha.faults import FaultWorld, Resolver
from pgha.scenario import FaultSpec, Scenario

if TYPE_CHECKING:
    from chaos.cluster import ChaosCluster
    from chaos.nemesis_ops import Ops


class NemesisWorld(FaultWorld, Protocol):
    """A nemesis (chaos.nemesis.Nemesis), as faults are applied by it."""

    cluster: ChaosCluster
    scenario: Scenario
    ops: Ops  # the primitives: docker, signals, iptables, clocks, disks, REST requests
    resolver: Resolver  # the planner, asking the containers what it needs to know
    lock: threading.RLock  # guards the machine room's state and the records
    down_by_fault: set[str]  # machines a fault killed: not the watcher's to boot
    boots: dict[str, float]  # host -> when the watcher boots it again
    reboot_after_s: float
    operators: list[threading.Thread]  # operator requests in flight
    t0_mono: float  # the run's start (scheduled switchovers are relative to it)

    def record(
        self, t_mono: float, kind: str, node: str | None = None, /, **fields: object
    ) -> None:
        """Record one history event that happened at host monotonic time `t_mono`."""
        ...

    def record_fault(
        self,
        phase: str,
        t_mono: float,
        spec: FaultSpec,
        fid: int,
        hosts: Sequence[str],
        **extra: object,
    ) -> None:
        """Record a fault's start, end or skip."""
        ...
