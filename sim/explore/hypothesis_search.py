# The Hypothesis half of exploration (issue 4). Schedules are drawn by the same code as the seed
# sweep's (`sim.explore.draws.draw_schedule`), here through `HypothesisDraw`, so every choice is a
# Hypothesis integer and its shrinker can make a failing schedule smaller on its own: fewer faults
# (the count shrinks towards 1), earlier times (towards the window's start), simpler targets (the
# primary first). `search` runs that as a property ("this schedule breaks no check") within a
# budget and returns the minimal failing schedule found. `cluster_machine` is the stateful form: a
# RuleBasedStateMachine whose rules inject a fault now or let time pass in one running simulation,
# with the split-brain check as its invariant over the history so far.
"""Hypothesis strategies, search with shrinking, and a state machine over a running simulation."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pgha.checks import run_checks
from pgha.history import Event, encode_event, parse_event
from pgha.scenario import ChecksSpec, ExploreSpec, FaultKind, FaultSpec, Scenario
from sim.explore.budget import Budget
from sim.explore.draws import draw_fault, draw_schedule
from sim.explore.engines import build_simulation, check_variant
from sim.explore.progress import Progress
from sim.explore.space import Space
from sim.explore.trial import Verdict, run_schedule
from sim.run import Simulation, _record_start

SEED_RANGE = (0, 2**16 - 1)  # simulation seeds the search draws (shrinking towards 0)
SHRINK_RUNS = 150  # at most this many runs after the first failure, to shrink it


class HypothesisDraw:
    """`sim.explore.space.Draw` through Hypothesis: every choice is a shrinkable integer."""

    def __init__(self, draw: Callable[[st.SearchStrategy[int]], int]) -> None:
        self._draw = draw

    def integer(self, low: int, high: int) -> int:
        return self._draw(st.integers(low, high))


def schedules(
    scenario: Scenario, spec: ExploreSpec | None = None
) -> st.SearchStrategy[tuple[FaultSpec, ...]]:
    """Fault schedules from `spec` (default: the scenario's `explore:`) for its cluster."""
    space = Space.of(scenario, spec)

    @st.composite
    def strategy(draw: st.DrawFn) -> tuple[FaultSpec, ...]:
        return draw_schedule(space, HypothesisDraw(draw))

    return strategy()


# ---------------------------------------------------------------- search


@dataclass(frozen=True, slots=True)
class Found:
    """A failing schedule: the simulation seed, the faults, the verdict."""

    seed: int
    faults: tuple[FaultSpec, ...]
    outcome: Verdict


@dataclass(frozen=True, slots=True)
class SearchResult:
    """What a Hypothesis search ran and the smallest failure it found (None: none found)."""

    found: Found | None
    runs: int
    wall_s: float = field(default=0.0, compare=False)


class _Stop(BaseException):
    # A BaseException passes through Hypothesis untouched: the budget is spent.
    pass


class _Broke(Exception):
    # The property's failure, for Hypothesis to shrink.
    pass


@dataclass
class _State:
    budget: Budget
    shrink_runs: int
    started: float = field(default_factory=time.perf_counter)
    runs: int = 0
    runs_at_first_failure: int | None = None
    found: Found | None = None

    def check_budget(self) -> None:
        if self.runs_at_first_failure is None:
            if not self.budget.allows(self.runs, time.perf_counter() - self.started):
                raise _Stop
        elif self.runs - self.runs_at_first_failure >= self.shrink_runs:
            raise _Stop

    def ran(self, seed: int, faults: tuple[FaultSpec, ...], outcome: Verdict) -> None:
        self.runs += 1
        if outcome.ok:
            return
        # Hypothesis only ever moves to smaller failing examples: the last one is the best so far.
        self.found = Found(seed, faults, outcome)
        if self.runs_at_first_failure is None:
            self.runs_at_first_failure = self.runs


def search(
    scenario: Scenario,
    budget: Budget,
    *,
    seed: int = 0,
    variant: str | None = None,
    shrink_runs: int = SHRINK_RUNS,
    progress: Progress | None = None,
) -> SearchResult:
    """Search schedules (and simulation seeds) with Hypothesis for one that breaks a check, and
    shrink it. The budget counts schedules before the first failure; shrinking then gets up to
    `shrink_runs` more runs. Deterministic for a given `seed` and count budget.

    Raises:
        ExploreError: nothing to explore, or an unknown variant.
    """
    strategy = schedules(scenario)
    check_variant(variant)
    state = _State(budget, shrink_runs)

    def holds(sim_seed: int, faults: tuple[FaultSpec, ...]) -> None:
        state.check_budget()
        outcome = run_schedule(scenario, faults, sim_seed, variant=variant)
        state.ran(sim_seed, faults, outcome)
        if progress is not None:
            progress.update(state.runs, int(state.found is not None))
        if not outcome.ok:
            raise _Broke(", ".join(outcome.violated))

    test = given(st.integers(*SEED_RANGE), strategy)(holds)
    test = _settings(budget)(test)
    with contextlib.suppress(_Stop, _Broke):
        hypothesis_seed(seed)(test)()
    if progress is not None:
        progress.close()
    return SearchResult(state.found, state.runs, time.perf_counter() - state.started)


def _settings(budget: Budget) -> settings:
    examples = budget.schedules if budget.schedules is not None else 10**9
    return settings(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=False,
        print_blob=False,
        report_multiple_bugs=False,
        verbosity=Verbosity.quiet,
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )


# ---------------------------------------------------------------- stateful


def start_simulation(
    scenario: Scenario, *, seed: int | None, recorder: Any, variant: str | None = None
) -> Simulation:
    """Build `scenario` without its faults and start it as `sim.run.run` does, at time 0."""
    sim = build_simulation(scenario, seed=seed, recorder=recorder, variant=variant)
    _record_start(sim)
    names = scenario.node_names
    for name in names:
        sim.nodes[name].pg.announce()
    for name in names:
        sim.nodes[name].start_agent()
    if sim.haproxy is not None:
        sim.haproxy.start()
    if sim.workload is not None:
        sim.workload.start(scenario.duration_s)
    return sim


class EventList:
    """A recorder keeping the events as a history file would give them back."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def record(self, t: float, kind: str, node: str | None = None, **fields: Any) -> None:
        self.events.append(parse_event(encode_event(t, kind, node, fields)))


SPLIT_BRAIN_ONLY = ChecksSpec(no_split_brain=True, no_lost_acknowledged_writes=False)


def cluster_machine(
    scenario: Scenario, *, seed: int | None = None, variant: str | None = None
) -> type[RuleBasedStateMachine]:
    """A RuleBasedStateMachine over one running simulation of `scenario`: rules inject a fault of
    an allowed kind now, or let time pass; the invariant is no split brain in the history so far.
    Run it with `hypothesis.stateful.run_state_machine_as_test`."""
    space = Space.of(scenario)
    check_variant(variant)

    class ClusterMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.history = EventList()
            self.sim = start_simulation(scenario, seed=seed, recorder=self.history, variant=variant)
            self.faults: list[FaultSpec] = []

        def running(self) -> bool:
            return self.sim.world.now < scenario.duration_s

        @precondition(running)
        @rule(kind=st.sampled_from(space.kinds), data=st.data())
        def inject(self, kind: FaultKind, data: st.DataObject) -> None:
            fault = draw_fault(space, HypothesisDraw(data.draw), kind, at_s=self.sim.world.now)
            self.faults.append(fault)
            assert self.sim.faults is not None
            self.sim.faults.schedule((fault,))

        @rule(seconds=st.integers(1, 120))
        def advance(self, seconds: int) -> None:
            if self.running():  # at the end of the run there is nothing left to do
                self.sim.world.env.run(until=min(self.sim.world.now + seconds, scenario.duration_s))

        @invariant()
        def no_split_brain(self) -> None:
            report = run_checks(self.history.events, SPLIT_BRAIN_ONLY, partial=True)
            assert report.ok, f"split brain after {self.faults}"

    ClusterMachine.__name__ = ClusterMachine.__qualname__ = f"ClusterMachine[{scenario.name}]"
    return ClusterMachine
