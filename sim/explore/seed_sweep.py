# The seed sweep (as TigerBeetle's VOPR): seed s draws its schedule from Random(f"explore/{s}") and
# runs the simulation with seed s, so one integer reproduces a trial. Trials run on a `Pool` (this
# process, worker processes or a Dask cluster), a few per worker in flight; results are sorted by
# seed, so they do not depend on who ran them.
"""The seed sweep: run seeds seed0, seed0 + 1, ... within a budget, on a pool of workers."""

from __future__ import annotations

import contextlib
import math
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field

from pgha.scenario import Scenario
from sim.explore.budget import Budget
from sim.explore.engines import check_variant
from sim.explore.pools import Pool, pool
from sim.explore.progress import Progress
from sim.explore.space import Space
from sim.explore.trial import Trial, run_seed


@dataclass(frozen=True, slots=True)
class SweepResult:
    """Every trial of a sweep, sorted by seed."""

    trials: tuple[Trial, ...]
    wall_s: float = field(default=0.0, compare=False)
    workers: int = field(default=1, compare=False)

    @property
    def failures(self) -> tuple[Trial, ...]:
        return tuple(trial for trial in self.trials if not trial.outcome.ok)

    def fastest(self, count: int) -> tuple[Trial, ...]:
        """The `count` failures whose first violation came earliest (then by seed)."""

        def key(trial: Trial) -> tuple[float, int]:
            first = trial.outcome.first_violation_s
            return (math.inf if first is None else first, trial.seed)

        return tuple(sorted(self.failures, key=key)[:count])

    @property
    def per_second(self) -> float:
        return len(self.trials) / self.wall_s if self.wall_s > 0 else 0.0


def sweep(
    scenario: Scenario,
    budget: Budget,
    *,
    seed0: int = 0,
    workers: int = 1,
    dask_address: str | None = None,
    variant: str | None = None,
    progress: Progress | None = None,
    on: Pool | None = None,
) -> SweepResult:
    """Run seeds seed0, seed0 + 1, ... within the budget; every trial, sorted by seed.

    Trials run on `on` if given, else on a pool made for the sweep (`pool(workers, dask_address)`).
    With a count budget the trials are the same whichever executor runs them; with a time budget,
    each seed's trial is (only how many seeds run depends on the machine).

    Raises:
        ExploreError: nothing to explore, an unknown variant, or Dask unavailable.
    """
    Space.of(scenario)
    check_variant(variant)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        where = on if on is not None else stack.enter_context(pool(workers, dask_address))
        trials = _drive(where, scenario, budget, seed0, variant, progress)
    if progress is not None:
        progress.close()
    ordered = tuple(sorted(trials, key=lambda trial: trial.seed))
    return SweepResult(ordered, time.perf_counter() - started, workers)


def _drive(
    where: Pool,
    scenario: Scenario,
    budget: Budget,
    seed0: int,
    variant: str | None,
    progress: Progress | None,
) -> list[Trial]:
    # Keep up to `where.slots` trials submitted; stop submitting when the budget is spent.
    started = time.perf_counter()
    pending: set[Future[Trial]] = set()
    trials: list[Trial] = []
    failures = 0
    next_seed = seed0
    while True:
        while len(pending) < where.slots and budget.allows(
            next_seed - seed0, time.perf_counter() - started
        ):
            pending.add(where.executor.submit(run_seed, scenario, next_seed, variant))
            next_seed += 1
        if not pending:
            return trials
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            trial = future.result()
            trials.append(trial)
            failures += not trial.outcome.ok
        if progress is not None:
            progress.update(len(trials), failures)
