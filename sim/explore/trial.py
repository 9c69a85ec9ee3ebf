# One trial: run a scenario with a given fault schedule and simulation seed, and judge it. The
# history goes straight into the checkers as the events its file would give back (`event_of`: the
# history's encoding and parsing without the text; never to disk), so a verdict here is the
# verdict of `pgha sim run` on the reproducer, byte for byte.
#
# A run that crashes (the engine or the simulator raises) is a finding like a broken check: it is
# kept, shrunk and written out with the exception, so that `pgha sim run` shows the traceback.
"""One run of a fault schedule and its verdict (`Verdict`); one seed's trial (`Trial`)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from pgha.checks import CheckReport, FactsCollector, run_checks
from pgha.history import TIME_DECIMALS, event_of
from pgha.scenario import FaultSpec, Scenario
from sim.explore.draws import schedule_for_seed
from sim.explore.engines import simulate

CRASHED = "crashed"  # the name a crash takes among the violated checks


@dataclass(frozen=True, slots=True)
class Verdict:
    """The verdict of one run: which checks broke and when the first violation began.

    A run that crashed (the engine or the simulator raised) is a finding too: `violated` is
    (`CRASHED`,), `first_violation_s` the time of the last event before the crash and `error`
    the exception. `wall_s` is left out of comparisons: equal outcomes are equal wherever they ran.
    """

    ok: bool
    violated: tuple[str, ...] = ()
    first_violation_s: float | None = None
    wall_s: float = field(default=0.0, compare=False)
    error: str | None = None

    def breaks_any(self, checks: Iterable[str]) -> bool:
        """Whether this run broke one of `checks`."""
        return not self.ok and bool(set(self.violated) & set(checks))


class CheckingRecorder:
    """A recorder that feeds the checkers as the run goes with exactly the events a history file
    would give them (`event_of`), keeping nothing.

    The clients' writes (nearly every event of a loaded run) skip making the event: their values,
    of the types checked here, go to the collector's typed entries, which are `feed` of that
    event (tests/explore/test_event_path.py pins both against the file's round trip).
    """

    def __init__(self) -> None:
        self.collector = FactsCollector()
        self.count = 0  # events recorded
        self.typed = 0  # of which through a typed entry
        self.last_t = 0.0

    def record(self, t: float, kind: str, node: str | None = None, **fields: Any) -> None:
        self.count += 1
        typed = _TYPED.get(kind)
        if typed is not None and type(t) is float and type(node) is str and math.isfinite(t):
            rounded = round(t, TIME_DECIMALS)
            if typed(self.collector, rounded, kind, fields):
                self.typed += 1
                self.last_t = rounded
                return
        event = event_of(t, kind, node, fields)
        self.collector.feed(event)
        self.last_t = event.t


# A client write's kind -> its typed entry, called with the event's values when they are of the
# types the entry takes (the return says whether it was called; if not, the plain path runs).
def _invoked(collector: FactsCollector, t: float, kind: str, fields: dict[str, Any]) -> bool:
    write_id = fields.get("id")
    if fields.keys() != _INVOKE or fields["op"] != "write" or type(write_id) is not int:
        return False
    if type(target := fields["target"]) is not str:
        return False
    collector.write_invoked(t, write_id, target)
    return True


def _acked(collector: FactsCollector, t: float, kind: str, fields: dict[str, Any]) -> bool:
    write_id = fields.get("id")
    if fields.keys() != _OK or fields["op"] != "write" or type(write_id) is not int:
        return False
    if not _ack_values(fields):
        return False
    collector.write_acked(t, write_id, fields["served_by"], fields["timeline"])
    return True


def _not_ok(collector: FactsCollector, t: float, kind: str, fields: dict[str, Any]) -> bool:
    write_id = fields.get("id")
    if fields.get("op") != "write" or type(write_id) is not int:
        return False
    if not (fields.keys() <= _NOT_OK_FIELDS and _texts(fields)):
        return False
    collector.write_not_ok(t, kind, write_id)
    return True


_TYPED = {"invoke": _invoked, "ok": _acked, "fail": _not_ok, "info": _not_ok}
_INVOKE = {"op", "id", "target"}
_OK = {"op", "id", "served_by", "timeline", "lsn"}
_NOT_OK_FIELDS = {"op", "id", "error", "served_by"}


def _ack_values(fields: dict[str, Any]) -> bool:
    timeline, lsn = fields["timeline"], fields["lsn"]
    return (
        type(fields["served_by"]) is str
        and (timeline is None or type(timeline) is int)
        and (lsn is None or type(lsn) is int)
    )


def _texts(fields: dict[str, Any]) -> bool:
    return all(fields.get(name) is None or type(fields[name]) is str for name in _TEXTS)


_TEXTS = ("error", "served_by")


def outcome_of(report: CheckReport, wall_s: float) -> Verdict:
    """The Verdict of a check report."""
    failed = [result for result in report.results if not result.ok]
    starts = [v.t_start for result in failed for v in result.violations]
    return Verdict(
        ok=report.ok,
        violated=tuple(result.name for result in failed),
        first_violation_s=min(starts) if starts else None,
        wall_s=wall_s,
    )


def with_schedule(scenario: Scenario, faults: Iterable[FaultSpec], seed: int) -> Scenario:
    """`scenario` with these faults (sorted by time, as the loader sorts them) and seed."""
    ordered = tuple(sorted(faults, key=lambda spec: spec.at_s))
    return replace(scenario, faults=ordered, seed=seed)


def run_schedule(
    scenario: Scenario, faults: Iterable[FaultSpec], seed: int, *, variant: str | None = None
) -> Verdict:
    """Run `scenario` with `faults` instead of its own and the simulation seed `seed`; check it.

    The history goes to the checkers only. The checks are the scenario's.
    """
    started = time.perf_counter()
    recorder = CheckingRecorder()
    schedule = with_schedule(scenario, faults, seed)
    try:
        simulate(schedule, seed=seed, recorder=recorder, variant=variant)
    except Exception as error:  # a crash is a finding: shrink it and write it out like others
        return crashed(error, recorder.last_t, time.perf_counter() - started)
    report = run_checks(recorder.collector.finish(), scenario.checks)
    return outcome_of(report, time.perf_counter() - started)


def crashed(error: Exception, at_s: float | None, wall_s: float) -> Verdict:
    """The Verdict of a run that raised `error` (last event at `at_s`)."""
    text = f"{type(error).__name__}: {error}"
    return Verdict(ok=False, violated=(CRASHED,), first_violation_s=at_s, wall_s=wall_s, error=text)


@dataclass(frozen=True, slots=True)
class Trial:
    """One schedule run: the seed, the schedule it drew, and the verdict."""

    seed: int
    faults: tuple[FaultSpec, ...]
    outcome: Verdict


def run_seed(scenario: Scenario, seed: int, variant: str | None = None) -> Trial:
    """Draw seed `seed`'s schedule and run it (what each worker does)."""
    faults = schedule_for_seed(scenario, seed)
    return Trial(seed, faults, run_schedule(scenario, faults, seed, variant=variant))
