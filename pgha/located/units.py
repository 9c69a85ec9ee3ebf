# Units are read in one place so that every duration, rate and fraction in a scenario means the
# same thing: durations are seconds (a bare number) or strings of number+unit parts ("1h30m",
# "1.5s", "250ms"); rates are writes per second ("10/s", "600/m", or a bare number); fractions are
# 0..1 or a percentage ("2%"). Which signs and zeros are allowed is the caller's choice.
"""Durations, rates and fractions, each checked at its YAML node."""

from __future__ import annotations

import enum
import math
import re

from pgha.located.tree import Node, mapping, problem

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION_UNITS_S = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}
_DURATION = re.compile(rf"(-?)((?:{_NUMBER}(?:ms|us|d|h|m|s))+)")
_DURATION_PART = re.compile(rf"({_NUMBER})(ms|us|d|h|m|s)")
_RATE_UNITS_S = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_RATE = re.compile(rf"({_NUMBER})\s*/\s*(sec|min|s|m|h)")
_PERCENT = re.compile(rf"({_NUMBER})\s*%")

LATENCY_KEYS = ("median", "p99")
DURATION_EXAMPLES = "90s, 1.5s, 250ms, 5m, 1h30m or a number of seconds"


class Sign(enum.Enum):
    """Which durations a field accepts."""

    POSITIVE = "> 0"
    NON_NEGATIVE = ">= 0"
    ANY = "of either sign"
    NON_ZERO = "other than 0"


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _duration_text(value: str) -> float | None:
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        return None
    total_s = sum(
        float(amount) * _DURATION_UNITS_S[unit]
        for amount, unit in _DURATION_PART.findall(match.group(2))
    )
    return -total_s if match.group(1) else total_s


def _allowed(value_s: float, sign: Sign) -> bool:
    if sign is Sign.POSITIVE:
        return value_s > 0
    if sign is Sign.NON_NEGATIVE:
        return value_s >= 0
    if sign is Sign.NON_ZERO:
        return value_s != 0
    return True


def duration_s(node: Node, sign: Sign = Sign.POSITIVE) -> float:
    """A duration in seconds: a number, or a string such as "90s", "250ms", "1h30m"."""
    value = node.value
    seconds = _duration_text(value) if isinstance(value, str) else _finite(value)
    if seconds is None or not _allowed(seconds, sign):
        raise problem(node, f"a duration {sign.value} ({DURATION_EXAMPLES})")
    return seconds


def rate_per_s(node: Node) -> float:
    """A rate > 0 per second: a number, or "10/s", "600/m", "36000/h"."""
    value = node.value
    per_s = _finite(value)
    if isinstance(value, str) and (match := _RATE.fullmatch(value.strip())):
        per_s = float(match.group(1)) / _RATE_UNITS_S[match.group(2)]
    if per_s is None or per_s <= 0:
        raise problem(node, "a rate > 0 such as 10/s, 600/m, 36000/h or a number per second")
    return per_s


def fraction(node: Node, *, allow_zero: bool) -> float:
    """A fraction in 0..1 (or (0, 1] without zero): a number or a percentage such as "2%"."""
    value = node.value
    share = _finite(value)
    if isinstance(value, str) and (match := _PERCENT.fullmatch(value.strip())):
        share = float(match.group(1)) / 100
    low_ok = share is not None and (share >= 0 if allow_zero else share > 0)
    if share is None or not low_ok or share > 1:
        low = "0" if allow_zero else "above 0"
        raise problem(node, f"a fraction from {low} to 1, or a percentage such as 2%")
    return share


def finite_number(node: Node, expected: str = "a number") -> float:
    """A finite int or float."""
    value = _finite(node.value)
    if value is None:
        raise problem(node, expected)
    return value


def median_p99_s(node: Node, sign: Sign) -> tuple[float, float]:
    """A latency: a duration (median = p99), or a mapping {median, p99}; p99 defaults to median."""
    if not isinstance(node.value, dict):
        value_s = duration_s(node, sign)
        return value_s, value_s
    fields = mapping(node, LATENCY_KEYS)
    median_s = duration_s(fields.required("median", "a duration such as 1ms"), sign)
    p99 = fields.get("p99")
    if p99 is None:
        return median_s, median_s
    p99_s = duration_s(p99, sign)
    if p99_s < median_s:
        raise problem(p99, f"a duration >= median ({median_s:g}s)")
    return median_s, p99_s
