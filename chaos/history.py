# One run leaves one history (docs/history.md), whatever wrote its events: the harness (run framing,
# faults as really applied, client operations, final reads, and PostgreSQL's role as polled from
# outside) and every agent (its beliefs, decisions, locks, watchdog), read from its container after
# the run. Both sides stamp events with the host's monotonic clock (CLOCK_MONOTONIC is not
# namespaced), so merging is a shift by the run's start and a sort. Safety rule protected: the
# checkers judge what really happened, so PostgreSQL's role is observed from outside (a frozen or
# dead agent writes nothing) and no event is reordered against the clock it was stamped with.
"""Collecting and merging the harness's and the agents' events into one chaos history."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, NamedTuple

from pgha.events import jsonable
from pgha.history import Event, HistoryWriter
from pgha.scenario import Scenario

POLL_INTERVAL_S = 0.5  # how often the harness looks at every node's PostgreSQL

# Kinds only the harness writes: an agent's copy of them would be nonsense in the merged history.
HARNESS_KINDS = frozenset(
    {"run_start", "run_end", "invoke", "ok", "fail", "info", "fault", "final_read"}
)
# An agent's state events from before the run started, carried to t = 0 (the last of each kind).
CARRIED_KINDS = frozenset({"agent_role", "pg_role", "lock", "watchdog"})
# Kinds written only on a change: a repeat of the node's previous value is dropped when merging.
CHANGE_KINDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"pg_role": ("role", "timeline", "upstream"), "writable": ("writable",)}
)


class RawEvent(NamedTuple):
    """An event as the harness recorded it: host monotonic time, arrival order, kind, node."""

    t_mono: float
    seq: int
    kind: str
    node: str | None
    fields: Mapping[str, Any]


class EventLog:
    """The harness's own events, stamped with the host's monotonic clock; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._events: list[RawEvent] = []

    def record(self, kind: str, node: str | None = None, /, **fields: Any) -> float:
        """Record one event now; returns its host monotonic time."""
        with self._lock:
            t_mono = self.clock()
            self._events.append(RawEvent(t_mono, len(self._events), kind, node, fields))
        return t_mono

    def record_at(
        self, t_mono: float, kind: str, node: str | None = None, /, **fields: Any
    ) -> None:
        """Record one event that happened at `t_mono` (a fault, timed where it was applied)."""
        with self._lock:
            self._events.append(RawEvent(t_mono, len(self._events), kind, node, fields))

    def events(self) -> list[RawEvent]:
        """A copy of everything recorded so far, in arrival order."""
        with self._lock:
            return list(self._events)

    def count(self, kind: str) -> int:
        """How many events of `kind` were recorded."""
        with self._lock:
            return sum(1 for e in self._events if e.kind == kind)


def run_start_fields(
    scenario: Scenario, *, agent: str = "pgha", seed: int | None = None
) -> dict[str, Any]:
    """The fields of the chaos history's `run_start` (as `sim.run` writes them, world `chaos`)."""
    return {
        "scenario": scenario.name,
        "seed": scenario.seed if seed is None else seed,
        "world": "chaos",
        "agent": agent,
        "nodes": list(scenario.node_names),
        "etcd": list(scenario.etcd),
        "config": scenario.config_json(),
        "checks": jsonable(scenario.checks),
        "duration": scenario.duration_s,
    }


# ---------------------------------------------------------------- merging


@dataclass(frozen=True, slots=True, kw_only=True)
class MergeStats:
    """What merging kept and dropped, for the run's log."""

    harness: int
    agent: int
    agent_before_start: int  # dropped (state kinds carried to t = 0 excepted)
    agent_after_end: int
    repeats: int  # pg_role / writable events that changed nothing


def _agent_events(
    name: str, raw: Sequence[Mapping[str, Any]], t0_mono: float, t_end_mono: float
) -> tuple[list[tuple[float, int, Event]], int, int]:
    """One agent's events on the run's time base: (t, rank, event); and how many were cut."""
    kept: list[tuple[float, int, Event]] = []
    carried: dict[tuple[str, str], Event] = {}
    before = after = 0
    for item in raw:
        fields = dict(item)
        t_mono, kind = fields.pop("t", None), fields.pop("kind", None)
        node = fields.pop("node", None) or name
        if not isinstance(t_mono, int | float) or not isinstance(kind, str) or not kind:
            continue
        if kind in HARNESS_KINDS:
            continue
        if t_mono < t0_mono:
            before += 1
            if kind in CARRIED_KINDS:
                carried[(str(node), kind)] = Event(0.0, kind, str(node), MappingProxyType(fields))
            continue
        if t_mono > t_end_mono:
            after += 1
            continue
        kept.append((float(t_mono) - t0_mono, 1, Event(0.0, kind, str(node), fields)))
    before -= len(carried)
    return [(0.0, 0, e) for e in carried.values()] + kept, before, after


