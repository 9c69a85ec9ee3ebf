# The history is the one artefact a run leaves behind (docs/history.md): JSON Lines, one event
# per line, ordered by `t`. Both worlds write it through `HistoryWriter`; checkers, reports and
# notebooks read it through `iter_history` / `read_history` and nothing else. Writing streams (a
# simulated day is ~1.7 M events), keys are sorted and floats rounded to the microsecond, so equal
# runs give equal bytes.
"""Writing and reading run histories (JSON Lines), and the typed `Event` view of one line."""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, TextIO

TIME_DECIMALS = 6  # the microsecond
RESERVED_KEYS = frozenset({"t", "kind", "node"})

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class HistoryError(ValueError):
    """A history that cannot be written or read: names the source and line where known."""


@dataclass(frozen=True, slots=True)
class Event:
    """One history event: true time `t` (s), its `kind`, the `node` it concerns, other fields."""

    t: float
    kind: str
    node: str | None = None
    fields: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, hash=False)

    def get(self, key: str, default: Any = None) -> Any:
        """A field's value, or `default` when the event does not carry it."""
        return self.fields.get(key, default)

    def to_dict(self) -> dict[str, Any]:
        """The event as one JSON object (as written: `node` left out when None)."""
        out = dict(self.fields)
        out["t"] = self.t
        out["kind"] = self.kind
        if self.node is not None:
            out["node"] = self.node
        return out


# ---------------------------------------------------------------- writing


_PLAIN = (str, int, bool, type(None))  # written as they are
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False)


