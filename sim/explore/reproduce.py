# A failure written out as a standalone scenario file (no explore section, the schedule and the
# seed that broke a check), run once as `pgha sim run` would run it so that its history and report
# sit beside it; and the summary of an explore run.
"""Reproducers: failing schedules written out as scenario files, run and reported."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pgha.checks import CheckReport, run_checks
from pgha.history import HistoryWriter, iter_history
from pgha.report import write_report
from pgha.scenario import FaultSpec, Scenario, dump_scenario, load_scenario
from sim.explore.engines import simulate
from sim.explore.trial import Verdict, crashed, outcome_of, with_schedule
from sim.run import Simulation


@dataclass(frozen=True, slots=True)
class Reproducer:
    """A failure written out: the scenario file, its report directory, the verdict it gave."""

    path: Path
    report_dir: Path
    outcome: Verdict
    command: str


def reproducer_scenario(
    scenario: Scenario,
    faults: Sequence[FaultSpec],
    seed: int,
    outcome: Verdict,
    *,
    variant: str | None = None,
) -> Scenario:
    """A standalone scenario that runs `faults` with `seed`: no explore section, a name and a
    description saying where it came from."""
    engine = f"engine variant {variant}" if variant else "the real engine"
    suffix = f"-{variant}" if variant else ""
    broke = ", ".join(outcome.violated) or "nothing"
    if outcome.error is not None:
        broke = f"crash the simulation ({outcome.error})"
    first = outcome.first_violation_s
    when = "" if first is None else f" at t={first:.1f} s"
    description = (
        f"Found by pgha sim explore from {scenario.name} ({engine}, seed {seed}): "
        f"{len(faults)} fault(s) {broke if outcome.error else 'break ' + broke}{when}."
    )
    if scenario.description:
        description += f"\nExplored scenario: {scenario.description.strip()}"
    return replace(
        with_schedule(scenario, faults, seed),
        name=f"{scenario.name}-seed{seed}{suffix}",
        description=description,
        explore=None,
    )


def run_file(
    path: Path, out_dir: Path, *, variant: str | None = None, show_decisions: bool = False
) -> tuple[Simulation, CheckReport]:
    """What `pgha sim run FILE` does: run the file, write its history and reports to `out_dir`."""
    scenario = load_scenario(path)
    out_dir.mkdir(parents=True, exist_ok=True)
    history = out_dir / "history.jsonl"
    with HistoryWriter(history) as writer:
        sim = simulate(scenario, seed=None, recorder=writer, variant=variant)
    report = run_checks(iter_history(history), source=str(history))
    write_report(history, report, out_dir, show_decisions=show_decisions)
    return sim, report


def write_reproducer(
    scenario: Scenario,
    faults: Sequence[FaultSpec],
    seed: int,
    outcome: Verdict,
    out_dir: Path,
    *,
    variant: str | None = None,
) -> Reproducer:
    """Write the failure as `<out_dir>/<name>.yaml`, run it as `pgha sim run` would, and write its
    history and report to `<out_dir>/<name>/`."""
    repro = reproducer_scenario(scenario, faults, seed, outcome, variant=variant)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{repro.name}.yaml"
    flag = f" --engine-variant {variant}" if variant else ""
    command = f"pgha sim run {path}{flag}"
    header = f"# Written by pgha sim explore. Reproduce with: {command}\n"
    path.write_text(header + dump_scenario(repro), encoding="utf-8")
    report_dir = out_dir / repro.name
    started = time.perf_counter()
    try:
        _, report = run_file(path, report_dir, variant=variant)
    except Exception as error:  # the schedule crashes the simulation: report what ran
        last = _partial_report(report_dir / "history.jsonl", report_dir)
        verdict = crashed(error, last, time.perf_counter() - started)
        return Reproducer(path, report_dir, verdict, command)
    return Reproducer(path, report_dir, outcome_of(report, time.perf_counter() - started), command)


def _partial_report(history: Path, out_dir: Path) -> float | None:
    # The history of a crashed run stops at the crash: report it if it can be, and return the
    # time of its last event.
    events = list(iter_history(history))
    with contextlib.suppress(Exception):  # a bonus: a partial history may not make a report
        write_report(events, None, out_dir)
    return events[-1].t if events else None


def write_summary(path: Path, document: Mapping[str, Any]) -> None:
    """The explore run's summary as JSON."""
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
