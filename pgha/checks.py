# Invariants are judged from the history alone (DESIGN.md, "Invariants"): nothing here imports the
# simulator or the harness, and nothing trusts labels or API roles where the data says otherwise.
# One streaming pass (`FactsCollector`) keeps only what the checks need: per-node state, few role
# changes and faults, and the acknowledged writes in compact arrays (a simulated day at 10 writes/s
# is ~0.9 M acknowledgements, ~20 MB here). The checks then work on those facts.
"""Checkers for the run invariants, and the run summary, computed from a history."""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from pgha.history import Event, HistoryError
from pgha.scenario import ChecksSpec

FAILOVER_FAULT_KINDS = frozenset(
    {"kill", "partition", "pause", "kill_agent", "kill_postgres", "etcd"}
)
FIRST_IDS = 10  # how many ids a violation or summary lists
OVERLAP_MERGE_GAP_S = 5.0  # conflicts of one pair of nodes closer than this form one window
DECIMALS = 6

SPLIT_BRAIN = "no_split_brain"
LOST_WRITES = "no_lost_acknowledged_writes"
FAILOVER = "failover_within"
HEALTHY = "eventually_healthy"


# ---------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Violation:
    """One breach of an invariant: when (true time, s), which nodes, and why (`detail`)."""

    t_start: float
    t_end: float
    nodes: tuple[str, ...]
    detail: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "t_start": _r(self.t_start),
            "t_end": _r(self.t_end),
            "nodes": list(self.nodes),
            "detail": dict(self.detail),
        }


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict of one check, its violations and what it measured."""

    name: str
    ok: bool
    violations: tuple[Violation, ...] = ()
    metrics: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "violations": [v.to_dict() for v in self.violations],
            "metrics": dict(self.metrics),
        }


def spec_from_history(spec: Mapping[str, Any]) -> ChecksSpec:
    """The checks named in a history's `run_start` (the scenario's `ChecksSpec`, as written).

    Only what the mapping names is checked: a missing key is a check switched off.

    Raises:
        HistoryError: an unknown key or a value of the wrong type.
    """
    unknown = sorted(set(spec) - set(_SPEC_TYPES))
    if unknown:
        raise HistoryError(f"run_start.checks: unknown keys {unknown}")
    for key, value in spec.items():
        kinds = _SPEC_TYPES[key]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise HistoryError(f"run_start.checks.{key}: unexpected value {value!r}")
    named = {key: _as_float(key, value) for key, value in spec.items()}
    return ChecksSpec(**{"no_split_brain": False, "no_lost_acknowledged_writes": False, **named})


_SPEC_TYPES: Mapping[str, tuple[type, ...]] = {
    "no_split_brain": (bool,),
    "no_lost_acknowledged_writes": (bool,),
    "max_lost_writes": (int, type(None)),
    "failover_within_s": (int, float, type(None)),
    "eventually_healthy_s": (int, float, type(None)),
}


def _as_float(key: str, value: Any) -> Any:
    return float(value) if key.endswith("_s") and value is not None else value


@dataclass(frozen=True, slots=True)
class CheckReport:
    """All check results of a run, and the run's summary metrics."""

    results: tuple[CheckResult, ...]
    summary: Mapping[str, Any] = field(default_factory=dict, hash=False)
    spec: ChecksSpec = field(default_factory=ChecksSpec)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def result(self, name: str) -> CheckResult | None:
        return next((r for r in self.results if r.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [r.to_dict() for r in self.results],
            "summary": dict(self.summary),
        }


# ---------------------------------------------------------------- facts from one pass


@dataclass(frozen=True, slots=True)
class RoleChange:
    """A `pg_role` event: PostgreSQL as it really was from `t` on."""

    t: float
    node: str
    role: str
    timeline: int | None
    upstream: str | None = None


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """One fault as applied, with the primaries (by `pg_role`, else `agent_role`) at its start."""

    id: int
    kind: str
    targets: tuple[str, ...]
    label: str
    t_start: float
    t_end: float | None
    primaries_at_start: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)
    skipped: bool = False
    error: str | None = None

    @property
    def t_over(self) -> float:
        """When the fault stopped acting: its end, or its start for one without an end."""
        return self.t_start if self.t_end is None else self.t_end


@dataclass(frozen=True, slots=True)
class Failover:
    """How the cluster answered a fault that hit the primary.

    `outcome`: `failover` (another node acknowledged a write `failover_s` after the fault started),
    `kept_serving` (the fault ended and the old primary acknowledged again first) or `none`.
    """

    fault_id: int
    fault: str
    label: str
    t_fault: float
    old_primaries: tuple[str, ...]
    outcome: str
    new_primary: str | None = None
    t_first_ok: float | None = None

    @property
    def failover_s(self) -> float | None:
        return None if self.t_first_ok is None else self.t_first_ok - self.t_fault

    def to_dict(self) -> dict[str, Any]:
        return {
            "fault_id": self.fault_id,
            "fault": self.fault,
            "label": self.label,
            "t_fault": _r(self.t_fault),
            "old_primaries": list(self.old_primaries),
            "outcome": self.outcome,
            "new_primary": self.new_primary,
            "t_first_ok": _r(self.t_first_ok),
            "failover_s": _r(self.failover_s),
        }


