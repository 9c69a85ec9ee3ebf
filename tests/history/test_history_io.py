"""Writing and reading histories: the byte format, ordering, and errors that name file and line."""

from __future__ import annotations

import enum
import io
import json
import math
import random
from pathlib import Path
from types import MappingProxyType

import pytest

from pgha.history import (
    Event,
    HistoryError,
    HistoryWriter,
    encode_event,
    event_of,
    iter_history,
    parse_event,
    read_history,
)


class Color(enum.Enum):
    RED = "red"


def _write_sample(writer: HistoryWriter) -> None:
    writer.record(0, "run_start", scenario="s", nodes=["n1", "n2"], seed=7)
    writer.record(0.1 + 0.2, "pg_role", "n1", role="primary", timeline=1, lsn=0)
    writer.record(1.23456789, "lock", "n1", event="acquired", deadline=31.0000004)
    writer.record(2.5, "run_end")


def test_writer_output_is_sorted_compact_rounded() -> None:
    writer = HistoryWriter()
    _write_sample(writer)
    lines = writer.getvalue().splitlines()
    assert (
        lines[1] == '{"kind":"pg_role","lsn":0,"node":"n1","role":"primary","t":0.3,"timeline":1}'
    )
    assert lines[2] == (
        '{"deadline":31.0,"event":"acquired","kind":"lock","node":"n1","t":1.234568}'
    )
    assert lines[3] == '{"kind":"run_end","t":2.5}'
    assert writer.count == 4
    assert writer.last_t == 2.5


def test_equal_input_gives_equal_bytes(tmp_path: Path) -> None:
    paths = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    for path in paths:
        with HistoryWriter(path) as writer:
            _write_sample(writer)
    memory = HistoryWriter()
    _write_sample(memory)
    assert paths[0].read_bytes() == paths[1].read_bytes() == memory.getvalue().encode()


def test_writer_to_an_open_stream_leaves_it_open() -> None:
    stream = io.StringIO()
    with HistoryWriter(stream) as writer:
        writer.record(1.0, "x")
        writer.flush()
    assert not stream.closed
    assert stream.getvalue() == '{"kind":"x","t":1.0}\n'
    with pytest.raises(HistoryError, match="in-memory"):
        writer.getvalue()


def test_closing_twice_is_harmless(tmp_path: Path) -> None:
    writer = HistoryWriter(tmp_path / "h.jsonl")
    writer.close()
    writer.close()
    stream = io.StringIO()
    other = HistoryWriter(stream)
    stream.close()
    other.close()


def test_writer_normalizes_values() -> None:
    line = encode_event(
        1, "x", None, {"c": Color.RED, "s": {3, 1}, "tu": (1.0000001, "a"), "m": {1: 2.5}}
    )
    assert json.loads(line) == {
        "c": "red",
        "kind": "x",
        "m": {"1": 2.5},
        "s": [1, 3],
        "t": 1.0,
        "tu": [1.0, "a"],
    }


class Level(enum.IntEnum):
    HIGH = 2


class Tag(str):
    pass


class Seconds(float):
    pass


def _reference(t: float, kind: str, node: str | None, fields: dict[str, object]) -> str:
    # The format as plain `json` writes it: values normalized (floats rounded to the microsecond,
    # enums by value, sets sorted), `t` rounded, `kind` and `node` as given, keys sorted.
    def norm(value: object) -> object:
        if isinstance(value, float):
            return round(value, 6)
        if isinstance(value, enum.Enum):
            return norm(value.value)
        if isinstance(value, dict):
            return {str(k): norm(v) for k, v in value.items()}
        if isinstance(value, set | frozenset):
            return sorted(norm(v) for v in value)  # type: ignore[type-var]
        if isinstance(value, list | tuple):
            return [norm(v) for v in value]
        return value

    obj = {k: norm(v) for k, v in fields.items()}
    obj.update(t=round(float(t), 6), kind=kind)
    if node is not None:
        obj["node"] = node
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


