# Client operations, Jepsen style: every write is invoked once and has at most one outcome (`ok`,
# `fail` or `info`). Anything else (a second invoke, an outcome without invoke, two outcomes) is a
# history that contradicts itself and raises, located, instead of being counted. Acknowledged
# writes go into compact columns (a simulated day at 10 writes/s is ~0.9 M acknowledgements).
#
# Unavailability is measured per client path (an invoke's `target`: `haproxy`, or a node for
# clients that write to nodes directly): the cluster is unavailable while every path tried so far
# is down, i.e. its latest write failed, returned `info` or never returned. A replica refusing the
# writes sent straight to it is no outage while the primary's path acknowledges.
"""Client writes: integrity of invoke/outcome pairs, the acknowledgement log, unavailability."""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

from pgha.checks._fields import HistoryIntegrityError

_PENDING, _OK, _FAIL, _INFO = 1, 2, 3, 4
_STATE_NAMES = {_PENDING: "invoke", _OK: "ok", _FAIL: "fail", _INFO: "info"}
_DENSE_IDS = 1 << 24  # ids below this are kept in a byte per id; others in a dict


class AckLog:
    """Acknowledged writes in columns (id, invoke and ok times, serving node, timeline), in ok
    order. Timeline 0 means unknown."""

    def __init__(self) -> None:
        self.ids = array("q")
        self.t_invoke = array("d")
        self.t_ok = array("d")
        self.node_ix = array("H")
        self.timelines = array("q")
        self.names: list[str] = []
        self._index: dict[str, int] = {}

    def add(self, write_id: int, t_invoke: float, t_ok: float, node: str, timeline: int) -> None:
        ix = self._index.get(node)
        if ix is None:
            ix = self._index[node] = len(self.names)
            self.names.append(node)
        self.ids.append(write_id)
        self.t_invoke.append(t_invoke)
        self.t_ok.append(t_ok)
        self.node_ix.append(ix)
        self.timelines.append(timeline)

    def __len__(self) -> int:
        return len(self.ids)

    def node(self, k: int) -> str:
        return self.names[self.node_ix[k]]

    def count_between(self, t_start: float, t_end: float) -> dict[str, int]:
        """Acknowledgements per serving node with ok time in [t_start, t_end]."""
        lo, hi = bisect_left(self.t_ok, t_start), bisect_right(self.t_ok, t_end)
        counts: dict[str, int] = {}
        for k in range(lo, hi):
            name = self.node(k)
            counts[name] = counts.get(name, 0) + 1
        return counts


class _IdStates:
    """The state of every write id seen: a byte per id for dense ids, a dict for the rest.
    (`Writes` reads `dense` directly on its hot path.)"""

    def __init__(self) -> None:
        self.dense = bytearray()
        self._sparse: dict[int, int] = {}

    def get(self, write_id: int) -> int:
        if 0 <= write_id < len(self.dense):
            return self.dense[write_id]
        return self._sparse.get(write_id, 0)

    def set(self, write_id: int, state: int) -> None:
        dense = self.dense
        if 0 <= write_id < len(dense):
            dense[write_id] = state
        elif 0 <= write_id < _DENSE_IDS:
            dense.extend(bytes(max(write_id + 1 - len(dense), len(dense), 4096)))
            dense[write_id] = state
        else:
            self._sparse[write_id] = state


@dataclass(frozen=True, slots=True)
class WriteStats:
    invoked: int
    acknowledged: int
    failed: int
    unknown: int  # `info`, plus writes still without an outcome when the run ended
    unavailability_s: float
    unavailable_periods: int
    longest_unavailability_s: float
    # each unavailable period as (start, end), in order (pgha.analysis.unavailability)
    unavailable_windows: tuple[tuple[float, float], ...] = ()
    paths: tuple[str, ...] = ()  # the client paths (invoke targets) seen


