"""How many fault schedules `pgha sim explore` runs per minute, measured once on this machine.

The scenario is issue 4's: a 10-minute run of 3 nodes and 3 etcd members with 10 writes/s through
HAProxy and the issue's `explore:` section (up to 4 faults of 7 kinds between 30 s and 8 min). A
schedule counts when it was drawn, simulated (10 minutes and the 60 s settle), and checked. The
sweep runs once on one worker (in this process) and once on every core (worker processes), each
for the same wall-clock budget.

Target (issue 4): at least 1,000 schedules per minute per core. The ratio printed is the measured
rate per core divided by that target (>= 1.0 meets it).

With --variants, it also times the proof (deliverable 4): for each engine variant, the seeds of
its reproducer's `explore:` section (scenarios/variants/<name>.yaml) run from seed 0 on one core
until the first violation that the real engine does not give on the same seed; the seeds run and
the wall time to that violation are printed.

Usage: python benchmarks/explore_speed.py [--seconds S] [--variants] (default 30 s per case)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

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
        "--variants", action="store_true", help="also time each variant's first violation"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    cores = os.cpu_count() or 1
    print(
        f"explore speed: 10-minute 3-node scenarios, 10 writes/s via HAProxy, up to 4 faults; "
        f"{args.seconds:g} s per case; {cores} cores; target "
        f"{TARGET_PER_MINUTE_PER_CORE:,} schedules/min/core"
    )
    for workers in dict.fromkeys((1, cores)):
        row = measure(workers, args.seconds)
        ratio = row["per_minute_per_core"] / TARGET_PER_MINUTE_PER_CORE
        print(
            f"  {workers} worker(s): {row['schedules']:.0f} schedules in {row['wall_s']:.1f} s = "
            f"{row['per_minute']:,.0f}/min ({row['per_minute_per_core']:,.0f}/min/core; "
            f"{ratio:.2f}x the target); {row['failed']:.0f} failed"
        )
    if args.variants:
        from sim.variants import VARIANTS

        print("time to first violation per engine variant (one core, from seed 0):")
        for name in sorted(VARIANTS):
            seeds, wall_s = time_to_first_violation(name)
            found = f"{seeds} schedule(s)" if seeds is not None else "none found"
            print(f"  {name}: {found} in {wall_s:.1f} s")


if __name__ == "__main__":
    main()
