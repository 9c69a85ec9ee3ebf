"""`SimEnvironment.skip` lets a process pass time without a SimPy event when nothing else can
happen first. It must change nothing but the speed: pinned here against the plain path (every wait
a timeout) on a corpus of bundled scenarios and explored schedules of every fault kind (partitions
starting inside calls, pauses, clock jumps, etcd faults, operator requests, writes through HAProxy
and direct, synchronous mode), byte for byte; and its rule is tested at exact virtual times."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

import pytest

from pgha.history import HistoryWriter
from pgha.scenario import Scenario, load_scenario, parse_scenario
from sim import world as world_module
from sim.explore import schedule_for_seed
from sim.explore.trial import with_schedule
from sim.run import run_scenario
from sim.world import SimEnvironment
from tests.explore.explore_texts import ALL_KINDS, ISSUE_EXPLORE, NO_WATCHDOG, ROOT

SYNC = ISSUE_EXPLORE.replace("name: ", "config: {synchronous_mode: true}\nname: sync-", 1)


class PlainEnvironment(SimEnvironment):
    """The plain path: every wait is a SimPy timeout."""

    def skip(self, delay: float) -> bool:
        return False


class CountingEnvironment(SimEnvironment):
    """Counts the waits that were skipped."""

    skipped = 0

    def skip(self, delay: float) -> bool:
        done = super().skip(delay)
        CountingEnvironment.skipped += done
        return done


def history(scenario: Scenario, seed: int | None, env_class: type[SimEnvironment]) -> str:
    patch = pytest.MonkeyPatch()
    patch.setattr(world_module, "SimEnvironment", env_class)
    try:
        writer = HistoryWriter()
        run_scenario(scenario, seed=seed, recorder=writer)
        return writer.getvalue()
    finally:
        patch.undo()


def corpus() -> Iterator[tuple[str, Scenario, int | None]]:
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        yield path.stem, load_scenario(path), None
    for name, text in (("all-kinds", ALL_KINDS), ("issue", ISSUE_EXPLORE), ("sync", SYNC)):
        scenario = parse_scenario(text)
        for seed in range(4):
            yield (
                f"{name}-{seed}",
                with_schedule(scenario, schedule_for_seed(scenario, seed), seed),
                seed,
            )
    scenario = parse_scenario(NO_WATCHDOG)
    yield "direct-0", with_schedule(scenario, schedule_for_seed(scenario, 0), 0), 0


CORPUS = list(corpus())


@pytest.mark.pure_python  # patches sim.world.SimEnvironment
@pytest.mark.parametrize(("name", "scenario", "seed"), CORPUS, ids=[c[0] for c in CORPUS])
def test_skipping_gives_the_plain_path_history_byte_for_byte(
    name: str, scenario: Scenario, seed: int | None
) -> None:
    CountingEnvironment.skipped = 0
    fast = history(scenario, seed, CountingEnvironment)
    assert CountingEnvironment.skipped > 0  # the shortcut was taken
    assert fast == history(scenario, seed, PlainEnvironment)


def sleeper(env: SimEnvironment, delay: float, seen: list[tuple[str, float, bool]]) -> Any:
    def steps() -> Generator[Any, Any, None]:
        skipped = env.skip(delay)
        if not skipped:
            yield env.timeout(delay)
        seen.append(("sleeper", env.now, skipped))

    return env.process(steps())


def at(env: SimEnvironment, t: float, seen: list[tuple[str, float, bool]]) -> None:
    env.timeout(t).callbacks.append(lambda _: seen.append(("timer", env.now, False)))


@pytest.mark.parametrize(
    ("timer_s", "skips"),
    [(None, True), (2.0, True), (1.5, False), (1.0, False), (0.5, False)],
)
def test_a_wait_is_skipped_only_when_nothing_is_due_until_it_ends(
    timer_s: float | None, skips: bool
) -> None:
    env = SimEnvironment()
    seen: list[tuple[str, float, bool]] = []
    env.timeout(0.5).callbacks.append(lambda _: sleeper(env, 1.0, seen))
    if timer_s is not None:
        at(env, timer_s, seen)
    env.run(until=10)
    sleeper_entry = next(entry for entry in seen if entry[0] == "sleeper")
    assert sleeper_entry == ("sleeper", 1.5, skips)
    if timer_s is not None:  # the order is the plain path's: a timer due first runs first
        order = [who for who, _, _ in seen]
        assert order == (["timer", "sleeper"] if timer_s <= 1.5 else ["sleeper", "timer"])


def test_a_wait_never_runs_past_run_until() -> None:
    env = SimEnvironment()
    seen: list[tuple[str, float, bool]] = []
    sleeper(env, 5.0, seen)
    env.run(until=3)
    assert env.now == 3
    assert seen == []
    env.run(until=6)
    assert seen == [("sleeper", 5.0, False)]


def test_outside_run_and_beside_another_waiter_nothing_is_skipped() -> None:
    env = SimEnvironment()
    assert env.skip(1.0) is False
    assert env.now == 0
    seen: list[tuple[str, float, bool]] = []
    alone, shared = env.timeout(1.0), env.timeout(2.0)
    alone.callbacks.append(lambda _: seen.append(("alone", env.now, env.skip(0.1))))
    # two callbacks on one event: the second must still run at t = 2
    shared.callbacks.append(lambda _: seen.append(("first", env.now, env.skip(0.1))))
    shared.callbacks.append(lambda _: seen.append(("second", env.now, False)))
    env.run()
    assert seen == [("alone", 1.0, True), ("first", 2.0, False), ("second", 2.0, False)]


def test_a_negative_wait_is_left_to_simpy_to_refuse() -> None:
    env = SimEnvironment()
    outcome: list[bool] = []

    def steps() -> Generator[Any, Any, None]:
        outcome.append(env.skip(-1.0))
        yield env.timeout(0)

    env.process(steps())
    env.run()
    assert outcome == [False]
