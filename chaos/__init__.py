"""The Docker world: images, cluster, nemesis, workload and history collection for running real
PostgreSQL, etcd, HAProxy and the pgha agent in containers while a chaos driver partitions, kills,
pauses and skews nodes.

It imports :mod:`pgha` (never the reverse) and writes the same JSON Lines history as the simulator.
`cli` is `pgha chaos`; `run` carries out one scenario; `image` builds the images offline;
`cluster`, `configs`, `node_init` (each container's PID 1), `haproxy` and `disks` make the
cluster; `nemesis` applies faults through `nemesis_faults`, `nemesis_writes`, `nemesis_ops`,
`nemesis_view` and `nemesis_world` (the fault port's Docker side) and `netrules`; `workload`
writes and reads over SQL; `history` merges everything into one history; `compare` sets the
simulator's prediction beside what happened.
"""

__all__ = [
    "cli",
    "cluster",
    "compare",
    "configs",
    "disks",
    "haproxy",
    "history",
    "image",
    "nemesis",
    "nemesis_faults",
    "nemesis_ops",
    "nemesis_view",
    "nemesis_world",
    "nemesis_writes",
    "netrules",
    "node_init",
    "run",
    "workload",
]
