"""The proof (issue 4, deliverable 4): the explorer finds every bug-zoo variant and not the engine.

For every variant in `sim.variants.VARIANTS`, the seed sweep over the `explore:` section of its
reproducer `scenarios/variants/<name>.yaml` (seeds 0..BUDGET-1 on two worker processes):

- finds a violation with the variant, whose first failure shrinks to at most 4 faults and re-runs
  (same seed, same variant) to the same verdict;
- finds none with the real engine over the same seeds.

Each variant's wall time to the first violation, the number of schedules up to it and the shrunk
size are printed (`pytest -s` shows them).

One exception is asserted as what it is rather than hidden: `no-healthiest-check` runs in
asynchronous mode, where the real engine too may fail over to a replica a little behind (within
maximum_lag_on_failover) and lose the last acknowledged writes; there the real engine's sweep may
break `no_lost_acknowledged_writes` and nothing else.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgha.scenario import load_scenario
from sim.explore import (
    Budget,
    Pool,
    Progress,
    evaluator,
    pool,
    run_schedule,
    shrink,
    sweep,
)
from sim.variants import VARIANTS

ROOT = Path(__file__).resolve().parents[2]
REPRODUCERS = ROOT / "scenarios" / "variants"
BUDGET = 150  # schedules per sweep, seeds 0..149
# Two worker processes; CI runs this file on one core beside the agent tests (.ci/run).
WORKERS = int(os.environ.get("PGHA_PROOF_WORKERS", "2"))
MAX_SHRUNK = 4


class FirstFailure(Progress):
    """A silent progress that notes the wall time when the sweep saw its first failure."""

    def __init__(self) -> None:
        super().__init__(None, "proof")
        self.first_failure_s: float | None = None

    def update(self, runs: int, failures: int) -> None:
        super().update(runs, failures)
        if failures and self.first_failure_s is None:
            self.first_failure_s = self.clock() - self.started


@pytest.fixture(scope="module")
def workers() -> Iterator[Pool]:
    with pool(WORKERS) as where:
        yield where


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_explore_finds_the_variant_and_not_the_engine(name: str, workers: Pool) -> None:
    scenario = load_scenario(REPRODUCERS / f"{name}.yaml")
    assert scenario.explore is not None, f"{name}.yaml has no explore: section"
    assert scenario.explore.max_faults <= MAX_SHRUNK

    progress = FirstFailure()
    found = sweep(scenario, Budget(schedules=BUDGET), variant=name, on=workers, progress=progress)
    real = sweep(scenario, Budget(schedules=BUDGET), on=workers)
    assert [t.seed for t in real.trials] == [t.seed for t in found.trials]
    broken = {check for trial in real.failures for check in trial.outcome.violated}
    real_failing = sorted(trial.seed for trial in real.failures)
    assert not real.failures, f"the real engine broke {sorted(broken)} on seeds {real_failing}"
    assert found.failures, f"{name}: no violation in {BUDGET} schedules"
    first = found.failures[0]
    assert progress.first_failure_s is not None

    started = time.perf_counter()
    shrunk = shrink(
        scenario,
        first.faults,
        first.seed,
        variant=name,
        evaluate=evaluator(workers, scenario, first.seed, name),
        original=first.outcome,
    )
    shrink_s = time.perf_counter() - started
    assert not shrunk.outcome.ok
    assert set(shrunk.outcome.violated) & set(first.outcome.violated)
    assert len(shrunk.faults) <= MAX_SHRUNK
    again = run_schedule(scenario, shrunk.faults, first.seed, variant=name)
    assert again == shrunk.outcome
    on_real = run_schedule(scenario, shrunk.faults, first.seed)
    print(
        f"\n[proof] {name}: first violation at seed {first.seed} "
        f"({first.seed + 1} schedules, ~{found.wall_s * (first.seed + 1) / BUDGET:.1f} s wall; "
        f"first failure of the sweep after {progress.first_failure_s:.1f} s), "
        f"{len(found.failures)}/{BUDGET} failing, broke {', '.join(first.outcome.violated)}; "
        f"shrunk {len(first.faults)} -> {len(shrunk.faults)} fault(s) in {shrunk.runs} runs "
        f"({shrink_s:.1f} s), real engine on it: {'ok' if on_real.ok else on_real.violated}; "
        f"real engine sweep: {len(real.failures)}/{BUDGET} failing"
    )
    assert on_real.ok, f"the real engine breaks {on_real.violated} on the shrunk schedule too"
