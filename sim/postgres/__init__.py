"""Simulated PostgreSQL: WAL, timelines, lazy streaming and synchronous replication, lifecycle.

The pure WAL model is `sim.postgres.wal`; the server (`SimPostgres`) is built in layers:
`state`, `streaming`, `commits`, `lifecycle` and `server`.
"""

from sim.postgres.commits import WriteRejected, WriteUnknown
from sim.postgres.server import SimPostgres
from sim.postgres.state import PgTiming
from sim.postgres.wal import INITIAL_LSN

__all__ = ["INITIAL_LSN", "PgTiming", "SimPostgres", "WriteRejected", "WriteUnknown"]
