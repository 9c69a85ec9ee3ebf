# How the dumper writes single values, shared by the scenario's sections (pgha/scenario/_dump.py)
# and the fault kinds' parameters (pgha/scenario/_fault_dump.py). The promise is the loader's round
# trip: every value written here is read back to the same value (a float keeps its repr).
"""Numbers, durations, rates, plain containers and targets as a scenario file writes them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pgha.scenario._values import Target

_MAX_EXACT_INT = 2**53  # floats up to here that are whole numbers are written without ".0"


def number(value: float) -> int | float:
    """A number as YAML should show it: whole floats without ".0" (the loader reads both)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < _MAX_EXACT_INT:
        return int(value)
    return value


def duration(value: float) -> str | int | float:
    """A duration as YAML should show it: "90s", "1.5s", "-40s" (a number if repr needs an
    exponent, which the duration syntax lacks). The loader reads each back to the same float."""
    shown = number(value)
    text = repr(shown)
    return shown if "e" in text or "inf" in text or "nan" in text else f"{text}s"


def rate(value: float) -> str | int | float:
    """A rate per second as YAML should show it: "10/s" (a number if repr needs an exponent)."""
    shown = number(value)
    text = repr(shown)
    return shown if "e" in text or "inf" in text or "nan" in text else f"{text}/s"


def plain(value: Any) -> Any:
    """FrozenDict and tuples are not PyYAML's safe types: plain dicts and lists, keeping scalars."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [plain(item) for item in value]
    return value


def target(value: Target) -> str | list[str]:
    """A target as written: a role word, one name, or a list of names."""
    if value.role is not None:
        return value.role.value
    return value.names[0] if len(value.names) == 1 else list(value.names)


def one(value: Target) -> str:
    """A target of a field that takes one host (etcd member, candidate, a partition group's
    item)."""
    written = target(value)
    assert isinstance(written, str), "this field takes one name or a role"
    return written
