"""Helpers for the simulator's component tests: timed calls, probes at given times, tiny runs.

Every network here has a fixed latency (p99 == median == LAT), so every one-way delay is exactly
LAT and every time asserted by the tests is exact (compared with `close`, which only absorbs float
rounding).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import pytest
import simpy

from pgha.scenario import parse_scenario
from sim.net import Latency, Network
from sim.run import Simulation, build, run
from sim.world import ListRecorder, World

LAT = 0.001
FIXED = Latency(LAT, LAT)


def close(value: float | None, expected: float) -> bool:
    """Equal up to float rounding (virtual times are sums of fixed delays)."""
    return value is not None and value == pytest.approx(expected, abs=1e-9)


@dataclass
class Outcome:
    """How one operation ended: its value or the exception it raised, and when."""

    value: Any = None
    error: BaseException | None = None
    t: float | None = None

    @property
    def done(self) -> bool:
        return self.t is not None


def attempt(env: simpy.Environment, steps: Generator[Any, Any, Any], at: float = 0.0) -> Outcome:
    """Run `steps` as a process starting at time `at`; the Outcome fills in when it ends."""
    outcome = Outcome()

    def proc() -> Generator[Any, Any, None]:
        if at > env.now:
            yield env.timeout(at - env.now)
        try:
            outcome.value = yield from steps
        except Exception as error:  # the outcome of the call under test, asserted by the test
            outcome.error = error
        outcome.t = float(env.now)

    env.process(proc())
    return outcome


def later(env: simpy.Environment, t: float, action: Callable[[], Any]) -> None:
    """Call `action()` at virtual time `t` (after what is already scheduled for `t`)."""

    def proc() -> Generator[Any, Any, None]:
        yield env.timeout(t - env.now)
        action()

    env.process(proc())


def probe(env: simpy.Environment, times: list[float], look: Callable[[], Any]) -> dict[float, Any]:
    """Record `look()` at each of `times`; the dict fills in as the run passes them."""
    seen: dict[float, Any] = {}

    def at(t: float) -> Callable[[], None]:
        return lambda: seen.__setitem__(t, look())

    for t in times:
        later(env, t, at(t))
    return seen


class Net:
    """A world with a fixed-latency network of the given hosts."""

    def __init__(self, *hosts: str, seed: int = 1) -> None:
        self.recorder = ListRecorder()
        self.world = World(seed=seed, recorder=self.recorder)
        self.env = self.world.env
        self.net = Network(self.world, FIXED)
        for host in hosts:
            self.net.add_host(host)

    def both_ways(self, side: list[str], other: list[str]) -> list[tuple[str, str]]:
        return [pair for a in side for b in other for pair in ((a, b), (b, a))]


SCENARIO = """
name: component
seed: {seed}
duration: {duration}s
cluster: {{nodes: 3, etcd: 3{placement}}}
config: {{ttl: 10, loop_wait: 2, retry_timeout: 3, watchdog: {{mode: off}}}}
network: {{latency: {{median: 1ms, p99: 1ms}}}}
faults: {faults}
"""


def scenario_sim(
    faults: str = "[]", *, duration: float = 60, seed: int = 1, on_nodes: bool = False
) -> Simulation:
    """A built (not yet run) 3-node, 3-member cluster: ttl 10, loop_wait 2, no watchdog."""
    placement = ", etcd_placement: on_nodes" if on_nodes else ""
    text = SCENARIO.format(seed=seed, duration=duration, faults=faults, placement=placement)
    return build(parse_scenario(text))


def finish(sim: Simulation, settle_s: float = 5.0) -> list[dict[str, Any]]:
    """Run the built scenario to its end; return its history."""
    run(sim, settle_s=settle_s)
    recorder = sim.world.recorder
    assert isinstance(recorder, ListRecorder)
    return recorder.events


def fault_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == "fault"]


def primary_of(sim: Simulation) -> str | None:
    """The node PostgreSQL really runs as primary on (None if none)."""
    primaries = [n for n, node in sorted(sim.nodes.items()) if node.pg.state().is_primary]
    assert len(primaries) <= 1, primaries
    return primaries[0] if primaries else None
