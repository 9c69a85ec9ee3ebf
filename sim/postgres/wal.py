# The WAL of the simulated servers, as pure data. Speed: a simulated day at 10 writes/s must be
# cheap, so nothing runs per record. Records live in shared append-only `Branch`es (one per
# primary incarnation; arrays, ~24 bytes a record), and a node's WAL is a short list of
# (branch, count) pieces: prefixes, divergence, timeline history and the client writes a WAL holds
# are computed from the pieces.
"""The WAL model: branches of records, a node's WAL as pieces, timelines (no SimPy)."""

from __future__ import annotations

import bisect
import itertools
from array import array

INITIAL_LSN = 0x0100_0000  # where initdb's WAL ends (16 MiB into timeline 1)
EPS = 1e-9  # float slack for "at or before" comparisons of simulated times
NO_WRITE = -1  # write id of records that are not client writes (checkpoints, end of recovery)


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
