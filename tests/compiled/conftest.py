"""The compiled build of this checkout, made once per session for the tests that need it.

A fresh build where PGHA_COMPILED_DIR points (CI's compiled leg builds there first, .ci/run) or in
the default cache (after `pgha compile`) is used as it is; otherwise `pgha compile` builds one into
a temporary directory, which takes minutes (the tests that need it are marked `compiled` and
`slow`). Nothing here writes into the user's cache.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pgha import compiled
from tests.compiled.helpers import python


def _fresh_cache() -> Path | None:
    cache = compiled.cache_root()  # PGHA_COMPILED_DIR, or the default
    modules, _ = compiled.check(compiled.build_dir(compiled.ROOT, cache))
    return Path(cache) if modules else None


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache directory (for PGHA_COMPILED_DIR) that holds a fresh build of this checkout."""
    found = _fresh_cache()
    if found is not None:
        return found
    made = tmp_path_factory.mktemp("compiled-cache")
    done = python(["-m", "pgha", "compile"], made, None, timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr
    return made


@pytest.fixture
def copied(cache: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of this checkout's packages and its own copy of the build: (tree, cache). A build
    is usable wherever the sources match its manifest, so the copy starts out active."""
    tree, copy_cache = tmp_path / "tree", tmp_path / "cache"
    for package in ("pgha", "sim"):
        shutil.copytree(
            Path(compiled.ROOT) / package,
            tree / package,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    shutil.copytree(
        compiled.build_dir(compiled.ROOT, str(cache)),
        compiled.build_dir(str(tree), str(copy_cache)),
    )
    return tree, copy_cache
