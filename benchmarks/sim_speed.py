"""How fast the simulator runs, before and after, measured in one run (this machine is shared
and noisy).

Prints, for this machine and this run, a table with a column per tree and build (`_compare.py`:
the issue's base commit in pure Python, this tree in pure Python, and with --compiled this tree's
mypyc build), each case run --repeat times per column with the columns in turn:
- a 3-node cluster with 3 etcd members and default timings over one simulated day, with no
  workload and with 10 writes/s through HAProxy: simulated seconds per wall second ("x real
  time"), the median of the runs, the ratio of the last column to the first, and the target;
- below it, per case and column: raw SimPy's speed measured in the same process (timeout events
  per second) and the speed as a ratio to it, the events in the history, and the peak memory
  (max RSS) of the process that ran it.

Targets (issues 3 and 15): >= 100,000x without workload, >= 10,000x with it, < 300 MB with it.

Usage: python benchmarks/sim_speed.py [--hours H] [--before REV] [--compiled] [--repeat N]
(default 24 hours, issue 15's base, 3 runs; each run is a fresh process so that its memory is its
own). --profile prints where the time goes (this tree only, once).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import sys
import time
from pathlib import Path

import _compare
import simpy

SCENARIO = """
name: {name}
duration: {hours}h
cluster: {{nodes: 3, etcd: 3}}
{workload}
"""
CASES = {
    "no workload": "",
    "10 writes/s via haproxy": "workload: {rate: 10/s, via: haproxy}",
}
TARGETS = {"no workload": 100_000, "10 writes/s via haproxy": 10_000}
MEMORY_TARGET_MB = 300


def raw_simpy(events: int = 500_000) -> float:
    """Timeout events per wall second for a bare SimPy loop."""
    env = simpy.Environment()

    def ticker() -> simpy.events.ProcessGenerator:
        for _ in range(events):
            yield env.timeout(1.0)

    env.process(ticker())
    started = time.perf_counter()
    env.run()
    return events / (time.perf_counter() - started)


def run_case(text: str, profile: bool) -> dict[str, float]:
    """Run one scenario (in this process, on the tree first on sys.path) and measure it."""
    from pgha.history import HistoryWriter
    from pgha.scenario import parse_scenario
    from sim.run import SETTLE_S, run_scenario

    raw = raw_simpy()
    scenario = parse_scenario(text)
    with open("/dev/null", "w") as sink:  # the history is written (and encoded) but not kept
        writer = HistoryWriter(sink)
        profiler = cProfile.Profile() if profile else None
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        run_scenario(scenario, recorder=writer)
        wall_s = time.perf_counter() - started
        if profiler is not None:
            profiler.disable()
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumtime").print_stats(30)
    simulated_s = scenario.duration_s + SETTLE_S
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "simulated_s": simulated_s,
        "wall_s": wall_s,
        "speed": simulated_s / wall_s,
        "events": writer.count,
        "rss_mb": rss_mb,
        "raw_simpy": raw,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--profile", action="store_true", help="profile each case (no table)")
    parser.add_argument(
        "--before",
        default=_compare.ISSUE_BASE,
        help="the commit to compare with (default: issue 15's base); '' for none",
    )
    parser.add_argument("--compiled", action="store_true", help="also run the mypyc build")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case and column")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case, print JSON
    args = parser.parse_args()
    if args.case is not None:
        sys.path.insert(0, os.getcwd())  # the tree under test (the column's)
        print(json.dumps(run_case(args.case, args.profile)))
        return 0
    cols = _compare.columns(args.before or None, args.compiled)
    if args.profile:
        cols, args.repeat = cols[-1:], 1
    hours = f"{args.hours:g}"
    rows, notes = [], []
    for label, workload in CASES.items():
        text = SCENARIO.format(name=label.replace(" ", "-"), hours=hours, workload=workload)
        case = [text, "--profile"] if args.profile else [text]
        runs = _compare.alternate(Path(__file__), cols, case, args.repeat)
        speeds = {c: _compare.median_of(r, "speed") for c, r in runs.items()}
        rows.append((label, speeds, TARGETS[label]))
        for column, column_runs in runs.items():
            notes.append(_note(label, column, column_runs))
    title = (
        f"simulator speed, x real time (one simulated {hours} h, 3 nodes + 3 etcd members; "
        f"median of {args.repeat} run(s) per column, columns in turn)"
    )
    print(_compare.table(title, rows, cols, lambda v: f"{v:,.0f}x"))
    print()
    print("\n".join(notes))
    return 0


def _note(label: str, column: str, runs: list[dict[str, float]]) -> str:
    raw = _compare.median_of(runs, "raw_simpy")
    speed = _compare.median_of(runs, "speed")
    return (
        f"- {label}, {column}: {speed:,.0f}x = {speed / raw:.4f} simulated s per raw SimPy "
        f"event (raw SimPy {raw:,.0f} timeouts/s in the same process); "
        f"{_compare.median_of(runs, 'events'):,.0f} history events; peak RSS "
        f"{max(r['rss_mb'] for r in runs):.0f} MB (target < {MEMORY_TARGET_MB} MB)"
    )


if __name__ == "__main__":
    sys.exit(main())
