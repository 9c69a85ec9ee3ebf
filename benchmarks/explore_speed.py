"""How many fault schedules `pgha sim explore` runs per minute, measured once on this machine.

The scenario is issue 4's: a 10-minute run of 3 nodes and 3 etcd members with 10 writes/s through
HAProxy and the issue's `explore:` section (up to 4 faults of 7 kinds between 30 s and 8 min). A
schedule counts when it was drawn, simulated (10 minutes and the 60 s settle), and checked. The
sweep runs once on one worker and once on every core (worker processes), each for the same
wall-clock budget, in a fresh process per tree and build (`_compare.py`: a column for issue 15's
base commit, one for this tree, and with --compiled one for this tree's mypyc build; the columns
run in turn), and prints them as one before/after table.

Target (issues 4 and 15): at least 1,000 schedules per minute per core, on one worker and on
both cores. The table says how far each column is from it.

With --variants, it also times the proof (deliverable 4): for each engine variant, the seeds of
its reproducer's `explore:` section (scenarios/variants/<name>.yaml) run from seed 0 on one core
until the first violation that the real engine does not give on the same seed; the seeds run and
the wall time to that violation are printed.

Usage: python benchmarks/explore_speed.py [--seconds S] [--before REV] [--compiled] [--variants]
(default 30 s per case and column)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import _compare

ROOT = Path(__file__).resolve().parents[1]
TARGET_PER_MINUTE_PER_CORE = 1_000

SCENARIO = """
name: explore-speed
duration: 10m
cluster: {nodes: 3, etcd: 3}
workload: {rate: 10/s, via: haproxy}
explore:
  faults: [kill, kill_agent, pause, partition, clock, etcd, switchover]
  max_faults: 4
  window: [30s, 8m]
"""


def measure(workers: int, seconds: float) -> dict[str, float]:
    """One sweep of `seconds` on `workers` workers: schedules per minute, failures."""
    from pgha.scenario import parse_scenario
    from sim.explore import Budget, sweep

    result = sweep(parse_scenario(SCENARIO), Budget(seconds=seconds), workers=workers)
    per_minute = len(result.trials) / result.wall_s * 60
    return {
        "workers": workers,
        "schedules": len(result.trials),
        "wall_s": result.wall_s,
        "per_minute": per_minute,
        "per_minute_per_core": per_minute / workers,
        "failed": len(result.failures),
    }


def time_to_first_violation(name: str, limit: int = 1_000) -> tuple[int | None, float]:
    """Seeds 0, 1, ... of variant `name`'s explore section on one core until one fails: how many
    seeds ran (None: none failed within `limit`) and the wall time."""
    import time

    from pgha.scenario import load_scenario
    from sim.explore import run_seed

    scenario = load_scenario(ROOT / "scenarios" / "variants" / f"{name}.yaml")
    started = time.perf_counter()
    for seed in range(limit):
        # A violation of the variant's own: one the real engine does not give on that seed.
        if not run_seed(scenario, seed, name).outcome.ok and run_seed(scenario, seed).outcome.ok:
            return seed + 1, time.perf_counter() - started
    return None, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="wall time per case")
    parser.add_argument(
        "--before",
        default=_compare.ISSUE_BASE,
        help="the commit to compare with (default: issue 15's base); '' for none",
    )
    parser.add_argument("--compiled", action="store_true", help="also run the mypyc build")
    parser.add_argument(
        "--variants", action="store_true", help="also time each variant's first violation"
    )
    parser.add_argument("--case", nargs=2, help=argparse.SUPPRESS)  # internal: WORKERS SECONDS
    args = parser.parse_args()
    if args.case is not None:
        sys.path.insert(0, os.getcwd())  # the tree under test (the column's)
        print(json.dumps(measure(int(args.case[0]), float(args.case[1]))))
        return
    cores = os.cpu_count() or 1
    cols = _compare.columns(args.before or None, args.compiled)
    rows, notes = [], []
    for workers in dict.fromkeys((1, cores)):
        runs = _compare.alternate(Path(__file__), cols, [str(workers), str(args.seconds)], 1)
        rates = {c: _compare.median_of(r, "per_minute_per_core") for c, r in runs.items()}
        rows.append((f"{workers} worker(s), per core", rates, TARGET_PER_MINUTE_PER_CORE))
        for column, (run,) in runs.items():
            notes.append(
                f"- {workers} worker(s), {column}: {run['schedules']:.0f} schedules in "
                f"{run['wall_s']:.1f} s = {run['per_minute']:,.0f}/min; {run['failed']:.0f} failed"
            )
    title = (
        f"explore speed, ten-minute schedules per minute per core (3 nodes, 10 writes/s via "
        f"HAProxy, up to 4 faults; {args.seconds:g} s per case and column, columns in turn; "
        f"{cores} cores)"
    )
    print(_compare.table(title, rows, cols, lambda v: f"{v:,.0f}"))
    print()
    print("\n".join(notes))
    if args.variants:
        sys.path.insert(0, str(ROOT))
        from sim.variants import VARIANTS

        print("time to first violation per engine variant (one core, from seed 0):")
        for name in sorted(VARIANTS):
            seeds, wall_s = time_to_first_violation(name)
            found = f"{seeds} schedule(s)" if seeds is not None else "none found"
            print(f"  {name}: {found} in {wall_s:.1f} s")


if __name__ == "__main__":
    main()
