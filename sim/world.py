# The simulated world's frame: one SimPy environment, one seed, and named random streams derived
# from it. Every random choice in the simulator draws from `world.rng(name)`, a stream of its own
# per component, so that adding a draw in one component does not shift another's: the same seed
# gives a byte-identical history (docs/design.md, "Determinism"; SimPy orders simultaneous events by
# insertion, which is deterministic too).
"""The world: SimPy environment, seeded random streams, and the history recorder."""

from __future__ import annotations

import random
from typing import Any, Protocol

import simpy


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


class World:
    """The simulation's environment, randomness and history."""

    def __init__(self, *, seed: int, recorder: Recorder | None = None) -> None:
        self.env = simpy.Environment()
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
