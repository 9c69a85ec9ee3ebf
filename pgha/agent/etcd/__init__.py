"""The DCS port over etcd v3: `session` (bounded gRPC calls and the lease), `codec` (each key
decoded on its own, never a crash), `dcs` (the engine's lock and keys) and `admin` (operator
writes through compare-and-set).
"""

__all__ = ["admin", "codec", "dcs", "session"]