@dataclass(frozen=True, slots=True)
class Window:
    """An interval of true time and the nodes it concerns."""

    t_start: float
    t_end: float
    nodes: tuple[str, ...]

    @property
    def duration_s(self) -> float:
        return self.t_end - self.t_start


@dataclass(frozen=True, slots=True)
class FinalRead:
    node: str
    role: str
    timeline: int | None
    lsn: int | None
    ids: Sequence[int]  # sorted

    def has(self, write_id: int) -> bool:
        i = bisect_left(self.ids, write_id)
        return i < len(self.ids) and self.ids[i] == write_id


class AckLog:
    """Acknowledged writes in columns (id, ok time, serving node, timeline), in ok order."""

    def __init__(self) -> None:
        self.ids = array("q")
        self.t_ok = array("d")
        self._node_ix = array("H")
        self.timelines = array("q")  # 0: unknown
        self._names: list[str] = []
        self._index: dict[str, int] = {}

    def add(self, write_id: int, t_ok: float, node: str, timeline: int | None) -> None:
        ix = self._index.get(node)
        if ix is None:
            ix = self._index[node] = len(self._names)
            self._names.append(node)
        self.ids.append(write_id)
        self.t_ok.append(t_ok)
        self._node_ix.append(ix)
        self.timelines.append(timeline or 0)

    def __len__(self) -> int:
        return len(self.ids)

    def node(self, k: int) -> str:
        return self._names[self._node_ix[k]]

    def count_between(self, t_start: float, t_end: float) -> dict[str, int]:
        """Acknowledgements per serving node with ok time in [t_start, t_end]."""
        lo, hi = bisect_left(self.t_ok, t_start), bisect_right(self.t_ok, t_end)
        counts: dict[str, int] = {}
        for k in range(lo, hi):
            name = self.node(k)
            counts[name] = counts.get(name, 0) + 1
        return counts


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


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What one pass over a history gathers for the checks, reports and plots."""

    run: Mapping[str, Any]  # the run_start fields
    t_start: float
    t_end: float
    nodes: tuple[str, ...]
    writes: WriteStats
    acks: AckLog
    failed_ids: array[int]
    unknown_ids: array[int]
    overlaps: tuple[Violation, ...]  # overlapping acknowledgements by different nodes
    dual_writable: tuple[Window, ...]
    roles: tuple[RoleChange, ...]
    faults: tuple[FaultRecord, ...]
    failovers: tuple[Failover, ...]
    final_reads: Mapping[str, FinalRead]

    @property
    def dual_writable_s(self) -> float:
        return sum(w.duration_s for w in self.dual_writable)


# ---------------------------------------------------------------- field access


def _bad(e: Event, key: str, want: str) -> HistoryError:
    got = e.get(key)
    return HistoryError(f"event {e.kind!r} at t={e.t}: field {key!r} must be {want}, got {got!r}")


def _int(e: Event, key: str) -> int:
    value = e.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(e, key, "an integer")
    return value


def _opt_int(e: Event, key: str) -> int | None:
    return None if e.get(key) is None else _int(e, key)


def _str(e: Event, key: str) -> str:
    value = e.get(key)
    if not isinstance(value, str):
        raise _bad(e, key, "a string")
    return value


def _opt_str(e: Event, key: str) -> str | None:
    return None if e.get(key) is None else _str(e, key)


def _node(e: Event) -> str:
    if e.node is None:
        raise HistoryError(f"event {e.kind!r} at t={e.t}: needs a 'node'")
    return e.node


def _names(e: Event, key: str) -> tuple[str, ...]:
    value = e.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(e, key, "a list of names")
    return tuple(value)


def _is_write(e: Event) -> bool:
    return bool(e.get("op", "write") == "write")


# ---------------------------------------------------------------- trackers (streaming)


class _Writes:
    """Client operations: counts, the ack log, and unavailability (no success while writing).

    An unavailable period starts at the invoke of the first write after the last success that
    fails, returns `info` or never returns (but not before that last success), and ends at the
    next acknowledgement (or the end of the run).
    """

    def __init__(self) -> None:
        self.pending: dict[int, float] = {}
        self.acks = AckLog()
        self.failed_ids = array("q")
        self.unknown_ids = array("q")
        self.invoked = self.failed = self.info = 0
        self._last_ok_t: float | None = None
        self._down_since: float | None = None
        self._down_total_s = 0.0
        self._down_periods = 0
        self._down_longest_s = 0.0
        self._down_windows: list[tuple[float, float]] = []

    def invoke(self, e: Event) -> None:
        self.pending[_int(e, "id")] = e.t
        self.invoked += 1

    def ok(self, e: Event, timeline: int | None) -> float:
        """Record an acknowledgement; returns its invoke time."""
        t_invoke = self.pending.pop(_int(e, "id"), e.t)
        self.acks.add(_int(e, "id"), e.t, _str(e, "served_by"), timeline)
        self._up(e.t)
        self._last_ok_t = e.t
        return t_invoke

    def not_ok(self, e: Event) -> None:
        write_id = _int(e, "id")
        t_invoke = self.pending.pop(write_id, e.t)
        if e.kind == "fail":
            self.failed += 1
            self.failed_ids.append(write_id)
        else:
            self.info += 1
            self.unknown_ids.append(write_id)
        self._down(t_invoke)

    def _down(self, t_invoke: float) -> None:
        if self._down_since is None:
            last_ok_t = -math.inf if self._last_ok_t is None else self._last_ok_t
            self._down_since = max(t_invoke, last_ok_t)

    def _up(self, t: float) -> None:
        if self._down_since is not None:
            span_s = max(0.0, t - self._down_since)
            self._down_total_s += span_s
            self._down_periods += 1
            self._down_longest_s = max(self._down_longest_s, span_s)
            self._down_windows.append((self._down_since, self._down_since + span_s))
            self._down_since = None

    def finish(self, t_end: float) -> WriteStats:
        if self.pending:
            self._down(min(self.pending.values()))
        self._up(t_end)
        return WriteStats(
            invoked=self.invoked,
            acknowledged=len(self.acks),
            failed=self.failed,
            unknown=self.info + len(self.pending),
            unavailability_s=self._down_total_s,
            unavailable_periods=self._down_periods,
            longest_unavailability_s=self._down_longest_s,
            unavailable_windows=tuple(self._down_windows),
        )


@dataclass(slots=True)
class _OverlapWindow:
    t_start: float
    t_end: float
    first: dict[str, Any]


class _Overlaps:
    """Split-brain (a): acknowledged writes of two nodes whose [invoke, ok] intervals overlap.

    Acks arrive in ok order, so a new ack [i, o] on X overlaps some earlier ack of Y exactly when
    Y's latest ack ended after i. Conflicts of one pair of nodes less than OVERLAP_MERGE_GAP_S
    apart merge into one window, spanning the conflicting writes.
    """

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, float, int]] = {}
        self._open: dict[tuple[str, str], _OverlapWindow] = {}
        self._closed: list[tuple[tuple[str, str], _OverlapWindow]] = []

    def ack(self, node: str, t_invoke: float, t_ok: float, write_id: int) -> None:
        for other, (a, b, other_id) in self._last.items():
            if other != node and b > t_invoke:
                pair = (min(node, other), max(node, other))
                conflict = {
                    node: {"id": write_id, "invoke_t": _r(t_invoke), "ok_t": _r(t_ok)},
                    other: {"id": other_id, "invoke_t": _r(a), "ok_t": _r(b)},
                }
                self._extend(pair, min(a, t_invoke), t_ok, conflict)
        self._last[node] = (t_invoke, t_ok, write_id)

    def _extend(
        self, pair: tuple[str, str], t_start: float, t_end: float, conflict: dict[str, Any]
    ) -> None:
        window = self._open.get(pair)
        if window is not None and t_start <= window.t_end + OVERLAP_MERGE_GAP_S:
            window.t_end = max(window.t_end, t_end)
            return
        if window is not None:
            self._closed.append((pair, window))
        self._open[pair] = _OverlapWindow(t_start, t_end, conflict)

    def finish(self, acks: AckLog) -> tuple[Violation, ...]:
        windows = [*self._closed, *self._open.items()]
        out = [
            Violation(
                t_start=w.t_start,
                t_end=w.t_end,
                nodes=pair,
                detail={
                    "reason": "overlapping_acknowledgements",
                    "summary": (
                        f"{pair[0]} and {pair[1]} both acknowledged writes between "
                        f"t={w.t_start:.3f} and t={w.t_end:.3f}"
                    ),
                    "first_conflict": w.first,
                    "acks_by_node": acks.count_between(w.t_start, w.t_end),
                },
            )
            for pair, w in windows
        ]
        return tuple(sorted(out, key=lambda v: (v.t_start, v.nodes)))


class _Writable:
    """Windows during which two or more nodes' PostgreSQL accepted writes at once."""

    def __init__(self) -> None:
        self._now: set[str] = set()
        self._since: float | None = None
        self._nodes: set[str] = set()
        self.windows: list[Window] = []

    def set(self, node: str, writable: bool, t: float) -> None:
        if writable:
            self._now.add(node)
        else:
            self._now.discard(node)
        if len(self._now) >= 2:
            self._since = t if self._since is None else self._since
            self._nodes |= self._now
        else:
            self.close(t)

    def close(self, t: float) -> None:
        if self._since is not None:
            self.windows.append(Window(self._since, t, tuple(sorted(self._nodes))))
            self._since = None
            self._nodes = set()


