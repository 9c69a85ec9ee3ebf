"""The ``pgha`` command: the composition root.

``pgha sim run FILE`` runs a scenario in the simulator and writes its history, summary, JUnit XML
and HTML report. This module imports :mod:`sim` (and later :mod:`chaos`) lazily, inside the
subcommands. Exit codes: 0 every check holds, 1 a check broke, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TextIO

from pgha import __version__

DESCRIPTION = (
    "pgha: a Patroni-style high-availability manager for PostgreSQL whose pure decision engine "
    "runs in production (real etcd and PostgreSQL), in a SimPy simulation and in a Docker chaos "
    "harness."
)
EXIT_OK, EXIT_VIOLATION, EXIT_BAD_INPUT = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser for the ``pgha`` command."""
    parser = argparse.ArgumentParser(prog="pgha", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    worlds = parser.add_subparsers(dest="world", metavar="COMMAND")
    sim = worlds.add_parser("sim", help="run scenarios in the simulator")
    sim_commands = sim.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = sim_commands.add_parser("run", help="run one scenario file and report its verdict")
    run.add_argument("file", type=Path, help="scenario YAML file")
    run.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    run.add_argument(
        "--out", type=Path, default=None, help="output directory (default: reports/<file name>)"
    )
    run.add_argument(
        "--show-decisions", action="store_true", help="mark engine decisions on the timeline"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``pgha`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.world == "sim":
        return sim_run(args.file, seed=args.seed, out=args.out, decisions=args.show_decisions)
    parser.print_help()
    return EXIT_OK


def sim_run(
    file: Path,
    *,
    seed: int | None = None,
    out: Path | None = None,
    decisions: bool = False,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """``pgha sim run``: simulate `file`, write history and reports, print the verdict."""
    from pgha.checks import run_checks
    from pgha.history import HistoryWriter, iter_history
    from pgha.report import write_report
    from pgha.scenario import ScenarioError, load_scenario
    from sim.run import run_scenario

    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    try:
        scenario = load_scenario(file)
    except ScenarioError as error:
        print(f"pgha: {error}", file=stderr)
        return EXIT_BAD_INPUT
    out = out if out is not None else Path("reports") / file.stem
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"pgha: {out}: cannot create the output directory: {error.strerror}", file=stderr)
        return EXIT_BAD_INPUT
    history = out / "history.jsonl"
    started = time.perf_counter()
    with HistoryWriter(history) as writer:
        sim = run_scenario(scenario, seed=seed, recorder=writer)
    wall_s = time.perf_counter() - started
    report = run_checks(iter_history(history))
    write_report(history, report, out, show_decisions=decisions)
    simulated_s = sim.world.now
    print(_verdict(scenario.name, sim.world.seed, report, simulated_s, wall_s, out), file=stdout)
    return EXIT_OK if report.ok else EXIT_VIOLATION


def _verdict(
    name: str, seed: int, report: object, simulated_s: float, wall_s: float, out: Path
) -> str:
    from pgha.checks import CheckReport

    assert isinstance(report, CheckReport)
    speed = simulated_s / wall_s if wall_s > 0 else float("inf")
    lines = [
        f"{name} (seed {seed}): {'PASS' if report.ok else 'FAIL'}"
        f"  [{simulated_s:.0f} s simulated in {wall_s:.2f} s, {speed:,.0f}x]"
    ]
    for result in report.results:
        mark = "ok  " if result.ok else "FAIL"
        lines.append(f"  {mark} {result.name}{_first_violation(result)}")
    summary = report.summary
    measured = ", ".join(f"{s:.1f} s" for s in summary["failover_times_s"]) or "none"
    lines.append(
        f"  writes acknowledged: {summary['writes_acknowledged']}; failovers: {measured}; "
        f"lost writes: {summary['lost_writes']}; "
        f"dual-writable: {summary['dual_writable_s']:.1f} s; "
        f"unavailable: {summary['unavailability_s']:.1f} s"
    )
    lines.append(f"  report: {out / 'report.html'}")
    return "\n".join(lines)


def _first_violation(result: object) -> str:
    violations = getattr(result, "violations", ())
    if not violations:
        return ""
    first = violations[0]
    nodes = ",".join(first.nodes)
    what = first.detail.get("what") or first.detail.get("kind") or ""
    return f": t={first.t_start:.1f}-{first.t_end:.1f} s {nodes} {what}".rstrip()


if __name__ == "__main__":  # pragma: no cover - `python -m pgha.cli`
    sys.exit(main())
