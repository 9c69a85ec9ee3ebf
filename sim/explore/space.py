# The space of fault schedules one scenario's `explore:` section allows (issue 4), and the one
# random primitive schedules are drawn with.
#
# A schedule is drawn (sim/explore/draws.py) against one primitive, `Draw.integer`, so the same
# code draws from a seeded `random.Random` (the seed sweep) and from Hypothesis
# (sim/explore/hypothesis_search.py, whose shrinker then works on the draws). Choices are listed
# simplest first (the primary before other targets, the window's start before later times), which
# is where Hypothesis shrinks to. Times are multiples of 0.1 s, so schedules read well and survive
# the YAML round trip exactly.
"""The space of fault schedules: parameter ranges, the checked `explore:` section, `Draw`."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol, TypeVar

from pgha.scenario import (
    PER_KIND_FOR,
    EtcdPlacement,
    ExploreSpec,
    FaultKind,
    ParamRange,
    Scenario,
)

_T = TypeVar("_T")

TIME_STEP_S = 0.1  # fault times and lengths are multiples of this
DECIMALS = 6  # drawn values are rounded to this many decimals (no 0.30000000000000004)


def _range(low: float, high: float) -> ParamRange:
    return ParamRange(low=low, high=high)


# Parameter ranges the explorer draws from unless the scenario's `explore.params` says otherwise.
# `<kind>_for` (e.g. `pause_for`) overrides `for` for one kind.
PARAM_DEFAULTS: Mapping[str, ParamRange] = MappingProxyType(
    {
        "for": _range(5.0, 90.0),  # seconds an undoable fault lasts
        "clock_offset": _range(-60.0, 60.0),  # seconds
        "clock_drift_ppm": _range(-500.0, 500.0),
        "clock_jump": _range(-60.0, 60.0),  # seconds (a jump of 0 becomes 0.1 s)
        "loss_rate": _range(0.1, 1.0),  # fraction of messages dropped
        "latency_median": _range(0.01, 0.5),  # seconds
        "latency_p99": _range(0.01, 2.0),  # seconds (at least the median)
    }
)
KNOWN_PARAMS = (*PARAM_DEFAULTS, *PER_KIND_FOR)  # `<kind>_for`: from the fault-kind registry
STEPS: Mapping[str, float] = MappingProxyType(
    {"clock_drift_ppm": 1.0, "loss_rate": 0.01, "latency_median": 0.001, "latency_p99": 0.001}
)
# Lowest value a range may reach: lengths and latencies are > 0, loss rates in (0, 1].
MINIMA: Mapping[str, float] = MappingProxyType(
    {"for": TIME_STEP_S, "loss_rate": 0.01, "latency_median": 0.0, "latency_p99": 0.0}
)


class ExploreError(ValueError):
    """Bad input to the explorer: a scenario it cannot explore, an unknown variant or parameter."""


# ---------------------------------------------------------------- drawing


class Draw(Protocol):
    """The one random primitive schedules are drawn with."""

    def integer(self, low: int, high: int) -> int:
        """An integer in [low, high]; Hypothesis shrinks it towards `low`."""
        ...


class RandomDraw:
    """Draws from a seeded `random.Random`."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def integer(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)


def choose(draw: Draw, options: Sequence[_T]) -> _T:
    """One of `options` (the first is the simplest)."""
    return options[draw.integer(0, len(options) - 1)]


def stepped(draw: Draw, bounds: ParamRange, step: float) -> float:
    """A multiple of `step` above `bounds.low`, within the bounds."""
    count = max(0, math.floor((bounds.high - bounds.low) / step + 1e-9))
    value = round(bounds.low + draw.integer(0, count) * step, DECIMALS)
    return min(value, bounds.high)


# ---------------------------------------------------------------- the space of one scenario


@dataclass(frozen=True, slots=True, kw_only=True)
class Space:
    """What one scenario's `explore:` section allows, with the targets its cluster offers."""

    duration_s: float
    kinds: tuple[FaultKind, ...]
    max_faults: int
    window_s: tuple[float, float]
    params: Mapping[str, ParamRange]
    nodes: tuple[str, ...]
    hosts: tuple[str, ...]
    etcd: tuple[str, ...]

    @classmethod
    def of(cls, scenario: Scenario, spec: ExploreSpec | None = None) -> Space:
        """The space of `spec` (default: the scenario's own `explore:`), checked.

        Raises:
            ExploreError: no explore section, an unknown parameter or an unusable range.
        """
        spec = spec if spec is not None else scenario.explore
        if spec is None:
            raise ExploreError(f"{scenario.source}: no 'explore:' section to draw schedules from")
        check_params(spec.params)
        own_hosts = scenario.etcd_placement is EtcdPlacement.OWN_HOSTS
        return cls(
            duration_s=scenario.duration_s,
            kinds=spec.faults,
            max_faults=spec.max_faults,
            window_s=spec.window_s,
            params=MappingProxyType({**PARAM_DEFAULTS, **spec.params}),
            nodes=scenario.node_names,
            hosts=scenario.node_names + (scenario.etcd if own_hosts else ()),
            etcd=scenario.etcd,
        )

    def param(self, name: str) -> ParamRange:
        return self.params[name]


def check_params(params: Mapping[str, ParamRange]) -> None:
    """Refuse parameter names the explorer does not know and ranges it cannot use."""
    for name, bounds in params.items():
        if name not in KNOWN_PARAMS:
            raise ExploreError(
                f"explore.params.{name}: unknown parameter; known: {', '.join(KNOWN_PARAMS)}"
            )
        minimum = MINIMA.get("for" if name.endswith("_for") else name)
        if minimum is not None and bounds.low < minimum:
            raise ExploreError(f"explore.params.{name}: the low end must be at least {minimum:g}")
        if name == "loss_rate" and bounds.high > 1:
            raise ExploreError(f"explore.params.{name}: a loss rate is at most 1")
