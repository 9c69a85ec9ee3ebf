# What one node's PostgreSQL holds: its configuration, its data directory (system identifier, WAL,
# standby.signal, pg_controldata's shutdown state, primary_conninfo, synchronous_standby_names), its
# server process, its replication links, and the bookkeeping that history events and waiting
# commits need. The layers above add behaviour, one idea each: lazy streaming (streaming.py),
# client commits and synchronous replication (commits.py), faults and lifecycle operations
# (lifecycle.py), and what the agent and the checkers read (server.py).
"""The state a simulated PostgreSQL server holds, its timing, and a replication link."""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar

import simpy
from mypy_extensions import mypyc_attr

from pgha.engine.values import PgRun, SyncStandbyNames
from pgha.scenario import PostgresSpec
from sim.net import Network
from sim.postgres.wal import Piece
from sim.world import World

Steps = Generator[Any, Any, None]  # a SimPy generator that takes simulated time

_S = TypeVar("_S")  # the server class a link joins

_SCENARIO = PostgresSpec()  # a scenario's `postgres:` defaults


@dataclass(frozen=True, slots=True, kw_only=True)
class PgTiming:
    """How long PostgreSQL operations take, in simulated seconds (rates in bytes per second)."""

    start_s: float = _SCENARIO.start_s
    crash_recovery_s: float = _SCENARIO.crash_recovery_s  # added to a start after an unclean stop
    stop_fast_s: float = _SCENARIO.stop_fast_s
    stop_immediate_s: float = _SCENARIO.stop_immediate_s
    checkpoint_s: float = _SCENARIO.checkpoint_s  # the CHECKPOINT a graceful demote issues first
    promote_s: float = _SCENARIO.promote_s
    reload_s: float = 0.0  # follow(): primary_conninfo is reloadable (PostgreSQL 13+)
    rewind_base_s: float = 1.0
    rewind_bytes_per_s: float = 100e6
    basebackup_base_s: float = 2.0
    basebackup_bytes_per_s: float = 200e6
    initdb_s: float = 2.0


# mypyc cannot make a generic slotted dataclass a native class (its class creation fails)
@mypyc_attr(native_class=False)
@dataclass(slots=True)
class Stream(Generic[_S]):
    """A live walreceiver -> walsender connection; delays are drawn once per connection."""

    upstream: _S
    downstream: _S
    delay_s: float  # upstream -> downstream: a record arrives this long after its commit
    reply_s: float  # downstream -> upstream: the flush feedback a synchronous commit waits for
    since: float  # when the connection was made (catch-up is instantaneous)

    def ack_time(self, commit_t: float) -> float:
        """When the upstream learns that this standby flushed a record committed at commit_t."""
        return max(commit_t + self.delay_s, self.since) + self.reply_s


class ServerState:
    """One node's PostgreSQL server and data directory: what it holds, no behaviour yet."""

    world: World
    net: Network
    env: simpy.Environment
    name: str
    peers: Mapping[str, Self]  # every node's server by name (may include this one), read lazily
    record_size_b: int
    base_data_b: int
    timing: PgTiming

    def _init_state(self) -> None:
        # A server that never ran: no data directory, stopped, no streams. Data directory:
        self._data_present = False
        self._sysid: str | None = None
        self._pieces: list[Piece] = []
        self._in_recovery = True  # standby.signal
        self._clean = True  # pg_controldata: shut down (True) or in production / crashed
        self._following: str | None = None  # primary_conninfo
        self._ssn = SyncStandbyNames()
        # server process
        self._run = PgRun.STOPPED
        self._crashed = False
        self._stopping = False  # fast shutdown in progress: no new sessions, walsenders drain
        self._promoting = False
        self._resumed: simpy.Event | None = None  # set while paused (SIGSTOP)
        self._disk_full = False
        # replication
        self._stream: Stream[Self] | None = None
        self._downstream: dict[str, Stream[Self]] = {}
        # bookkeeping
        self._gen = 0  # bumped by crash: operations in flight fail
        self._epoch = 0  # bumped when sessions end: commits waiting for standbys become unknown
        self._wake: simpy.Event = self.env.event()
        self._wake_armed = False
        self._last_role: tuple[str, int | None] = ("stopped", None)
        self._last_writable = False

    @property
    def role(self) -> str:
        """The history role: primary, replica, starting, stopped or crashed."""
        if self._run is PgRun.STOPPED:
            return "crashed" if self._crashed else "stopped"
        if self._run is PgRun.STARTING:
            return "starting"
        return "replica" if self._in_recovery else "primary"

    @property
    def writable(self) -> bool:
        """Accepting writes: running, not in recovery, not shutting down, paused or out of disk."""
        return (
            self._run is PgRun.RUNNING
            and not self._in_recovery
            and not self._stopping
            and self._resumed is None
            and not self._disk_full
        )

    @property
    def paused(self) -> bool:
        return self._resumed is not None

    @property
    def running(self) -> bool:
        return self._run is PgRun.RUNNING
