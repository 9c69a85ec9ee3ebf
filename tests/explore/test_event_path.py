"""The explorer's checkers take events made in memory (`event_of`) instead of encoding each event
to a history line and parsing it back, and the clients' writes through the collector's typed
entries without making an event at all. Both shortcuts are pinned here against the plain path on
a corpus: every bundled scenario, and explored schedules of every fault kind (partitions starting
inside calls, pauses, clock jumps, etcd faults, operator requests, writes through HAProxy)."""

from __future__ import annotations

from dataclasses import fields as dataclass_fields
from typing import Any

import pytest

from pgha.checks import FactsCollector, HistoryIntegrityError, RunFacts, run_checks
from pgha.history import encode_event, event_of, parse_event
from pgha.scenario import load_scenario, parse_scenario
from sim.explore import schedule_for_seed
from sim.explore.engines import simulate
from sim.explore.trial import CheckingRecorder, outcome_of, run_schedule, with_schedule
from sim.run import run_scenario
from tests.explore.explore_texts import ALL_KINDS, ISSUE_EXPLORE, ROOT


class BothPaths:
    """A recorder that makes every event both ways and keeps any difference."""

    def __init__(self) -> None:
        self.count = 0
        self.differences: list[str] = []
        self.collector = FactsCollector()  # fed by the plain path
        self.explorer = CheckingRecorder()  # the explorer's own recorder, typed entries and all
        self.writes = 0  # the clients' write events

    def record(self, t: float, kind: str, node: str | None = None, **fields: Any) -> None:
        self.count += 1
        self.writes += fields.get("op") == "write"
        self.explorer.record(t, kind, node, **fields)
        made = event_of(t, kind, node, fields)
        parsed = parse_event(encode_event(t, kind, node, fields))
        self.collector.feed(parsed)
        same = made == parsed and repr(made) == repr(parsed)
        if not same and len(self.differences) < 5:
            self.differences.append(f"{made!r} != {parsed!r}")


def same_facts(one: FactsCollector, other: FactsCollector) -> bool:
    """Whether two collectors gathered equal facts (the ack log compared column by column)."""

    def columns(facts: RunFacts) -> tuple[object, ...]:
        acks = facts.acks
        rest = {f.name: getattr(facts, f.name) for f in dataclass_fields(facts) if f.name != "acks"}
        return (acks.ids, acks.t_invoke, acks.t_ok, acks.node_ix, acks.timelines, acks.names, rest)

    return columns(one.finish()) == columns(other.finish())


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.yaml")), ids=lambda p: p.stem)
def test_bundled_scenarios_give_the_same_events_both_ways(path: Any) -> None:
    recorder = BothPaths()
    run_scenario(load_scenario(path), recorder=recorder)
    assert recorder.count > 100
    assert recorder.differences == []
    assert same_facts(recorder.explorer.collector, recorder.collector)
    assert recorder.explorer.typed == recorder.writes


@pytest.mark.parametrize("text", [ALL_KINDS, ISSUE_EXPLORE], ids=["all-kinds", "issue"])
@pytest.mark.parametrize("seed", range(6))
def test_explored_schedules_give_the_same_events_both_ways(text: str, seed: int) -> None:
    scenario = parse_scenario(text)
    faults = schedule_for_seed(scenario, seed)
    recorder = BothPaths()
    simulate(with_schedule(scenario, faults, seed), seed=seed, recorder=recorder)
    assert recorder.differences == []
    assert same_facts(recorder.explorer.collector, recorder.collector)
    assert recorder.explorer.typed == recorder.writes  # every write took a typed entry
    plain = outcome_of(run_checks(recorder.collector.finish(), scenario.checks), 0.0)
    assert run_schedule(scenario, faults, seed) == plain  # the explorer's verdict, via event_of


WRITES = [
    ("invoke", {"op": "write", "id": 1, "target": "haproxy"}),
    ("invoke", {"op": "write", "id": 1, "target": "haproxy"}),  # invoked again
    ("ok", {"op": "write", "id": 2, "served_by": "n1", "timeline": 1, "lsn": 10}),  # no invoke
    ("ok", {"op": "write", "id": 1, "served_by": "n1", "timeline": None, "lsn": None}),
    ("fail", {"op": "write", "id": 1, "error": "refused"}),  # a second outcome
    ("info", {"op": "write", "id": 3, "error": "timeout", "served_by": "n2"}),  # no invoke
]


@pytest.mark.parametrize("upto", range(1, len(WRITES) + 1))
def test_typed_write_entries_refuse_what_feeding_the_event_refuses(upto: int) -> None:
    def outcome(record: Any, collector: FactsCollector) -> object:
        try:
            for k, (kind, fields) in enumerate(WRITES[:upto]):
                record(1.0 + k / 3, kind, "c1", **fields)
            return collector.finish().writes
        except HistoryIntegrityError as error:
            return str(error)

    plain = FactsCollector(partial=True)
    explorer = CheckingRecorder()
    explorer.collector.partial = True
    fed = outcome(lambda t, k, n, **f: plain.feed(event_of(t, k, n, f)), plain)
    assert outcome(explorer.record, explorer.collector) == fed
