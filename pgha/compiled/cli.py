"""``pgha compile``: build, inspect (``--status``) or remove (``--clean``) this checkout's compiled
build of the simulator's hot modules (mypyc). Exit codes: 0 done (``--status``: the build is active
in this process), 1 the build failed (``--status``: not active), 2 bad usage or a missing tool."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import TextIO

from pgha import compiled

EXIT_OK, EXIT_FAILED, EXIT_BAD = 0, 1, 2

DESCRIPTION = (
    "Compile the simulator's hot modules (the engine, loop, history, checkers and the simulated "
    "world) with mypyc, into a directory outside the source tree ($PGHA_COMPILED_DIR, default "
    "~/.cache/pgha/compiled). New processes then import them instead of the Python files while "
    "every source matches the build, and none of them otherwise. PGHA_COMPILED=0 forces pure "
    "Python; PGHA_COMPILED=1 says on stderr why a build is not used. Needs mypy (the dev or "
    "compile extra), a C compiler and the Python headers; takes a minute or two."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgha compile", description=DESCRIPTION)
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--status", action="store_true", help="say whether a build is present, fresh and active"
    )
    what.add_argument("--clean", action="store_true", help="remove this checkout's build")
    what.add_argument("--force", action="store_true", help="rebuild even if the build is fresh")
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="C files compiled at a time (default: the number of CPUs)",
    )
    return parser


def main(argv: list[str] | None = None, stdout: TextIO | None = None) -> int:
    """Run ``pgha compile`` with `argv`; the exit code."""
    args = build_parser().parse_args(argv)
    out = stdout or sys.stdout
    directory = compiled.build_dir()
    if args.status:
        return status(directory, out)
    if args.clean:
        return clean(directory, out)
    if args.jobs < 1:
        print("pgha compile: --jobs takes a number >= 1", file=sys.stderr)
        return EXIT_BAD
    return build(directory, out, force=args.force, jobs=args.jobs)


def status(directory: str, out: TextIO) -> int:
    """Print what is there and what this process does with it; 0 if the build is active."""
    print(f"build directory: {directory}", file=out)
    try:
        manifest = compiled.read_manifest(directory)
    except (OSError, ValueError) as error:
        print(f"present: unusable ({error})", file=out)
        manifest = {}
    if manifest is None:
        print("present: no (run `pgha compile`)", file=out)
    elif manifest:
        print(
            f"present: built {manifest.get('built')} with mypy {manifest.get('mypy')} in "
            f"{manifest.get('build_s')} s: {len(manifest.get('compiled', ()))} modules compiled, "
            f"{len(manifest.get('sources', ()))} sources checked",
            file=out,
        )
        changed = compiled.stale_sources(manifest.get("sources", {}))
        fresh = "yes" if not changed else "no: changed since the build: " + ", ".join(changed)
        print(f"fresh: {fresh}", file=out)
    now = compiled.status()
    print(f"active: {'yes' if now.active else 'no: ' + now.reason}", file=out)
    return EXIT_OK if now.active else EXIT_FAILED


def clean(directory: str, out: TextIO) -> int:
    """Remove the build (and what a failed build left); say what was removed."""
    removed = [d for d in (directory, directory + ".work") if os.path.exists(d)]
    for path in removed:
        shutil.rmtree(path)
    print(
        f"removed {', '.join(removed)}" if removed else f"nothing to remove ({directory})", file=out
    )
    return EXIT_OK


def build(directory: str, out: TextIO, *, force: bool = False, jobs: int = 1) -> int:
    """Build unless the build is fresh (or `force`); report where and how long."""
    from pgha.compiled import build as builder

    modules, _ = compiled.check(directory)
    if modules and not force:
        print(f"pgha compile: {directory} is fresh: nothing to do (--force rebuilds)", file=out)
        return EXIT_OK
    lacking = builder.missing_tools()
    if lacking:
        print(f"pgha compile: missing {'; '.join(lacking)}", file=sys.stderr)
        return EXIT_BAD
    files = builder.compiled_files(compiled.ROOT)
    print(
        f"pgha compile: compiling {len(files)} modules of {compiled.ROOT} with mypyc into "
        f"{directory} ({jobs} C files at a time; a minute or two)",
        file=out,
        flush=True,
    )
    try:
        manifest = builder.build(compiled.ROOT, directory, jobs=jobs)
    except builder.BuildError as error:
        print(f"pgha compile: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"pgha compile: done in {manifest['build_s']} s; new processes import the compiled "
        "modules while every source matches (PGHA_COMPILED=0 forces pure Python)",
        file=out,
    )
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover - `python -m pgha.compiled.cli`
    sys.exit(main())
