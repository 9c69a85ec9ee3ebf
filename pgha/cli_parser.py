"""The ``pgha`` command's arguments: ``sim run``, ``sim explore``, ``sim variants``, ``check``,
and the commands with parsers of their own (``PASS_THROUGH``), which are only named here."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pgha import __version__, cli_check

DESCRIPTION = (
    "pgha: a Patroni-style high-availability manager for PostgreSQL whose pure decision engine "
    "runs in production (real etcd and PostgreSQL), in a SimPy simulation and in a Docker chaos "
    "harness."
)


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
    run.add_argument("--engine-variant", metavar="NAME", help="run a known-bad engine variant")
    _explore_parser(sim_commands)
    sim_commands.add_parser("variants", help="list the known-bad engine variants")
    cli_check.add_parser(worlds)
    for name, (_, summary) in PASS_THROUGH.items():
        worlds.add_parser(name, help=f"{summary} (pgha {name} --help)", add_help=False)
    return parser


def _explore_parser(commands: Any) -> None:
    explore = commands.add_parser(
        "explore",
        help="search fault schedules for a violation, shrink it, write reproducers",
        description="Draw fault schedules from the scenario's explore: section, run them, keep "
        "the failures that fail fastest, shrink each and write it out as a scenario file that "
        "`pgha sim run` reproduces. Exit code 0: nothing broke within the budget; 1: a "
        "violation was found; 2: bad input.",
    )
    explore.add_argument("file", type=Path, help="scenario YAML file with an explore: section")
    explore.add_argument(
        "--budget",
        default="60s",
        help="wall time (60s, 5m, 1h) or a number of schedules (500); default 60s",
    )
    explore.add_argument(
        "--seed", type=int, default=None, help="first seed (default: the scenario's seed)"
    )
    explore.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: every core)"
    )
    explore.add_argument(
        "--dask", metavar="ADDRESS", help="run on the Dask scheduler at ADDRESS instead"
    )
    explore.add_argument(
        "--out", type=Path, default=None, help="default: reports/explore/<scenario name>"
    )
    explore.add_argument("--engine-variant", metavar="NAME", help="explore a known-bad variant")
    explore.add_argument(
        "--keep", type=int, default=3, help="failures to shrink and write out (default 3)"
    )
    explore.add_argument(
        "--search",
        choices=("sweep", "hypothesis"),
        default="sweep",
        help="seed sweep (default) or Hypothesis search with its own shrinking (in this "
        "process: --workers and --dask apply to the sweep)",
    )


# Commands with a parser of their own, imported only when used: module and one-line summary.
PASS_THROUGH: dict[str, tuple[str, str]] = {
    "agent": ("pgha.agent.main", "run the HA agent beside one PostgreSQL server"),
    "ctl": ("pgha.ctl.main", "inspect and operate a running cluster, like patronictl"),
    "softdog": (
        "pgha.agent.watchdog.softdog",
        "the watchdog emulation for hosts without /dev/watchdog",
    ),
    "chaos": ("chaos.cli", "run scenarios against real containers (PostgreSQL, etcd, HAProxy)"),
    "notebooks": ("pgha.notebooks", "run and check the notebooks; render them to reports/*.html"),
    "compile": (
        "pgha.compiled.cli",
        "build the optional mypyc-compiled simulator (--status, --clean)",
    ),
}