def _rank(kind: str) -> int:
    # At equal times: run_start first, then state carried from before the start, then the rest,
    # and run_end last.
    return {"run_start": -1, "run_end": 9}.get(kind, 1)


def merge(
    harness: Iterable[RawEvent],
    agents: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    t0_mono: float,
    t_end_mono: float,
) -> tuple[list[Event], MergeStats]:
    """The merged history: every event's `t` in seconds since `t0_mono`, sorted, non-decreasing.

    `harness`: the harness's events (`EventLog.events()`); `agents`: each node's agent history as
    read from its container (dicts with `t` on the host's monotonic clock). Agent events from
    before the run keep only the last state of each kind per node (at t = 0); agent events after
    `t_end_mono` (the run's end) are dropped, and so are kinds only the harness writes. Harness
    events are kept whatever their time (clamped into the run). `pg_role` and `writable` events
    that change nothing for their node are dropped, so both sources may observe the same node.
    """
    span_s = t_end_mono - t0_mono
    items: list[tuple[float, int, int, Event]] = []
    n_harness = 0
    for raw in sorted(harness, key=lambda e: (e.t_mono, e.seq)):
        t = min(max(raw.t_mono - t0_mono, 0.0), span_s)
        items.append((t, _rank(raw.kind), len(items), Event(t, raw.kind, raw.node, raw.fields)))
        n_harness += 1
    before = after = n_agent = 0
    for name in sorted(agents):
        events, cut_before, cut_after = _agent_events(name, agents[name], t0_mono, t_end_mono)
        before, after, n_agent = before + cut_before, after + cut_after, n_agent + len(events)
        for t, rank, e in events:
            items.append((t, rank, len(items), Event(t, e.kind, e.node, e.fields)))
    items.sort(key=lambda item: item[:3])
    merged, repeats = _drop_repeats([item[3] for item in items])
    stats = MergeStats(
        harness=n_harness,
        agent=n_agent,
        agent_before_start=before,
        agent_after_end=after,
        repeats=repeats,
    )
    return merged, stats


def _drop_repeats(events: list[Event]) -> tuple[list[Event], int]:
    last: dict[tuple[str, str | None], tuple[Any, ...]] = {}
    out: list[Event] = []
    for e in events:
        keys = CHANGE_KINDS.get(e.kind)
        if keys is not None:
            value = tuple(e.get(key) for key in keys)
            if last.get((e.kind, e.node)) == value:
                continue
            last[(e.kind, e.node)] = value
        out.append(e)
    return out, len(events) - len(out)


def write_history(path: str | os.PathLike[str], events: Iterable[Event]) -> int:
    """Write `events` (already merged) as a history file; returns how many were written."""
    with HistoryWriter(path) as writer:
        for e in events:
            writer.write_event(e)
        return writer.count


# ---------------------------------------------------------------- PostgreSQL observed from outside


@dataclass(frozen=True, slots=True, kw_only=True)
class PgReading:
    """One look at a node's PostgreSQL from the host (`role` as in the history's `pg_role`)."""

    role: str  # primary, replica, stopped, crashed, starting
    timeline: int | None = None
    lsn: int | None = None
    upstream: str | None = None  # for a replica: the node its WAL receiver streams from

    @property
    def writable(self) -> bool:
        return self.role == "primary"


Observe = Callable[[str], PgReading | None]  # None: no answer in time (paused, cut off)


