# The simulator's side of the notebook API: `pgha.analysis` reads, measures and plots histories and
# sweeps parameters with any runner, but runs no world; here the simulator is that runner. A run
# records through the history's own encoder and parser, so its events are exactly what
# `pgha sim run` writes to history.jsonl.
"""`simulate` a scenario in the simulator, and `sweep` its parameters over seeds, as DataFrames.

Example::

    from pgha.analysis import episodes, timeline
    from sim.analysis import simulate, sweep

    df = simulate("scenarios/primary-crash.yaml", seed=3)
    timeline(df, decisions=True)
    study = sweep("scenarios/primary-crash.yaml", grid={"ttl": [20, 30]}, seeds=range(10))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from pgha.analysis import ScenarioSource, frame_of, resolve_scenario, run_sweep
from pgha.history import Event, event_of
from pgha.scenario import Scenario
from sim.explore import check_variant as check_known_variant
from sim.explore import simulate as simulate_variant
from sim.run import run_scenario

__all__ = ["run_events", "simulate", "sweep"]


class EventRecorder:
    """A simulator recorder that keeps the events, each as a history file would give it back."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def record(self, t: float, kind: str, node: str | None = None, **fields: Any) -> None:
        self.events.append(event_of(t, kind, node, fields))


def check_variant(variant: str | None) -> None:
    """Refuse an unknown bug-zoo engine variant with a ValueError listing the valid names."""
    if variant is None:
        return
    if not isinstance(variant, str):
        raise TypeError(f"variant: expected a bug-zoo variant name, got {type(variant).__name__}")
    check_known_variant(variant)  # ExploreError (a ValueError): names the valid variants


def run_events(scenario: Scenario, *, seed: int | None, variant: str | None) -> list[Event]:
    """Run `scenario` in the simulator and return its history's events (a sweep's runner)."""
    recorder = EventRecorder()
    if variant is None:
        run_scenario(scenario, seed=seed, recorder=recorder)
    else:
        simulate_variant(scenario, seed=seed, recorder=recorder, variant=variant)
    return recorder.events


def simulate(
    scenario: ScenarioSource, *, seed: int | None = None, variant: str | None = None
) -> pd.DataFrame:
    """Run `scenario` in the simulator; its history as a frame (see `pgha.analysis.load_history`).

    The events are those `pgha sim run FILE [--seed N] [--engine-variant NAME]` writes.
    `seed`: the simulation seed (default: the scenario's own). `variant`: a bug-zoo engine
    (`pgha sim variants`) that runs on every node instead of the real engine.

    Raises:
        ScenarioError: a bad scenario file or text (file, line, field, what was expected).
        ValueError: an unknown variant (the message lists the valid ones) or a bad seed.
    """
    parsed = resolve_scenario(scenario)
    check_variant(variant)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"seed: expected an integer, got {seed!r}")
    events = run_events(parsed, seed=seed, variant=variant)
    used_seed = parsed.seed if seed is None else seed
    engine = f", variant={variant}" if variant is not None else ""
    return frame_of(events, f"simulate({parsed.source}, seed={used_seed}{engine})")


def sweep(
    scenario: ScenarioSource,
    *,
    grid: Mapping[str, Sequence[Any]] | None = None,
    sample: Mapping[str, tuple[float, float]] | None = None,
    n_samples: int = 20,
    seeds: Iterable[int] = range(20),
    variant: str | None = None,
    workers: int | None = None,
    sample_seed: int = 0,
) -> pd.DataFrame:
    """`pgha.analysis.run_sweep` with the simulator as the runner: every parameter setting of
    `scenario` (a grid, random samples or both) times every seed, one row per run, in the same
    order with one worker or many. The parameter names and the columns are described in
    `pgha.analysis._sweep`'s module documentation (and notebooks/README.md).

    Raises:
        ValueError: a bad parameter name or value, range, seed or worker count, or an unknown
            variant; all before any run starts.
    """
    check_variant(variant)
    return run_sweep(
        run_events,
        scenario,
        grid=grid,
        sample=sample,
        n_samples=n_samples,
        seeds=seeds,
        variant=variant,
        workers=workers,
        sample_seed=sample_seed,
    )
