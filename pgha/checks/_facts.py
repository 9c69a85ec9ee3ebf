# One streaming pass (`FactsCollector`) keeps only what the checks need: per-node state, the few
# role changes, faults and operator requests, and the acknowledged writes in compact columns. It
# also refuses a history that contradicts itself (see `HistoryIntegrityError`): every error names
# the source and the line it read, so `pgha check` can point at it.
"""The facts of a run, gathered from its history in one pass."""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pgha.checks._faults import (
    Failover,
    FaultRecord,
    Faults,
    OperatorRequest,
    operator_request,
)
from pgha.checks._fields import (
    HistoryIntegrityError,
    bad,
    get_str,
    node_of,
    opt_int,
)
from pgha.checks._roles import Overlaps, RoleChange, Roles, Window
from pgha.checks._writes import AckLog, Writes, WriteStats
from pgha.history import Event, HistoryError


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
    dual_writable: tuple[Window, ...]
    dual_primary: tuple[Window, ...]  # two or more nodes' PostgreSQL primary at once (pg_role)
    roles: tuple[RoleChange, ...]
    faults: tuple[FaultRecord, ...]
    failovers: tuple[Failover, ...]
    final_reads: Mapping[str, FinalRead]
    operator_requests: tuple[OperatorRequest, ...] = ()

    @property
    def dual_writable_s(self) -> float:
        return sum((w.duration_s for w in self.dual_writable), 0.0)


