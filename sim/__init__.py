"""The simulated world: a SimPy model of the network, etcd, clocks, PostgreSQL, watchdog, HAProxy,
clients and faults, in which the real :mod:`pgha.engine` runs many times faster than real time.

It imports :mod:`pgha` (never the reverse) and writes the same JSON Lines history as a real run.
`run` builds and runs one scenario (`run_scenario`); `explore` searches fault schedules, shrinks
what it finds and writes reproducers; `analysis` is the notebooks' `simulate` and `sweep`;
`variants` are known-bad engines for the bug zoo. The model: `world` (environment, seeded random
streams, recorder), `clock`, `net`, `etcd` and `dcs` (the engine's DCS port), `postgres` (WAL,
timelines, streaming and the server), `node` (one database host and its ports), `haproxy`,
`workload`, and `faults` with `faults_ops` and `faults_world` (the fault port's simulator side).

The optional compiled build (``pgha compile``) is installed here too, before any of the modules it
replaces can be imported: :mod:`pgha.compiled` decides once per process, whichever package comes
first.
"""

from pgha.compiled import install as _install_compiled

_install_compiled()

__all__ = [
    "analysis",
    "clock",
    "dcs",
    "etcd",
    "explore",
    "faults",
    "faults_ops",
    "faults_world",
    "haproxy",
    "net",
    "node",
    "postgres",
    "run",
    "variants",
    "workload",
    "world",
]