class Poller:
    """Polls every node's PostgreSQL (`observe`) and records `pg_role` and `writable` on change.

    One thread per node, so a node that does not answer delays nobody else. A node that does
    not answer keeps its last role and is recorded not writable (a paused postmaster accepts no
    writes).
    """

    def __init__(
        self,
        log: EventLog,
        nodes: Sequence[str],
        observe: Observe,
        *,
        interval_s: float = POLL_INTERVAL_S,
    ) -> None:
        self._log = log
        self._nodes = tuple(nodes)
        self._observe = observe
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._role: dict[str, tuple[str, int | None, str | None]] = {}
        self._writable: dict[str, bool] = {}
        self._latest: dict[str, PgReading | None] = {}
        self._top_timeline: dict[str, int] = {}

    def announce(self) -> None:
        """Look at every node now and record its role and writability (at the run's start)."""
        threads = [threading.Thread(target=self.poll_once, args=(n,)) for n in self._nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def start(self) -> None:
        """Poll in the background until `stop()`."""
        for name in self._nodes:
            thread = threading.Thread(target=self._loop, args=(name,), daemon=True)
            thread.name = f"poll-{name}"
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10.0)
        self._threads.clear()

    def latest(self) -> dict[str, PgReading | None]:
        """The last observation of every node (None: the last look got no answer)."""
        with self._lock:
            return dict(self._latest)

    def _loop(self, name: str) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self.poll_once(name)
            self._stop.wait(max(0.0, self._interval_s - (time.monotonic() - began)))

    def poll_once(self, name: str) -> PgReading | None:
        """Look at one node and record what changed.

        A node's timeline never goes back (every new timeline is newer than all before it), so
        a lower one seen now is a stale reading: a replica whose WAL receiver just stopped
        reports its last checkpoint's timeline. The node keeps the highest timeline seen.
        """
        seen = self._observe(name)
        with self._lock:
            top = self._top_timeline.get(name)
            if seen is not None and seen.timeline is not None:
                timeline = seen.timeline if top is None else max(top, seen.timeline)
                seen = replace(seen, timeline=timeline)
                self._top_timeline[name] = timeline
            self._latest[name] = seen
            if seen is not None:
                role = (seen.role, seen.timeline, seen.upstream)
                if self._role.get(name) != role:
                    self._role[name] = role
                    self._log.record(
                        "pg_role",
                        name,
                        role=seen.role,
                        timeline=seen.timeline,
                        lsn=seen.lsn,
                        upstream=seen.upstream,
                    )
            writable = seen is not None and seen.writable
            if self._writable.get(name) != writable:
                self._writable[name] = writable
                self._log.record("writable", name, writable=writable)
        return seen


# ---------------------------------------------------------------- the leader lock, as etcd has it


def read_leader(
    endpoints: Sequence[str], key: str, *, timeout_s: float = 1.0
) -> tuple[bool, str | None]:
    """(answered, holder) of the leader key, asked of the first etcd member that answers (a
    linearizable read: a member cut off from the majority gives no answer)."""
    body = json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode()
    for endpoint in endpoints:
        request = urllib.request.Request(f"{endpoint}/v3/kv/range", data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                answer = json.loads(response.read())
        except (OSError, ValueError):
            continue
        kvs = answer.get("kvs") or []
        holder = base64.b64decode(kvs[0].get("value", "")).decode() if kvs else None
        return True, holder or None
    return False, None


class LeaderWatch:
    """Polls the leader key in etcd and records `lock` events as the DCS sees them: `expired`
    for a holder whose key went away or changed hands (a release too: the report and checks
    treat both as the end of holding) and, with `acquired`, `acquired` for each new holder (for
    agents that write no history of their own)."""

    def __init__(
        self,
        log: EventLog,
        endpoints: Sequence[str],
        key: str,
        *,
        acquired: bool = False,
        interval_s: float = POLL_INTERVAL_S,
    ) -> None:
        self._log = log
        self._endpoints = tuple(endpoints)
        self._key = key
        self._acquired = acquired
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._holder: str | None = None
        self._seen = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="leader-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self.poll_once()
            self._stop.wait(max(0.0, self._interval_s - (time.monotonic() - began)))

    def poll_once(self) -> None:
        """Read the key once and record what changed."""
        answered, holder = read_leader(self._endpoints, self._key)
        if not answered or (self._seen and holder == self._holder):
            return
        if self._holder is not None and holder != self._holder:
            self._log.record("lock", self._holder, event="expired")
        if holder is not None and self._acquired:
            self._log.record("lock", holder, event="acquired")
        self._holder, self._seen = holder, True
