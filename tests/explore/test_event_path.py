"""The explorer's checkers take events made in memory (`event_of`) instead of encoding each event
to a history line and parsing it back. That shortcut is pinned here against the plain path on a
corpus: every bundled scenario, and explored schedules of every fault kind (partitions starting
inside calls, pauses, clock jumps, etcd faults, operator requests, writes through HAProxy)."""

from __future__ import annotations

from typing import Any

import pytest

from pgha.checks import FactsCollector, run_checks
from pgha.history import encode_event, event_of, parse_event
from pgha.scenario import load_scenario, parse_scenario
from sim.explore import schedule_for_seed
from sim.explore.engines import simulate
from sim.explore.trial import outcome_of, run_schedule, with_schedule
from sim.run import run_scenario
from tests.explore.explore_texts import ALL_KINDS, ISSUE_EXPLORE, ROOT


class BothPaths:
    """A recorder that makes every event both ways and keeps any difference."""

    def __init__(self) -> None:
        self.count = 0
        self.differences: list[str] = []
        self.collector = FactsCollector()  # fed by the plain path

    def record(self, t: float, kind: str, node: str | None = None, **fields: Any) -> None:
        self.count += 1
        made = event_of(t, kind, node, fields)
        parsed = parse_event(encode_event(t, kind, node, fields))
        self.collector.feed(parsed)
        same = made == parsed and repr(made) == repr(parsed)
        if not same and len(self.differences) < 5:
            self.differences.append(f"{made!r} != {parsed!r}")


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.yaml")), ids=lambda p: p.stem)
def test_bundled_scenarios_give_the_same_events_both_ways(path: Any) -> None:
    recorder = BothPaths()
    run_scenario(load_scenario(path), recorder=recorder)
    assert recorder.count > 100
    assert recorder.differences == []


@pytest.mark.parametrize("text", [ALL_KINDS, ISSUE_EXPLORE], ids=["all-kinds", "issue"])
@pytest.mark.parametrize("seed", range(6))
def test_explored_schedules_give_the_same_events_both_ways(text: str, seed: int) -> None:
    scenario = parse_scenario(text)
    faults = schedule_for_seed(scenario, seed)
    recorder = BothPaths()
    simulate(with_schedule(scenario, faults, seed), seed=seed, recorder=recorder)
    assert recorder.differences == []
    plain = outcome_of(run_checks(recorder.collector.finish(), scenario.checks), 0.0)
    assert run_schedule(scenario, faults, seed) == plain  # the explorer's verdict, via event_of