def _normalize(value: Any) -> Any:
    """A JSON-ready copy: floats rounded to the microsecond, enums by value, sets sorted."""
    if isinstance(value, float):
        return round(value, TIME_DECIMALS)
    if isinstance(value, Enum):
        return _normalize(value.value)
    if isinstance(value, Mapping):
        return {str(k): _normalize(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(_normalize(v) for v in value)
    if isinstance(value, list | tuple):
        return [_normalize(v) for v in value]
    return value


def _normalize_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """`_normalize` for the top level, with a fast path for the plain values most events carry."""
    return {k: v if type(v) in _PLAIN else _normalize(v) for k, v in fields.items()}


def encode_event(t: float, kind: str, node: str | None, fields: Mapping[str, Any]) -> str:
    """One history line (without the newline): sorted keys, compact separators, rounded floats."""
    if "t" in fields or "kind" in fields or "node" in fields:
        clash = sorted(RESERVED_KEYS.intersection(fields))
        raise HistoryError(f"field names {clash} are reserved for the event itself")
    if not isinstance(kind, str) or not kind:
        raise HistoryError(f"event kind must be a non-empty string, got {kind!r}")
    obj = _normalize_fields(fields)
    obj["t"] = _check_time(t)
    obj["kind"] = kind
    if node is not None:
        obj["node"] = node
    try:
        return _ENCODER.encode(obj)
    except (TypeError, ValueError) as exc:
        raise HistoryError(f"event {kind!r} at t={t}: {exc}") from exc


def _check_time(t: float) -> float:
    if type(t) is not float and (isinstance(t, bool) or not isinstance(t, int)):
        raise HistoryError(f"event time must be a finite number of seconds, got {t!r}")
    if not math.isfinite(t):
        raise HistoryError(f"event time must be a finite number of seconds, got {t!r}")
    return round(float(t), TIME_DECIMALS)


class HistoryWriter:
    """Streams events as JSON Lines to a file, an open text stream, or an in-memory buffer.

    Args:
        target: a path (opened for writing, closed by `close`), an open text stream (left open),
            or None for an in-memory buffer read back with `getvalue`.

    Nothing is kept but the last time: `record` writes the line at once. Times must not decrease
    (after rounding to the microsecond); a decreasing time raises `HistoryError`.
    """

    def __init__(self, target: str | os.PathLike[str] | TextIO | None = None) -> None:
        self._owned = False
        self._buffer: io.StringIO | None = None
        if target is None:
            self._buffer = io.StringIO()
            self._out: TextIO = self._buffer
        elif isinstance(target, str | os.PathLike):
            self._out = open(target, "w", encoding="utf-8", newline="\n")  # noqa: SIM115
            self._owned = True
        else:
            self._out = target
        self._last_t: float | None = None
        self._count = 0

    @property
    def count(self) -> int:
        """How many events were written."""
        return self._count

    @property
    def last_t(self) -> float | None:
        """The (rounded) time of the last event written, None before the first."""
        return self._last_t

    def record(self, t: float, kind: str, node: str | None = None, **fields: Any) -> None:
        """Write one event now. Raises HistoryError if `t` is earlier than the previous event."""
        line = encode_event(t, kind, node, fields)
        rounded = round(float(t), TIME_DECIMALS)
        if self._last_t is not None and rounded < self._last_t:
            raise HistoryError(
                f"event {kind!r} at t={rounded} is earlier than the previous event "
                f"(t={self._last_t})"
            )
        self._out.write(line + "\n")
        self._last_t = rounded
        self._count += 1

    def write_event(self, event: Event) -> None:
        """Write an `Event` (as read from another history): same rules as `record`."""
        self.record(event.t, event.kind, event.node, **event.fields)

    def getvalue(self) -> str:
        """Everything written so far, for an in-memory writer."""
        if self._buffer is None:
            raise HistoryError("getvalue() is only available on an in-memory HistoryWriter")
        return self._buffer.getvalue()

    def flush(self) -> None:
        self._out.flush()

    def close(self) -> None:
        """Flush; close the file if this writer opened it."""
        if self._owned and not self._out.closed:
            self._out.close()
        elif not self._out.closed:
            self._out.flush()

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# ---------------------------------------------------------------- reading


def parse_event(line: str, *, source: str = "<history>", lineno: int = 0) -> Event:
    """One history line as an `Event`; HistoryError names `source` and `lineno` when malformed."""
    where = f"{source}:{lineno}"
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise HistoryError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(obj, dict):
        raise HistoryError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    t = obj.pop("t", None)
    kind = obj.pop("kind", None)
    node = obj.pop("node", None)
    if isinstance(t, bool) or not isinstance(t, int | float):
        raise HistoryError(f"{where}: field 't' must be a number of seconds, got {t!r}")
    if not isinstance(kind, str) or not kind:
        raise HistoryError(f"{where}: field 'kind' must be a non-empty string, got {kind!r}")
    if node is not None and not isinstance(node, str):
        raise HistoryError(f"{where}: field 'node' must be a string, got {node!r}")
    return Event(float(t), kind, node, MappingProxyType(obj))


def iter_history(source: str | os.PathLike[str] | Iterable[str]) -> Iterator[Event]:
    """Stream the events of a history file (a path) or of its lines, checking their order.

    Blank lines are skipped. A malformed line, or a time earlier than the line before, raises
    `HistoryError` naming the file (or `<lines>`) and the line number.
    """
    if isinstance(source, str | os.PathLike):
        name = os.fspath(source)
        with Path(name).open(encoding="utf-8") as handle:
            yield from _iter_lines(handle, name)
    else:
        yield from _iter_lines(source, "<lines>")


def _iter_lines(lines: Iterable[str], name: str) -> Iterator[Event]:
    last_t = -math.inf
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        event = parse_event(line, source=name, lineno=lineno)
        if event.t < last_t:
            raise HistoryError(
                f"{name}:{lineno}: t={event.t} is earlier than the previous event (t={last_t})"
            )
        last_t = event.t
        yield event


def read_history(source: str | os.PathLike[str] | Iterable[str]) -> list[Event]:
    """All events of a history file (a path) or of its lines. Prefer `iter_history` for big runs."""
    return list(iter_history(source))