FIELDS = [
    {},
    {"op": "write", "id": 12345, "target": "haproxy"},
    {"a": 0.1 + 0.2, "b": -0.0, "c": 1e-7, "d": 123456789.1234567, "e": 1e300, "f": 5e-324},
    {"s": 'quo"te\\ slash\n\t\u0001 caf\u00e9 \u2603 \U0001f600', "empty": ""},
    {"yes": True, "no": False, "none": None, "big": 10**40, "neg": -7},
    {"c": Color.RED, "lvl": Level.HIGH, "tag": Tag("x"), "sec": Seconds(1.23456789)},
    {"nested": {"z": [1.0000004, {"k": (2, "v")}], "a": {3, 1, 2}}, "ids": [3, 1, 2]},
    {"m": {1: 2.5, "b": None}, "fs": frozenset({"b", "a"}), "tu": ()},
    {"Zeta": 1, "alpha": 2, "_under": 3, "n0de": 4, "s\u00e9": 5, "kind_": 6},
]
TIMES_AND_NODES = [(0, None), (1.23456789, "n1"), (7.0000005, Tag("c1"))]


@pytest.mark.parametrize("fields", FIELDS)
@pytest.mark.parametrize(("t", "node"), TIMES_AND_NODES)
def test_lines_are_exactly_what_json_writes(
    fields: dict[str, object], t: float, node: str | None
) -> None:
    assert encode_event(t, "some_kind", node, fields) == _reference(t, "some_kind", node, fields)


def _same(made: Event, parsed: Event) -> None:
    # Equal, with the same types (ints stay ints, arrays are lists) and the same key order.
    assert made == parsed
    assert repr(made) == repr(parsed)
    assert list(made.fields) == list(parsed.fields)
    assert (type(made.kind), type(made.node)) == (type(parsed.kind), type(parsed.node))


@pytest.mark.parametrize("fields", FIELDS)
@pytest.mark.parametrize(("t", "node"), TIMES_AND_NODES)
def test_event_of_is_the_round_trip_without_the_text(
    fields: dict[str, object], t: float, node: str | None
) -> None:
    line = encode_event(t, "some_kind", node, fields)
    _same(event_of(t, "some_kind", node, fields), parse_event(line))


@pytest.mark.parametrize(
    ("t", "kind", "fields"),
    [
        (math.nan, "k", {}),
        (1.0, "", {}),
        (1.0, "k", {"t": 1}),
        (1.0, "k", {"x": math.inf}),
        (1.0, "k", {"x": [1, math.nan]}),
        (1.0, "k", {"x": object()}),
    ],
)
def test_event_of_refuses_what_encoding_refuses(
    t: float, kind: str, fields: dict[str, object]
) -> None:
    with pytest.raises(HistoryError):
        encode_event(t, kind, None, fields)
    with pytest.raises(HistoryError):
        event_of(t, kind, None, fields)


def test_floats_are_rounded_exactly_as_json_writes_them() -> None:
    rng = random.Random(3)
    edges = [1e-4, 0.99999e-4, 1.00001e-4, 9.9999995e-5, 5e-7, 4.9999999e-7, 2.675, 0.0000005]
    edges += [1e9, 999999999.9999995, 2.0**32, 123456.0000005, 0.1 + 0.2, 1e16, 1e-300, 0.0]
    values = [v * sign for v in edges for sign in (1, -1)]
    for _ in range(20_000):
        magnitude = 10.0 ** rng.uniform(-12, 12)
        values += [magnitude * rng.choice((1, -1)), round(magnitude, rng.randrange(12)) + 5e-7]
    for value in values:
        fields = {"v": value}
        line = encode_event(abs(value), "x", None, fields)
        assert line == _reference(abs(value), "x", None, fields)
        assert event_of(abs(value), "x", None, fields) == parse_event(line)


