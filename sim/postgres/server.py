# One node's PostgreSQL, as far as HA decisions and the invariants can tell: the WAL (positions,
# timelines, timeline history, which client writes it holds), streaming and synchronous replication,
# and the lifecycle operations the agent runs (bootstrap, clone, start, stop, promote, pg_rewind,
# reinit), each taking simulated time. Checkers read the history, so every change of role, timeline
# or writability is recorded as it happens (docs/history.md). The server is built in layers, one
# module each (state, streaming, commits, lifecycle); this one adds what is read from outside.
"""The simulated PostgreSQL server: construction, and what the agent and the checkers read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pgha.engine.values import PostgresState
from sim.net import Network
from sim.postgres.lifecycle import Lifecycle
from sim.postgres.state import PgTiming
from sim.postgres.wal import timeline_history, timeline_start, wal_end, write_ids
from sim.world import World


class SimPostgres(Lifecycle):
    """One node's PostgreSQL server and data directory."""

    def __init__(
        self,
        world: World,
        net: Network,
        name: str,
        peers: Mapping[str, Self],
        *,
        record_size_b: int = 128,
        base_data_b: int = 40_000_000,
        timing: PgTiming | None = None,
    ) -> None:
        self.world = world
        self.net = net
        self.env = world.env
        self.name = name
        self.peers = peers  # every node's server by name (may include this one), read lazily
        self.record_size_b = record_size_b
        self.base_data_b = base_data_b
        self.timing = timing if timing is not None else PgTiming()
        self._init_state()
        net.listeners.append(self.refresh)  # partitions, heals, hosts down or paused

    # ------------------------------------------------------------ observation

    @property
    def sysid(self) -> str | None:
        return self._sysid

    @property
    def following(self) -> str | None:
        return self._following

    @property
    def streaming_from(self) -> str | None:
        """The upstream of the live stream, if any."""
        return self._stream.upstream.name if self._stream is not None else None

    def timeline(self) -> int | None:
        pieces = self._current()
        return pieces[-1][0].timeline if pieces else None

    def lsn(self) -> int:
        return wal_end(self._current())

    def history(self) -> list[tuple[int, int]]:
        return timeline_history(self._current())

    def state(self) -> PostgresState:
        """What the agent reads: from the server when up, from pg_controldata when down."""
        self._lazy_check()
        pieces = self._current()
        return PostgresState(
            data_present=self._data_present,
            sysid=self._sysid,
            run=self._run,
            in_recovery=self._in_recovery,
            timeline=pieces[-1][0].timeline if pieces else None,
            wal_lsn=wal_end(pieces),
            timeline_start_lsn=timeline_start(pieces),
            clean_shutdown=self._clean,
            following=self._following,
            ssn=self._ssn,
            standbys=self._standby_rows(),
            rewind_possible=True,
        )

    def final_ids(self) -> list[int]:
        """The write ids in this node's data, sorted."""
        self._lazy_check()
        return write_ids(self._current())

    def final_read(self) -> dict[str, Any]:
        """The fields of a `final_read` history event."""
        self._lazy_check()
        pieces = self._current()
        return {
            "ids": write_ids(pieces),
            "timeline": pieces[-1][0].timeline if pieces else None,
            "lsn": wal_end(pieces),
            "role": self.role,
        }

    def announce(self) -> None:
        """Record `pg_role` and `writable` as they are now (at run_start)."""
        pieces = self._current()
        timeline = pieces[-1][0].timeline if pieces else None
        self._last_role = (self.role, timeline)
        self._last_writable = self.writable
        self.world.record(
            "pg_role", self.name, role=self.role, timeline=timeline, lsn=wal_end(pieces)
        )
        self.world.record("writable", self.name, writable=self._last_writable)