class _Availability:
    """Unavailable periods: every path tried is down (see the module comment)."""

    def __init__(self) -> None:
        self._last_ok: dict[str, float] = {}
        self._down_since: dict[str, float] = {}  # paths down now, since when
        self._tried: set[str] = set()
        self._last_ok_any = -math.inf
        self._since: float | None = None
        self.windows: list[tuple[float, float]] = []

    def tried(self, path: str) -> None:
        self._tried.add(path)

    def up(self, path: str, t: float) -> None:
        self._down_since.pop(path, None)
        self._last_ok[path] = self._last_ok_any = t
        if self._since is not None:
            self.windows.append((self._since, max(self._since, t)))
            self._since = None

    def down(self, path: str, t_invoke: float) -> None:
        if path not in self._down_since:
            self._down_since[path] = max(t_invoke, self._last_ok.get(path, -math.inf))
        if self._since is None and len(self._down_since) == len(self._tried):
            self._since = max(self._last_ok_any, *self._down_since.values())

    def finish(self, t_end: float) -> None:
        if self._since is not None:
            self.windows.append((self._since, max(self._since, t_end)))
            self._since = None


class Writes:
    """Client writes as they stream past: integrity, counts, the ack log, availability."""

    def __init__(self) -> None:
        self._states = _IdStates()
        self.pending: dict[int, tuple[float, str]] = {}  # id -> (invoke time, path)
        self.acks = AckLog()
        self.failed_ids = array("q")
        self.unknown_ids = array("q")
        self.invoked = self.failed = self.info = 0
        self._availability = _Availability()
        self._paths: dict[str, str] = {}

    # The three methods below run once per client event (millions in a day's history), with
    # values already checked by the caller (`FactsCollector`): the id's state is read inline.

    def invoke(self, t: float, write_id: int, target: object) -> None:
        """Write `write_id` invoked at `t` along client path `target` (not a string: "?")."""
        states, dense = self._states, self._states.dense
        if 0 <= write_id < len(dense) and not dense[write_id]:
            dense[write_id] = _PENDING
        elif states.get(write_id):
            state = _name(states.get(write_id))
            raise HistoryIntegrityError(f"write {write_id} invoked again (after its {state})")
        else:
            states.set(write_id, _PENDING)
        path = target if type(target) is str else "?"
        known = self._paths.get(path)
        if known is None:
            known = self._paths[path] = path
            self._availability.tried(path)
        self.pending[write_id] = (t, known)
        self.invoked += 1

    def _outcome(self, kind: str, write_id: int, state: int) -> tuple[float, str]:
        states, dense = self._states, self._states.dense
        if 0 <= write_id < len(dense) and dense[write_id] == _PENDING:
            dense[write_id] = state
        elif (before := states.get(write_id)) != _PENDING:
            what = "without an invoke" if not before else f"after its {_name(before)}"
            raise HistoryIntegrityError(f"write {write_id}: {kind} {what}")
        else:
            states.set(write_id, state)
        return self.pending.pop(write_id)

    def ok(self, t: float, write_id: int, node: str, timeline: int | None) -> float:
        """Record an acknowledgement at `t` served by `node`; returns its invoke time."""
        t_invoke, path = self._outcome("ok", write_id, _OK)
        self.acks.add(write_id, t_invoke, t, node, timeline or 0)
        self._availability.up(path, t)
        return t_invoke

    def not_ok(self, kind: str, write_id: int) -> None:
        """Record a `fail` or an `info` (`kind`) of `write_id`."""
        failed = kind == "fail"
        t_invoke, path = self._outcome(kind, write_id, _FAIL if failed else _INFO)
        if failed:
            self.failed += 1
            self.failed_ids.append(write_id)
        else:
            self.info += 1
            self.unknown_ids.append(write_id)
        self._availability.down(path, t_invoke)

    def finish(self, t_end: float) -> WriteStats:
        for t_invoke, path in sorted(self.pending.values()):
            self._availability.down(path, t_invoke)
        self._availability.finish(t_end)
        windows = self._availability.windows
        spans = [b - a for a, b in windows]
        return WriteStats(
            invoked=self.invoked,
            acknowledged=len(self.acks),
            failed=self.failed,
            unknown=self.info + len(self.pending),
            unavailability_s=sum(spans),
            unavailable_periods=len(windows),
            longest_unavailability_s=max(spans, default=0.0),
            unavailable_windows=tuple(windows),
            paths=tuple(sorted(self._paths)),
        )


def _name(state: int) -> str:
    return _STATE_NAMES[state]
