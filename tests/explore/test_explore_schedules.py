"""Schedules drawn from an `explore:` section: what the spec allows, valid, and deterministic."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import given, settings

from pgha.scenario import (
    ONE_OFF_KINDS,
    STAYS_WITHOUT_FOR,
    ClockFault,
    FaultKind,
    FaultSpec,
    LatencyFault,
    LossFault,
    PauseFault,
    Scenario,
    dump_scenario,
    parse_scenario,
)
from sim.explore import (
    Budget,
    ExploreError,
    Space,
    random_schedule,
    schedule_for_seed,
)
from sim.explore.hypothesis_search import schedules
from tests.explore.explore_texts import ALL_KINDS, ISSUE_EXPLORE

SEEDS = range(300)


def scenario_of(text: str) -> Scenario:
    return parse_scenario(text)


def check_schedule(scenario: Scenario, faults: tuple[FaultSpec, ...]) -> None:
    """Every rule a schedule must keep, and the loader reads it back unchanged."""
    spec = scenario.explore
    assert spec is not None
    assert len(faults) in range(1, spec.max_faults + 1)
    assert [f.at_s for f in faults] == sorted(f.at_s for f in faults)
    for fault in faults:
        assert fault.kind in spec.faults
        assert spec.window_s[0] <= fault.at_s <= spec.window_s[1]
        assert fault.at_s < scenario.duration_s
        if fault.for_s is not None:
            assert fault.for_s > 0
            assert fault.at_s + fault.for_s <= scenario.duration_s
        undoable = fault.kind not in ONE_OFF_KINDS
        if isinstance(fault.params, ClockFault) and fault.params.jump_s is not None:
            undoable = False
        if fault.kind in STAYS_WITHOUT_FOR:  # written data: with or without `for`
            undoable = fault.for_s is not None
        assert (fault.for_s is not None) == undoable
    reread = parse_scenario(dump_scenario(_with(scenario, faults)))
    assert tuple(f.kind for f in reread.faults) == tuple(f.kind for f in faults)
    assert tuple(f.params for f in reread.faults) == tuple(f.params for f in faults)


def _with(scenario: Scenario, faults: tuple[FaultSpec, ...]) -> Scenario:
    return replace(scenario, faults=faults)


@pytest.mark.parametrize("text", [ISSUE_EXPLORE, ALL_KINDS], ids=["issue", "all-kinds"])
def test_schedules_keep_to_the_spec_and_are_valid(text: str) -> None:
    scenario = scenario_of(text)
    for seed in SEEDS:
        check_schedule(scenario, schedule_for_seed(scenario, seed))


def test_every_count_and_every_kind_is_drawn() -> None:
    scenario = scenario_of(ALL_KINDS)
    schedules_ = [schedule_for_seed(scenario, seed) for seed in SEEDS]
    counts = Counter(len(faults) for faults in schedules_)
    kinds = Counter(f.kind for faults in schedules_ for f in faults)
    assert set(counts) == {1, 2, 3, 4, 5}
    assert set(kinds) == set(FaultKind)


def test_parameter_ranges_are_drawn_from() -> None:
    scenario = scenario_of(ALL_KINDS)
    faults = [f for seed in SEEDS for f in schedule_for_seed(scenario, seed)]
    for fault in faults:
        params = fault.params
        if isinstance(params, PauseFault):
            assert fault.for_s is not None
            assert 5.0 <= fault.for_s <= 6.0
        if isinstance(params, ClockFault):
            if params.offset_s is not None:
                assert -2.0 <= params.offset_s <= 2.0
            if params.drift_ppm is not None:
                assert 10 <= params.drift_ppm <= 20
            if params.jump_s is not None:
                assert params.jump_s == pytest.approx(2.0, abs=1.0)
        if isinstance(params, LossFault):
            assert params.rate == 0.5
        if isinstance(params, LatencyFault):
            assert 0.01 <= params.median_s <= 0.02
            assert 0.03 <= params.p99_s <= 0.04
    assert {type(f.params) for f in faults} >= {PauseFault, ClockFault, LossFault, LatencyFault}


def test_the_default_length_of_a_fault_is_5_to_90_seconds() -> None:
    scenario = scenario_of(ISSUE_EXPLORE)
    lengths = [f.for_s for seed in SEEDS for f in schedule_for_seed(scenario, seed) if f.for_s]
    assert min(lengths) >= 5.0
    assert max(lengths) <= 90.0


def test_the_same_seed_draws_the_same_schedule() -> None:
    scenario = scenario_of(ISSUE_EXPLORE)
    assert schedule_for_seed(scenario, 7) == schedule_for_seed(scenario, 7)
    assert len({schedule_for_seed(scenario, seed) for seed in range(20)}) == 20
    spec = scenario.explore
    assert spec is not None
    first = random_schedule(spec, scenario, random.Random(5))
    assert first == random_schedule(spec, scenario, random.Random(5))
    check_schedule(scenario, first)


def test_a_scenario_without_explore_has_no_space() -> None:
    scenario = parse_scenario("name: x\nduration: 1m\n")
    with pytest.raises(ExploreError, match="no 'explore:' section"):
        Space.of(scenario)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("{pause_len: [1s, 2s]}", "unknown parameter; known: for, clock_offset"),
        ("{loss_rate: [0.5, 2]}", "a loss rate is at most 1"),
        ("{for: [0s, 10s]}", "at least 0.1"),
        ("{kill_for: [-1s, 10s]}", "at least 0.1"),
    ],
)
def test_unusable_parameters_are_refused(params: str, message: str) -> None:
    text = f"name: x\nduration: 5m\nexplore: {{faults: [kill], params: {params}}}\n"
    with pytest.raises(ExploreError, match=message):
        Space.of(parse_scenario(text))


@pytest.mark.parametrize(
    ("text", "budget"),
    [
        ("500", Budget(schedules=500)),
        ("60s", Budget(seconds=60.0)),
        ("5m", Budget(seconds=300.0)),
        ("1h30m", Budget(seconds=5400.0)),
        ("1.5s", Budget(seconds=1.5)),
    ],
)
def test_budgets(text: str, budget: Budget) -> None:
    assert Budget.parse(text) == budget


@pytest.mark.parametrize("text", ["0", "-3", "soon", "5 min", "0s", ""])
def test_bad_budgets(text: str) -> None:
    with pytest.raises(ExploreError, match="--budget"):
        Budget.parse(text)


ALL = scenario_of(ALL_KINDS)


@settings(max_examples=60, deadline=None)
@given(schedules(ALL))
def test_the_hypothesis_strategy_draws_valid_schedules(faults: tuple[FaultSpec, ...]) -> None:
    check_schedule(ALL, faults)
