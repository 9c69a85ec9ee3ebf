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
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from enum import Enum
from json.encoder import encode_basestring_ascii
from operator import itemgetter
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, TextIO

from mypy_extensions import mypyc_attr

TIME_DECIMALS = 6  # the microsecond
RESERVED_KEYS = frozenset({"t", "kind", "node"})

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class HistoryError(ValueError):
    """A history that cannot be written or read: names the source and line where known."""


@mypyc_attr(native_class=False)  # pgha compile: _event_maker fills its slots without __init__
@dataclass(frozen=True, slots=True)
class Event:
    """One history event: true time `t` (s), its `kind`, the `node` it concerns, other fields."""

    t: float
    kind: str
    node: str | None = None
    fields: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, hash=False)
    # where it was read from (1-based line of its file), 0 for an event made in memory
    line: int = field(default=0, compare=False, hash=False)

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


# Speed: a simulated day writes millions of lines, and `json` spends most of its time in generic
# machinery (the normalized copy, sorting item pairs, float rounding and repr). So a line is filled
# into a template made once per set of field names (keys sorted and escaped, `%s` for each value),
# with each value's JSON text made by the very function `json` uses for its type (str, int, bool,
# None), `_float_text` for floats, item by item for lists and tuples, and `_ENCODER` for anything
# else (normalized first). The bytes are those `_ENCODER.encode` gives for the normalized event:
# tests/history pins them against it.
_CONSTANTS: dict[object, str] = {None: "null", True: "true", False: "false"}
_Layout = tuple[str, Callable[[list[str]], tuple[str, ...]]]  # template, values in key order
_LAYOUTS: dict[tuple[bool, tuple[str, ...]], _Layout] = {}  # (has node, names) -> layout


def _float_text(value: float) -> str:
    """`value` rounded to the microsecond, as JSON (json's ValueError if it is not finite)."""
    if 1e-4 <= value < 1e9 or -1e9 < value <= -1e-4:
        # The common case, 4x faster than repr(round()) and equal to it: ".6f" rounds exactly as
        # round() does (both correctly rounded), and in this range repr() of the rounded float is
        # those digits without trailing zeros: floats below 2**32 are closer together than 1e-6,
        # so no shorter decimal maps to the same float, and repr() writes fixed-point from 1e-4.
        text = f"{value:.6f}".rstrip("0")
        return text + "0" if text[-1] == "." else text
    rounded = round(value, TIME_DECIMALS)
    return float.__repr__(rounded) if math.isfinite(rounded) else _ENCODER.encode(rounded)


def _other_text(value: Any) -> str:
    return _ENCODER.encode(_normalize(value))


def _list_text(value: list[Any] | tuple[Any, ...]) -> str:
    # Lists are common too (action names, write ids): item by item, as json writes them.
    return "[" + ",".join([_TEXT.get(type(item), _other_text)(item) for item in value]) + "]"


_TEXT: dict[type, Callable[[Any], str]] = {
    str: encode_basestring_ascii,
    int: int.__repr__,
    float: _float_text,
    bool: _CONSTANTS.__getitem__,
    type(None): _CONSTANTS.__getitem__,
    list: _list_text,
    tuple: _list_text,
}


def _check_names(names: tuple[str, ...]) -> None:
    if RESERVED_KEYS.intersection(names):
        clash = sorted(RESERVED_KEYS.intersection(names))
        raise HistoryError(f"field names {clash} are reserved for the event itself")
    if not all(type(name) is str for name in names):
        raise HistoryError(f"field names must be strings, got {names!r}")


def _new_layout(names: tuple[str, ...], has_node: bool) -> _Layout:
    """The template of events with these field names, and the getter that orders their texts."""
    _check_names(names)
    keys = [*names, "t", "kind", *(["node"] if has_node else [])]  # the order texts are made in
    order = sorted(range(len(keys)), key=keys.__getitem__)
    pairs = (encode_basestring_ascii(keys[i]).replace("%", "%%") + ":%s" for i in order)
    layout = _LAYOUTS[has_node, names] = ("{" + ",".join(pairs) + "}", itemgetter(*order))
    return layout


def encode_event(t: float, kind: str, node: str | None, fields: Mapping[str, Any]) -> str:
    """One history line (without the newline): sorted keys, compact separators, rounded floats."""
    names, has_node = tuple(fields), node is not None
    template, in_key_order = _LAYOUTS.get((has_node, names)) or _new_layout(names, has_node)
    if not isinstance(kind, str) or not kind:
        raise HistoryError(f"event kind must be a non-empty string, got {kind!r}")
    seconds = t if type(t) is float and math.isfinite(t) else _check_time(t)
    try:
        texts = [_TEXT.get(type(value), _other_text)(value) for value in fields.values()]
        texts.append(_float_text(seconds))
        # `kind` and `node` are written as given (not normalized).
        texts.append(encode_basestring_ascii(kind) if type(kind) is str else _ENCODER.encode(kind))
        if node is not None:
            texts.append(
                encode_basestring_ascii(node) if type(node) is str else _ENCODER.encode(node)
            )
        return template % in_key_order(texts)
    except (TypeError, ValueError) as exc:
        raise HistoryError(f"event {kind!r} at t={t}: {exc}") from exc


