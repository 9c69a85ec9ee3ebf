# A history as a pandas DataFrame and back. The frame keeps what the file says exactly: a column's
# dtype is narrowed (int64, float64, bool, str) only when every row carries a value of that one
# JSON type; anything else stays a column of Python objects. An absent field is NaN (pd.NA in
# nullable int/bool columns) and a JSON null is None, so writing the frame back gives the same
# lines: for a history written by HistoryWriter, the same bytes.
"""History <-> DataFrame: `load_history`, `save_history`, `events_from_frame`, `as_events`."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from pgha.history import RESERVED_KEYS, Event, HistoryError, HistoryWriter, iter_history

History = str | os.PathLike[str] | Iterable[Event] | pd.DataFrame
"""What every analysis function accepts: a history file, events, or a frame of load_history."""

_ABSENT = object()  # a field an event does not carry
_NARROW: dict[type, str] = {int: "int64", float: "float64", bool: "bool"}
_NULLABLE: dict[type, str] = {int: "Int64", bool: "boolean"}


# ---------------------------------------------------------------- reading


def load_history(source: History) -> pd.DataFrame:
    """One row per event, in file order: `t` (s), `kind`, `node` (None when absent), then one
    column per other field in order of first appearance (absent: NaN; nested values as Python
    objects). `df.attrs["source"]` names where it came from.

    Raises:
        HistoryError: a missing or unreadable file, or a malformed line (file and line named).
        TypeError: `source` is none of a path, an iterable of Event, or a DataFrame.
    """
    if isinstance(source, pd.DataFrame):
        _check_frame(source)
        frame = source.copy(deep=False)
        frame.attrs = dict(source.attrs)
        return frame
    name = os.fspath(source) if isinstance(source, str | os.PathLike) else "<events>"
    return frame_of(as_events(source), name)


def frame_of(events: list[Event], source: str) -> pd.DataFrame:
    """The frame of `events` (see `load_history`), with `attrs["source"] = source`."""
    names = list(dict.fromkeys(name for e in events for name in e.fields))
    columns: dict[str, Any] = {
        "t": pd.Series([e.t for e in events], dtype="float64"),
        "kind": pd.Series([e.kind for e in events], dtype=object).astype(str),
        "node": pd.Series([e.node for e in events], dtype=object),
    }
    for name in names:
        columns[name] = _column([e.fields.get(name, _ABSENT) for e in events])
    frame = pd.DataFrame(columns)
    frame.attrs["source"] = source
    return frame


def _column(values: list[Any]) -> pd.Series[Any]:
    """The narrowest column that gives back exactly these values (see the module comment)."""
    types = {type(v) for v in values if v is not _ABSENT}
    missing = len(types) < len({type(v) for v in values})
    if len(types) == 1:
        (kind,) = types
        if kind is str:  # pandas' own string inference (NaN for absent)
            return pd.Series([math.nan if v is _ABSENT else v for v in values])
        if kind in _NARROW:
            dtype = _NULLABLE.get(kind, "float64") if missing else _NARROW[kind]
            absent = pd.NA if dtype in _NULLABLE.values() else math.nan
            return pd.Series([absent if v is _ABSENT else v for v in values], dtype=dtype)
    return pd.Series([math.nan if v is _ABSENT else v for v in values], dtype=object)


def as_events(history: History) -> list[Event]:
    """The events of any history argument (path, iterable of Event, or load_history frame)."""
    if isinstance(history, pd.DataFrame):
        return events_from_frame(history)
    if isinstance(history, str | os.PathLike):
        return _read_file(os.fspath(history))
    if isinstance(history, Iterable):
        events = list(history)
        for index, item in enumerate(events):
            if not isinstance(item, Event):
                raise TypeError(
                    f"history: item {index} is a {type(item).__name__}, expected a pgha Event"
                )
        return events
    raise TypeError(
        "history: expected a path to a JSON Lines history, an iterable of Event or a DataFrame "
        f"from load_history, got {type(history).__name__}"
    )


def _read_file(path: str) -> list[Event]:
    if not Path(path).is_file():
        raise HistoryError(f"{path}: no such history file (expected a JSON Lines history)")
    try:
        return list(iter_history(path))
    except (OSError, UnicodeDecodeError) as error:
        raise HistoryError(f"{path}: cannot read the history: {error}") from None


# ---------------------------------------------------------------- writing


def events_from_frame(df: pd.DataFrame) -> list[Event]:
    """The events of a frame (see `load_history`): NaN / pd.NA fields are left out, None is a
    JSON null; numpy scalars become Python values.

    Raises:
        ValueError: the frame lacks the `t` or `kind` column.
    """
    _check_frame(df)
    times = [float(t) for t in df["t"].tolist()]
    kinds = [str(k) for k in df["kind"].tolist()]
    nodes = df["node"].tolist() if "node" in df.columns else [None] * len(df)
    others = [str(c) for c in df.columns if c not in RESERVED_KEYS]
    values = [[_plain(v) for v in df[name].tolist()] for name in others]
    events = []
    for row, (t, kind, node) in enumerate(zip(times, kinds, nodes, strict=True)):
        fields = {
            name: column[row]
            for name, column in zip(others, values, strict=True)
            if column[row] is not _ABSENT
        }
        node_name = None if _plain(node) in (_ABSENT, None) else str(node)
        events.append(Event(t, kind, node_name, MappingProxyType(fields)))
    return events


def _plain(value: Any) -> Any:
    """A cell as the Python value it stands for, or _ABSENT for NaN / pd.NA."""
    if value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return _ABSENT
    if isinstance(value, np.generic):
        return _plain(value.item())
    return value


def _check_frame(df: pd.DataFrame) -> None:
    missing = [c for c in ("t", "kind") if c not in df.columns]
    if missing:
        raise ValueError(
            f"history frame: missing column(s) {missing}; expected a DataFrame from load_history "
            "(columns t, kind, node, then the events' fields)"
        )


def save_history(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a frame (see `load_history`) as a JSON Lines history through HistoryWriter.

    Raises:
        HistoryError: times decrease, or a value cannot be written as JSON.
        ValueError: the frame lacks the `t` or `kind` column.
    """
    events = events_from_frame(df)
    with HistoryWriter(path) as writer:
        for event in events:
            writer.write_event(event)
