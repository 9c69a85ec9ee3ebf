# `pgha chaos ...` (pgha/cli.py passes the arguments after `chaos` here): build the images, run a
# scenario against real containers, remove what the harness left behind. Exit codes as
# `pgha sim run`: 0 every check held, 1 a check broke, 2 bad input (a missing or invalid scenario,
# a fault this machine cannot apply, no Docker) or a run the harness could not carry out (no image,
# a cluster that never came up). Either is one clear line, never a traceback.
"""The `pgha chaos` command: build, run, down."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from chaos.run import ChaosResult
    from pgha.scenario import Scenario

EXIT_OK, EXIT_VIOLATION, EXIT_BAD_INPUT = 0, 1, 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `pgha chaos`."""
    parser = argparse.ArgumentParser(
        prog="pgha chaos",
        description="Run scenarios against real containers: PostgreSQL, etcd, HAProxy and the "
        "agent in Docker, with real faults, the same history, checks and report as `pgha sim run`.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    build = commands.add_parser("build", help="build the images (offline base, wheels, Dockerfile)")
    build.add_argument("--force", action="store_true", help="redo every step, ignore the cache")
    build.add_argument(
        "--base", metavar="IMAGE", help="start from this image (e.g. debian:bookworm) instead"
    )
    run = commands.add_parser("run", help="run one scenario file against containers")
    run.add_argument("file", type=Path, help="scenario YAML file")
    run.add_argument(
        "--out", type=Path, default=None, help="output directory (default: reports/chaos/<name>)"
    )
    run.add_argument(
        "--peer",
        choices=("patroni",),
        default=None,
        help="run Patroni 4.1.5 in place of pgha, with the same workload and checks",
    )
    run.add_argument("--keep", action="store_true", help="leave the containers running after")
    run.add_argument(
        "--compare-sim",
        action="store_true",
        help="also run the simulator and report predicted and measured failover times",
    )
    run.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    down = commands.add_parser("down", help="remove every container and network of the harness")
    down.add_argument("--images", action="store_true", help="remove the harness's images too")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `pgha chaos` with `argv` (default: `sys.argv[1:]`); return the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, or a usage error (argparse printed it)
        return int(stop.code or 0)
    try:
        if args.command == "build":
            return chaos_build(force=args.force, base=args.base)
        if args.command == "down":
            return chaos_down(images=args.images)
        return chaos_run(
            args.file,
            out=args.out,
            agent=args.peer or "pgha",
            keep=args.keep,
            compare_sim=args.compare_sim,
            seed=args.seed,
        )
    except KeyboardInterrupt:
        print("\npgha chaos: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


class Progress:
    """Progress lines on stderr, each with the seconds since the command started."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.started = time.monotonic()

    def __call__(self, line: str) -> None:
        print(f"[{time.monotonic() - self.started:7.1f}s] {line}", file=self.stream, flush=True)


def _docker(stderr: TextIO) -> Any | None:
    """A Docker client, or None (after saying why) when Docker cannot be reached."""
    try:
        import docker
    except ImportError:
        print("pgha chaos: the docker SDK is missing: pip install 'pgha[chaos]'", file=stderr)
        return None
    try:
        client = docker.from_env()
        client.ping()
    except Exception as error:  # the SDK raises DockerException and requests' errors
        print(f"pgha chaos: cannot reach Docker: {error}", file=stderr)
        return None
    return client


def chaos_build(
    *, force: bool = False, base: str | None = None, progress: Callable[[str], None] | None = None
) -> int:
    """`pgha chaos build`: build or reuse the images; print the tag."""
    from chaos.image import ImageBuildError, build_images

    if _docker(sys.stderr) is None:
        return EXIT_BAD_INPUT
    try:
        tag = build_images(progress=progress or Progress(), force=force, base=base)
    except ImageBuildError as error:
        print(f"pgha chaos: build failed: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(tag)
    return EXIT_OK


def chaos_down(*, images: bool = False) -> int:
    """`pgha chaos down`: remove every labelled container, network, volume (and image)."""
    client = _docker(sys.stderr)
    if client is None:
        return EXIT_BAD_INPUT
    from chaos.docker_objects import down_all

    counts = down_all(client, images=images)
    print(", ".join(f"{count} {what}" for what, count in counts.items()) + " removed")
    return EXIT_OK


def chaos_run(
    file: Path,
    *,
    out: Path | None = None,
    agent: str = "pgha",
    keep: bool = False,
    compare_sim: bool = False,
    seed: int | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """`pgha chaos run`: run `file` against containers, write history and reports, print."""
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    scenario = _runnable(file, agent, stderr)
    if scenario is None:
        return EXIT_BAD_INPUT
    out = _output_dir(out if out is not None else Path("reports") / "chaos" / file.stem, stderr)
    if out is None:
        return EXIT_BAD_INPUT
    client = _docker(stderr)
    if client is None:
        return EXIT_BAD_INPUT
    from chaos.run import RunFailed, run_scenario

    try:
        result = run_scenario(
            scenario,
            client=client,
            out_dir=out,
            agent=agent,
            keep=keep,
            progress=Progress(stderr),
            compare_sim=compare_sim,
            seed=seed,
        )
    except RunFailed as error:
        print(f"pgha chaos: {error} (logs: {out / 'logs'})", file=stderr)
        return EXIT_BAD_INPUT
    return _report(result, stdout, stderr)


def _report(result: ChaosResult, stdout: TextIO, stderr: TextIO) -> int:
    """Print the run's lines (on stderr when it could not start: exit 2); its exit code."""
    stream = stdout if result.exit_code != EXIT_BAD_INPUT else stderr
    print("\n".join(result.lines), file=stream)
    return result.exit_code


def _runnable(file: Path, agent: str, stderr: TextIO) -> Scenario | None:
    """The scenario of `file` when it can run here with `agent`; else None, said on stderr."""
    from pgha.scenario import ScenarioError, load_scenario

    try:
        scenario = load_scenario(file)
    except ScenarioError as error:
        print(f"pgha chaos: {error}", file=stderr)
        return None
    from chaos.run import preflight

    problems = preflight(scenario, agent=agent)
    for problem in problems:
        print(f"pgha chaos: {file}: {problem}", file=stderr)
    return None if problems else scenario


def _output_dir(out: Path, stderr: TextIO) -> Path | None:
    """`out`, created; None (said on stderr) when it cannot be."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(
            f"pgha chaos: {out}: cannot create the output directory: {error.strerror}", file=stderr
        )
        return None
    return out


if __name__ == "__main__":  # pragma: no cover - `python -m chaos.cli`
    sys.exit(main())
