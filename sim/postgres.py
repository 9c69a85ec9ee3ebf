# One node's PostgreSQL, as far as HA decisions and the invariants can tell: the WAL (positions,
# timelines, timeline history, which client writes it holds), streaming and synchronous replication,
# and the lifecycle operations the agent runs (bootstrap, clone, start, stop, promote, pg_rewind,
# reinit), each taking simulated time. Checkers read the history, so every change of role, timeline
# or writability is recorded as it happens (docs/history.md).
#
# Speed: a simulated day at 10 writes/s must be cheap, so nothing here runs per record. Records
# live in shared append-only `Branch`es (one per primary incarnation; arrays, ~24 bytes a record),
# and a node's WAL is a short list of (branch, count) pieces. Replication is lazy: a live stream
# says "the replica holds every upstream record committed at least `delay_s` ago"; its position is
# computed when asked and frozen ("materialized") when the stream breaks. Streams are re-checked on
# every change this module makes and on every change of reachability (`refresh()` is registered
# with the network's listeners), so positions never depend on how often `state()` is read.
"""Simulated PostgreSQL: WAL, timelines, lazy streaming and synchronous replication, lifecycle."""

from __future__ import annotations

import bisect
import itertools
from array import array
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import simpy

from pgha.engine.actions import DemoteMode
from pgha.engine.values import (
    Failure,
    PgRun,
    PostgresState,
    Standby,
    SyncStandbyNames,
    SyncState,
)
from pgha.ports import ActionFailed
from pgha.scenario import PostgresSpec
from sim.net import Network
from sim.world import World

INITIAL_LSN = 0x0100_0000  # where initdb's WAL ends (16 MiB into timeline 1)
EPS = 1e-9  # float slack for "at or before" comparisons of simulated times
NO_WRITE = -1  # write id of records that are not client writes (checkpoints, end of recovery)

Steps = Generator[Any, Any, None]  # a SimPy generator that takes simulated time


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


# ---------------------------------------------------------------- WAL storage


class Branch:
    """An append-only run of WAL records written by one primary on one timeline.

    Records are never changed or removed, so nodes share branches by reference: a node's WAL is
    a list of pieces (branch, count), each piece a prefix of its branch. `ends[i]` is the LSN
    just after record i (its commit LSN), `ids[i]` its write id (NO_WRITE for other records),
    `times[i]` when the primary committed it.
    """

    __slots__ = ("ends", "ids", "start_lsn", "timeline", "times", "writer")

    def __init__(self, timeline: int, start_lsn: int, writer: str) -> None:
        self.timeline = timeline
        self.start_lsn = start_lsn
        self.writer = writer
        self.ends = array("q")
        self.ids = array("q")
        self.times = array("d")

    def end_at(self, count: int) -> int:
        return self.ends[count - 1] if count else self.start_lsn

    def append(self, lsn: int, write_id: int, t: float) -> None:
        self.ends.append(lsn)
        self.ids.append(write_id)
        self.times.append(t)


Piece = tuple[Branch, int]  # the first `count` records of a branch; count >= 1


def wal_end(pieces: list[Piece]) -> int:
    """The end of WAL (0 for no WAL)."""
    if not pieces:
        return 0
    branch, count = pieces[-1]
    return branch.end_at(count)


def truncate_at(pieces: list[Piece], cutoff: float) -> list[Piece]:
    """The records committed at or before `cutoff` (a WAL is in commit order)."""
    out: list[Piece] = []
    for branch, count in pieces:
        n = bisect.bisect_right(branch.times, cutoff + EPS, 0, count)
        if n:
            out.append((branch, n))
        if n < count:
            break
    return out


def is_prefix(short: list[Piece], long: list[Piece]) -> bool:
    """Whether the WAL `short` is a prefix of `long`: the same records at the same positions."""
    if len(short) > len(long):
        return False
    last = len(short) - 1
    for i, (branch, count) in enumerate(short):
        other, other_count = long[i]
        if other is not branch or other_count < count or (i < last and other_count != count):
            return False
    return True


