"""Suite-wide pytest configuration.

Hypothesis profiles: "dev" for local runs, "ci" (more examples, reproducible, no deadline) when the
environment variable CI is set at all (as on CI, and as Hypothesis itself detects CI). The variable
PGHA_HYPOTHESIS_PROFILE picks one explicitly (mutation testing uses "mutmut").

The compiled build (`pgha compile`, pgha/compiled): the suite runs pure Python unless
PGHA_COMPILED says otherwise (coverage and mutation testing measure the Python code, so a fresh
build left in the cache must not replace it silently). PGHA_COMPILED=1 runs it on the compiled
build and fails the session at once when that build is not active (stale, missing): CI's compiled
leg (.ci/run) cannot then test pure Python twice. There, tests marked `pure_python` (they patch
what compiled code does not look up) are skipped.
"""

import os

import pytest
from hypothesis import settings

os.environ.setdefault("PGHA_COMPILED", "0")  # before anything imports pgha (subprocesses inherit)

settings.register_profile("dev", max_examples=100)
settings.register_profile("ci", max_examples=300, derandomize=True, deadline=None, print_blob=True)
# "mutmut": mutation testing runs the engine tests once per mutant; keep generated cases few.
settings.register_profile("mutmut", max_examples=20, deadline=None, database=None)
settings.load_profile(
    os.environ.get("PGHA_HYPOTHESIS_PROFILE") or ("ci" if "CI" in os.environ else "dev")
)


def _compiled_session() -> bool:
    from pgha import compiled

    return os.environ["PGHA_COMPILED"].strip().lower() in compiled.ON


def pytest_configure(config: pytest.Config) -> None:
    from pgha import compiled

    if not _compiled_session():
        return
    now = compiled.status()
    if not now.active:
        raise pytest.UsageError(
            f"PGHA_COMPILED=1, but the compiled build is not active: {now.reason}"
        )
    import sim.net

    if not str(sim.net.__file__).endswith(compiled.SUFFIX):
        raise pytest.UsageError(f"PGHA_COMPILED=1, but sim.net comes from {sim.net.__file__}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A test marked pure_python replaces a module attribute or a method that compiled code calls
    # directly (pgha compile): it runs in the pure suite only.
    if not _compiled_session():
        return
    skip = pytest.mark.skip(reason="pure_python: compiled code does not see what it patches")
    for item in items:
        if item.get_closest_marker("pure_python") is not None:
            item.add_marker(skip)
