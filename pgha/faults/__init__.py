"""Applying a scenario's faults, as both worlds do it: the port and the planner.

The simulator (sim/faults.py) and the chaos harness's nemesis (chaos/nemesis.py) implement the
`FaultWorld` port and return one result type (`Applied`, `Skipped`, with its `Undo`); each keeps a
table of one applier per fault kind, built with `appliers` and checked against the registry of
kinds (`pgha.scenario.FAULT_KINDS`). The pure planner (`Resolver`, `partition_pairs`,
`asking_order` and the operator requests) resolves targets and the operator's asking order for
both worlds from what the world answers through a `ClusterView`. Nothing here imports sim/ or
chaos/, and nothing here does I/O.
"""

from pgha.faults._plan import (
    ClusterView,
    ConfigChange,
    Document,
    OperatorAsk,
    Pair,
    Resolver,
    asking_order,
    config_ask,
    failover_ask,
    partition_pairs,
    split,
    switchover_ask,
)
from pgha.faults._world import (
    Applied,
    Applier,
    FaultResult,
    FaultWorld,
    Firing,
    Skip,
    Skipped,
    Undo,
    appliers,
    end_kills_on,
    end_network_faults,
    on,
)

__all__ = [
    "Applied",
    "Applier",
    "ClusterView",
    "ConfigChange",
    "Document",
    "FaultResult",
    "FaultWorld",
    "Firing",
    "OperatorAsk",
    "Pair",
    "Resolver",
    "Skip",
    "Skipped",
    "Undo",
    "appliers",
    "asking_order",
    "config_ask",
    "end_kills_on",
    "end_network_faults",
    "failover_ask",
    "on",
    "partition_pairs",
    "split",
    "switchover_ask",
]
