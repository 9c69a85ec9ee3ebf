# Running a scenario in the simulator from a notebook. Like the CLI, this is a composition root:
# it imports `sim` lazily, only when a run is asked for, so reading and plotting histories needs
# neither SimPy nor the simulator. A run records through the history's own encoder and parser, so
# its events are exactly what `pgha sim run` writes to history.jsonl.
"""`simulate` a scenario; `resolve_scenario` and `check_variant` for the sweep."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from pgha.analysis._frames import frame_of
from pgha.history import Event, encode_event, parse_event
from pgha.scenario import Scenario, load_scenario, parse_scenario

ScenarioSource = str | os.PathLike[str] | Scenario
"""A scenario: a path to its YAML file, the YAML text itself, or a parsed Scenario."""

_YAML_SUFFIXES = (".yaml", ".yml")


class EventRecorder:
    """A simulator recorder that keeps the events, each as a history file would give it back."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def record(self, t: float, kind: str, node: str | None = None, **fields: Any) -> None:
        self.events.append(parse_event(encode_event(t, kind, node, fields)))


def resolve_scenario(scenario: ScenarioSource) -> Scenario:
    """A Scenario from a path (str or Path), YAML text, or a Scenario.

    A str naming an existing file, or ending in .yaml / .yml, is a path; any other str is YAML.

    Raises:
        ScenarioError: the file cannot be read, or the first mistake in it (file, line, field).
        TypeError: `scenario` is none of these.
    """
    if isinstance(scenario, Scenario):
        return scenario
    if isinstance(scenario, os.PathLike):
        return load_scenario(scenario)
    if isinstance(scenario, str):
        looks_like_path = "\n" not in scenario and (
            scenario.strip().endswith(_YAML_SUFFIXES) or Path(scenario).is_file()
        )
        if looks_like_path:
            return load_scenario(scenario)
        return parse_scenario(scenario, "<scenario text>")
    raise TypeError(
        "scenario: expected a path to a scenario YAML file, YAML text or a pgha.scenario.Scenario, "
        f"got {type(scenario).__name__}"
    )


def check_variant(variant: str | None) -> None:
    """Refuse an unknown bug-zoo engine variant with a ValueError listing the valid names."""
    if variant is None:
        return
    if not isinstance(variant, str):
        raise TypeError(f"variant: expected a bug-zoo variant name, got {type(variant).__name__}")
    from sim.explore import check_variant as check

    check(variant)  # ExploreError (a ValueError): names the valid variants


def run_events(scenario: Scenario, *, seed: int | None, variant: str | None) -> list[Event]:
    """Run `scenario` in the simulator and return its history's events."""
    recorder = EventRecorder()
    if variant is None:
        from sim.run import run_scenario

        run_scenario(scenario, seed=seed, recorder=recorder)
    else:
        from sim.explore import simulate as simulate_variant

        simulate_variant(scenario, seed=seed, recorder=recorder, variant=variant)
    return recorder.events


def simulate(
    scenario: ScenarioSource, *, seed: int | None = None, variant: str | None = None
) -> pd.DataFrame:
    """Run `scenario` in the simulator; its history as a frame (see `load_history`).

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
