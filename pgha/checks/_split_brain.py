# Split-brain, defined from client evidence (docs/history.md, "Checkers"). A *reign* is the
# acknowledged writes of one node on one timeline. In a correct run reigns follow each other in
# real time: every acknowledgement of one returned before any write of the next was sent, up to
# the writes in flight at the hand-over. Two reigns of different nodes *interleave* when each has
# an acknowledgement that returned before the other's last acknowledged write was sent: no order
# of the two is consistent with what the clients saw, whichever branch survived. Independently,
# two nodes that both acknowledge writes sent while both were primary (by `pg_role`) accepted
# writes at the same time. An honest slow acknowledgement (a write sent to the old primary before
# the hand-over, acknowledged after the new primary's first) is neither.
"""The no_split_brain check: interleaved reigns, and writes acknowledged by two primaries."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from pgha.checks._facts import RunFacts
from pgha.checks._results import FIRST_IDS, SPLIT_BRAIN, CheckResult, Violation, _r, by_time
from pgha.checks._roles import Window
from pgha.checks._writes import AckLog


@dataclass(frozen=True, slots=True)
class Reign:
    """The acknowledged writes of one node on one timeline (0: unknown)."""

    node: str
    timeline: int
    first_ok_t: float  # the first acknowledgement returned
    last_ok_t: float
    last_invoke_t: float  # the latest send of a write it acknowledged
    acks: int
    first_invoke_t: float  # the earliest send of a write it acknowledged

    @property
    def key(self) -> tuple[str, int]:
        return self.node, self.timeline

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "timeline": self.timeline or None,
            "first_ok_t": _r(self.first_ok_t),
            "last_ok_t": _r(self.last_ok_t),
            "first_invoke_t": _r(self.first_invoke_t),
            "last_invoke_t": _r(self.last_invoke_t),
            "acks": self.acks,
        }


def reigns(acks: AckLog) -> tuple[Reign, ...]:
    """Every reign of the run, oldest first: in the order of the first send of a write it
    acknowledged (an honest slow acknowledgement may return after the next reign's first)."""
    # per (node index, timeline): [first ok, last ok, last invoke, count, first invoke]
    spans: dict[tuple[int, int], list[float]] = {}
    columns = (acks.node_ix, acks.timelines, acks.t_invoke, acks.t_ok)
    for ix, tl, t_inv, t_ok in zip(*columns, strict=True):
        span = spans.get((ix, tl))
        if span is None:
            spans[ix, tl] = [t_ok, t_ok, t_inv, 1, t_inv]
        else:
            span[1] = t_ok
            if t_inv > span[2]:
                span[2] = t_inv
            elif t_inv < span[4]:
                span[4] = t_inv
            span[3] += 1
    out = [
        Reign(acks.names[ix], tl, first, last, sent, int(count), first_sent)
        for (ix, tl), (first, last, sent, count, first_sent) in spans.items()
    ]
    return tuple(sorted(out, key=lambda r: (r.first_invoke_t, r.first_ok_t, r.node, r.timeline)))


def interleave(older: Reign, newer: Reign) -> bool:
    """Each has an acknowledgement that returned before the other's last write was sent."""
    return (
        older.node != newer.node
        and newer.first_ok_t < older.last_invoke_t
        and older.first_ok_t < newer.last_invoke_t
    )


def _stale(acks: AckLog, reign: Reign, after_t: float) -> list[int]:
    """Positions of `reign`'s acknowledgements whose write was sent after `after_t`."""
    ix = acks.names.index(reign.node)
    return [
        k
        for k in range(len(acks))
        if acks.t_invoke[k] > after_t
        and acks.node_ix[k] == ix
        and acks.timelines[k] == reign.timeline
    ]


def _interleaved(facts: RunFacts, all_reigns: tuple[Reign, ...]) -> Iterator[Violation]:
    acks = facts.acks
    for older, newer in combinations(all_reigns, 2):
        if not interleave(older, newer):
            continue
        stale = _stale(acks, older, newer.first_ok_t)
        t_start = max(older.first_ok_t, newer.first_ok_t)
        t_end = min(older.last_ok_t, newer.last_ok_t)
        yield Violation(
            t_start=t_start,
            t_end=t_end,
            nodes=tuple(sorted({older.node, newer.node})),
            detail={
                "reason": "interleaved_reigns",
                "summary": (
                    f"{older.node} (timeline {older.timeline or '?'}) acknowledged {len(stale)} "
                    f"writes sent after {newer.node} (timeline {newer.timeline or '?'}) had "
                    f"acknowledged its first at t={newer.first_ok_t:.3f}; both reigns "
                    f"acknowledged between t={t_start:.3f} and t={t_end:.3f}"
                ),
                "reigns": [older.to_dict(), newer.to_dict()],
                "timelines": {
                    older.node: older.timeline or None,
                    newer.node: newer.timeline or None,
                },
                "stale_acks": len(stale),
                "stale_first_ids": [acks.ids[k] for k in stale[:FIRST_IDS]],
                "stale_t_first": _r(acks.t_ok[stale[0]]) if stale else None,
                "stale_t_last": _r(acks.t_ok[stale[-1]]) if stale else None,
                "acks_by_node": acks.count_between(t_start, t_end),
            },
        )


@dataclass(slots=True)
class _Seen:
    """Acknowledgements of one node for writes sent in one dual-primary window."""

    t_first_invoke: float
    t_last_ok: float
    count: int
    timelines: set[int]
    first_ids: list[int]


def _both_primary(facts: RunFacts) -> Iterator[Violation]:
    windows = facts.dual_primary
    if not windows:
        return
    starts = [w.t_start for w in windows]
    seen: dict[int, dict[str, _Seen]] = {}
    acks = facts.acks
    for k in range(len(acks)):
        i = bisect_right(starts, acks.t_invoke[k]) - 1
        if i < 0 or acks.t_invoke[k] >= windows[i].t_end:
            continue
        node = acks.node(k)
        if node not in windows[i].nodes:
            continue
        _note(seen.setdefault(i, {}), node, acks, k)
    for i, by_node in sorted(seen.items()):
        if len(by_node) >= 2:
            yield _both_primary_violation(windows[i], by_node)


def _note(by_node: dict[str, _Seen], node: str, acks: AckLog, k: int) -> None:
    s = by_node.get(node)
    if s is None:
        by_node[node] = _Seen(acks.t_invoke[k], acks.t_ok[k], 1, {acks.timelines[k]}, [acks.ids[k]])
        return
    s.t_first_invoke = min(s.t_first_invoke, acks.t_invoke[k])
    s.t_last_ok = max(s.t_last_ok, acks.t_ok[k])
    s.count += 1
    s.timelines.add(acks.timelines[k])
    if len(s.first_ids) < FIRST_IDS:
        s.first_ids.append(acks.ids[k])


def _both_primary_violation(window: Window, by_node: dict[str, _Seen]) -> Violation:
    t_start = max(s.t_first_invoke for s in by_node.values())
    t_end = max(s.t_last_ok for s in by_node.values())
    nodes = tuple(sorted(by_node))
    return Violation(
        t_start=t_start,
        t_end=t_end,
        nodes=nodes,
        detail={
            "reason": "acknowledged_while_both_primary",
            "summary": (
                f"{' and '.join(nodes)} each acknowledged writes sent while "
                f"{', '.join(window.nodes)} were all primary "
                f"(t={window.t_start:.3f} to t={window.t_end:.3f})"
            ),
            "primary_window": [_r(window.t_start), _r(window.t_end)],
            "acks_by_node": {n: s.count for n, s in sorted(by_node.items())},
            "timelines": {
                n: [tl or None for tl in sorted(s.timelines)] for n, s in sorted(by_node.items())
            },
            "first_ids": {n: s.first_ids for n, s in sorted(by_node.items())},
        },
    )


def _two_final_primaries(facts: RunFacts) -> Iterator[Violation]:
    primaries = sorted(n for n, r in facts.final_reads.items() if r.role == "primary")
    if len(primaries) >= 2:
        yield Violation(
            t_start=facts.t_end,
            t_end=facts.t_end,
            nodes=tuple(primaries),
            detail={
                "reason": "two_final_primaries",
                "summary": f"the run ended with {len(primaries)} primaries: {', '.join(primaries)}",
            },
        )


def union_s(violations: tuple[Violation, ...]) -> float:
    """Seconds covered by at least one violation window."""
    total, reach = 0.0, float("-inf")
    for v in sorted(violations, key=lambda v: v.t_start):
        start = max(v.t_start, reach)
        if v.t_end > start:
            total += v.t_end - start
        reach = max(reach, v.t_end)
    return total


def check_no_split_brain(facts: RunFacts) -> CheckResult:
    """Interleaved reigns, writes acknowledged by two primaries at once, two final primaries.

    Always measures `dual_writable_s` (two or more nodes `writable` at once) and `dual_primary_s`
    (two or more `pg_role` primaries), which are reported but not by themselves violations.
    """
    all_reigns = reigns(facts.acks)
    interleaved = list(_interleaved(facts, all_reigns))
    both = list(_both_primary(facts))
    violations = by_time([*interleaved, *both, *_two_final_primaries(facts)])
    metrics = {
        "split_brain_s": _r(union_s(violations)),
        "windows": [_window(v) for v in violations],
        "stale_acks": sum(int(v.detail.get("stale_acks", 0)) for v in violations),
        "interleaved_reigns": len(interleaved),
        "both_primary_windows": len(both),
        "reigns": [r.to_dict() for r in all_reigns],
        "dual_writable_s": _r(facts.dual_writable_s),
        "dual_writable_windows": [_span(w) for w in facts.dual_writable],
        "dual_primary_s": _r(sum((w.duration_s for w in facts.dual_primary), 0.0)),
    }
    return CheckResult(SPLIT_BRAIN, not violations, violations, metrics)


def _window(v: Violation) -> dict[str, Any]:
    return {
        "t_start": _r(v.t_start),
        "t_end": _r(v.t_end),
        "nodes": list(v.nodes),
        "timelines": v.detail.get("timelines"),
        "reason": v.detail["reason"],
    }


def _span(w: Window) -> dict[str, Any]:
    return {"t_start": _r(w.t_start), "t_end": _r(w.t_end), "nodes": list(w.nodes)}
