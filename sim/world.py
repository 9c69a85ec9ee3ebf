# The simulated world's frame: one SimPy environment, one seed, and named random streams derived
# from it. Every random choice in the simulator draws from `world.rng(name)`, a stream of its own
# per component, so that adding a draw in one component does not shift another's: the same seed
# gives a byte-identical history (docs/design.md, "Determinism"; SimPy orders simultaneous events by
# insertion, which is deterministic too).
"""The world: SimPy environment, seeded random streams, and the history recorder."""

from __future__ import annotations

import random
from heapq import heappop
from typing import Any, Protocol

import simpy
from simpy.core import EmptySchedule, StopSimulation
from simpy.events import EventPriority


class Recorder(Protocol):
    """Where history events go (pgha.history.HistoryWriter in runs, a list in tests)."""

    def record(self, t: float, kind: str, node: str | None = None, **fields: Any) -> None: ...


class ListRecorder:
    """Keeps events in memory as dicts (tests, small runs)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def record(self, t: float, kind: str, node: str | None = None, **fields: Any) -> None:
        event: dict[str, Any] = {"t": t, "kind": kind, **fields}
        if node is not None:
            event["node"] = node
        self.events.append(event)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == kind]


class SimEnvironment(simpy.Environment):
    """SimPy's environment, where a process may let time pass without an event (`skip`).

    A process that would `yield env.timeout(delay)` asks `skip(delay)` first: when nothing else
    can happen before the wait ends, the clock moves on at once and the process goes on in the
    same step. This is exact, not an approximation: with no event due at or before the wait's end
    and no other waiter on the event being processed, SimPy's next step would have been that
    timeout, the same process resuming at the same float time with the same world; and events
    scheduled afterwards keep their relative order (only the skipped timeout's id goes unused).
    Skipping happens only inside `run()`, where no code outside the processes can schedule
    anything in between (tests/sim/test_skip.py pins skipping against the plain path).
    """

    def __init__(self, initial_time: float = 0) -> None:
        super().__init__(initial_time)
        self._running = False  # inside run()
        self._may_skip = False  # inside run(), and the event being processed has one callback

    def skip(self, delay: float) -> bool:
        """Pass `delay` seconds at once if no event is due before they end; whether it did (if
        not, the caller yields `self.timeout(delay)`)."""
        if not self._may_skip or delay < 0:
            return False
        at = self._now + delay
        queue = self._queue
        if queue and queue[0][0] <= at:
            return False
        self._now = at
        return True

    def run(self, until: Any = None) -> Any:
        self._running = True
        try:
            return super().run(until)
        finally:
            self._running = self._may_skip = False

    def step(self) -> None:
        # simpy.Environment.step, which also says whether this event's one callback may skip.
        try:
            self._now, _, _, event = heappop(self._queue)
        except IndexError:
            raise EmptySchedule from None
        callbacks, event.callbacks = event.callbacks, None  # type: ignore[assignment]
        self._may_skip = self._running and len(callbacks) == 1
        try:
            for callback in callbacks:
                callback(event)
        except StopSimulation:
            event.callbacks = callbacks[callbacks.index(callback) + 1 :]
            self.schedule(event, EventPriority(-1))
            raise
        finally:
            self._may_skip = False
        if not event._ok and not hasattr(event, "_defused"):
            exc = type(event._value)(*event._value.args)
            exc.__cause__ = event._value
            raise exc


class World:
    """The simulation's environment, randomness and history."""

    def __init__(self, *, seed: int, recorder: Recorder | None = None) -> None:
        self.env = SimEnvironment()
        self.seed = seed
        self.recorder: Recorder = recorder if recorder is not None else ListRecorder()
        self._streams: dict[str, random.Random] = {}

    @property
    def now(self) -> float:
        return float(self.env.now)

    def rng(self, name: str) -> random.Random:
        """The random stream named `name` (string seeds hash the same in every process)."""
        stream = self._streams.get(name)
        if stream is None:
            stream = self._streams[name] = random.Random(f"{self.seed}/{name}")
        return stream

    def record(self, kind: str, node: str | None = None, **fields: Any) -> None:
        self.recorder.record(float(self.env.now), kind, node, **fields)
