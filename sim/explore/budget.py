"""How much to explore: a number of schedules or a wall time (`--budget 500`, `--budget 5m`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sim.explore.space import ExploreError

_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)(ms|s|m|h))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True, slots=True)
class Budget:
    """How much to explore: a number of schedules, or wall-clock seconds."""

    schedules: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if (self.schedules is None) == (self.seconds is None):
            raise ValueError("a Budget is either a number of schedules or a time")

    @classmethod
    def parse(cls, text: str) -> Budget:
        """`500` (schedules) or a duration: `60s`, `5m`, `1h30m`.

        Raises:
            ExploreError: anything else, or zero.
        """
        text = text.strip()
        if text.isdigit() and int(text) > 0:
            return cls(schedules=int(text))
        if _DURATION.fullmatch(text):
            seconds = sum(float(n) * _UNIT_S[u] for n, u in _DURATION_PART.findall(text))
            if seconds > 0:
                return cls(seconds=seconds)
        raise ExploreError(
            f"--budget: expected a number of schedules (500) or a duration (60s, 5m), got {text!r}"
        )

    def allows(self, started: int, elapsed_s: float) -> bool:
        """Whether another schedule may start."""
        if self.schedules is not None:
            return started < self.schedules
        assert self.seconds is not None
        return elapsed_s < self.seconds

    def __str__(self) -> str:
        if self.schedules is not None:
            return f"{self.schedules} schedules"
        return f"{self.seconds:g} s"