class _Roles:
    """PostgreSQL roles (`pg_role`, logged) and agent beliefs (`agent_role`, latest only)."""

    def __init__(self) -> None:
        self.log: list[RoleChange] = []
        self.pg: dict[str, RoleChange] = {}
        self.agent: dict[str, str] = {}

    def pg_role(self, e: Event) -> None:
        change = RoleChange(
            e.t, _node(e), _str(e, "role"), _opt_int(e, "timeline"), _opt_str(e, "upstream")
        )
        self.log.append(change)
        self.pg[change.node] = change

    def agent_role(self, e: Event) -> None:
        self.agent[_node(e)] = _str(e, "role")

    def timeline(self, node: str) -> int | None:
        change = self.pg.get(node)
        return None if change is None else change.timeline

    def primaries(self) -> tuple[str, ...]:
        """Nodes whose PostgreSQL is primary; failing that, whose agent believes it is."""
        by_pg = sorted(n for n, c in self.pg.items() if c.role == "primary")
        by_agent = sorted(n for n, r in self.agent.items() if r == "primary")
        return tuple(by_pg or by_agent)


@dataclass(slots=True)
class _Measure:
    fault: FaultRecord
    t_fault_end: float | None = None


class _Faults:
    """Faults as applied, and the failover each primary-hitting fault led to."""

    def __init__(self) -> None:
        self.records: dict[int, FaultRecord] = {}
        self._open: dict[int, _Measure] = {}
        self.failovers: list[Failover] = []

    def fault(self, e: Event, primaries: tuple[str, ...]) -> None:
        fault_id, phase = _int(e, "id"), _str(e, "phase")
        if phase == "end" and fault_id in self.records:
            self._end(fault_id, e.t)
            return
        params = e.get("params") or {}
        record = FaultRecord(
            id=fault_id,
            kind=_str(e, "fault"),
            targets=_names(e, "targets"),
            label=_opt_str(e, "label") or _str(e, "fault"),
            t_start=e.t,
            t_end=e.t if phase == "end" else None,
            primaries_at_start=primaries,
            params=params if isinstance(params, Mapping) else {"value": params},
            skipped=phase == "skipped",
            error=_opt_str(e, "error"),
        )
        self.records[fault_id] = record
        hits = set(record.targets) & set(primaries)
        if phase == "start" and record.kind in FAILOVER_FAULT_KINDS and hits:
            self._open[fault_id] = _Measure(record)

    def _end(self, fault_id: int, t: float) -> None:
        old = self.records[fault_id]
        self.records[fault_id] = FaultRecord(
            id=old.id,
            kind=old.kind,
            targets=old.targets,
            label=old.label,
            t_start=old.t_start,
            t_end=t,
            primaries_at_start=old.primaries_at_start,
            params=old.params,
            skipped=old.skipped,
            error=old.error,
        )
        if fault_id in self._open:
            self._open[fault_id].t_fault_end = t

    def ack(self, node: str, t: float) -> None:
        for fault_id, m in list(self._open.items()):
            old = m.fault.primaries_at_start
            if node not in old:
                self._resolve(fault_id, "failover", node, t)
            elif m.t_fault_end is not None and t >= m.t_fault_end:
                self._resolve(fault_id, "kept_serving", node, t)

    def _resolve(self, fault_id: int, outcome: str, node: str | None, t: float | None) -> None:
        fault = self._open.pop(fault_id).fault
        self.failovers.append(
            Failover(
                fault_id=fault.id,
                fault=fault.kind,
                label=fault.label,
                t_fault=fault.t_start,
                old_primaries=fault.primaries_at_start,
                outcome=outcome,
                new_primary=node if outcome == "failover" else None,
                t_first_ok=t if outcome == "failover" else None,
            )
        )

    def finish(self) -> tuple[tuple[FaultRecord, ...], tuple[Failover, ...]]:
        for fault_id in list(self._open):
            self._resolve(fault_id, "none", None, None)
        faults = sorted(self.records.values(), key=lambda f: (f.t_start, f.id))
        failovers = sorted(self.failovers, key=lambda f: (f.t_fault, f.fault_id))
        return tuple(faults), tuple(failovers)