def _check_time(t: float) -> float:
    if type(t) is not float and (isinstance(t, bool) or not isinstance(t, int)):
        raise HistoryError(f"event time must be a finite number of seconds, got {t!r}")
    if not math.isfinite(t):
        raise HistoryError(f"event time must be a finite number of seconds, got {t!r}")
    return float(t)


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
        self._last_seconds: float | None = None  # the last event's time, not rounded
        self._count = 0

    @property
    def count(self) -> int:
        """How many events were written."""
        return self._count

    @property
    def last_t(self) -> float | None:
        """The (rounded) time of the last event written, None before the first."""
        last = self._last_seconds
        return None if last is None else round(last, TIME_DECIMALS)

    def record(self, t: float, kind: str, node: str | None = None, **fields: Any) -> None:
        """Write one event now. Raises HistoryError if `t` is earlier than the previous event."""
        line = encode_event(t, kind, node, fields)
        seconds, last = float(t), self._last_seconds
        # Rounding is monotonic: only a time below the last one can round below it.
        if last is not None and seconds < last:
            rounded, last_rounded = round(seconds, TIME_DECIMALS), round(last, TIME_DECIMALS)
            if rounded < last_rounded:
                raise HistoryError(
                    f"event {kind!r} at t={rounded} is earlier than the previous event "
                    f"(t={last_rounded})"
                )
        self._out.write(line + "\n")
        self._last_seconds = seconds
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

# Speed: a simulated day is ~1.8 M lines, and reading them is most of the time of `pgha check`. A
# well-formed line takes the fast path: the C scanner that `json.loads` runs (without `loads`'
# Python-level wrapping and its two whitespace regexes), exact type tests for `t`, `kind` and
# `node`, and the `Event` filled in without going through its frozen `__init__`. Anything else (a
# blank line, surrounding whitespace, a malformed line) takes the plain path, `_parse_line`, which
# decides what the line is and words the error. Both give equal events; tests/history pins them.
# Reading the day of benchmarks/check_speed.py went from ~8 s to ~4 s.

# (text, index) -> (value, end), raising StopIteration or JSONDecodeError: the C scanner that
# json.loads runs (typeshed leaves the attribute out).
_Scan = Callable[[str, int], tuple[Any, int]]
_scan: _Scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _event_maker() -> Callable[[float, str, str | None, Mapping[str, Any], int], Event]:
    """A constructor equal to `Event(t, kind, node, fields, line)`, about twice as fast.

    `Event` is frozen, so its `__init__` sets each slot through `object.__setattr__`; the slots'
    own descriptors do the same directly. Should `Event` gain a field or a `__post_init__`, this
    is `Event` itself, so the fast path can never make an event `Event` would not.
    """
    names = tuple(f.name for f in dataclass_fields(Event))
    if names != ("t", "kind", "node", "fields", "line") or hasattr(Event, "__post_init__"):
        return Event
    new = object.__new__
    set_t, set_kind, set_node, set_fields, set_line = (
        getattr(Event, name).__set__ for name in names
    )

    def make(t: float, kind: str, node: str | None, values: Mapping[str, Any], line: int) -> Event:
        event: Event = new(Event)
        set_t(event, t)
        set_kind(event, kind)
        set_node(event, node)
        set_fields(event, values)
        set_line(event, line)
        return event

    return make


_make_event = _event_maker()


def event_of(t: float, kind: str, node: str | None, fields: Mapping[str, Any]) -> Event:
    """The Event `parse_event(encode_event(t, kind, node, fields))` gives, without the text: for a
    consumer in the same process (the explorer's checkers), equal field for field and in the same
    key order, and refused with the same HistoryError. tests/history pins it to the round trip."""
    names = tuple(fields)
    order = _ORDERS.get(names) or _new_order(names)
    if type(kind) is not str or not kind:
        kind = _checked_kind(kind)
    seconds = t if type(t) is float and math.isfinite(t) else _check_time(t)
    try:
        values = {name: _VALUE.get(type(v := fields[name]), _other_value)(v) for name in order}
        if node is not None and type(node) is not str:
            node = _other_value(node)
        return _make_event(round(seconds, TIME_DECIMALS), kind, node, MappingProxyType(values), 0)
    except (TypeError, ValueError) as exc:
        raise HistoryError(f"event {kind!r} at t={t}: {exc}") from exc


# field names -> the same names sorted (the order a parsed line gives them), checked once
_ORDERS: dict[tuple[str, ...], tuple[str, ...]] = {}


