"""Running Python and `pgha` in a fresh process, with the compiled build's variables set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Prints, as JSON, what the process decided and where some modules came from.
PROBE = """
import json, sys
from pgha import compiled
import sim.net, pgha.engine.rules, pgha.history
now = compiled.status()
print(json.dumps({
    "active": now.active,
    "reason": now.reason,
    "files": {m: sys.modules[m].__file__ for m in ("sim.net", "pgha.engine.rules", "pgha.history")},
}))
"""


def env_for(cache: Path, compiled: str | None, tree: Path = ROOT) -> dict[str, str]:
    """The environment of a process on `tree` (first on sys.path) with builds in `cache`."""
    env = {k: v for k, v in os.environ.items() if k not in ("PGHA_COMPILED", "PYTHONPATH")}
    env["PGHA_COMPILED_DIR"] = str(cache)
    env["PYTHONPATH"] = str(tree)
    if compiled is not None:
        env["PGHA_COMPILED"] = compiled
    return env


def python(
    args: list[str], cache: Path, compiled: str | None, tree: Path = ROOT, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """`python ARGS` on `tree` (its working directory), without raising on a failure."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=tree,
        env=env_for(cache, compiled, tree),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
