"""How fast the simulator runs, measured in one run (this machine is shared and noisy).

Prints, for this machine and this run:
- raw SimPy speed: timeout events per second of wall time;
- a 3-node cluster with 3 etcd members and default timings over one simulated day, with no
  workload and with 10 writes/s through HAProxy: simulated seconds per wall second ("x real
  time"), events in the history, and the peak memory (max RSS) of the process that ran it.

Targets (issue 3): >= 100,000x without workload, >= 10,000x with it, < 300 MB with it.

Usage: python benchmarks/sim_speed.py [--hours H] (default 24 hours; each case runs in a fresh
process so that its memory is its own). Add --profile to print where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import resource
import subprocess
import sys
import time
from pathlib import Path

import simpy

ROOT = Path(__file__).resolve().parents[1]

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
    """Run one scenario (in this process) and measure it."""
    sys.path.insert(0, str(ROOT))
    from pgha.history import HistoryWriter
    from pgha.scenario import parse_scenario
    from sim.run import SETTLE_S, run_scenario

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
    return {"simulated_s": simulated_s, "wall_s": wall_s, "events": writer.count, "rss_mb": rss_mb}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case, print JSON
    args = parser.parse_args()
    if args.case is not None:
        print(json.dumps(run_case(args.case, args.profile)))
        return 0
    print(f"raw SimPy: {raw_simpy():,.0f} timeout events per second")
    hours = f"{args.hours:g}"
    for label, workload in CASES.items():
        text = SCENARIO.format(name=label.replace(" ", "-"), hours=hours, workload=workload)
        command = [sys.executable, __file__, "--case", text]
        if args.profile:
            command.append("--profile")
        # stdout carries the JSON result; a profile goes to stderr, shown as it is printed.
        out = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        speed = result["simulated_s"] / result["wall_s"]
        target = TARGETS[label]
        print(
            f"{label}: {result['simulated_s']:,.0f} s simulated in {result['wall_s']:.2f} s wall"
            f" = {speed:,.0f}x real time (target {target:,}x: {speed / target:.2f} of it);"
            f" {result['events']:,} history events; peak RSS {result['rss_mb']:.0f} MB"
            f" (target < {MEMORY_TARGET_MB} MB)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
