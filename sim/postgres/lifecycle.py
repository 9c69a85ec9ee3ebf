# What happens to a server: faults that act at once (kill -9, SIGSTOP and SIGCONT, a full disk,
# a lost disk) and the lifecycle operations the agent runs (bootstrap, clone, start, stop, demote,
# promote, follow, pg_rewind, reinit), each taking simulated time (`PgTiming`). An operation in
# flight fails when the server crashes meanwhile, and waits while the server is paused. A start or
# a fast stop, once pg_ctl has signalled the postmaster, runs on in a process of its own: an agent
# killed meanwhile does not leave the server starting or stopping for ever.
"""Fault hooks and lifecycle operations of a simulated PostgreSQL server."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, Self

from pgha.engine.actions import DemoteMode
from pgha.engine.values import Failure, PgRun
from pgha.ports import ActionFailed
from sim.postgres.commits import Commits
from sim.postgres.state import Steps
from sim.postgres.wal import INITIAL_LSN, NO_WRITE, Branch, common_prefix, wal_end


class Lifecycle(Commits):
    """Faults and lifecycle operations: what the fault injector and the agent's actions do."""

    # ------------------------------------------------------------ fault hooks (instant)

    def crash(self) -> None:
        """kill -9 of the postmaster: every process gone, the data directory not shut down."""
        if self._run is PgRun.STOPPED:
            return
        self._gen += 1
        self._epoch += 1
        self._disconnect()
        self._run = PgRun.STOPPED
        self._stopping = self._promoting = False
        self._clean = False
        self._crashed = True
        self._clear_pause()
        self._changed()

    def pause(self) -> None:
        """SIGSTOP of the postmaster: not writable, replication stops, operations block."""
        if self._run is PgRun.STOPPED or self._resumed is not None:
            return
        self._resumed = self.env.event()
        self._changed()

    def resume(self) -> None:
        """SIGCONT: everything blocked carries on; streams reconnect."""
        if self._resumed is None:
            return
        self._clear_pause()
        self._changed()

    def _clear_pause(self) -> None:
        event, self._resumed = self._resumed, None
        if event is not None:
            event.succeed()

    def disk_full(self, on: bool) -> None:
        """The data disk is (or is no longer) full: no writes, no WAL received, no start."""
        self._disk_full = on
        self._changed()

    def wipe(self) -> None:
        """The machine lost its disk: crash, and no data directory is left."""
        self.crash()
        self._wipe_data()
        self._changed()

    def _wipe_data(self) -> None:
        self._data_present = False
        self._sysid = None
        self._pieces = []
        self._in_recovery = True
        self._clean = True
        self._crashed = False

    # ------------------------------------------------------------ lifecycle operations

    def _step(self, seconds: float, gen: int, failure: Failure) -> Steps:
        # Let `seconds` pass, then wait while paused; fail if the server crashed meanwhile.
        if seconds > 0:
            yield self.env.timeout(seconds)
        yield from self._unpaused()
        if self._gen != gen:
            raise ActionFailed(failure, f"{self.name}: interrupted by a crash")

    def _unpaused(self) -> Steps:
        while self._resumed is not None:
            yield self._resumed

    def bootstrap(self) -> Steps:
        """initdb (a new system identifier, timeline 1), then start as a primary."""
        gen = self._gen
        if self._data_present or self._disk_full:
            raise ActionFailed(Failure.BOOTSTRAP, f"{self.name}: data directory not empty or full")
        yield from self._step(self.timing.initdb_s, gen, Failure.BOOTSTRAP)
        self._data_present = True
        self._sysid = str(self.world.rng(f"pg/{self.name}").getrandbits(63))
        first = Branch(1, INITIAL_LSN, self.name)
        first.append(INITIAL_LSN + self.record_size_b, NO_WRITE, float(self.env.now))
        self._pieces = [(first, 1)]
        self._in_recovery, self._clean, self._following = False, True, None
        yield from self._start(True, gen, Failure.BOOTSTRAP)

    def create_replica(self, source: str | None) -> Steps:
        """pg_basebackup from `source`, then start as its replica (None: no backup to restore)."""
        if source is None:
            raise ActionFailed(Failure.CREATE_REPLICA, f"{self.name}: no backup to restore from")
        gen = self._gen
        yield from self._stop(False, gen, Failure.CREATE_REPLICA)
        self._wipe_data()
        yield from self._basebackup(source, gen)

    def reinit(self, source: str) -> Steps:
        """Stop (immediate), wipe the data directory and clone again from `source`."""
        gen = self._gen
        self._source(source, Failure.CREATE_REPLICA)
        yield from self._stop(False, gen, Failure.CREATE_REPLICA)
        self._wipe_data()
        self._changed()
        yield from self._basebackup(source, gen)

    def _basebackup(self, source: str, gen: int) -> Steps:
        src = self._source(source, Failure.CREATE_REPLICA)
        if self._disk_full:
            raise ActionFailed(Failure.CREATE_REPLICA, f"{self.name}: disk full")
        size = self.base_data_b + wal_end(src._current()) - INITIAL_LSN
        seconds = self.timing.basebackup_base_s + size / self.timing.basebackup_bytes_per_s
        yield from self._step(seconds, gen, Failure.CREATE_REPLICA)
        src = self._source(source, Failure.CREATE_REPLICA)
        self._pieces = list(src._current())
        self._data_present, self._sysid = True, src._sysid
        self._in_recovery, self._clean, self._following = True, True, source
        yield from self._start(False, gen, Failure.START)

    def _source(self, name: str, failure: Failure) -> Self:
        # A running, reachable server to copy from (pg_basebackup, pg_rewind).
        src = self.peers.get(name)
        if src is None or src is self or not src._can_send():
            raise ActionFailed(failure, f"{self.name}: source {name} is not running")
        if not (self.net.connected(self.name, name) and self.net.connected(name, self.name)):
            raise ActionFailed(failure, f"{self.name}: source {name} is unreachable")
        return src

    def start(self, as_primary: bool) -> Steps:
        """Start the server (no-op when it is up); crash recovery first after an unclean stop."""
        yield from self._start(as_primary, self._gen, Failure.START)

    def _start(self, as_primary: bool, gen: int, failure: Failure) -> Steps:
        if self._run is not PgRun.STOPPED:
            return
        if not self._data_present or self._disk_full:
            raise ActionFailed(failure, f"{self.name}: no data directory or disk full")
        self._in_recovery = not as_primary
        self._run, self._crashed = PgRun.STARTING, False
        self._changed()
        recovery = 0.0 if self._clean else self.timing.crash_recovery_s
        yield from self._postmaster(self.timing.start_s + recovery, gen, failure, self._up)

    def _up(self) -> None:
        if self._run is not PgRun.STARTING:  # stopped meanwhile (by an agent started since)
            return
        self._run, self._clean = PgRun.RUNNING, False
        self._changed()

    def _postmaster(
        self, seconds: float, gen: int, failure: Failure, then: Callable[[], None]
    ) -> Steps:
        # What the postmaster does by itself once pg_ctl has signalled it (start up, shut down):
        # a process of its own, so an agent killed meanwhile leaves it carrying on, as a real
        # postmaster does. The caller waits for it and fails if the server crashed meanwhile.
        if not (yield self.env.process(self._on_its_own(seconds, gen, then))):
            raise ActionFailed(failure, f"{self.name}: interrupted by a crash")

    def _on_its_own(
        self, seconds: float, gen: int, then: Callable[[], None]
    ) -> Generator[Any, Any, bool]:
        if seconds > 0:
            yield self.env.timeout(seconds)
        yield from self._unpaused()
        if self._gen != gen:
            return False
        then()
        return True

    def _stop(self, fast: bool, gen: int, failure: Failure) -> Steps:
        if self._run is PgRun.STOPPED:
            return
        yield from self._unpaused()  # the signal is handled once the postmaster runs again
        self._epoch += 1
        if not fast:
            self._run, self._clean = PgRun.STOPPED, False
            self._disconnect()
            self._changed()
            yield from self._step(self.timing.stop_immediate_s, gen, failure)
            return
        if self._run is PgRun.RUNNING and not self._in_recovery and not self._stopping:
            self._append(None)  # the shutdown checkpoint, sent to standbys before walsenders exit
        self._stopping = True
        self._changed()
        yield from self._postmaster(self.timing.stop_fast_s, gen, failure, self._down)

    def _down(self) -> None:
        self._run, self._clean, self._stopping = PgRun.STOPPED, True, False
        self._disconnect()
        self._changed()

    def stop(self, immediate: bool) -> Steps:
        """Stop the server and leave it stopped (fast, or immediate: then crash recovery at the
        next start); the agent's own shutdown."""
        yield from self._stop(not immediate, self._gen, Failure.STOP)

    def demote(self, mode: DemoteMode) -> Steps:
        """Stop as `mode` says (graceful: CHECKPOINT first) and leave it stopped, following
        nobody; the engine starts it again as a replica after the safepoint."""
        gen = self._gen
        fast = mode in (DemoteMode.OFFLINE, DemoteMode.GRACEFUL)
        if mode is DemoteMode.GRACEFUL and self.writable:
            self._append(None)
            yield from self._step(self.timing.checkpoint_s, gen, Failure.STOP)
        yield from self._stop(fast, gen, Failure.STOP)
        self._following = None

    def promote(self) -> Steps:
        """pg_ctl promote: a new timeline (the highest known + 1) from the end of WAL."""
        gen = self._gen
        self._lazy_check()
        yield from self._unpaused()
        if self._run is not PgRun.RUNNING or self._gen != gen:
            raise ActionFailed(Failure.PROMOTE, f"{self.name}: not running")
        if not self._in_recovery:
            return
        self._promoting = True  # the walreceiver stops: the position is final
        self._disconnect()
        try:
            yield from self._step(self.timing.promote_s, gen, Failure.PROMOTE)
        finally:
            self._promoting = False
        self._new_timeline()
        for s in list(self._downstream.values()):
            s.downstream._disconnect()  # cascading walsenders exit; standbys reconnect
        self._changed()

    def _new_timeline(self) -> None:
        timeline = max(b.timeline for b, _ in self._pieces) + 1
        branch = Branch(timeline, wal_end(self._pieces), self.name)
        branch.append(branch.start_lsn + self.record_size_b, NO_WRITE, float(self.env.now))
        self._pieces.append((branch, 1))  # the end-of-recovery record opens the new timeline
        self._in_recovery, self._following = False, None

    def follow(self, leader: str | None) -> Steps:
        """Point primary_conninfo at `leader` (None: nobody); a running walreceiver reconnects."""
        if leader != self._following:
            self._following = leader
            self._disconnect()
        if self.timing.reload_s > 0:
            yield self.env.timeout(self.timing.reload_s)
        self._changed()

    def rewind(self, source: str) -> Steps:
        """Stop if running, pg_rewind to where `source` diverged, then start as its replica.

        A source that is down or unreachable, before pg_rewind or when it ends, fails with
        REWIND_SOURCE (the data is as it was: the engine tries again); other failures with REWIND.
        """
        gen = self._gen
        self._source(source, Failure.REWIND_SOURCE)
        if not self._data_present or self._disk_full:
            raise ActionFailed(Failure.REWIND, f"{self.name}: no data directory or disk full")
        yield from self._stop(True, gen, Failure.REWIND)
        if not self._clean:  # single-user crash recovery first
            yield from self._step(self.timing.crash_recovery_s, gen, Failure.REWIND)
            self._clean = True
        src = self._source(source, Failure.REWIND_SOURCE)
        diverged = wal_end(self._pieces) - wal_end(common_prefix(self._pieces, src._current()))
        seconds = self.timing.rewind_base_s + diverged / self.timing.rewind_bytes_per_s
        yield from self._step(seconds, gen, Failure.REWIND)
        src = self._source(source, Failure.REWIND_SOURCE)
        common = common_prefix(self._pieces, src._current())
        if not common:
            raise ActionFailed(Failure.REWIND, f"{self.name}: no common history with {source}")
        self._pieces, self._in_recovery, self._following = common, True, source
        self._changed()
        yield from self._start(False, gen, Failure.START)
