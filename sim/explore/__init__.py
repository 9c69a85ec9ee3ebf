# Exploration (issue 4): search fault schedules that break an invariant, shrink what breaks, and
# hand back a scenario file that reproduces it. One idea per module:
#
#   space       the space a scenario's `explore:` section allows; `Draw`, the one random primitive
#   draws       drawing a schedule from the space (draws_ops: the `config` and `etcd_put` faults)
#   budget      how much to explore: a number of schedules or a wall time
#   engines     the real engine or a known-bad variant by name; build and run a scenario with it
#   trial       one run of a schedule, checked as it goes: its `Verdict`; one seed's `Trial`
#   pools       where trials run: this process, worker processes or a Dask cluster
#   progress    the progress line
#   seed_sweep  the seed sweep
#   shrinking   shrinking a failing schedule
#   reproduce   writing a failure out as a scenario file, with its history and report
#   hypothesis_search   the same draws through Hypothesis, with its shrinker; a state machine
#
# This package's face is what the command line, the analysis API, the benchmarks and the tests
# use; `hypothesis_search` is not imported here (Hypothesis is an optional dependency).
"""Fault-schedule exploration: schedule generation, seed sweeps, shrinking and reproducers."""

from sim.explore.budget import Budget
from sim.explore.draws import DRAW_PARAMS, random_schedule, schedule_for_seed
from sim.explore.engines import check_variant, load_variants, simulate
from sim.explore.pools import Pool, default_workers, pool
from sim.explore.progress import Progress
from sim.explore.reproduce import write_reproducer, write_summary
from sim.explore.seed_sweep import SweepResult, sweep
from sim.explore.shrinking import evaluator, shrink
from sim.explore.space import ExploreError, Space
from sim.explore.trial import CRASHED, Trial, Verdict, run_schedule, run_seed

__all__ = [
    "CRASHED",
    "DRAW_PARAMS",
    "Budget",
    "ExploreError",
    "Pool",
    "Progress",
    "Space",
    "SweepResult",
    "Trial",
    "Verdict",
    "check_variant",
    "default_workers",
    "evaluator",
    "load_variants",
    "pool",
    "random_schedule",
    "run_schedule",
    "run_seed",
    "schedule_for_seed",
    "shrink",
    "simulate",
    "sweep",
    "write_reproducer",
    "write_summary",
]