class FactsCollector:
    """Feeds on events one at a time (`feed`), then gives the `RunFacts` (`finish`)."""

    def __init__(self) -> None:
        self._run: Mapping[str, Any] = {}
        self._t_start: float | None = None
        self._t_last = 0.0
        self._writes = _Writes()
        self._overlaps = _Overlaps()
        self._writable = _Writable()
        self._roles = _Roles()
        self._faults = _Faults()
        self._final: dict[str, FinalRead] = {}
        self._handlers: dict[str, Callable[[Event], None]] = {
            "run_start": self._run_start,
            "invoke": self._invoke,
            "ok": self._ok,
            "fail": self._not_ok,
            "info": self._not_ok,
            "pg_role": self._roles.pg_role,
            "agent_role": self._roles.agent_role,
            "writable": self._on_writable,
            "fault": self._fault,
            "final_read": self._final_read,
        }

    def feed(self, e: Event) -> None:
        if self._t_start is None:
            self._t_start = e.t
        self._t_last = e.t
        handler = self._handlers.get(e.kind)
        if handler is not None:
            handler(e)

    def _run_start(self, e: Event) -> None:
        self._run = dict(e.fields)
        self._t_start = e.t

    def _invoke(self, e: Event) -> None:
        if _is_write(e):
            self._writes.invoke(e)

    def _ok(self, e: Event) -> None:
        if not _is_write(e):
            return
        node = _str(e, "served_by")
        timeline = _opt_int(e, "timeline")
        if timeline is None:
            timeline = self._roles.timeline(node)
        t_invoke = self._writes.ok(e, timeline)
        self._overlaps.ack(node, t_invoke, e.t, _int(e, "id"))
        self._faults.ack(node, e.t)

    def _not_ok(self, e: Event) -> None:
        if _is_write(e):
            self._writes.not_ok(e)

    def _on_writable(self, e: Event) -> None:
        value = e.get("writable")
        if not isinstance(value, bool):
            raise _bad(e, "writable", "true or false")
        self._writable.set(_node(e), value, e.t)

    def _fault(self, e: Event) -> None:
        self._faults.fault(e, self._roles.primaries())

    def _final_read(self, e: Event) -> None:
        ids = e.get("ids")
        if not isinstance(ids, list) or not all(type(i) is int for i in ids):
            raise _bad(e, "ids", "a list of write ids")
        node = _node(e)
        self._final[node] = FinalRead(
            node, _str(e, "role"), _opt_int(e, "timeline"), _opt_int(e, "lsn"), _sorted_ids(ids)
        )

    def finish(self) -> RunFacts:
        t_start = 0.0 if self._t_start is None else self._t_start
        t_end = self._t_last
        self._writable.close(t_end)
        faults, failovers = self._faults.finish()
        return RunFacts(
            run=self._run,
            t_start=t_start,
            t_end=t_end,
            nodes=self._nodes(),
            writes=self._writes.finish(t_end),
            acks=self._writes.acks,
            failed_ids=self._writes.failed_ids,
            unknown_ids=self._writes.unknown_ids,
            overlaps=self._overlaps.finish(self._writes.acks),
            dual_writable=tuple(self._writable.windows),
            roles=tuple(self._roles.log),
            faults=faults,
            failovers=failovers,
            final_reads=dict(self._final),
        )

    def _nodes(self) -> tuple[str, ...]:
        declared = self._run.get("nodes")
        if isinstance(declared, list) and declared:
            return tuple(str(n) for n in declared)
        return tuple(sorted({c.node for c in self._roles.log}))