def test_time_must_not_decrease_after_rounding() -> None:
    writer = HistoryWriter()
    writer.record(1.0000004, "a")
    writer.record(1.0, "b")  # equal once rounded
    with pytest.raises(HistoryError, match="earlier than the previous event"):
        writer.record(0.5, "c")
    assert writer.count == 2


@pytest.mark.parametrize(
    ("t", "kind", "fields", "message"),
    [
        (math.nan, "x", {}, "finite number"),
        (math.inf, "x", {}, "finite number"),
        (-math.inf, "x", {}, "finite number"),
        (1.0, "", {}, "non-empty string"),
        (1.0, "x", {"t": 2}, "reserved"),
        (1.0, "x", {"v": math.inf}, "Out of range"),
        (1.0, "x", {"v": object()}, "not JSON serializable"),
    ],
)
def test_writer_rejects_bad_events(
    t: float, kind: str, fields: dict[str, object], message: str
) -> None:
    # Correctly typed values only: the compiled build (pgha compile) checks argument types at the
    # call, before the writer's own checks run.
    with pytest.raises(HistoryError, match=message):
        encode_event(t, kind, None, fields)


@pytest.mark.pure_python  # compiled, a wrongly typed argument is refused before the writer's checks
@pytest.mark.parametrize("t", [True, "1"])
def test_writer_rejects_a_time_that_is_not_a_number(t: object) -> None:
    with pytest.raises(HistoryError, match="finite number"):
        encode_event(t, "x", None, {})  # type: ignore[arg-type]


def test_write_event_roundtrip(tmp_path: Path) -> None:
    source = HistoryWriter()
    _write_sample(source)
    events = read_history(source.getvalue().splitlines())
    copy = HistoryWriter()
    for e in events:
        copy.write_event(e)
    assert copy.getvalue() == source.getvalue()
    path = tmp_path / "h.jsonl"
    path.write_text(source.getvalue())
    assert read_history(path) == events
    assert read_history(str(path)) == events
    assert events[1] == Event(0.3, "pg_role", "n1", {"role": "primary", "timeline": 1, "lsn": 0})
    assert events[1].get("role") == "primary"
    assert events[1].get("missing", 5) == 5
    assert events[0].node is None
    assert events[0].to_dict()["scenario"] == "s"
    assert "node" not in events[0].to_dict()
    assert events[1].to_dict()["node"] == "n1"


def test_event_fields_are_read_only() -> None:
    e = parse_event('{"t":1,"kind":"x","a":1}')
    with pytest.raises(TypeError):
        e.fields["a"] = 2  # type: ignore[index]
    assert e.t == 1.0
    assert isinstance(e.t, float)


