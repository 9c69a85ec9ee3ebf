# Lazy streaming replication: a live stream says "the replica holds every upstream record
# committed at least `delay_s` ago"; its position is computed when asked and frozen
# ("materialized") when the stream breaks. Streams are re-checked on every change a server makes
# and on every change of reachability (`refresh()` is registered with the network's listeners), so
# positions never depend on how often `state()` is read. Every change of role, timeline or
# writability is recorded as it happens (docs/history.md).
"""Lazy streaming replication between simulated servers, and recording what changed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Self

import simpy

from pgha.engine.values import PgRun
from sim.postgres.state import ServerState, Stream
from sim.postgres.wal import EPS, Branch, Piece, is_prefix, longer, truncate_at, wal_end


def refresh_all(pgs: Iterable[Streaming]) -> None:
    """Re-check every stream (the network calls each server's `refresh` after its changes)."""
    nodes = list(pgs)
    for pg in nodes:
        pg.check_links()
    for pg in nodes:
        pg.note_changes()


class Streaming(ServerState):
    """Streams that start and break as servers and the network change; positions computed lazily."""

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

    def _upstream_ok(self) -> Self | None:
        """The server I may stream from now, ignoring whether our WALs are compatible."""
        if not self._can_receive() or self._following is None:
            return None
        up = self.peers.get(self._following)
        if up is None or up is self or not up._can_send() or up._sysid != self._sysid:
            return None
        if not (self.net.connected(up.name, self.name) and self.net.connected(self.name, up.name)):
            return None
        return None if up._feeds(self) else up

    def _feeds(self, node: Self) -> bool:
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

    def _connect(self, up: Self) -> None:
        s = Stream(
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

    def _watch_timeline(self, s: Stream[Self]) -> None:
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

    def _timeline_due(self, s: Stream[Self]) -> None:
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
        nodes: list[Streaming] = list(self.peers.values())
        if self not in nodes:
            nodes.append(self)
        refresh_all(nodes)
        self._notify()

    # ------------------------------------------------------------ waiting commits

    def _arm_wake(self) -> simpy.Event:
        self._wake_armed = True
        return self._wake

    def _notify(self) -> None:
        # Wake commits waiting for standbys: the set of streams (or this server) changed.
        if self._wake_armed:
            event, self._wake, self._wake_armed = self._wake, self.env.event(), False
            event.succeed()
