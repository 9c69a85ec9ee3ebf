"""Session fixtures: each bundled scenario the analysis tests read is simulated once."""

from __future__ import annotations

import pytest

from tests.analysis.runs import Run, simulated_run


@pytest.fixture(scope="session")
def crash_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return simulated_run(tmp_path_factory, "primary-crash")


@pytest.fixture(scope="session")
def partition_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return simulated_run(tmp_path_factory, "primary-partition")


@pytest.fixture(scope="session")
def switchover_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return simulated_run(tmp_path_factory, "switchover")


@pytest.fixture(scope="session")
def split_brain_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return simulated_run(tmp_path_factory, "agent-pause-no-watchdog")
