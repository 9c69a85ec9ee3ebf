# What a notebook may pass where a scenario is expected: a path, YAML text or a parsed value, read
# here into one Scenario. World-free: running it is the simulator's (sim/analysis.py) or the
# caller's own runner's business.
"""`ScenarioSource` and `resolve_scenario`: a scenario from whatever a notebook holds."""

from __future__ import annotations

import os
from pathlib import Path

from pgha.scenario import Scenario, load_scenario, parse_scenario

ScenarioSource = str | os.PathLike[str] | Scenario
"""A scenario: a path to its YAML file, the YAML text itself, or a parsed Scenario."""

_YAML_SUFFIXES = (".yaml", ".yml")


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
