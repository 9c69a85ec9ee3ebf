# Client writes and synchronous replication. An asynchronous commit returns at once; with
# synchronous standbys required by synchronous_standby_names a commit waits until enough of them
# confirmed the flush (priority or quorum), blocking like PostgreSQL while too few stream. A write
# appends to this server's own branch of the WAL (sim/postgres/wal.py).
"""Client writes on a simulated server, and synchronous replication (who acknowledges when)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from pgha.engine.values import PgRun, Standby, SyncStandbyNames, SyncState
from sim.postgres.state import Steps
from sim.postgres.streaming import Streaming
from sim.postgres.wal import EPS, NO_WRITE, Branch, wal_end


class WriteRejected(Exception):
    """Refused before anything was written; `reason`: down, read_only or disk_full."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WriteUnknown(Exception):
    """The write is in the local WAL but its commit was not confirmed (timeout, crash, shutdown).

    `reason`: timeout (the caller's deadline passed), aborted (the caller's abort event fired),
    terminated (crash, stop or demotion while waiting for synchronous standbys).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Commits(Streaming):
    """Client writes, and the standbys a commit waits for."""

    def write(
        self,
        write_id: int,
        *,
        deadline_t: float | None = None,
        abort: simpy.Event | None = None,
    ) -> Generator[Any, Any, tuple[int, int]]:
        """Commit one client write; returns (timeline, commit LSN).

        Async commits return at once. With synchronous standbys required by ssn, waits until
        enough of them confirmed the flush (blocking, like PostgreSQL, while too few stream).
        A paused server holds the session until it resumes.

        Raises:
            WriteRejected: nothing written (down, read_only, disk_full).
            WriteUnknown: the record may be in the WAL but the commit was not confirmed.
        """
        if self._resumed is not None:
            yield from self._wait_unpaused(deadline_t, abort)
        reason = self._reject_reason()
        if reason is not None:
            raise WriteRejected(reason)
        commit_t = float(self.env.now)
        timeline, lsn = self._append(write_id)
        if self._sync_count() > 0:
            yield from self._await_standbys(commit_t, deadline_t, abort)
        return timeline, lsn

    def _reject_reason(self) -> str | None:
        if self._run is not PgRun.RUNNING or self._stopping:
            return "down"
        if self._in_recovery:
            return "read_only"
        if self._disk_full:
            return "disk_full"
        return None

    def _wait_unpaused(self, deadline_t: float | None, abort: simpy.Event | None) -> Steps:
        while self._resumed is not None:
            yield self.env.any_of([self._resumed, *self._give_up_events(deadline_t, abort)])
            self._raise_if_given_up(deadline_t, abort)

    def _await_standbys(
        self, commit_t: float, deadline_t: float | None, abort: simpy.Event | None
    ) -> Steps:
        epoch = self._epoch
        while True:
            if self._epoch != epoch:
                raise WriteUnknown("terminated")
            now = float(self.env.now)
            ack = None if self._resumed is not None else self._ack_time(commit_t)
            if ack is not None and ack <= now + EPS:
                return
            events = [self._arm_wake(), *self._give_up_events(deadline_t, abort)]
            if ack is not None:
                events.append(self.env.timeout(ack - now))
            yield self.env.any_of(events)
            if self._epoch == epoch and not self._acked(commit_t):
                self._raise_if_given_up(deadline_t, abort)

    def _acked(self, commit_t: float) -> bool:
        ack = None if self._resumed is not None else self._ack_time(commit_t)
        return ack is not None and ack <= self.env.now + EPS

    def _give_up_events(self, deadline_t: float | None, abort: simpy.Event | None) -> list[Any]:
        self._raise_if_given_up(deadline_t, abort)
        events: list[Any] = []
        if deadline_t is not None:
            events.append(self.env.timeout(deadline_t - self.env.now))
        if abort is not None:
            events.append(abort)
        return events

    def _raise_if_given_up(self, deadline_t: float | None, abort: simpy.Event | None) -> None:
        if abort is not None and abort.triggered:
            raise WriteUnknown("aborted")
        if deadline_t is not None and self.env.now >= deadline_t - EPS:
            raise WriteUnknown("timeout")

    def _append(self, write_id: int | None) -> tuple[int, int]:
        branch = self._own_branch()
        count = self._pieces[-1][1] + 1 if self._pieces[-1][0] is branch else 1
        lsn = branch.end_at(count - 1) + self.record_size_b
        branch.append(lsn, NO_WRITE if write_id is None else write_id, float(self.env.now))
        if count == 1:
            self._pieces.append((branch, 1))
        else:
            self._pieces[-1] = (branch, count)
        return branch.timeline, lsn

    def _own_branch(self) -> Branch:
        # Append to my own branch if I wrote it and hold all of it; otherwise fork a new branch on
        # the same timeline (a replica's data started as a primary without promotion).
        branch, count = self._pieces[-1]
        if branch.writer == self.name and count == len(branch.ends):
            return branch
        return Branch(branch.timeline, branch.end_at(count), self.name)

    # ------------------------------------------------------------ synchronous replication

    def _sync_count(self) -> int:
        """How many standbys a commit waits for (0: asynchronous)."""
        ssn = self._ssn
        if ssn.star:
            return max(ssn.count, 1)
        return ssn.count if ssn.names else 0

    def _sync_candidates(self) -> list[str]:
        """Streaming standbys that ssn names, in priority order."""
        if self._ssn.star:
            return sorted(self._downstream)
        return sorted(n for n in self._ssn.names if n in self._downstream)

    def _ack_time(self, commit_t: float) -> float | None:
        need = self._sync_count()
        if need <= 0:  # ssn names standbys but waits for none: an asynchronous commit
            return commit_t
        names = self._sync_candidates()
        if len(names) < need:
            return None
        acks = [self._downstream[n].ack_time(commit_t) for n in names]
        if self._ssn.quorum:
            return sorted(acks)[need - 1]
        return max(acks[:need])

    def _standby_rows(self) -> tuple[Standby, ...]:
        states = self._sync_states()
        return tuple(
            Standby(
                name=name,
                sync_state=states.get(name, SyncState.ASYNC),
                flush_lsn=wal_end(self._downstream[name].downstream._current()),
            )
            for name in sorted(self._downstream)
        )

    def _sync_states(self) -> dict[str, SyncState]:
        need = self._sync_count()
        if need == 0 or self._in_recovery:
            return {}
        names = self._sync_candidates()
        if self._ssn.quorum:
            return dict.fromkeys(names, SyncState.QUORUM)
        return {n: SyncState.SYNC if i < need else SyncState.POTENTIAL for i, n in enumerate(names)}

    def set_ssn(self, value: SyncStandbyNames) -> Steps:
        """Set synchronous_standby_names (a reload, no time); waiting commits re-evaluate."""
        self._ssn = value
        self._notify()
        yield from ()
