"""Hand-built histories for the checker and report tests.

`Run` collects events in any order and sorts them by time (stably) in `events()`, so a test can
describe a write as one call (invoke and outcome) and a fault as one call (start and end).
"""

from __future__ import annotations

from typing import Any

from pgha.history import Event

NODES = ("n1", "n2", "n3")


class Run:
    """A history under construction: run_start at t=0, run_end at the last time."""

    def __init__(
        self, *, nodes: tuple[str, ...] = NODES, checks: dict[str, Any] | None = None
    ) -> None:
        self._events: list[Event] = []
        self.nodes = nodes
        self.auto_finals = True
        self._next_id = 1
        self._next_fault = 1
        fields: dict[str, Any] = {
            "scenario": "synthetic",
            "seed": 7,
            "world": "sim",
            "nodes": list(nodes),
            "etcd": ["etcd1", "etcd2", "etcd3"],
            "config": {"ttl": 30},
            "duration": 60,
        }
        if checks is not None:
            fields["checks"] = checks
        self.ev(0.0, "run_start", None, **fields)

    def ev(self, t: float, kind: str, node: str | None = None, **fields: Any) -> Run:
        self._events.append(Event(t, kind, node, fields))
        return self

    def role(self, t: float, node: str, role: str, timeline: int = 1, **kw: Any) -> Run:
        return self.ev(t, "pg_role", node, role=role, timeline=timeline, lsn=kw.pop("lsn", 0), **kw)

    def writable(self, t: float, node: str, writable: bool) -> Run:
        return self.ev(t, "writable", node, writable=writable)

    def write(
        self,
        t_invoke: float,
        t_done: float,
        served_by: str,
        outcome: str = "ok",
        *,
        timeline: int | None = 1,
        client: str = "c1",
    ) -> int:
        """One write; returns its id."""
        write_id = self._next_id
        self._next_id += 1
        self.ev(t_invoke, "invoke", client, op="write", id=write_id, target="haproxy")
        extra: dict[str, Any] = {"served_by": served_by}
        if outcome == "ok":
            extra.update(timeline=timeline, lsn=write_id * 100)
        else:
            extra["error"] = "timeout" if outcome == "info" else "connection_refused"
        self.ev(t_done, outcome, client, op="write", id=write_id, **extra)
        return write_id

    def writes(
        self, times: list[float], served_by: str, *, latency_s: float = 0.01, **kw: Any
    ) -> list[int]:
        return [self.write(t, t + latency_s, served_by, **kw) for t in times]

    def fault(
        self,
        t_start: float,
        t_end: float | None,
        kind: str,
        targets: list[str],
        **params: Any,
    ) -> int:
        fault_id = self._next_fault
        self._next_fault += 1
        common = {"fault": kind, "targets": targets, "params": params, "id": fault_id}
        common["label"] = f"{kind} {','.join(targets)}"
        self.ev(t_start, "fault", None, phase="start", **common)
        if t_end is not None:
            self.ev(t_end, "fault", None, phase="end", **common)
        return fault_id

    def final(self, t: float, node: str, role: str, timeline: int, ids: list[int]) -> Run:
        return self.ev(t, "final_read", node, ids=sorted(ids), timeline=timeline, lsn=0, role=role)

    def _add_finals(self) -> None:
        acked = [e for e in self._events if e.kind == "ok" and e.get("op") == "write"]
        if not acked:
            return
        roles = sorted((e for e in self._events if e.kind == "pg_role"), key=lambda e: e.t)
        primaries = [e for e in roles if e.get("role") == "primary"]
        last = primaries[-1] if primaries else None
        primary = last.node if last is not None and last.node else self.nodes[0]
        timeline = int(last.get("timeline") or 1) if last is not None else 1
        t = max(e.t for e in self._events)
        self.finals(t, primary, timeline, [int(e.get("id")) for e in acked])

    def finals(self, t: float, primary: str, timeline: int, ids: list[int]) -> Run:
        """A final read of every node: `primary` primary, the others its replicas."""
        for node in self.nodes:
            self.final(t, node, "primary" if node == primary else "replica", timeline, ids)
        return self

    def events(self) -> list[Event]:
        """The events in time order, with run_end last; a run with acknowledged writes and no
        final reads gets final reads of every acknowledged write (no loss), the last node that
        `pg_role` showed primary as the final primary."""
        if self.auto_finals and not any(e.kind == "final_read" for e in self._events):
            self._add_finals()
        ordered = sorted(self._events, key=lambda e: (e.t, e.kind == "run_end"))
        if ordered[-1].kind == "run_end":
            return ordered
        return [*ordered, Event(ordered[-1].t, "run_end")]