def _sorted_ids(ids: list[int]) -> array[int]:
    """Write ids as a compact sorted array (8 bytes each; a day's final read has ~0.9 M)."""
    packed = array("q", ids)
    if any(packed[k] > packed[k + 1] for k in range(len(packed) - 1)):
        packed = array("q", sorted(packed))
    return packed


def collect_facts(events: Iterable[Event]) -> RunFacts:
    """One streaming pass over `events`."""
    collector = FactsCollector()
    for e in events:
        collector.feed(e)
    return collector.finish()


# ---------------------------------------------------------------- derived: final data, branches


@dataclass(frozen=True, slots=True)
class _Lost:
    final: FinalRead
    indices: list[int]  # positions in the ack log of acknowledged writes absent from final data


def _final_primary(facts: RunFacts) -> FinalRead | Violation:
    primaries = [r for r in facts.final_reads.values() if r.role == "primary"]
    if len(primaries) == 1:
        return primaries[0]
    roles = {n: r.role for n, r in sorted(facts.final_reads.items())}
    return Violation(
        t_start=facts.t_end,
        t_end=facts.t_end,
        nodes=tuple(sorted(r.node for r in primaries)),
        detail={
            "reason": "no_single_final_primary",
            "summary": f"{len(primaries)} final reads with role primary; expected exactly one",
            "final_roles": roles,
        },
    )


def _lost_writes(facts: RunFacts) -> _Lost | Violation:
    final = _final_primary(facts)
    if isinstance(final, Violation):
        return final
    acks = facts.acks
    return _Lost(final, [k for k in range(len(acks)) if not final.has(acks.ids[k])])


@dataclass(frozen=True, slots=True)
class _Branch:
    timeline: int
    t_created: float
    node: str
    parent: int | None


def _branches(roles: Sequence[RoleChange]) -> dict[int, _Branch]:
    """Timelines as created by promotions: who created each, when, from which timeline."""
    branches: dict[int, _Branch] = {}
    previous: dict[str, int] = {}
    for c in roles:
        if c.timeline is None:
            continue
        if c.role == "primary" and c.timeline not in branches:
            parent = previous.get(c.node)
            parent = None if parent == c.timeline else parent
            branches[c.timeline] = _Branch(c.timeline, c.t, c.node, parent)
        previous[c.node] = c.timeline
    return branches


def _lineage(branches: Mapping[int, _Branch], timeline: int) -> list[int]:
    """`timeline` and its ancestors, oldest first."""
    chain = [timeline]
    while (b := branches.get(chain[-1])) is not None and b.parent is not None:
        if b.parent in chain:
            break
        chain.append(b.parent)
    return chain[::-1]


def _fork(branches: Mapping[int, _Branch], final_tl: int, write_tl: int) -> _Branch | None:
    """The first branch of the final data that is not an ancestor of `write_tl` (None: no fork)."""
    ancestors = set(_lineage(branches, write_tl))
    for tl in _lineage(branches, final_tl):
        if tl not in ancestors:
            return branches.get(tl)
    return None


def _ids_detail(acks: AckLog, indices: Sequence[int]) -> list[int]:
    return [acks.ids[k] for k in indices[:FIRST_IDS]]


def _group_lost(acks: AckLog, indices: Iterable[int]) -> dict[tuple[str, int], list[int]]:
    groups: dict[tuple[str, int], list[int]] = {}
    for k in indices:
        groups.setdefault((acks.node(k), acks.timelines[k]), []).append(k)
    return groups


# ---------------------------------------------------------------- checks on facts


