"""A Hypothesis strategy for histories of correct runs.

A correct run is a sequence of reigns of different nodes on increasing timelines: each reign's
PostgreSQL is promoted (`pg_role` primary, `writable` true) after the previous one was demoted, so
at most one node is primary at any time. Writes are sent to the primary during its reign and
acknowledged by it after a random latency, possibly after the next reign began (an honest slow
acknowledgement: sent, and committed, before the demotion). Writes sent between reigns fail or
return `info`; a few never return. Every node's final read holds every acknowledged write (and
some of the `info` ones). Times are whole milliseconds, so equal times stay equal.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st


@dataclass(frozen=True)
class ReignPlan:
    node: str
    timeline: int
    t_promote: float
    t_demote: float | None  # None: primary to the end of the run


@dataclass(frozen=True)
class Ack:
    id: int
    reign: int  # index in `Story.reigns`
    t_invoke: float
    t_ok: float


@dataclass(frozen=True)
class Story:
    lines: list[dict[str, Any]]
    nodes: tuple[str, ...]
    reigns: tuple[ReignPlan, ...]
    acks: tuple[Ack, ...]

    def texts(self) -> list[str]:
        return [json.dumps(line, separators=(",", ":")) for line in self.lines]

    def reign_acks(self, reign: int) -> list[Ack]:
        return [a for a in self.acks if a.reign == reign]


def _s(ms: int) -> float:
    return ms / 1000


@st.composite
def correct_histories(draw: st.DrawFn, max_reigns: int = 4) -> Story:
    nodes = tuple(f"n{k}" for k in range(1, draw(st.integers(2, 4)) + 1))
    events: list[tuple[int, int, dict[str, Any]]] = []  # (ms, order of emission, line)

    def emit(ms: int, kind: str, node: str | None = None, **fields: Any) -> None:
        line = {"t": _s(ms), "kind": kind, **({"node": node} if node else {}), **fields}
        events.append((ms, len(events), line))

    # the reigns
    plans: list[tuple[str, int, int, int]] = []  # node, timeline, promote ms, demote ms
    t, timeline, previous = 0, 0, None
    for _ in range(draw(st.integers(1, max_reigns))):
        node = draw(st.sampled_from([n for n in nodes if n != previous]))
        timeline += draw(st.integers(1, 2))
        promote = t + draw(st.integers(1, 3000))
        demote = promote + draw(st.integers(1, 5000))
        plans.append((node, timeline, promote, demote))
        t, previous = demote, node
    for n in nodes:
        emit(0, "pg_role", n, role="replica", timeline=None, lsn=0)
    for node, tl, promote, demote in plans:
        emit(promote, "pg_role", node, role="primary", timeline=tl, lsn=0)
        emit(promote, "writable", node, writable=True)
        for other in nodes:
            if other != node:
                emit(promote, "pg_role", other, role="replica", timeline=tl, lsn=0)
        if (node, tl, promote, demote) != plans[-1]:
            emit(demote, "writable", node, writable=False)
            emit(demote, "pg_role", node, role="replica", timeline=tl, lsn=0)

    # the writes
    acks: list[Ack] = []
    unknown: list[int] = []
    next_id = [1]
    last_ms = t

    def invoke(ms: int, client: str) -> int:
        write_id = next_id[0]
        next_id[0] += 1
        emit(ms, "invoke", client, op="write", id=write_id, target="haproxy")
        return write_id

    clients = draw(st.sampled_from([("c1",), ("c1", "c2")]))
    for r, (node, tl, promote, demote) in enumerate(plans):
        for _ in range(draw(st.integers(0, 12))):
            sent = draw(st.integers(promote, demote - 1))
            done = sent + draw(st.integers(1, 2500))
            client = draw(st.sampled_from(clients))
            outcome = draw(st.sampled_from(["ok", "ok", "ok", "fail", "info", "none"]))
            write_id = invoke(sent, client)
            last_ms = max(last_ms, done)
            if outcome == "ok":
                emit(done, "ok", client, op="write", id=write_id, served_by=node, timeline=tl)
                acks.append(Ack(write_id, r, _s(sent), _s(done)))
            elif outcome in ("fail", "info"):
                emit(done, outcome, client, op="write", id=write_id, error="refused")
            if outcome in ("info", "none") and draw(st.booleans()):
                unknown.append(write_id)  # applied after all
    for _ in range(draw(st.integers(0, 4))):  # sent when no node is primary
        gaps = [(a[3], b[2]) for a, b in itertools.pairwise(plans)] + [(0, plans[0][2])]
        start, end = draw(st.sampled_from(gaps))
        sent = draw(st.integers(start, end - 1))
        done = sent + draw(st.integers(1, 2500))
        client = draw(st.sampled_from(clients))
        write_id = invoke(sent, client)
        emit(done, draw(st.sampled_from(["fail", "info"])), client, op="write", id=write_id)
        last_ms = max(last_ms, done)

    end = last_ms + draw(st.integers(1, 1000))
    last = plans[-1]
    ids = sorted([a.id for a in acks] + unknown)
    for n in nodes:
        role = "primary" if n == last[0] else "replica"
        emit(end, "final_read", n, role=role, timeline=last[1], lsn=0, ids=ids)
    emit(end, "run_end")

    run_start = {
        "t": 0.0,
        "kind": "run_start",
        "scenario": "hypothesis",
        "seed": 0,
        "world": "sim",
        "nodes": list(nodes),
    }
    lines = [run_start] + [line for _, _, line in sorted(events, key=lambda e: (e[0], e[1]))]
    reigns = tuple(
        ReignPlan(n, tl, _s(p), None if (n, tl, p, d) == last else _s(d)) for n, tl, p, d in plans
    )
    return Story(lines, nodes, reigns, tuple(sorted(acks, key=lambda a: a.t_ok)))
