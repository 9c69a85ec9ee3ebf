"""The ``pgha`` command: the composition root.

Only ``--version`` exists so far; the ``sim``, ``chaos``, ``agent`` and ``ctl`` subcommands arrive
with their issues. This module may import :mod:`sim` and :mod:`chaos`, lazily, inside subcommands.
"""

from __future__ import annotations

import argparse

from pgha import __version__

DESCRIPTION = (
    "pgha: a Patroni-style high-availability manager for PostgreSQL whose pure decision engine "
    "runs in production (real etcd and PostgreSQL), in a SimPy simulation and in a Docker chaos "
    "harness."
)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser for the ``pgha`` command."""
    parser = argparse.ArgumentParser(prog="pgha", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``pgha`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help()
    return 0