def check_no_split_brain(facts: RunFacts) -> CheckResult:
    """(a) overlapping acknowledgements of two nodes, (b) acks on a branch that proved divergent.

    Always measures `dual_writable_s` (two or more nodes `writable` at once), which is reported
    but not by itself a violation.
    """
    divergent, checked = _divergent_acks(facts)
    violations = tuple(sorted((*facts.overlaps, *divergent), key=lambda v: (v.t_start, v.nodes)))
    windows = [
        {"t_start": _r(w.t_start), "t_end": _r(w.t_end), "nodes": list(w.nodes)}
        for w in facts.dual_writable
    ]
    metrics = {
        "dual_writable_s": _r(facts.dual_writable_s),
        "dual_writable_windows": windows,
        "overlap_windows": len(facts.overlaps),
        "divergent_acks": sum(v.detail["lost_writes"] for v in divergent),
        "divergence_checked": checked,
    }
    return CheckResult(SPLIT_BRAIN, not violations, violations, metrics)


def _divergent_acks(facts: RunFacts) -> tuple[tuple[Violation, ...], bool]:
    lost = _lost_writes(facts)
    if isinstance(lost, Violation) or lost.final.timeline is None:
        return (), False
    branches = _branches(facts.roles)
    acks, final_tl = facts.acks, lost.final.timeline
    out = []
    for (node, tl), ks in _group_lost(acks, lost.indices).items():
        fork = _fork(branches, final_tl, tl) if tl else None
        if fork is None or fork.node == node:
            continue
        late = [k for k in ks if acks.t_ok[k] >= fork.t_created]
        if late:
            out.append(_divergence_violation(facts, lost.final, node, tl, fork, late))
    return tuple(out), True


def _divergence_violation(
    facts: RunFacts, final: FinalRead, node: str, timeline: int, fork: _Branch, ks: list[int]
) -> Violation:
    acks = facts.acks
    return Violation(
        t_start=acks.t_ok[ks[0]],
        t_end=acks.t_ok[ks[-1]],
        nodes=tuple(sorted({node, fork.node})),
        detail={
            "reason": "acknowledged_on_divergent_branch",
            "summary": (
                f"{node} acknowledged {len(ks)} writes on timeline {timeline} after {fork.node} "
                f"had created timeline {fork.timeline} at t={fork.t_created:.3f}; "
                f"they are missing from the final primary {final.node}"
            ),
            "served_by": node,
            "timeline": timeline,
            "branch_node": fork.node,
            "branch_timeline": fork.timeline,
            "branch_created_t": _r(fork.t_created),
            "final_primary": final.node,
            "final_timeline": final.timeline,
            "lost_writes": len(ks),
            "first_ids": _ids_detail(acks, ks),
        },
    )


def check_no_lost_acknowledged_writes(
    facts: RunFacts, max_lost_writes: int | None = None
) -> CheckResult:
    """Every acknowledged write is in the final primary's data (or the loss is within the bound)."""
    lost = _lost_writes(facts)
    if isinstance(lost, Violation):
        return CheckResult(LOST_WRITES, False, (lost,), {"lost_writes": None})
    acks = facts.acks
    count = len(lost.indices)
    within = count == 0 or (max_lost_writes is not None and count <= max_lost_writes)
    groups = _group_lost(acks, lost.indices)
    metrics = {
        "acknowledged": len(acks),
        "lost_writes": count,
        "lost_ids": _ids_detail(acks, lost.indices),
        "lost_by_node": _count_by_node(groups),
        "max_lost_writes": max_lost_writes,
        "final_primary": lost.final.node,
    }
    violations = () if within else _loss_violations(acks, groups, lost.final, max_lost_writes)
    return CheckResult(LOST_WRITES, within, violations, metrics)