def test_blank_lines_are_skipped() -> None:
    events = list(iter_history(['{"t":0,"kind":"a"}\n', "\n", "  \n", '{"t":1,"kind":"b"}\n']))
    assert [e.kind for e in events] == ["a", "b"]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ('{"t":1,"kind":"x"', "not valid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"kind":"x"}', "field 't' must be a number"),
        ('{"t":true,"kind":"x"}', "field 't' must be a number"),
        ('{"t":1,"kind":3}', "field 'kind' must be a non-empty string"),
        ('{"t":1,"kind":"x","node":5}', "field 'node' must be a string"),
        ('{"t":0.5,"kind":"x"}', r"t=0.5 is earlier than the previous event \(t=1.0\)"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, bad: str, message: str) -> None:
    path = tmp_path / "run.jsonl"
    path.write_text('{"t":0,"kind":"run_start"}\n{"t":1,"kind":"a"}\n' + bad + "\n")
    with pytest.raises(HistoryError, match=rf"run\.jsonl:3: {message}"):
        read_history(path)


def test_malformed_lines_name_the_line_source() -> None:
    with pytest.raises(HistoryError, match=r"^<lines>:2: not valid JSON"):
        read_history(['{"t":0,"kind":"a"}', "nonsense"])


def test_reading_streams(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    path.write_text('{"t":0,"kind":"a"}\nbroken\n')
    stream = iter_history(path)
    assert next(stream).kind == "a"  # the good line arrives before the bad one is read
    with pytest.raises(HistoryError, match=r"run\.jsonl:2"):
        next(stream)


# Reading has a fast path for well-formed lines and a plain path for everything else
# (pgha/history.py): both must give equal events and the plain path's exact errors.

_READ_SAMPLES = [
    '{"t":0,"kind":"run_start","nodes":["n1","n2"],"seed":7}',
    '{"kind":"pg_role","lsn":0,"node":"n1","role":"primary","t":0.3,"timeline":1}',
    '{"a":{"b":[1,2.5,null,true]},"kind":"x","node":null,"t":1e3}',
    '{"kind":"x","t":2,"u":"\\u00e9\\n"}',
]


def _same(a: Event, b: Event) -> None:
    assert (a, a.line, type(a.t)) == (b, b.line, type(b.t))
    assert dict(a.fields) == dict(b.fields)
    assert isinstance(a.fields, MappingProxyType)


@pytest.mark.parametrize("text", _READ_SAMPLES)
@pytest.mark.parametrize("around", ["{}", "{}\n", "  {}\n", "{}  \n", "{}\r\n", "\t{} \r"])
def test_fast_and_plain_paths_read_alike(text: str, around: str) -> None:
    line = around.replace("{}", text)
    expected = json.loads(text)
    t, kind, node = expected.pop("t"), expected.pop("kind"), expected.pop("node", None)
    event = parse_event(line, lineno=4)
    _same(event, Event(float(t), kind, node, expected, line=4))
    assert isinstance(event.t, float)
    [read] = iter_history(["\n", "\n", "\n", line])
    _same(read, event)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ('{"t":1,"kind":"x"} {"t":2}', r"not valid JSON \(Extra data at column 20\)"),
        ('{"t":1,"kind":"x"}]', r"not valid JSON \(Extra data at column 19\)"),
        ('{"t":1,"kind":"x",}', r"not valid JSON \(.* at column \d+\)"),
        ('  [{"t":1,"kind":"x"}]', "expected a JSON object, got list"),
        ('"text"', "expected a JSON object, got str"),
        ('{"t":"1","kind":"x"}', "field 't' must be a number of seconds, got '1'"),
        ('{"t":false,"kind":"x"}', "field 't' must be a number of seconds, got False"),
        ('{"t":null,"kind":"x"}', "field 't' must be a number of seconds, got None"),
        ('{"t":1,"kind":""}', "field 'kind' must be a non-empty string, got ''"),
        ('{"t":1}', "field 'kind' must be a non-empty string, got None"),
        ('{"t":1,"kind":"x","node":["n1"]}', r"field 'node' must be a string, got \['n1'\]"),
    ],
)
def test_malformed_lines_keep_their_messages(bad: str, message: str) -> None:
    with pytest.raises(HistoryError, match=rf"^f\.jsonl:9: {message}"):
        parse_event(bad, source="f.jsonl", lineno=9)
    with pytest.raises(HistoryError, match=rf"^<lines>:2: {message}"):
        read_history(['{"t":0,"kind":"a"}\n', bad + "\n"])


def test_read_events_carry_their_file_line(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    path.write_text('{"t":0,"kind":"a"}\n\n  \n{"t":1,"kind":"b"}\n{"t":1,"kind":"c"}')
    assert [(e.kind, e.line) for e in iter_history(path)] == [("a", 1), ("b", 4), ("c", 5)]
    assert parse_event('{"t":0,"kind":"a"}').line == 0
    assert Event(0.0, "a").line == 0


def test_reading_opens_the_file_at_the_first_event(tmp_path: Path) -> None:
    stream = iter_history(tmp_path / "missing.jsonl")  # nothing happens yet
    with pytest.raises(FileNotFoundError):
        next(stream)
