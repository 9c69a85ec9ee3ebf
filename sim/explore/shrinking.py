# Shrinking is delta debugging in rounds: drop a fault, halve a `for`, move a fault earlier; each
# round tries its candidates in a fixed order and keeps the first one that still breaks one of the
# checks the original broke. Rounds can evaluate their candidates in parallel with the same result.
"""Shrinking a failing schedule: fewer faults, shorter, earlier, still failing."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace

from pgha.scenario import FaultSpec, Scenario
from sim.explore.pools import InlineExecutor, Pool
from sim.explore.space import TIME_STEP_S
from sim.explore.trial import Verdict, run_schedule

Evaluate = Callable[[Sequence[tuple[FaultSpec, ...]]], Iterator[Verdict]]


@dataclass(frozen=True, slots=True)
class Shrunk:
    """A shrunk schedule, the verdict it still gives, and what shrinking cost."""

    faults: tuple[FaultSpec, ...]
    outcome: Verdict
    rounds: int
    runs: int


def _sequential(scenario: Scenario, seed: int, variant: str | None) -> Evaluate:
    def evaluate(candidates: Sequence[tuple[FaultSpec, ...]]) -> Iterator[Verdict]:
        for faults in candidates:
            yield run_schedule(scenario, faults, seed, variant=variant)

    return evaluate


def evaluator(where: Pool, scenario: Scenario, seed: int, variant: str | None) -> Evaluate:
    """How shrinking evaluates a round's candidates on `where`: one after the other in this
    process (stopping at the first that fails), else all at once on the pool."""
    if isinstance(where.executor, InlineExecutor):
        return _sequential(scenario, seed, variant)
    return parallel_evaluate(where.executor, scenario, seed, variant)


def parallel_evaluate(
    executor: Executor, scenario: Scenario, seed: int, variant: str | None
) -> Evaluate:
    """Evaluate a round's candidates on `executor` (same result as one after the other)."""

    def evaluate(candidates: Sequence[tuple[FaultSpec, ...]]) -> Iterator[Verdict]:
        count = len(candidates)
        return executor.map(
            _run_candidate, [scenario] * count, candidates, [seed] * count, [variant] * count
        )

    return evaluate


def _run_candidate(
    scenario: Scenario, faults: tuple[FaultSpec, ...], seed: int, variant: str | None
) -> Verdict:
    return run_schedule(scenario, faults, seed, variant=variant)


def drop_one(
    faults: tuple[FaultSpec, ...], window_s: tuple[float, float]
) -> list[tuple[FaultSpec, ...]]:
    """Candidates with one fault fewer (never the empty schedule)."""
    if len(faults) <= 1:
        return []
    return [faults[:i] + faults[i + 1 :] for i in range(len(faults))]


def halve_for(
    faults: tuple[FaultSpec, ...], window_s: tuple[float, float]
) -> list[tuple[FaultSpec, ...]]:
    """Candidates with one fault's `for` halved (not below one second)."""
    out: list[tuple[FaultSpec, ...]] = []
    for i, spec in enumerate(faults):
        if spec.for_s is None or spec.for_s <= 1.0:
            continue
        shorter = max(1.0, round(spec.for_s / 2, 1))
        out.append((*faults[:i], replace(spec, for_s=shorter), *faults[i + 1 :]))
    return out


def move_earlier(
    faults: tuple[FaultSpec, ...], window_s: tuple[float, float]
) -> list[tuple[FaultSpec, ...]]:
    """Candidates with one fault moved halfway to the window's start (re-sorted by time)."""
    out: list[tuple[FaultSpec, ...]] = []
    start = window_s[0]
    for i, spec in enumerate(faults):
        if spec.at_s - start < 2 * TIME_STEP_S:
            continue
        earlier = round(start + math.floor((spec.at_s - start) / 2 / TIME_STEP_S) * TIME_STEP_S, 1)
        moved = (*faults[:i], replace(spec, at_s=earlier), *faults[i + 1 :])
        out.append(tuple(sorted(moved, key=lambda s: s.at_s)))
    return out


SHRINK_STEPS = (drop_one, halve_for, move_earlier)


def shrink(
    scenario: Scenario,
    faults: Sequence[FaultSpec],
    seed: int,
    *,
    variant: str | None = None,
    max_rounds: int = 25,
    evaluate: Evaluate | None = None,
    original: Verdict | None = None,
) -> Shrunk:
    """Shrink a failing schedule: fewer faults, shorter, earlier, still breaking a check that
    the original broke (same seed and variant). Returns the original if it does not fail.

    Each round tries one kind of step on every fault and keeps the first candidate that still
    fails; a step that helps is tried again before the next kind. `evaluate` may run a round's
    candidates in parallel (`parallel_evaluate`): the result is the same.
    """
    evaluate = evaluate or _sequential(scenario, seed, variant)
    current = tuple(sorted(faults, key=lambda spec: spec.at_s))
    outcome = original or run_schedule(scenario, current, seed, variant=variant)
    runs, rounds = (0 if original else 1), 0
    if outcome.ok:
        return Shrunk(current, outcome, rounds, runs)
    window = scenario.explore.window_s if scenario.explore is not None else (0.0, 0.0)
    broken = outcome.violated
    step = 0
    while step < len(SHRINK_STEPS) and rounds < max_rounds:
        candidates = SHRINK_STEPS[step](current, window)
        rounds += 1
        found = _first_failing(candidates, evaluate, broken)
        runs += found[2]
        if found[0] is None:
            step += 1
            continue
        current, outcome = found[0], found[1]
        step = 0
    return Shrunk(current, outcome, rounds, runs)


def _first_failing(
    candidates: list[tuple[FaultSpec, ...]], evaluate: Evaluate, broken: tuple[str, ...]
) -> tuple[tuple[FaultSpec, ...] | None, Verdict, int]:
    runs = 0
    if candidates:
        for candidate, outcome in zip(candidates, evaluate(candidates), strict=False):
            runs += 1
            if outcome.breaks_any(broken):
                return candidate, outcome, runs
    return None, Verdict(ok=True), runs