def _count_by_node(groups: Mapping[tuple[str, int], list[int]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for (node, _), ks in sorted(groups.items()):
        counts[node] = counts.get(node, 0) + len(ks)
    return counts


def _loss_violations(
    acks: AckLog,
    groups: Mapping[tuple[str, int], list[int]],
    final: FinalRead,
    bound: int | None,
) -> tuple[Violation, ...]:
    total = sum(len(ks) for ks in groups.values())
    out = [
        Violation(
            t_start=acks.t_ok[ks[0]],
            t_end=acks.t_ok[ks[-1]],
            nodes=(node,),
            detail={
                "reason": "acknowledged_writes_lost",
                "summary": (
                    f"{len(ks)} writes acknowledged by {node} on timeline {tl or 'unknown'} are "
                    f"missing from the final primary {final.node} ({total} lost in all"
                    + ("" if bound is None else f", bound {bound}")
                    + ")"
                ),
                "served_by": node,
                "timeline": tl or None,
                "lost_writes": len(ks),
                "first_ids": _ids_detail(acks, ks),
                "final_primary": final.node,
                "total_lost": total,
                "max_lost_writes": bound,
            },
        )
        for (node, tl), ks in groups.items()
    ]
    return tuple(sorted(out, key=lambda v: (v.t_start, v.nodes)))


def check_failover_within(facts: RunFacts, within_s: float) -> CheckResult:
    """Each fault that hit the primary is followed by an ack from another node within `within_s`."""
    violations = tuple(
        _failover_violation(facts, f, within_s)
        for f in facts.failovers
        if f.outcome == "none" or (f.failover_s is not None and f.failover_s > within_s)
    )
    times = [_r(f.failover_s) for f in facts.failovers if f.failover_s is not None]
    metrics = {
        "within_s": within_s,
        "failover_times_s": times,
        "max_failover_s": max(times, default=None),
        "failovers": [f.to_dict() for f in facts.failovers],
    }
    return CheckResult(FAILOVER, not violations, violations, metrics)


def _failover_violation(facts: RunFacts, f: Failover, within_s: float) -> Violation:
    old = ", ".join(f.old_primaries)
    if f.failover_s is None:
        reason = "no_failover"
        text = f"no other node than {old} acknowledged a write before the run ended"
    else:
        reason = "failover_too_slow"
        text = f"{f.new_primary} acknowledged the first write {f.failover_s:.3f} s after the fault"
    return Violation(
        t_start=f.t_fault,
        t_end=facts.t_end if f.t_first_ok is None else f.t_first_ok,
        nodes=tuple(sorted({*f.old_primaries, *([f.new_primary] if f.new_primary else [])})),
        detail={
            "reason": reason,
            "summary": f"fault {f.label!r} (id {f.fault_id}) hit primary {old} at "
            f"t={f.t_fault:.3f}; {text} (limit {within_s} s)",
            **f.to_dict(),
            "within_s": within_s,
        },
    )


def check_eventually_healthy(facts: RunFacts, within_s: float) -> CheckResult:
    """After the last fault, within `within_s`: one primary, every other node a replica of it."""
    t_calm = max((f.t_over for f in facts.faults if not f.skipped), default=facts.t_start)
    deadline = t_calm + within_s
    reached, stable_since = _health_reached(facts, t_calm)
    healthy_at_end = _healthy(_state_at(facts.roles, facts.t_end), facts.nodes)
    final_problem = _final_reads_problem(facts)
    metrics = {
        "within_s": within_s,
        "last_fault_end_t": _r(t_calm),
        "healthy_at_t": _r(reached),
        "healthy_after_s": _r(None if reached is None else reached - t_calm),
        "stable_since_t": _r(stable_since),
    }
    problems = []
    if reached is None or reached > deadline:
        problems.append("not_healthy_within")
    if not healthy_at_end:
        problems.append("unhealthy_at_end")
    if final_problem:
        problems.append("final_reads_disagree")
    if not problems:
        return CheckResult(HEALTHY, True, (), metrics)
    v = _health_violation(facts, t_calm, deadline, reached, problems, final_problem)
    return CheckResult(HEALTHY, False, (v,), metrics)


def _health_violation(
    facts: RunFacts,
    t_calm: float,
    deadline: float,
    reached: float | None,
    problems: list[str],
    final_problem: str | None,
) -> Violation:
    at_deadline = _state_at(facts.roles, min(deadline, facts.t_end))
    at_end = _state_at(facts.roles, facts.t_end)
    nodes = set(_unhealthy(at_deadline, facts.nodes)) | set(_unhealthy(at_end, facts.nodes))
    when = "never" if reached is None else f"only at t={reached:.3f}"
    return Violation(
        t_start=t_calm,
        t_end=facts.t_end,
        nodes=tuple(sorted(nodes)),
        detail={
            "reason": problems[0],
            "problems": problems,
            "summary": (
                f"last fault over at t={t_calm:.3f}; deadline t={deadline:.3f}; healthy {when}"
                + (f"; {final_problem}" if final_problem else "")
            ),
            "last_fault_end_t": _r(t_calm),
            "deadline_t": _r(deadline),
            "healthy_at_t": _r(reached),
            "roles_at_deadline": _describe_state(at_deadline, facts.nodes),
            "roles_at_end": _describe_state(at_end, facts.nodes),
            "final_reads": {
                n: {"role": r.role, "timeline": r.timeline}
                for n, r in sorted(facts.final_reads.items())
            },
        },
    )


def _state_at(roles: Sequence[RoleChange], t: float) -> dict[str, RoleChange]:
    state: dict[str, RoleChange] = {}
    for c in roles:
        if c.t > t:
            break
        state[c.node] = c
    return state


def _follows(replica: RoleChange, primary: RoleChange) -> bool:
    if replica.role != "replica":
        return False
    if replica.upstream is not None:
        return replica.upstream == primary.node
    return None in (replica.timeline, primary.timeline) or replica.timeline == primary.timeline


def _unhealthy(state: Mapping[str, RoleChange], nodes: Sequence[str]) -> tuple[str, ...]:
    """Nodes that keep the cluster from being healthy (all of them when no single primary)."""
    primaries = [n for n in nodes if n in state and state[n].role == "primary"]
    if len(primaries) > 1:
        return tuple(primaries)
    if not primaries:
        return tuple(nodes)
    primary = state[primaries[0]]
    return tuple(
        n
        for n in nodes
        if n != primary.node and (n not in state or not _follows(state[n], primary))
    )


def _healthy(state: Mapping[str, RoleChange], nodes: Sequence[str]) -> bool:
    return bool(nodes) and not _unhealthy(state, nodes)


def _health_reached(facts: RunFacts, t_calm: float) -> tuple[float | None, float | None]:
    """The first time from `t_calm` on when the cluster was healthy, and when its last healthy
    stretch (lasting to the end of the run) began (None if unhealthy at the end)."""
    state = _state_at(facts.roles, t_calm)
    healthy = _healthy(state, facts.nodes)
    reached = t_calm if healthy else None
    since = t_calm if healthy else None
    for c in facts.roles:
        if c.t <= t_calm:
            continue
        state[c.node] = c
        now = _healthy(state, facts.nodes)
        if now and not healthy:
            since = c.t
            reached = c.t if reached is None else reached
        healthy = now
    return reached, since if healthy else None


def _final_reads_problem(facts: RunFacts) -> str | None:
    if not facts.final_reads:
        return None
    final = _final_primary(facts)
    if isinstance(final, Violation):
        return str(final.detail["summary"])
    behind = sorted(
        n
        for n, r in facts.final_reads.items()
        if n != final.node and (r.role != "replica" or r.timeline != final.timeline)
    )
    if behind:
        return f"final reads of {', '.join(behind)} are not replicas on timeline {final.timeline}"
    return None


def _describe_state(state: Mapping[str, RoleChange], nodes: Sequence[str]) -> dict[str, Any]:
    return {
        n: (
            {"role": state[n].role, "timeline": state[n].timeline, "since_t": _r(state[n].t)}
            if n in state
            else None
        )
        for n in nodes
    }


# ---------------------------------------------------------------- public entry points


def no_split_brain(events: Iterable[Event]) -> CheckResult:
    return check_no_split_brain(collect_facts(events))


def no_lost_acknowledged_writes(
    events: Iterable[Event], max_lost_writes: int | None = None
) -> CheckResult:
    return check_no_lost_acknowledged_writes(collect_facts(events), max_lost_writes)


def failover_within(events: Iterable[Event], within_s: float) -> CheckResult:
    return check_failover_within(collect_facts(events), within_s)


def eventually_healthy(events: Iterable[Event], within_s: float) -> CheckResult:
    return check_eventually_healthy(collect_facts(events), within_s)


def run_checks(
    events: Iterable[Event] | RunFacts,
    checks_spec: ChecksSpec | Mapping[str, Any] | None = None,
) -> CheckReport:
    """Run the enabled checks in one pass over `events` (or on facts already collected).

    `checks_spec` None: the `checks` of the history's `run_start`; failing that, the two safety
    invariants (the scenario defaults, `ChecksSpec()`).
    """
    facts = events if isinstance(events, RunFacts) else collect_facts(events)
    spec = _resolve_spec(checks_spec, facts)
    results: list[CheckResult] = []
    if spec.no_split_brain:
        results.append(check_no_split_brain(facts))
    if spec.no_lost_acknowledged_writes:
        results.append(check_no_lost_acknowledged_writes(facts, spec.max_lost_writes))
    if spec.failover_within_s is not None:
        results.append(check_failover_within(facts, spec.failover_within_s))
    if spec.eventually_healthy_s is not None:
        results.append(check_eventually_healthy(facts, spec.eventually_healthy_s))
    return CheckReport(tuple(results), summarize(facts), spec)


def _resolve_spec(spec: ChecksSpec | Mapping[str, Any] | None, facts: RunFacts) -> ChecksSpec:
    if isinstance(spec, ChecksSpec):
        return spec
    if spec is not None:
        return spec_from_history(spec)
    from_history = facts.run.get("checks")
    if isinstance(from_history, Mapping):
        return spec_from_history(from_history)
    return ChecksSpec()


def summarize(facts: RunFacts) -> dict[str, Any]:
    """The run's metrics, whether or not a check uses them."""
    w = facts.writes
    lost = _lost_writes(facts)
    final = None if isinstance(lost, Violation) else lost.final
    return {
        "duration_s": _r(facts.t_end - facts.t_start),
        "writes_invoked": w.invoked,
        "writes_acknowledged": w.acknowledged,
        "writes_failed": w.failed,
        "writes_unknown": w.unknown,
        "unknown_writes_applied": _present(final, facts.unknown_ids),
        "failed_writes_applied": _present(final, facts.failed_ids),
        "lost_writes": None if isinstance(lost, Violation) else len(lost.indices),
        "lost_write_ids": []
        if isinstance(lost, Violation)
        else _ids_detail(facts.acks, lost.indices),
        "final_primary": None if final is None else final.node,
        "unavailability_s": _r(w.unavailability_s),
        "unavailable_periods": w.unavailable_periods,
        "longest_unavailability_s": _r(w.longest_unavailability_s),
        "dual_writable_s": _r(facts.dual_writable_s),
        "failover_times_s": [_r(f.failover_s) for f in facts.failovers if f.failover_s is not None],
        "failovers": [f.to_dict() for f in facts.failovers],
        "faults_applied": sum(1 for f in facts.faults if not f.skipped),
        "faults_skipped": sum(1 for f in facts.faults if f.skipped),
    }


def _present(final: FinalRead | None, ids: Iterable[int]) -> int | None:
    return None if final is None else sum(1 for i in ids if final.has(i))


@overload
def _r(value: float) -> float: ...
@overload
def _r(value: float | None) -> float | None: ...
def _r(value: float | None) -> float | None:
    """Rounded to the microsecond, for stable output."""
    return None if value is None else round(value, DECIMALS)
