"""The Docker world: images, cluster, nemesis, workload and history collection for running real
PostgreSQL, etcd, HAProxy and the pgha agent in containers while a chaos driver partitions, kills,
pauses and skews nodes.

It imports :mod:`pgha` (never the reverse) and writes the same JSON Lines history as the simulator.
Nothing is implemented yet.
"""
