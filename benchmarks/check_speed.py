"""How fast a history is read and checked, measured in one run (this machine is shared and noisy).

The history is one simulated day of a 3-node cluster with 3 etcd members and 10 writes/s through
HAProxy, with a primary kill, a primary partition, a replica kill and a replica partition spread
over the day (so that it holds failovers): about 1.8 M events, ~200 MB. It is made once by the
simulator and kept in a cache directory outside the repository (default ~/.cache/pgha/check_speed/,
one file per scenario text and seed), so reruns only measure.

Each measurement runs in a fresh process, a few times (--repeat), and the median is printed; the
peak memory is that process's own max RSS (as /usr/bin/time reports it, interpreter included):
- read: `for _ in iter_history(path): pass`;
- read+check: `run_checks(iter_history(path))`, as `pgha check` and `pgha sim run` do;
- check only: read+check minus read, and the events it checks per second.

Targets (issue 12, item 5): read+check < 10 s and peak memory < 500 MB for the day. Ratios are
measured / target (<= 1.0 meets it); check-only / read shows what the checks add to reading.

Usage: python benchmarks/check_speed.py [--hours H] [--repeat N] [--cache DIR] [--seed N]
(default 24 hours, 3 repetitions). Add --profile read|check to print where one run's time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = Path("~/.cache/pgha/check_speed")
TIME_TARGET_S = 10.0
MEMORY_TARGET_MB = 500.0

# Fault times are fractions of the duration, so that --hours gives the same shape of run.
SCENARIO = """
name: check-speed
duration: {duration:.0f}s
cluster: {{nodes: 3, etcd: 3}}
config: {{ttl: 30, loop_wait: 10, retry_timeout: 10}}
workload: {{rate: 10/s, via: haproxy}}
faults:
  - {{at: {f1:.0f}s, kill: primary, for: 90s}}
  - {{at: {f2:.0f}s, partition: {{isolate: primary}}, for: 45s}}
  - {{at: {f3:.0f}s, kill: replica, for: 60s}}
  - {{at: {f4:.0f}s, partition: {{isolate: replica}}, for: 60s}}
checks:
  no_split_brain: true
  no_lost_acknowledged_writes: true
  max_lost_writes: 10000
  failover_within: 60s
  eventually_healthy: 120s
