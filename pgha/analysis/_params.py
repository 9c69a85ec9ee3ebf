# Sweep parameters are applied to the scenario's YAML document, never to its parsed value: the
# scenario is dumped (pgha.scenario.dump_scenario), the values are set in that mapping, and the
# result is parsed again by parse_scenario. So a bad value or a bad combination (ttl too short for
# loop_wait and retry_timeout, a fault that outlasts the run, a clock jump with an offset) is
# refused with the same message a YAML file would get, before anything runs.
"""Parameter names (`ttl`, `watchdog.safety_margin`, `faults[0].at`, `clocks.n1.offset` ...) and
`apply_params`: a scenario's YAML text with some values changed, checked by the scenario parser."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import yaml

from pgha.scenario import ACCEPTED_KEYS, Scenario, ScenarioError, dump_scenario, parse_scenario

FAULT_PARAM = re.compile(r"faults\[(\d+)\]\.([A-Za-z_]+)")
FAULT_OWN_KEYS = ("at", "for", "label")
ALIASES: Mapping[str, str] = {"drift": "drift_ppm"}  # faults[i].drift: the clock fault's drift_ppm
NOT_PARAMS = frozenset({"name", "seed", "faults", "cluster"})
PARAM_FORMS = (
    "a config key (ttl, loop_wait, retry_timeout, synchronous_mode, maximum_lag_on_failover, "
    "...), watchdog.safety_margin / watchdog.mode, faults[i].at / faults[i].for / faults[i].<a "
    "key of the fault's own mapping> (clock: offset, drift_ppm (or drift), jump; switchover: at "
    "...), or a dotted path into the scenario such as duration, workload.rate, clocks.n1.offset"
)

Path = tuple[str | int, ...]


def scenario_document(scenario: Scenario) -> dict[str, Any]:
    """The scenario as the mapping its YAML file would load to."""
    document = yaml.safe_load(dump_scenario(scenario))
    assert isinstance(document, dict)
    return document


def param_path(name: str, document: Mapping[str, Any]) -> Path:
    """Where parameter `name` lives in the scenario document.

    Raises:
        ValueError: `name` is not a parameter name, or names a fault the scenario does not have.
    """
    if not isinstance(name, str):
        raise ValueError(f"sweep parameter {name!r}: expected a name, {PARAM_FORMS}")
    match = FAULT_PARAM.fullmatch(name)
    if match is not None:
        return _fault_path(name, int(match.group(1)), match.group(2), document)
    parts = tuple(name.split("."))
    if parts[0] in ACCEPTED_KEYS["config"] and all(parts):
        return ("config", *parts)
    if parts[0] in ACCEPTED_KEYS["scenario"] and parts[0] not in NOT_PARAMS and all(parts):
        return parts
    hint = " (the seeds are the `seeds` argument)" if name == "seed" else ""
    raise ValueError(f"sweep parameter {name!r}: unknown name{hint}; expected {PARAM_FORMS}")


def _fault_path(name: str, index: int, key: str, document: Mapping[str, Any]) -> Path:
    faults = document.get("faults") or []
    if index >= len(faults):
        have = f"faults[0] to faults[{len(faults) - 1}]" if faults else "none"
        raise ValueError(
            f"sweep parameter {name!r}: the scenario has {len(faults)} fault(s) ({have}); "
            "expected an index of one of them"
        )
    key = ALIASES.get(key, key)
    if key in FAULT_OWN_KEYS:
        return ("faults", index, key)
    fault = faults[index]
    kind = next(k for k in fault if k not in FAULT_OWN_KEYS)
    if not isinstance(fault[kind], dict):
        raise ValueError(
            f"sweep parameter {name!r}: faults[{index}] is `{kind}: {fault[kind]}` (no parameters "
            f"of its own); expected faults[{index}].at, .for or .label"
        )
    return ("faults", index, kind, key)


def path_text(path: Path) -> str:
    """A path as the scenario parser names fields: config.ttl, faults[0].clock.jump."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def plain_value(name: str, value: Any) -> Any:
    """A value YAML can write: numpy scalars as Python numbers, tuples as lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return [plain_value(name, v) for v in value]
    if value is None or isinstance(value, bool | int | float | str | list | dict):
        return value
    raise ValueError(
        f"sweep parameter {name!r}: value {value!r} ({type(value).__name__}); expected a number "
        "(seconds for durations), a bool or a string"
    )


def _set(document: dict[str, Any], path: Path, value: Any, name: str) -> None:
    node: Any = document
    for depth, part in enumerate(path[:-1]):
        child = node[part] if isinstance(part, int) else node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict | list):
            where = path_text(path[: depth + 1])
            raise ValueError(
                f"sweep parameter {name!r}: {where} is {child!r}, expected a mapping to set "
                f"{path[-1]} in"
            )
        node = child
    node[path[-1]] = value


def apply_params(
    scenario: Scenario, document: Mapping[str, Any], params: Mapping[str, Any]
) -> tuple[Scenario, str]:
    """`scenario` with `params` set: the new Scenario and its YAML text (parsed and checked).

    Raises:
        ValueError: a bad name, or a value the scenario parser refuses (the message names the
            parameter, the field and what was expected).
    """
    changed = copy.deepcopy(dict(document))
    paths = {name: param_path(name, document) for name in params}
    for name, value in params.items():
        _set(changed, paths[name], plain_value(name, value), name)
    text = yaml.safe_dump(changed, sort_keys=False, allow_unicode=True)
    setting = ", ".join(f"{name}={value!r}" for name, value in params.items())
    try:
        source = f"{scenario.source} [{setting}]" if setting else scenario.source
        return parse_scenario(text, source), text
    except ScenarioError as error:
        raise ValueError(_refusal(error, paths, params, setting)) from None


def _refusal(
    error: ScenarioError, paths: Mapping[str, Path], params: Mapping[str, Any], setting: str
) -> str:
    field = error.field
    for name, path in paths.items():
        where = path_text(path)
        inside = field.startswith((where + ".", where + "["))
        if field == where or inside or where.startswith((field + ".", field + "[")):
            return (
                f"sweep parameter {name!r} = {params[name]!r} is refused by the scenario: "
                f"{field}: expected {error.expected}, got {error.got}"
            )
    return f"sweep parameters [{setting}] are refused by the scenario: {field}: expected " + (
        f"{error.expected}, got {error.got}"
    )
