# Typed access to an event's fields: a field of the wrong type is a located `HistoryError`, never
# a silent default. The collector prefixes every error with the file and line it read.
"""Reading an event's fields, and the error for a history that contradicts itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pgha.history import Event, HistoryError


class HistoryIntegrityError(HistoryError):
    """A history that contradicts itself (a duplicated or orphaned event, two outcomes of one
    write, a missing final read, a truncated run): it cannot be judged, so nothing is counted."""


def bad(e: Event, key: str, want: str) -> HistoryError:
    got = e.get(key)
    return HistoryError(f"event {e.kind!r} at t={e.t}: field {key!r} must be {want}, got {got!r}")


def get_int(e: Event, key: str) -> int:
    value = e.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(e, key, "an integer")
    return value


def opt_int(e: Event, key: str) -> int | None:
    return None if e.get(key) is None else get_int(e, key)


def get_str(e: Event, key: str) -> str:
    value = e.get(key)
    if not isinstance(value, str):
        raise bad(e, key, "a string")
    return value


def opt_str(e: Event, key: str) -> str | None:
    return None if e.get(key) is None else get_str(e, key)


def node_of(e: Event) -> str:
    if e.node is None:
        raise HistoryError(f"event {e.kind!r} at t={e.t}: needs a 'node'")
    return e.node


def names(e: Event, key: str) -> tuple[str, ...]:
    value = e.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad(e, key, "a list of names")
    return tuple(value)


def mapping(e: Event, key: str) -> dict[str, Any]:
    value = e.get(key) or {}
    return dict(value) if isinstance(value, Mapping) else {"value": value}
