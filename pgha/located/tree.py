# Why a tree of our own: the scenario format promises an error with a line for every mistake, so the
# parser never works on plain dicts. `compose` turns PyYAML's node graph (which keeps marks) into
# `Node`s that carry their 1-based line and their dotted field path, and the accessors here check
# one value each and raise `Problem` pointing at it. Mapping keys are taken as written (so a key
# `on` stays the string "on" rather than YAML 1.1's true), duplicate keys are an error (PyYAML would
# keep the last silently), and unknown keys come with a "did you mean" from difflib.
"""A YAML tree that remembers lines and field paths, and typed accessors over it."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import yaml

from pgha.engine.config import shown
from pgha.located.errors import Problem

ROOT = "<root>"


@dataclass(frozen=True, slots=True)
class Node:
    """One YAML value: a scalar, a `dict[str, Node]` (mapping) or a `tuple[Node, ...]` (list)."""

    value: object
    line: int
    field: str


def describe(value: object) -> str:
    """A short description of a value for error messages."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, tuple):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return shown(value)  # short: a huge integer by its size, a long text cut
    return f"a {type(value).__name__}"


def problem(node: Node, expected: str, hint: str = "") -> Problem:
    """A Problem at `node`: `expected` there, got the node's value."""
    return Problem(
        line=node.line, field=node.field, expected=expected, got=describe(node.value), hint=hint
    )


def suggest(word: str, choices: Collection[str]) -> str:
    """A "did you mean" hint for `word` among `choices`, or ""."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


def child_field(parent: str, key: str) -> str:
    """The dotted path of `key` inside `parent`."""
    return key if parent in ("", ROOT) else f"{parent}.{key}"


# ---------------------------------------------------------------- composing


def compose(text: str) -> Node:
    """Parse YAML text into a Node tree.

    Raises:
        Problem: a syntax error (with its line) or an empty document.
    """
    try:
        return _compose(text)
    except yaml.YAMLError as err:
        raise Problem(
            line=_error_line(err, text),
            field="<yaml>",
            expected="valid YAML",
            got=f"a syntax error ({_reason(err)})",
        ) from None


def _compose(text: str) -> Node:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise Problem(
                line=1, field=ROOT, expected="a mapping of scenario keys", got="an empty document"
            )
        return _convert(loader, root, ROOT, root.start_mark.line + 1, frozenset())
    finally:
        loader.dispose()


def _error_line(err: yaml.YAMLError, text: str) -> int:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    if mark is not None:
        return int(mark.line) + 1
    position = getattr(err, "position", 0)
    return text.count("\n", 0, position) + 1


def _reason(err: yaml.YAMLError) -> str:
    reason = getattr(err, "problem", None) or getattr(err, "reason", None) or str(err)
    return str(reason).strip()


def _convert(
    loader: yaml.SafeLoader, node: yaml.Node, field: str, line: int, seen: frozenset[int]
) -> Node:
    if id(node) in seen:
        raise Problem(line=line, field=field, expected="a value", got="a recursive alias")
    if isinstance(node, yaml.MappingNode):
        return Node(_mapping(loader, node, field, seen | {id(node)}), line, field)
    if isinstance(node, yaml.SequenceNode):
        items = tuple(
            _convert(loader, item, f"{field}[{i}]", item.start_mark.line + 1, seen | {id(node)})
            for i, item in enumerate(node.value)
        )
        return Node(items, line, field)
    try:
        value = loader.construct_object(node, deep=True)
    except ValueError:  # Python refuses to read an integer of more than 4300 digits
        raise Problem(line=line, field=field, expected="a value", got="a number too long") from None
    return Node(value, line, field)


def _mapping(
    loader: yaml.SafeLoader, node: yaml.MappingNode, field: str, seen: frozenset[int]
) -> dict[str, Node]:
    out: dict[str, Node] = {}
    for key_node, value_node in node.value:
        key_line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            raise Problem(line=key_line, field=field, expected="a plain key", got="a complex key")
        key = str(key_node.value)
        path = child_field(field, key)
        if key in out:
            raise Problem(line=key_line, field=path, expected="each key once", got="a duplicate")
        out[key] = _convert(loader, value_node, path, key_line, seen)
    return out


# ---------------------------------------------------------------- accessors


class Fields:
    """A mapping node whose keys were checked against the keys a section accepts."""

    __slots__ = ("entries", "node")

    def __init__(self, node: Node, entries: Mapping[str, Node]) -> None:
        self.node = node
        self.entries = entries

    def get(self, key: str) -> Node | None:
        """The value under `key` (by its canonical name), or None when absent."""
        return self.entries.get(key)

    def required(self, key: str, expected: str) -> Node:
        """The value under `key`; a Problem when it is absent."""
        found = self.entries.get(key)
        if found is None:
            raise Problem(
                line=self.node.line,
                field=child_field(self.node.field, key),
                expected=f"{expected} (required)",
                got="nothing",
            )
        return found


def mapping(node: Node, keys: Collection[str], synonyms: Mapping[str, str] | None = None) -> Fields:
    """Check that `node` is a mapping of known keys; synonyms map to their canonical key.

    Raises:
        Problem: not a mapping, an unknown key, or a key given twice through a synonym.
    """
    if not isinstance(node.value, dict):
        raise problem(node, f"a mapping with keys {', '.join(keys)}")
    synonyms = synonyms or {}
    entries: dict[str, Node] = {}
    for key, child in node.value.items():
        canonical = synonyms.get(key, key)
        if canonical not in keys:
            hint = suggest(key, [*keys, *synonyms])
            expected = f"one of the keys {', '.join(keys)}"
            raise Problem(
                line=child.line, field=child.field, expected=expected, got=repr(key), hint=hint
            )
        if canonical in entries:
            raise problem(child, f"{canonical!r} once (it is given twice, through a synonym)")
        entries[canonical] = child
    return Fields(node, entries)


def items(node: Node, expected: str = "a list", *, non_empty: bool = True) -> tuple[Node, ...]:
    """The items of a list node."""
    if not isinstance(node.value, tuple) or (non_empty and not node.value):
        raise problem(node, expected)
    return node.value


def text(node: Node, expected: str = "a string") -> str:
    """A non-empty string."""
    if not isinstance(node.value, str) or not node.value:
        raise problem(node, expected)
    return node.value


def boolean(node: Node) -> bool:
    """true or false."""
    if not isinstance(node.value, bool):
        raise problem(node, "true or false")
    return node.value


def integer(node: Node, minimum: int) -> int:
    """An integer >= minimum (booleans are not integers here)."""
    value = node.value
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise problem(node, f"an integer >= {minimum}")
    return value


def choice(node: Node, choices: Collection[str]) -> str:
    """One of the given words."""
    value = node.value
    if not isinstance(value, str) or value not in choices:
        hint = suggest(value, choices) if isinstance(value, str) else ""
        raise problem(node, f"one of {', '.join(choices)}", hint)
    return value