def longer(a: list[Piece], b: list[Piece]) -> list[Piece]:
    """The longer of two WALs that are both prefixes of one WAL."""
    if not a:
        return b
    if not b:
        return a
    return b if (len(b), b[-1][1]) > (len(a), a[-1][1]) else a


def common_prefix(a: list[Piece], b: list[Piece]) -> list[Piece]:
    """The longest WAL that is a prefix of both (where their histories diverge)."""
    out: list[Piece] = []
    for (branch, count), (other, other_count) in zip(a, b, strict=False):
        if branch is not other:
            break
        out.append((branch, min(count, other_count)))
        if count != other_count:
            break
    return out


def timeline_history(pieces: list[Piece]) -> list[tuple[int, int]]:
    """The timeline history file: (timeline, switch LSN) for every earlier timeline."""
    out: list[tuple[int, int]] = []
    for (branch, _), (after, _) in itertools.pairwise(pieces):
        if after.timeline != branch.timeline:
            out.append((branch.timeline, after.start_lsn))
    return out


def timeline_start(pieces: list[Piece]) -> int:
    """Where the current timeline began (the previous timeline's switch LSN)."""
    i = len(pieces) - 1
    while i > 0 and pieces[i - 1][0].timeline == pieces[i][0].timeline:
        i -= 1
    return pieces[i][0].start_lsn if pieces else 0


def write_ids(pieces: list[Piece]) -> list[int]:
    """The client write ids in a WAL, sorted."""
    ids = [i for branch, count in pieces for i in branch.ids[:count] if i != NO_WRITE]
    return sorted(ids)


# ---------------------------------------------------------------- streaming


@dataclass(slots=True)
class _Stream:
    """A live walreceiver -> walsender connection; delays are drawn once per connection."""

    upstream: SimPostgres
    downstream: SimPostgres
    delay_s: float  # upstream -> downstream: a record arrives this long after its commit
    reply_s: float  # downstream -> upstream: the flush feedback a synchronous commit waits for
    since: float  # when the connection was made (catch-up is instantaneous)

    def ack_time(self, commit_t: float) -> float:
        """When the upstream learns that this standby flushed a record committed at commit_t."""
        return max(commit_t + self.delay_s, self.since) + self.reply_s


def refresh_all(pgs: Iterable[SimPostgres]) -> None:
    """Re-check every stream (the network calls each server's `refresh` after its changes)."""
    nodes = list(pgs)
    for pg in nodes:
        pg.check_links()
    for pg in nodes:
        pg.note_changes()


# ---------------------------------------------------------------- the server