class FactsCollector:
    """Feeds on events one at a time (`feed`), then gives the `RunFacts` (`finish`).

    `source` names the history in errors (a file name); events read from a file carry their line.
    """

    def __init__(self, source: str = "<history>", *, partial: bool = False) -> None:
        self.source = source
        self.partial = partial  # a run still going: no run_end and final reads yet
        self._run: Mapping[str, Any] = {}
        self._t_start: float | None = None
        self._last_t: float | None = None  # the last event's time and line (0: not from a file)
        self._last_line = 0
        self._count = 0
        self._started = self._ended = False
        self._writes = Writes()
        self._writable = Overlaps()
        self._roles = Roles()
        self._faults = Faults()
        self._operators: list[OperatorRequest] = []
        self._final: dict[str, FinalRead] = {}
        self._handlers: dict[str, Callable[[Event], None]] = {
            "run_start": self._run_start,
            "run_end": self._run_end,
            "invoke": self._invoke,
            "ok": self._ok,
            "fail": self._not_ok,
            "info": self._not_ok,
            "pg_role": self._roles.pg_role,
            "agent_role": self._roles.agent_role,
            "writable": self._on_writable,
            "fault": self._fault,
            "operator": self._operator,
            "final_read": self._final_read,
        }

    def feed(self, e: Event) -> None:
        self._count += 1
        self._last_t, self._last_line = e.t, e.line
        if self._t_start is None:
            self._t_start = e.t
        handler = self._handlers.get(e.kind)
        if handler is None and not self._ended:
            return
        try:
            if self._ended:
                raise HistoryIntegrityError(f"event {e.kind!r} after run_end")
            if handler is not None:
                handler(e)
        except HistoryError as error:
            raise type(error)(f"{self._where(e)}: {error}") from None

    # The client's write events, typed: each call is exactly `feed` of the event that
    # `pgha.history.event_of` makes of it, for values of these types (the explorer's recorder
    # calls them for the simulator's own writes; tests/explore/test_event_path.py pins it).

    def write_invoked(self, t: float, write_id: int, target: str) -> None:
        """`invoke` of a write (op "write") at `t` (already rounded as events are)."""
        self._typed(t, "invoke")
        try:
            self._writes.invoke(t, write_id, target)
        except HistoryError as error:
            raise self._located(error) from None

    def write_acked(self, t: float, write_id: int, served_by: str, timeline: int | None) -> None:
        """`ok` of a write served by `served_by` on `timeline` (None: unknown)."""
        self._typed(t, "ok")
        try:
            self._ack(t, write_id, served_by, timeline)
        except HistoryError as error:
            raise self._located(error) from None

    def write_not_ok(self, t: float, kind: str, write_id: int) -> None:
        """`fail` or `info` (`kind`) of a write."""
        self._typed(t, kind)
        try:
            self._writes.not_ok(kind, write_id)
        except HistoryError as error:
            raise self._located(error) from None

    def _typed(self, t: float, kind: str) -> None:
        self._count += 1
        self._last_t = t
        self._last_line = 0
        if self._t_start is None:
            self._t_start = t
        if self._ended:
            raise HistoryIntegrityError(f"{self._where()}: event {kind!r} after run_end")

    def _located(self, error: HistoryError) -> HistoryError:
        return type(error)(f"{self._where()}: {error}")

    def _where(self, e: Event | None = None) -> str:
        line = self._last_line if e is None else e.line
        if line:
            return f"{self.source}:{line}"
        return f"{self.source}: event {self._count}"

    def _run_start(self, e: Event) -> None:
        if self._started or self._count > 1:
            raise HistoryIntegrityError("run_start must be the first event, and only once")
        self._started = True
        self._run = dict(e.fields)
        self._t_start = e.t

    def _run_end(self, e: Event) -> None:
        self._ended = True

    def _invoke(self, e: Event) -> None:
        fields = e.fields
        if fields.get("op", "write") == "write":
            self._writes.invoke(e.t, _write_id(e), fields.get("target"))

    def _ok(self, e: Event) -> None:
        fields = e.fields
        if fields.get("op", "write") != "write":
            return
        node = fields.get("served_by")
        if type(node) is not str:
            raise bad(e, "served_by", "a string")
        timeline = fields.get("timeline")
        if timeline is not None and type(timeline) is not int:
            raise bad(e, "timeline", "an integer")
        self._ack(e.t, _write_id(e), node, timeline)

    def _ack(self, t: float, write_id: int, node: str, timeline: int | None) -> None:
        if timeline is None:
            timeline = self._roles.timeline(node)
        self._writes.ok(t, write_id, node, timeline)
        if self._faults.measuring:
            self._faults.ack(node, t)

    def _not_ok(self, e: Event) -> None:
        if e.fields.get("op", "write") == "write":
            self._writes.not_ok(e.kind, _write_id(e))

    def _on_writable(self, e: Event) -> None:
        value = e.get("writable")
        if not isinstance(value, bool):
            raise bad(e, "writable", "true or false")
        self._writable.set(node_of(e), value, e.t)

    def _fault(self, e: Event) -> None:
        self._faults.fault(e, self._roles.primaries())

    def _operator(self, e: Event) -> None:
        self._operators.append(operator_request(e))

    def _final_read(self, e: Event) -> None:
        ids = e.get("ids")
        if not isinstance(ids, list) or not set(map(type, ids)) <= {int}:
            raise bad(e, "ids", "a list of write ids")
        node = node_of(e)
        if node in self._final:
            raise HistoryIntegrityError(f"a second final_read of {node}")
        self._final[node] = FinalRead(
            node, get_str(e, "role"), opt_int(e, "timeline"), opt_int(e, "lsn"), _sorted_ids(ids)
        )

    def finish(self) -> RunFacts:
        """The facts; raises `HistoryIntegrityError` for a truncated run or a missing final read."""
        self._check_complete()
        t_start = 0.0 if self._t_start is None else self._t_start
        t_end = self._last_t if self._last_t is not None else 0.0
        self._writable.close(t_end)
        self._roles.primaries_at_once.close(t_end)
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
            dual_writable=tuple(self._writable.windows),
            dual_primary=tuple(self._roles.primaries_at_once.windows),
            roles=tuple(self._roles.log),
            faults=faults,
            failovers=failovers,
            final_reads=dict(self._final),
            operator_requests=tuple(self._operators),
        )

    def _check_complete(self) -> None:
        problem = None
        if self.partial:
            return
        if self._started and not self._ended:
            problem = "the history ends without run_end (truncated?)"
        elif self._final and (missing := sorted(set(self._nodes()) - set(self._final))):
            problem = f"no final_read of {', '.join(missing)} (the other nodes have one)"
        elif self._started and not self._final and len(self._writes.acks):
            problem = f"{len(self._writes.acks)} acknowledged writes but no final_read"
        if problem is not None:
            raise HistoryIntegrityError(f"{self._where()}: {problem}")

    def _nodes(self) -> tuple[str, ...]:
        declared = self._run.get("nodes")
        if isinstance(declared, list) and declared:
            return tuple(str(n) for n in declared)
        return tuple(sorted({c.node for c in self._roles.log}))


def _write_id(e: Event) -> int:
    write_id = e.fields.get("id")
    if type(write_id) is not int:
        raise bad(e, "id", "an integer")
    return write_id


def _sorted_ids(ids: list[int]) -> array[int]:
    """Write ids as a compact sorted array (8 bytes each; a day's final read has ~0.9 M)."""
    return array("q", sorted(ids))


def collect_facts(
    events: Iterable[Event], source: str = "<history>", *, partial: bool = False
) -> RunFacts:
    """One streaming pass over `events` (`source` names them in errors; `partial`: a run still
    going, judged so far)."""
    collector = FactsCollector(source, partial=partial)
    feed = collector.feed
    for e in events:
        feed(e)
    return collector.finish()