"""


def scenario_text(hours: float) -> str:
    duration = hours * 3600
    at = [duration * k / 8 for k in (1, 3, 5, 7)]
    return SCENARIO.format(duration=duration, f1=at[0], f2=at[1], f3=at[2], f4=at[3])


def history_path(cache: Path, text: str, seed: int) -> Path:
    """The cached history of `text` run with `seed`: its name is a digest of both."""
    key = hashlib.sha256(f"{seed}\n{text}".encode()).hexdigest()[:16]
    return cache / f"history-{key}.jsonl"


def generate(path: Path, text: str, seed: int) -> None:
    """Simulate the scenario (in this process) into `path`, atomically."""
    sys.path.insert(0, str(ROOT))
    from pgha.history import HistoryWriter
    from pgha.scenario import parse_scenario
    from sim.run import run_scenario

    partial = path.with_suffix(f".partial-{os.getpid()}")
    try:
        with HistoryWriter(partial) as writer:
            run_scenario(parse_scenario(text), seed=seed, recorder=writer)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def measure(what: str, path: Path, profile: bool) -> dict[str, Any]:
    """One measurement (in this process): wall seconds of `what` on the history at `path`."""
    sys.path.insert(0, str(ROOT))
    from pgha.checks import run_checks
    from pgha.history import iter_history

    profiler = cProfile.Profile() if profile else None
    result: dict[str, Any] = {}
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    if what == "read":
        events = 0
        for _ in iter_history(path):
            events += 1
        result["events"] = events
    else:
        report = run_checks(iter_history(path))
        result["ok"] = report.ok
    result["wall_s"] = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    return result


def run_child(args: list[str]) -> tuple[dict[str, Any], float]:
    """Run this script with `args` in a fresh process: its JSON result and its peak RSS in MB."""
    # stdout carries the JSON result; a profile goes to stderr, shown as it is printed.
    child = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    out = child.stdout.read()
    # wait4 gives this child's own resource usage (RUSAGE_CHILDREN would be the max over all).
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"check_speed: {' '.join(args[:2])} failed (exit {child.returncode})")
    lines = out.strip().splitlines()
    return (json.loads(lines[-1]) if lines else {}), usage.ru_maxrss / 1024  # Linux: KiB


def median_of(runs: list[tuple[dict[str, Any], float]]) -> tuple[float, float]:
    """Median wall seconds and the highest peak RSS of repeated runs."""
    return statistics.median(r["wall_s"] for r, _ in runs), max(rss for _, rss in runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help=f"history cache (default {DEFAULT_CACHE})"
    )
    parser.add_argument("--profile", choices=["read", "check"], help="profile one run of this")
    parser.add_argument("--generate", nargs=3, help=argparse.SUPPRESS)  # internal: path text seed
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)  # internal: what path
    args = parser.parse_args()
    if args.generate is not None:
        generate(Path(args.generate[0]), args.generate[1], int(args.generate[2]))
        return 0
    if args.measure is not None:
        what, path = args.measure
        print(json.dumps(measure(what, Path(path), args.profile is not None)))
        return 0

    text = scenario_text(args.hours)
    cache = args.cache.expanduser().resolve()
    if cache == ROOT or ROOT in cache.parents:
        parser.error(f"--cache {cache} is inside the repository; choose a directory outside it")
    cache.mkdir(parents=True, exist_ok=True)
    path = history_path(cache, text, args.seed)
    if not path.exists():
        print(f"simulating {args.hours:g} h into {path} (once; kept for reruns) ...", flush=True)
        started = time.perf_counter()
        run_child(["--generate", str(path), text, str(args.seed)])
        print(f"  done in {time.perf_counter() - started:.0f} s", flush=True)
    size_mb = path.stat().st_size / 1e6

    if args.profile is not None:
        run_child(["--measure", args.profile, str(path), "--profile", args.profile])
        return 0

    reads, checks = [], []
    for _ in range(max(1, args.repeat)):  # interleaved, so that a noisy spell hits both
        reads.append(run_child(["--measure", "read", str(path)]))
        checks.append(run_child(["--measure", "check", str(path)]))
    events = reads[0][0]["events"]
    read_s, read_mb = median_of(reads)
    check_s, check_mb = median_of(checks)
    only_s = max(check_s - read_s, 0.0)
    verdict = "PASS" if checks[0][0]["ok"] else "FAIL"

    hours = f"{args.hours:g} h"
    print(f"history: {hours}, seed {args.seed}, {events:,} events, {size_mb:,.0f} MB ({path})")
    print(f"median of {len(reads)} runs, each in a fresh process; verdict of the checks: {verdict}")
    print(f"{'':12} {'seconds':>8} {'events/s':>11} {'peak MB':>8}")
    print(f"{'read':12} {read_s:8.2f} {events / read_s:11,.0f} {read_mb:8.0f}")
    print(f"{'read+check':12} {check_s:8.2f} {events / check_s:11,.0f} {check_mb:8.0f}")
    rate = f"{events / only_s:11,.0f}" if only_s > 0 else f"{'-':>11}"
    print(f"{'check only':12} {only_s:8.2f} {rate} {'':>8}")
    scale = 24 / args.hours  # the targets are for a day: compare a shorter run scaled to one
    note = "" if args.hours == 24 else f" (scaled x{scale:g} to a day)"
    print(
        f"read+check time: {check_s * scale:.2f} s{note} / target {TIME_TARGET_S:g} s"
        f" = {check_s * scale / TIME_TARGET_S:.2f}"
    )
    print(
        f"peak memory: {check_mb:.0f} MB / target {MEMORY_TARGET_MB:g} MB"
        f" = {check_mb / MEMORY_TARGET_MB:.2f}"
        + ("" if args.hours == 24 else " (not scaled: this run's own)")
    )
    print(f"check only / read: {only_s / read_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
