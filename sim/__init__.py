"""The simulated world: a SimPy model of the network, etcd, clocks, PostgreSQL, watchdog, HAProxy,
clients and faults, in which the real :mod:`pgha.engine` runs many times faster than real time.

It imports :mod:`pgha` (never the reverse) and writes the same JSON Lines history as a real run.
Nothing is implemented yet.
"""
