# The values every check returns, and the checks a history names. Results are frozen and
# serialize to plain JSON (summary.json, the report, `pgha check`); times are rounded to the
# microsecond so equal runs give equal bytes.
"""Check results (`Violation`, `CheckResult`, `CheckReport`) and the checks a history names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, overload

from pgha.history import HistoryError
from pgha.scenario import ChecksSpec

DECIMALS = 6
FIRST_IDS = 10  # how many ids a violation or summary lists

SPLIT_BRAIN = "no_split_brain"
LOST_WRITES = "no_lost_acknowledged_writes"
FAILOVER = "failover_within"
HEALTHY = "eventually_healthy"
OPERATOR = "operator_requests_succeed"


@overload
def _r(value: float) -> float: ...
@overload
def _r(value: float | None) -> float | None: ...
def _r(value: float | None) -> float | None:
    """Rounded to the microsecond, for stable output."""
    return None if value is None else round(value, DECIMALS)


@dataclass(frozen=True, slots=True)
class Violation:
    """One breach of an invariant: when (true time, s), which nodes, and why (`detail`)."""

    t_start: float
    t_end: float
    nodes: tuple[str, ...]
    detail: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "t_start": _r(self.t_start),
            "t_end": _r(self.t_end),
            "nodes": list(self.nodes),
            "detail": dict(self.detail),
        }


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict of one check, its violations and what it measured."""

    name: str
    ok: bool
    violations: tuple[Violation, ...] = ()
    metrics: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "violations": [v.to_dict() for v in self.violations],
            "metrics": dict(self.metrics),
        }


@dataclass(frozen=True, slots=True)
class CheckReport:
    """All check results of a run, and the run's summary metrics."""

    results: tuple[CheckResult, ...]
    summary: Mapping[str, Any] = field(default_factory=dict, hash=False)
    spec: ChecksSpec = field(default_factory=ChecksSpec)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def result(self, name: str) -> CheckResult | None:
        return next((r for r in self.results if r.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [r.to_dict() for r in self.results],
            "summary": dict(self.summary),
        }


def by_time(violations: list[Violation]) -> tuple[Violation, ...]:
    return tuple(sorted(violations, key=lambda v: (v.t_start, v.nodes)))


# ---------------------------------------------------------------- the checks a history names

_SPEC_TYPES: Mapping[str, tuple[type, ...]] = {
    "no_split_brain": (bool,),
    "no_lost_acknowledged_writes": (bool,),
    "max_lost_writes": (int, type(None)),
    "failover_within_s": (int, float, type(None)),
    "eventually_healthy_s": (int, float, type(None)),
    "operator_requests_succeed": (bool,),
}
_SPELLINGS = {"failover_within": "failover_within_s", "eventually_healthy": "eventually_healthy_s"}


def spec_from_history(spec: Mapping[str, Any]) -> ChecksSpec:
    """The checks named in a history's `run_start` (the scenario's `ChecksSpec`, as written).

    Only what the mapping names is checked: a missing key is a check switched off. The spellings
    without `_s` and durations such as `"45s"` are accepted too.

    Raises:
        HistoryError: an unknown key or a value of the wrong type.
    """
    known = {f.name for f in fields(ChecksSpec)}
    named: dict[str, Any] = {}
    for raw_key, raw_value in spec.items():
        key = _SPELLINGS.get(raw_key, raw_key)
        if key not in _SPEC_TYPES or key not in known:
            raise HistoryError(f"run_start.checks: unknown key {raw_key!r}")
        named[key] = _value(raw_key, key, raw_value)
    off = {"no_split_brain": False, "no_lost_acknowledged_writes": False}
    return ChecksSpec(**{**off, **named})


def _value(raw_key: str, key: str, raw: Any) -> Any:
    value: Any = _duration_s(raw_key, raw) if key.endswith("_s") and isinstance(raw, str) else raw
    kinds = _SPEC_TYPES[key]
    fits = isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool))
    if not fits:
        raise HistoryError(f"run_start.checks.{raw_key}: unexpected value {value!r}")
    return float(value) if key.endswith("_s") and value is not None else value


_UNITS_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration_s(raw_key: str, text: str) -> float:
    stripped = text.strip()
    for unit in sorted(_UNITS_S, key=len, reverse=True):
        number = stripped.removesuffix(unit)
        if number != stripped:
            try:
                return float(number) * _UNITS_S[unit]
            except ValueError:
                break
    raise HistoryError(
        f"run_start.checks.{raw_key}: expected a duration such as '45s', got {text!r}"
    )