class SimPostgres:
    """One node's PostgreSQL server and data directory."""

    def __init__(
        self,
        world: World,
        net: Network,
        name: str,
        peers: Mapping[str, SimPostgres],
        *,
        record_size_b: int = 128,
        base_data_b: int = 40_000_000,
        timing: PgTiming | None = None,
    ) -> None:
        self.world = world
        self.net = net
        self.env: simpy.Environment = world.env
        self.name = name
        self.peers = peers  # every node's server by name (may include this one), read lazily
        self.record_size_b = record_size_b
        self.base_data_b = base_data_b
        self.timing = timing if timing is not None else PgTiming()
        # data directory
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
        self._stream: _Stream | None = None
        self._downstream: dict[str, _Stream] = {}
        # bookkeeping
        self._gen = 0  # bumped by crash: operations in flight fail
        self._epoch = 0  # bumped when sessions end: commits waiting for standbys become unknown
        self._wake: simpy.Event = self.env.event()
        self._wake_armed = False
        self._last_role: tuple[str, int | None] = ("stopped", None)
        self._last_writable = False
        net.listeners.append(self.refresh)  # partitions, heals, hosts down or paused

    # ------------------------------------------------------------ observation

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

    # ------------------------------------------------------------ client writes

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

    def _arm_wake(self) -> simpy.Event:
        self._wake_armed = True
        return self._wake

    def _notify(self) -> None:
        # Wake commits waiting for standbys: the set of streams (or this server) changed.
        if self._wake_armed:
            event, self._wake, self._wake_armed = self._wake, self.env.event(), False
            event.succeed()

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

    # ------------------------------------------------------------ lazy streaming

    def _current(self) -> list[Piece]:
        """This node's WAL now (do not mutate the result)."""
        s = self._stream
        if s is None:
            return self._pieces
        return longer(self._pieces, s.upstream._at(self.env.now - s.delay_s))

    def _at(self, cutoff: float) -> list[Piece]:
        # The WAL this node held at time `cutoff` (exact for a primary; for a cascading replica
        # the records it held before its stream started are approximated by their commit times).
        own = truncate_at(self._pieces, cutoff)
        s = self._stream
        if s is None or cutoff < s.since - EPS:
            return own
        return longer(own, s.upstream._at(cutoff - s.delay_s))

    def _can_send(self) -> bool:
        return self._data_present and self._run is PgRun.RUNNING and self._resumed is None

    def _can_receive(self) -> bool:
        return (
            self._can_send()
            and self._in_recovery
            and not self._disk_full
            and not self._promoting
            and self._following not in (None, self.name)
        )

    def _upstream_ok(self) -> SimPostgres | None:
        """The server I may stream from now, ignoring whether our WALs are compatible."""
        if not self._can_receive() or self._following is None:
            return None
        up = self.peers.get(self._following)
        if up is None or up is self or not up._can_send() or up._sysid != self._sysid:
            return None
        if not (self.net.connected(up.name, self.name) and self.net.connected(self.name, up.name)):
            return None
        return None if up._feeds(self) else up

    def _feeds(self, node: SimPostgres) -> bool:
        # Whether `node` is upstream of me (a cycle of cascading standbys never streams).
        seen = 0
        s = self._stream
        while s is not None and seen < 16:
            if s.upstream is node:
                return True
            s, seen = s.upstream._stream, seen + 1
        return False

    def check_links(self) -> bool:
        """Break a stream that can no longer run, start one that can; True if anything changed."""
        up = self._upstream_ok()
        s = self._stream
        if s is not None:
            if s.upstream is up:
                return False
            self._disconnect()
        if up is None or not is_prefix(self._pieces, up._current()):
            return s is not None
        self._connect(up)
        return True

    def _connect(self, up: SimPostgres) -> None:
        s = _Stream(
            upstream=up,
            downstream=self,
            delay_s=self._draw(up.name, self.name),
            reply_s=self._draw(self.name, up.name),
            since=float(self.env.now),
        )
        self._stream = s
        up._downstream[self.name] = s
        up._notify()
        self._watch_timeline(s)
        for below in self._downstream.values():  # cascading standbys see my new timeline later
            below.downstream._watch_timeline(below)

    def _disconnect(self) -> None:
        s = self._stream
        if s is None:
            return
        self._pieces = self._current()  # materialize the position reached
        self._stream = None
        del s.upstream._downstream[self.name]
        s.upstream._notify()

    def _draw(self, src: str, dst: str) -> float:
        # A lossy link drops some packets; TCP retransmits, so draw until one gets through.
        for _ in range(16):
            delay = self.net.delay(src, dst)
            if delay is not None:
                return delay
        return self.net.default_latency.median_s

    def _watch_timeline(self, s: _Stream) -> None:
        # A timeline switch reaches a standby with the new timeline's first record: schedule one
        # check for then, so that `pg_role` is recorded when it happens, not when someone asks.
        current = self._current()
        if not current:
            return
        mine = current[-1][0]
        theirs = [b for b, _ in s.upstream._current()]
        if mine not in theirs:
            return
        for branch in theirs[theirs.index(mine) + 1 :]:
            if branch.timeline != mine.timeline:
                due = max(s.since, s.upstream._visible_at(branch) + s.delay_s)
                if due > self.env.now + EPS:
                    self._call_later(due - self.env.now, lambda: self._timeline_due(s))
                return

    def _visible_at(self, branch: Branch) -> float:
        # When `_at()` of this node starts to include the first record of `branch`.
        if any(b is branch for b, _ in self._pieces):
            return branch.times[0]
        s = self._stream
        if s is None:
            return float("inf")
        return max(s.since, s.upstream._visible_at(branch) + s.delay_s)

    def _timeline_due(self, s: _Stream) -> None:
        if self._stream is s:
            self.note_changes()
            self._watch_timeline(s)

    def _call_later(self, delay: float, fn: Callable[[], None]) -> None:
        timer = self.env.timeout(delay)
        timer.callbacks.append(lambda _: fn())

    def _lazy_check(self) -> None:
        # Normally a no-op: every change is followed by refresh(). Catches a missed refresh.
        if self.check_links():
            self.note_changes()

    def refresh(self) -> None:
        """Re-check the stream now (after a network change) and record what changed."""
        self.check_links()
        self.note_changes()

    def note_changes(self) -> None:
        """Record `pg_role` / `writable` if they changed since last recorded."""
        pieces = self._current()
        key = (self.role, pieces[-1][0].timeline if pieces else None)
        if key != self._last_role:
            self._last_role = key
            self.world.record(
                "pg_role", self.name, role=key[0], timeline=key[1], lsn=wal_end(pieces)
            )
        writable = self.writable
        if writable != self._last_writable:
            self._last_writable = writable
            self.world.record("writable", self.name, writable=writable)

    def _changed(self) -> None:
        # After any change to this server: re-check every stream, record, wake waiting commits.
        nodes = list(self.peers.values())
        if self not in nodes:
            nodes.append(self)
        refresh_all(nodes)
        self._notify()

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

    def _source(self, name: str, failure: Failure) -> SimPostgres:
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
        yield from self._step(self.timing.start_s + recovery, gen, failure)
        self._run, self._clean = PgRun.RUNNING, False
        self._changed()

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
        yield from self._step(self.timing.stop_fast_s, gen, failure)
        self._run, self._clean, self._stopping = PgRun.STOPPED, True, False
        self._disconnect()
        self._changed()

    def demote(self, mode: DemoteMode) -> Steps:
        """Stop as `mode` says (graceful: CHECKPOINT first), then start as a replica of nobody."""
        gen = self._gen
        fast = mode in (DemoteMode.OFFLINE, DemoteMode.GRACEFUL)
        if mode is DemoteMode.GRACEFUL and self.writable:
            self._append(None)
            yield from self._step(self.timing.checkpoint_s, gen, Failure.STOP)
        yield from self._stop(fast, gen, Failure.STOP)
        self._following = None
        yield from self._start(False, gen, Failure.START)

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
        """Stop if running, pg_rewind to where `source` diverged, then start as its replica."""
        gen = self._gen
        self._source(source, Failure.REWIND)
        if not self._data_present or self._disk_full:
            raise ActionFailed(Failure.REWIND, f"{self.name}: no data directory or disk full")
        yield from self._stop(True, gen, Failure.REWIND)
        if not self._clean:  # single-user crash recovery first
            yield from self._step(self.timing.crash_recovery_s, gen, Failure.REWIND)
            self._clean = True
        src = self._source(source, Failure.REWIND)
        diverged = wal_end(self._pieces) - wal_end(common_prefix(self._pieces, src._current()))
        seconds = self.timing.rewind_base_s + diverged / self.timing.rewind_bytes_per_s
        yield from self._step(seconds, gen, Failure.REWIND)
        src = self._source(source, Failure.REWIND)
        common = common_prefix(self._pieces, src._current())
        if not common:
            raise ActionFailed(Failure.REWIND, f"{self.name}: no common history with {source}")
        self._pieces, self._in_recovery, self._following = common, True, source
        self._changed()
        yield from self._start(False, gen, Failure.START)
