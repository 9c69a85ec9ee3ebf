"""Parameter sweeps: same frame with one worker or two, values really applied, bad input refused."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from pgha.analysis import episodes
from pgha.analysis._params import apply_params, scenario_document
from pgha.scenario import parse_scenario
from sim.analysis import simulate, sweep
from tests.analysis.runs import SCENARIOS

SMALL = """
name: small-crash
seed: 1
duration: 50s
cluster: {nodes: 3, etcd: 3}
config: {ttl: 10, loop_wait: 2, retry_timeout: 2}
workload: {rate: 5/s, via: haproxy}
faults:
  - {at: 15s, kill: primary, for: 20s}
checks:
  no_split_brain: true
  no_lost_acknowledged_writes: true
  max_lost_writes: 50
  failover_within: 30s
"""
GRID = {"ttl": [8, 12], "faults[0].at": [10, 20]}
METRIC_COLUMNS = [
    "ok",
    "split_brain",
    "lost_writes",
    "failover_s",
    "unavailability_s",
    "longest_unavailability_s",
    "dual_writable_s",
    "writes_acknowledged",
    "episodes",
    "detect_s",
    "lock_expired_s",
    "promoted_s",
    "violated",
    "error",
    "ttl_s",
    "loop_wait_s",
    "retry_timeout_s",
]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sweep") / "small.yaml"
    path.write_text(SMALL, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def grid_inline(small: Path) -> pd.DataFrame:
    return sweep(small, grid=GRID, seeds=range(3), workers=1)


def test_one_worker_and_two_give_the_same_frame(small: Path, grid_inline: pd.DataFrame) -> None:
    in_processes = sweep(str(small), grid=GRID, seeds=range(3), workers=2)
    pd.testing.assert_frame_equal(in_processes, grid_inline)


def test_rows_columns_and_order(grid_inline: pd.DataFrame) -> None:
    assert list(grid_inline.columns) == ["ttl", "faults[0].at", "seed", *METRIC_COLUMNS]
    expected = [(ttl, at, seed) for ttl in (8, 12) for at in (10, 20) for seed in range(3)]
    assert list(grid_inline[["ttl", "faults[0].at", "seed"]].itertuples(index=False)) == expected
    assert grid_inline.ok.all()
    assert not grid_inline.split_brain.any()
    assert (grid_inline.episodes == 1).all()
    assert grid_inline.error.isna().all()


def test_values_are_applied(grid_inline: pd.DataFrame) -> None:
    # the lease outlives the crash by at most ttl: a longer ttl means a later expiry
    by_ttl = grid_inline.groupby("ttl").lock_expired_s
    assert by_ttl.max()[8] <= 8
    assert 8 < by_ttl.min()[12] <= 12
    # one row, recomputed from a direct simulation of the changed scenario
    row = grid_inline.iloc[7]  # ttl 12, at 10, seed 1
    scenario = parse_scenario(SMALL)
    changed, _ = apply_params(
        scenario, scenario_document(scenario), {"ttl": 12, "faults[0].at": 10}
    )
    history = simulate(changed, seed=1)
    (episode,) = (r for _, r in episodes(history).iterrows())
    assert episode.t_fault == 10.0
    assert (row.failover_s, row.detect_s) == (episode.failover_s, episode.detect_s)
    run_start = history[history.kind == "run_start"].iloc[0]
    assert run_start.config["ttl"] == 12


def test_effective_timing_is_reported(small: Path) -> None:
    # ttl 8 leaves room for loop_wait 2 + 2 * retry_timeout 2; ttl 4 does not: loop_wait is lowered
    found = sweep(small, grid={"ttl": [8, 4], "duration": [40]}, seeds=[0], workers=1)
    assert list(found.loop_wait_s) == [2.0, 1.0]
    assert list(found.retry_timeout_s) == [2.0, 1.0]
    assert list(found.ttl_s) == [8.0, 4.0]


def test_samples_are_seeded_and_within_range(small: Path) -> None:
    ranges = {"ttl": (8.0, 12.0), "faults[0].for": (5.0, 20.0)}
    first = sweep(small, sample=ranges, n_samples=3, seeds=[0], workers=1, sample_seed=5)
    again = sweep(small, sample=ranges, n_samples=3, seeds=[0], workers=1, sample_seed=5)
    pd.testing.assert_frame_equal(first, again)
    assert len(first) == 3
    assert first.ttl.between(8, 12).all()
    assert first["faults[0].for"].between(5, 20).all()
    assert first.ttl.nunique() == 3
    other = sweep(small, sample={"ttl": (8.0, 12.0)}, n_samples=3, seeds=[0], sample_seed=6)
    assert list(other.ttl) != list(first.ttl)


def test_real_engine_and_wall_clock_variant() -> None:
    scenario = SCENARIOS / "variants" / "wall-clock-lease.yaml"
    real = sweep(scenario, grid={"faults[1].jump": [-60]}, seeds=[5], workers=1)
    buggy = sweep(scenario, grid={"faults[1].jump": [-60]}, seeds=[5], variant="wall-clock-lease")
    assert not real.split_brain.iloc[0]
    assert real.ok.iloc[0]
    assert buggy.split_brain.iloc[0]
    assert not buggy.ok.iloc[0]
    assert "no_split_brain" in buggy.violated.iloc[0]
    assert buggy.dual_writable_s.iloc[0] > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"grid": {"ttl": [10, 1]}},
            r"'ttl' = 1 is refused.*config\.ttl: expected a number .* from 3 to 3600",
        ),
        ({"grid": {"faults[7].at": [1]}}, r"'faults\[7\]\.at': the scenario has 1 fault"),
        ({"grid": {"tll": [30]}}, r"'tll': unknown name; expected a config key"),
        ({"grid": {"faults[0].jump": [5]}}, r"faults\[0\] is `kill: primary`"),
        ({"grid": {"faults[0].for": [100]}}, r"'faults\[0\]\.for' = 100 is refused.*duration"),
        ({"grid": {"loop_wait": ["soon"]}}, r"'loop_wait' = 'soon' is refused"),
        ({"grid": {"ttl": []}}, r"grid\['ttl'\]: expected at least one value"),
        ({"sample": {"ttl": (12, 8)}}, r"sample\['ttl'\]: expected finite low <= high"),
        ({"sample": {"ttl": (8,)}}, r"sample\['ttl'\]: expected \(low, high\)"),
        ({"seeds": ["a"]}, r"seeds: expected at least one integer"),
        ({"workers": 0}, r"workers: expected an integer >= 1"),
        ({"variant": "wall-clock"}, r"unknown engine variant 'wall-clock'.*wall-clock-lease"),
    ],
)
def test_bad_input_is_refused(small: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sweep(small, **kwargs)  # type: ignore[arg-type]


def test_clock_fault_parameters_go_through_the_parser() -> None:
    scenario = SCENARIOS / "clock-jumps.yaml"
    with pytest.raises(ValueError, match=r"faults\[0\]\.clock: expected either jump, or offset"):
        sweep(scenario, grid={"faults[0].offset": [5]}, seeds=[1])
    parsed = parse_scenario((SCENARIOS / "clock-jumps.yaml").read_text(encoding="utf-8"))
    document = scenario_document(parsed)
    changed, _ = apply_params(
        parsed, document, {"faults[2].drift": -100, "faults[1].jump": -5, "clocks.n2.offset": 7}
    )
    assert changed.faults[2].params.drift_ppm == -100  # type: ignore[union-attr]
    assert changed.faults[1].params.jump_s == -5  # type: ignore[union-attr]
    assert changed.clocks["n2"].offset_s == 7
    assert math.isclose(changed.duration_s, parsed.duration_s)
