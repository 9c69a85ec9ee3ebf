# A lost write is one acknowledged to a client and absent from the final primary's final read.
# Each loss is attributed to the reign (node, timeline) that acknowledged it, so a report can say
# which branch was thrown away. In asynchronous mode a bounded loss is expected: `max_lost_writes`.
"""The no_lost_acknowledged_writes check, and the final primary."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pgha.checks._facts import FinalRead, RunFacts
from pgha.checks._results import FIRST_IDS, LOST_WRITES, CheckResult, Violation, _r, by_time
from pgha.checks._writes import AckLog


@dataclass(frozen=True, slots=True)
class Lost:
    final: FinalRead
    indices: list[int]  # positions in the ack log of acknowledged writes absent from final data


def final_primary(facts: RunFacts) -> FinalRead | Violation:
    """The one node whose final read says primary, or a violation saying why there is none."""
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


def lost_writes(facts: RunFacts) -> Lost | Violation:
    final = final_primary(facts)
    if isinstance(final, Violation):
        return final
    present = set(final.ids)  # a set, not bisect: a day has ~0.9 M acknowledgements to look up
    return Lost(final, [k for k, write_id in enumerate(facts.acks.ids) if write_id not in present])


def ids_detail(acks: AckLog, indices: Sequence[int]) -> list[int]:
    return [acks.ids[k] for k in indices[:FIRST_IDS]]


def group_by_reign(acks: AckLog, indices: Iterable[int]) -> dict[tuple[str, int], list[int]]:
    groups: dict[tuple[str, int], list[int]] = {}
    for k in indices:
        groups.setdefault((acks.node(k), acks.timelines[k]), []).append(k)
    return groups


def check_no_lost_acknowledged_writes(
    facts: RunFacts, max_lost_writes: int | None = None, lost: Lost | Violation | None = None
) -> CheckResult:
    """Every acknowledged write is in the final primary's data (or the loss is within the bound).

    `lost`: `lost_writes(facts)`, when the caller has it already.
    """
    acks = facts.acks
    if not facts.final_reads and not len(acks):
        return CheckResult(LOST_WRITES, True, (), {"acknowledged": 0, "lost_writes": 0})
    lost = lost if lost is not None else lost_writes(facts)
    if isinstance(lost, Violation):
        return CheckResult(LOST_WRITES, False, (lost,), {"lost_writes": None})
    count = len(lost.indices)
    within = count == 0 or (max_lost_writes is not None and count <= max_lost_writes)
    groups = group_by_reign(acks, lost.indices)
    metrics = {
        "acknowledged": len(acks),
        "lost_writes": count,
        "lost_ids": ids_detail(acks, lost.indices),
        "lost_by_node": _count_by_node(groups),
        "lost_by_reign": [_reign_loss(acks, key, ks) for key, ks in sorted(groups.items())],
        "max_lost_writes": max_lost_writes,
        "final_primary": lost.final.node,
    }
    violations = () if within else _loss_violations(acks, groups, lost.final, max_lost_writes)
    return CheckResult(LOST_WRITES, within, violations, metrics)


def _reign_loss(acks: AckLog, key: tuple[str, int], ks: list[int]) -> dict[str, Any]:
    node, timeline = key
    return {
        "node": node,
        "timeline": timeline or None,
        "lost_writes": len(ks),
        "first_ids": ids_detail(acks, ks),
        "t_first_ok": _r(acks.t_ok[ks[0]]),
        "t_last_ok": _r(acks.t_ok[ks[-1]]),
    }


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
                "first_ids": ids_detail(acks, ks),
                "final_primary": final.node,
                "total_lost": total,
                "max_lost_writes": bound,
            },
        )
        for (node, tl), ks in groups.items()
    ]
    return by_time(out)