def steady(run: Run, *, primary: str = "n1", timeline: int = 1) -> Run:
    """All nodes up at t=0: `primary` writable, the others its replicas."""
    for node in NODES:
        run.role(0.0, node, "primary" if node == primary else "replica", timeline)
    return run.writable(0.0, primary, True)


def clean_failover(*, finals: bool = True) -> tuple[Run, dict[str, Any]]:
    """n1 crashes at 10.5 for 20 s; n2 is promoted at 22 (timeline 2); n1 rejoins at 32."""
    run = steady(Run())
    before = run.writes([float(t) for t in range(1, 11)], "n1")  # acked 1.01 .. 10.01
    run.fault(10.5, 30.5, "kill", ["n1"])
    run.role(10.5, "n1", "crashed", 1).writable(10.5, "n1", False)
    for t in range(11, 22):
        run.write(float(t), t + 1.0, "n1", "fail")  # invoked 11 .. 21
    run.role(22.0, "n2", "primary", 2).writable(22.0, "n2", True)
    run.role(22.5, "n3", "replica", 2)
    after = run.writes([22.2 + t for t in range(18)], "n2", timeline=2)  # 22.2 .. 39.2
    run.role(30.5, "n1", "starting", 1).role(32.0, "n1", "replica", 2)
    ids = before + after
    if finals:
        run.finals(45.0, "n2", 2, ids)
    return run, {"before": before, "after": after}


def split_brain() -> tuple[Run, dict[str, Any]]:
    """n1's agent pauses at 10; n2 is promoted at 20; both acknowledge overlapping writes until
    n1 is demoted at 30 and rewound onto timeline 2. n1's writes from 20 on are lost."""
    run = steady(Run())
    early = run.writes([float(t) for t in range(1, 20)], "n1")
    run.fault(10.0, 40.0, "pause", ["n1"], what="agent")
    run.role(20.0, "n2", "primary", 2).writable(20.0, "n2", True)
    late = run.writes([float(t) for t in range(20, 30)], "n1")  # [k, k+0.01]
    on_n2 = run.writes([t + 0.005 for t in range(20, 40)], "n2", timeline=2, client="c2")
    run.writable(30.0, "n1", False).role(30.0, "n1", "stopped", 1)
    run.role(33.0, "n1", "replica", 2).role(20.5, "n3", "replica", 2)
    kept = early + on_n2
    for node, role in (("n1", "replica"), ("n2", "primary"), ("n3", "replica")):
        run.final(50.0, node, role, 2, kept)
    return run, {"early": early, "late": late, "on_n2": on_n2}


def silent_divergence() -> tuple[Run, dict[str, Any]]:
    """n2 is promoted at 20 but serves no write until 35; meanwhile n1 alone acknowledges writes
    (no overlap) that the final primary n2 lacks."""
    run = steady(Run())
    early = run.writes([float(t) for t in range(1, 20)], "n1")
    run.role(20.0, "n2", "primary", 2).role(20.5, "n3", "replica", 2)
    late = run.writes([float(t) for t in range(20, 31)], "n1")  # 20 .. 30, still on timeline 1
    run.role(31.0, "n1", "replica", 2)
    on_n2 = run.writes([float(t) for t in range(35, 40)], "n2", timeline=2)
    kept = early + on_n2
    for node, role in (("n1", "replica"), ("n2", "primary"), ("n3", "replica")):
        run.final(50.0, node, role, 2, kept)
    return run, {"early": early, "late": late, "on_n2": on_n2}


def async_loss() -> tuple[Run, dict[str, Any]]:
    """n1 crashes at 10.5; its last two acknowledged writes never reached n2 (promoted at 22)."""
    run = steady(Run())
    acked = run.writes([float(t) for t in range(1, 11)], "n1")
    run.fault(10.5, 30.5, "kill", ["n1"])
    run.role(10.5, "n1", "crashed", 1).writable(10.5, "n1", False)
    run.role(22.0, "n2", "primary", 2).role(22.5, "n3", "replica", 2)
    after = run.writes([23.0, 24.0], "n2", timeline=2)
    run.role(31.0, "n1", "replica", 2)
    kept = acked[:-2] + after
    for node, role in (("n1", "replica"), ("n2", "primary"), ("n3", "replica")):
        run.final(40.0, node, role, 2, kept)
    return run, {"lost": acked[-2:]}


def never_healthy() -> Run:
    """After the partition of n3 ends at 20, n3 stays stopped: one primary, but not healthy."""
    run = steady(Run())
    run.writes([1.0, 2.0, 25.0], "n1")
    run.fault(5.0, 20.0, "partition", ["n3"], isolate=["n3"])
    run.role(6.0, "n3", "stopped", 1)
    for node, role in (("n1", "primary"), ("n2", "replica"), ("n3", "stopped")):
        run.final(50.0, node, role, 1, [1, 2, 3])
    return run
