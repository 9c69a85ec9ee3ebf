# The simulator is only worth what it predicts: `pgha chaos run --compare-sim` runs the same
# scenario in the simulator too and sets, fault by fault, the failover time it predicted beside the
# one the containers showed. Both come from histories alone, measured the same way: from the
# fault's start to the first acknowledged write served by a node not primary when it began.
# Faults are matched by id: both worlds number them 1, 2, ... in schedule order (skipped ones too).
# A chaos run also starts from the simulator's first primary (`sim_initial_primary`), so a fault
# naming a node hits the same role in both worlds.
"""What the simulator predicts (failover times per fault, the first primary) beside reality."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgha.checks import FAILOVER_FAULT_KINDS, FaultRecord, RunFacts, collect_facts, run_checks
from pgha.history import HistoryWriter, iter_history
from pgha.report import write_report
from pgha.scenario import Scenario

# Operator actions move the primary too; their time is measured the same way (no "kept serving":
# the old primary serves until it hands over).
OPERATOR_KINDS = frozenset({"switchover", "failover"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Measured:
    """One fault's failover, as one history shows it."""

    fault_id: int
    fault: str
    label: str
    t_fault: float
    outcome: str  # failover, kept_serving, none (no new primary acknowledged), skipped
    new_primary: str | None = None
    failover_s: float | None = None


def _measured(
    record: FaultRecord, outcome: str, node: str | None = None, failover_s: float | None = None
) -> Measured:
    return Measured(
        fault_id=record.id,
        fault=record.kind,
        label=record.label,
        t_fault=record.t_start,
        outcome=outcome,
        new_primary=node,
        failover_s=failover_s,
    )


def _first_new_ack(facts: RunFacts, record: FaultRecord) -> Measured:
    acks, old = facts.acks, set(record.primaries_at_start)
    operator = record.kind in OPERATOR_KINDS
    for k in range(bisect_left(acks.t_ok, record.t_start), len(acks)):
        node, t = acks.node(k), acks.t_ok[k]
        if node not in old:
            return _measured(record, "failover", node, t - record.t_start)
        if not operator and record.t_end is not None and t >= record.t_end:
            return _measured(record, "kept_serving")
    return _measured(record, "none")


def _moves_primary(record: FaultRecord) -> bool:
    if record.kind in OPERATOR_KINDS:
        return bool(record.primaries_at_start)
    hits = set(record.targets) & set(record.primaries_at_start)
    return record.kind in FAILOVER_FAULT_KINDS and bool(hits)


def failover_times(facts: RunFacts) -> dict[int, Measured]:
    """Per fault id: the failover it led to (only faults that hit the primary or move it)."""
    out: dict[int, Measured] = {}
    for record in facts.faults:
        if record.skipped:
            out[record.id] = _measured(record, "skipped")
        elif _moves_primary(record):
            out[record.id] = _first_new_ack(facts, record)
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class CompareRow:
    """One fault: the simulator's failover time beside the measured one."""

    fault_id: int
    fault: str
    label: str
    predicted_s: float | None
    measured_s: float | None
    predicted_outcome: str
    measured_outcome: str

    @property
    def error_pct(self) -> float | None:
        """(predicted - measured) / measured, in percent."""
        if self.predicted_s is None or not self.measured_s:
            return None
        return 100.0 * (self.predicted_s - self.measured_s) / self.measured_s

    def to_dict(self) -> dict[str, Any]:
        error = self.error_pct
        return {
            "fault_id": self.fault_id,
            "fault": self.fault,
            "label": self.label,
            "predicted_s": _r(self.predicted_s),
            "measured_s": _r(self.measured_s),
            "predicted_outcome": self.predicted_outcome,
            "measured_outcome": self.measured_outcome,
            "error_pct": None if error is None else round(error, 1),
        }


def compare(predicted: RunFacts, measured: RunFacts) -> list[CompareRow]:
    """One row per fault that hit or moved the primary in either world, by fault id."""
    sim, real = failover_times(predicted), failover_times(measured)
    rows = []
    for fault_id in sorted(set(sim) | set(real)):
        p, m = sim.get(fault_id), real.get(fault_id)
        either = m if m is not None else p
        assert either is not None
        rows.append(
            CompareRow(
                fault_id=fault_id,
                fault=either.fault,
                label=either.label,
                predicted_s=None if p is None else p.failover_s,
                measured_s=None if m is None else m.failover_s,
                predicted_outcome="not_measured" if p is None else p.outcome,
                measured_outcome="not_measured" if m is None else m.outcome,
            )
        )
    return rows


def simulate(scenario: Scenario, out_dir: Path, *, seed: int | None = None) -> RunFacts:
    """Run `scenario` in the simulator; its history and report go to `out_dir` (created)."""
    from sim.run import run_scenario  # the simulator is only needed here

    out_dir.mkdir(parents=True, exist_ok=True)
    history = out_dir / "history.jsonl"
    with HistoryWriter(history) as writer:
        run_scenario(scenario, seed=seed, recorder=writer)
    facts = collect_facts(iter_history(history), str(history))
    write_report(history, run_checks(facts), out_dir)
    return facts


class _FirstPrimary:
    """A simulator recorder that keeps only the first node whose PostgreSQL ran as primary."""

    def __init__(self) -> None:
        self.node: str | None = None

    def record(self, t: float, kind: str, node: str | None = None, **fields: Any) -> None:
        if self.node is None and kind == "pg_role" and fields.get("role") == "primary":
            self.node = node


def sim_initial_primary(scenario: Scenario, seed: int | None = None) -> str | None:
    """The node the simulator bootstraps as primary for `scenario` and `seed` (a fraction of a
    second of simulation); None when it has none."""
    from sim.run import run_scenario

    first = _FirstPrimary()
    run_scenario(scenario, seed=seed, recorder=first)
    return first.node


def render_table(rows: Sequence[CompareRow]) -> str:
    """The comparison as a text table (one line per fault)."""
    if not rows:
        return "sim vs real: no fault hit the primary"
    header = ("id", "fault", "label", "predicted", "measured", "error")
    lines = [header]
    for row in rows:
        error = row.error_pct
        lines.append(
            (
                str(row.fault_id),
                row.fault,
                row.label,
                _cell(row.predicted_s, row.predicted_outcome),
                _cell(row.measured_s, row.measured_outcome),
                "-" if error is None else f"{error:+.0f}%",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines
    ]
    return "sim vs real (time to the first write on a new primary):\n" + "\n".join(
        "  " + line.rstrip() for line in text
    )


def _cell(seconds: float | None, outcome: str) -> str:
    return f"{seconds:.1f} s" if seconds is not None else outcome.replace("_", " ")


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
