"""Before/after in one run: the same benchmark case on an older tree and on this one, in turn.

A benchmark names its cases; each case runs as a fresh process (`python BENCHMARK --case ...`)
with the tree under test first on `sys.path`, so "before" runs the older code with today's
benchmark. The older tree is `git archive`d once into ~/.cache/pgha/bench/<commit>/ (nothing in
the checkout changes). Runs alternate before, after, before, after ... so that a machine whose
speed drifts moves both columns alike; the median of the repeats is reported, with the ratio.

A build ("pure" or "compiled") is part of what a column measures: `compiled` runs the tree with
its mypyc build (`pgha compile`; PGHA_COMPILED=1), "pure" forces pure Python (PGHA_COMPILED=0).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The last commit before issue 15's work: the "before" of its table unless --before says otherwise.
ISSUE_BASE = "a1edf2c"


@dataclass(frozen=True)
class Column:
    """One column of the table: a tree and a build."""

    label: str
    tree: Path
    build: str  # "pure" or "compiled"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(self.tree)
        env["PGHA_COMPILED"] = "1" if self.build == "compiled" else "0"
        return env


def tree_at(revision: str) -> Path:
    """A copy of the repository at `revision` (made once, kept in the cache)."""
    commit = _git("rev-parse", "--verify", f"{revision}^{{commit}}").strip()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pgha" / "bench"
    tree = cache / commit[:12]
    if not (tree / "pyproject.toml").exists():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True
        ).stdout
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(tree, filter="data")
    return tree


def columns(before: str | None, compiled: bool) -> list[Column]:
    """The table's columns: before (pure Python), now (pure Python), now compiled if asked."""
    found = [Column(f"before ({before})", tree_at(before), "pure")] if before else []
    found.append(Column("now", ROOT, "pure"))
    if compiled:
        found.append(Column("now, compiled", ROOT, "compiled"))
    return found


def run_case(script: Path, column: Column, case: Sequence[str]) -> dict[str, float]:
    """One run of `script --case ...` for `column`, in a fresh process: its JSON result."""
    command = [sys.executable, str(script), "--case", *case]
    out = subprocess.run(
        command, check=True, stdout=subprocess.PIPE, text=True, env=column.env(), cwd=column.tree
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def alternate(
    script: Path, cols: Sequence[Column], case: Sequence[str], repeat: int
) -> dict[str, list[dict[str, float]]]:
    """`repeat` runs of the case per column, the columns in turn."""
    runs: dict[str, list[dict[str, float]]] = {c.label: [] for c in cols}
    for _ in range(repeat):
        for column in cols:
            runs[column.label].append(run_case(script, column, case))
    return runs


def median_of(runs: Sequence[dict[str, float]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def table(
    title: str,
    rows: Sequence[tuple[str, dict[str, float], float]],
    cols: Sequence[Column],
    fmt: Callable[[float], str],
) -> str:
    """A Markdown table: one row per case (`rows`: name, value per column label, target), each
    column's median value, the last column's ratio to the first, and the target met or not."""
    head = ["case", *(c.label for c in cols)]
    if len(cols) > 1:
        head.append(f"{cols[-1].label} / {cols[0].label}")
    head += ["target", "met"]
    lines = [title, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, values, target in rows:
        cells = [name, *(fmt(values[c.label]) for c in cols)]
        last = values[cols[-1].label]
        if len(cols) > 1:
            cells.append(f"{last / values[cols[0].label]:.2f}x")
        cells += [fmt(target), "yes" if last >= target else f"no ({last / target:.2f} of it)"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True
    ).stdout