def _new_order(names: tuple[str, ...]) -> tuple[str, ...]:
    _check_names(names)  # the same checks of the field names as encoding
    order = _ORDERS[names] = tuple(sorted(names))
    return order


def _checked_kind(kind: object) -> str:
    if not isinstance(kind, str) or not kind:
        raise HistoryError(f"event kind must be a non-empty string, got {kind!r}")
    return str(_other_value(kind))  # a str subclass, as the text gives it back


def _float_value(value: float) -> float:
    # What `_float_text` writes, read back: the float rounded to the microsecond.
    if not math.isfinite(value):
        raise ValueError(f"Out of range float values are not JSON compliant: {value!r}")
    return round(value, TIME_DECIMALS)


def _list_value(value: list[Any] | tuple[Any, ...]) -> list[Any]:
    return [_VALUE.get(type(item), _other_value)(item) for item in value]


def _other_value(value: Any) -> Any:
    # The rare values (mappings, sets, enums, subclasses): through the reference encoder and back.
    return _from_json(_ENCODER.encode(_normalize(value)))


def _same_value(value: Any) -> Any:
    return value


# a field's value as JSON gives it back, by its type: `_normalize`, then a list for every array
_VALUE: dict[type, Callable[[Any], Any]] = {
    str: _same_value,
    int: _same_value,
    bool: _same_value,
    type(None): _same_value,
    float: _float_value,
    list: _list_value,
    tuple: _list_value,
}
_from_json = json.JSONDecoder().decode  # the rare values (mappings, sets, enums): the reference


def parse_event(line: str, *, source: str = "<history>", lineno: int = 0) -> Event:
    """One history line as an `Event`; HistoryError names `source` and `lineno` when malformed."""
    try:
        obj, end = _scan(line, 0)
    except Exception:  # not a bare object at column 1: the plain path decides and words it
        return _parse_line(line, source, lineno)
    if type(obj) is dict and (end == len(line) or line[end:] == "\n"):
        t, kind, node = obj.pop("t", None), obj.pop("kind", None), obj.pop("node", None)
        if (
            (type(t) is float or type(t) is int)
            and type(kind) is str
            and kind
            and (node is None or type(node) is str)
        ):
            return _make_event(float(t), kind, node, MappingProxyType(obj), lineno)
    return _parse_line(line, source, lineno)


def _parse_line(line: str, source: str, lineno: int) -> Event:
    """`parse_event` for any line, by the rules as written: the reference for the fast path."""
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
    return _make_event(float(t), kind, node, MappingProxyType(obj), lineno)


def iter_history(source: str | os.PathLike[str] | Iterable[str]) -> Iterator[Event]:
    """Stream the events of a history file (a path) or of its lines, checking their order.

    Blank lines are skipped. A malformed line, or a time earlier than the line before, raises
    `HistoryError` naming the file (or `<lines>`) and the line number.
    """
    # A plain function returning the one generator that reads (nothing happens before the first
    # `next`): a generator delegating to another would cost a hop per event.
    return _iter_lines(source)


def _iter_lines(source: str | os.PathLike[str] | Iterable[str]) -> Iterator[Event]:
    opened: AbstractContextManager[Iterable[str]]
    if isinstance(source, str | os.PathLike):
        name = os.fspath(source)
        opened = Path(name).open(encoding="utf-8")  # noqa: SIM115 - the `with` below closes it
    else:
        name, opened = "<lines>", nullcontext(source)
    last_t = -math.inf
    # `parse_event`'s fast path, inlined (a call per line is a good part of the time).
    scan, make, proxy = _scan, _make_event, MappingProxyType
    with opened as lines:
        for lineno, line in enumerate(lines, start=1):
            try:
                obj, end = scan(line, 0)
            except Exception:  # blank, or not a bare object: the plain path below
                obj = end = None
            if type(obj) is dict and (end == len(line) or line[end:] == "\n"):
                t, kind, node = obj.pop("t", None), obj.pop("kind", None), obj.pop("node", None)
                if (
                    (type(t) is float or type(t) is int)
                    and type(kind) is str
                    and kind
                    and (node is None or type(node) is str)
                ):
                    event = make(float(t), kind, node, proxy(obj), lineno)
                else:
                    event = _parse_line(line, name, lineno)  # words the error
            elif not line.strip():
                continue
            else:
                event = _parse_line(line, name, lineno)
            if event.t < last_t:
                raise HistoryError(
                    f"{name}:{lineno}: t={event.t} is earlier than the previous event (t={last_t})"
                )
            last_t = event.t
            yield event


def read_history(source: str | os.PathLike[str] | Iterable[str]) -> list[Event]:
    """All events of a history file (a path) or of its lines. Prefer `iter_history` for big runs."""
    return list(iter_history(source))
