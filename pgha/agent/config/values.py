# Typed accessors for the agent configuration, on top of the scenario loader's line-aware YAML tree
# (pgha/located/tree.py): each reads one node and raises `Problem` pointing at it. Safety rules:
# a secret is described by its kind, never echoed; a command is an argument list run without a
# shell (a string with spaces is refused rather than split, so quoting can never change what runs);
# paths are absolute, so what the agent deletes or writes never depends on its working directory.
"""Accessors for host:port, paths, names, secrets, argument lists and option lists."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from typing import TypeVar

from pgha.agent.config.model import HostPort, Scalar
from pgha.located.errors import Problem
from pgha.located.tree import ROOT, Fields, Node, items, mapping, problem, text
from pgha.located.units import Sign, duration_s
from pgha.scenario import FrozenDict

T = TypeVar("T")

_NAME = re.compile(r"[A-Za-z0-9_.-]+")
NAME_TEXT = "a name of letters, digits, '_', '.' or '-'"
_HOST = re.compile(r"[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\]")
_PORT = re.compile(r"[0-9]{1,5}")
_OPTION = re.compile(r"[a-z][a-z0-9-]+")
_PARAMETER = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "*"})
HOST_PORT_TEXT = "host:port such as 127.0.0.1:8008"
ARGV_TEXT = "an argument list, e.g. [/usr/local/bin/cb]"


def kind(value: object) -> str:
    """What a value is, without showing it (for secrets)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string" if value else "an empty string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, tuple):
        return "a list"
    return "null" if value is None else f"a {type(value).__name__}"


def checked(node: Node, keys: Collection[str], unsupported: Mapping[str, str]) -> Fields:
    """`mapping(node, keys)`, but a key in `unsupported` gets its own explanation."""
    if isinstance(node.value, dict):
        for key, child in node.value.items():
            if key in unsupported:
                raise Problem(
                    line=child.line,
                    field=child.field,
                    expected="a key pgha supports",
                    got=repr(key),
                    hint=unsupported[key],
                )
    return mapping(node, keys)


def required(fields: Fields, key: str, expected: str) -> Node:
    """The value under `key`; a Problem at the parent (its field and line) when it is absent."""
    found = fields.get(key)
    if found is not None:
        return found
    parent = fields.node
    where = "at the top level" if parent.field == ROOT else f"to {parent.field}"
    raise Problem(
        line=parent.line,
        field=f"{key}" if parent.field == ROOT else f"{parent.field}.{key}",
        expected=f"{expected} (required)",
        got="nothing",
        hint=f"add {key!r} {where} (line {parent.line})",
    )


def optional(fields: Fields, key: str, read: Callable[[Node], T], default: T) -> T:
    """`read` applied to the value under `key`, or `default` when it is absent."""
    found = fields.get(key)
    return default if found is None else read(found)


def name(node: Node, expected: str = NAME_TEXT) -> str:
    """A name of letters, digits, '_', '.' or '-' (numbers must be quoted)."""
    value = node.value
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        hint = "quote it to make it a string" if isinstance(value, int | float) else ""
        raise problem(node, expected, hint)
    return value


def secret(node: Node) -> str:
    """A non-empty string whose value never appears in an error."""
    value = node.value
    if isinstance(value, str) and value:
        return value
    hint = "quote it to make it a string" if isinstance(value, int | float) else ""
    raise Problem(
        line=node.line, field=node.field, expected="a non-empty string", got=kind(value), hint=hint
    )


def absolute_path(node: Node) -> str:
    """An absolute path (nothing depends on the agent's working directory)."""
    value = text(node, "an absolute path")
    if not value.startswith("/") or "\0" in value:
        raise problem(node, "an absolute path", "paths must start with '/'")
    return value


def duration(node: Node, sign: Sign = Sign.POSITIVE) -> float:
    """A duration in seconds: a number, or a string such as "10s", "2m", "250ms"."""
    return duration_s(node, sign)


def host_port(node: Node, *, multi_host: bool = False) -> HostPort:
    """`host:port`; with `multi_host`, a comma-separated host list before the port."""
    value = node.value
    expected = HOST_PORT_TEXT if not multi_host else f"{HOST_PORT_TEXT} (hosts may be a,b:port)"
    if not isinstance(value, str) or ":" not in value:
        raise problem(node, expected)
    host, _, port_text = value.strip().rpartition(":")
    hosts = host.split(",") if multi_host else [host]
    if not all(_HOST.fullmatch(h) or (multi_host and h == "*") for h in hosts):
        raise problem(node, expected, "the host part is empty or has characters a host cannot")
    if not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
        raise problem(node, expected, "the port must be a number from 1 to 65535")
    plain_hosts = (h[1:-1] if h.startswith("[") else h for h in hosts)
    return HostPort(host=",".join(plain_hosts), port=int(port_text))


def connect_address(fields: Fields, listen: HostPort) -> HostPort:
    """`connect_address`, defaulting to `listen` when that is one concrete host."""
    found = fields.get("connect_address")
    if found is None:
        if listen.host in WILDCARD_HOSTS or "," in listen.host:
            raise Problem(
                line=fields.node.line,
                field=f"{fields.node.field}.connect_address",
                expected=f"{HOST_PORT_TEXT} (required when listen is {listen})",
                got="nothing",
                hint="other nodes cannot connect to a wildcard or a list of addresses",
            )
        return listen
    address = host_port(found)
    if address.host in WILDCARD_HOSTS:
        raise problem(found, "an address other nodes can connect to, not a wildcard")
    return address


def argv(node: Node) -> tuple[str, ...]:
    """An argument list run without a shell; a string without spaces is a one-element list."""
    value = node.value
    if isinstance(value, str) and value and not any(c.isspace() for c in value):
        return (value,)
    if isinstance(value, str):
        raise Problem(
            line=node.line,
            field=node.field,
            expected=ARGV_TEXT,
            got="a command string with spaces" if value else "an empty string",
            hint="pgha never runs a shell: write each argument as a list item, "
            "e.g. [/usr/local/bin/cb, --flag]",
        )
    if value == ():
        raise Problem(line=node.line, field=node.field, expected=ARGV_TEXT, got="an empty list")
    entries = items(node, ARGV_TEXT)
    return tuple(text(entry, "an argument (a non-empty string)") for entry in entries)


def string_list(node: Node, expected: str) -> tuple[str, ...]:
    """A non-empty list of one-line, non-empty strings."""
    out = []
    for entry in items(node, expected):
        line = text(entry, "a non-empty string")
        if "\n" in line:
            raise problem(entry, "a single line")
        out.append(line)
    return tuple(out)


def scalar_mapping(node: Node, forbidden: Mapping[str, str]) -> FrozenDict[Scalar]:
    """PostgreSQL parameters: names mapped to strings, numbers or booleans."""
    if not isinstance(node.value, dict):
        raise problem(node, "a mapping of parameter names to values")
    out: dict[str, Scalar] = {}
    for key, child in node.value.items():
        if key in forbidden:
            raise problem(child, "a parameter pgha does not set itself", forbidden[key])
        if not _PARAMETER.fullmatch(key):
            raise Problem(line=child.line, field=child.field, expected="a parameter name", got=key)
        value = child.value
        if not isinstance(value, str | int | float) or (isinstance(value, str) and "\n" in value):
            raise problem(child, "a string, number or boolean")
        out[key] = value
    return FrozenDict(out)


def options(node: Node, forbidden: Mapping[str, str]) -> tuple[str, ...]:
    """Patroni-style program options: `[data-checksums, {encoding: UTF8}]` -> `--...` argv.

    A mapping `{checkpoint: fast, max-rate: 10M}` (Patroni's other form) is accepted too.
    """
    expected = "a list of options such as [data-checksums, {encoding: UTF8}]"
    if isinstance(node.value, dict):
        return tuple(
            f"--{_option_name(child, key, forbidden)}={_option_value(child)}"
            for key, child in node.value.items()
        )
    out = []
    for entry in items(node, expected, non_empty=False):
        if isinstance(entry.value, str):
            out.append(f"--{_option_name(entry, entry.value, forbidden)}")
        elif isinstance(entry.value, dict) and len(entry.value) == 1:
            ((key, child),) = entry.value.items()
            option = _option_name(child, key, forbidden)
            out.append(f"--{option}={_option_value(child)}")
        else:
            raise problem(entry, "an option name or a mapping of one option to its value")
    return tuple(out)


def _option_name(node: Node, option: str, forbidden: Mapping[str, str]) -> str:
    if option.startswith("-"):
        hint = f"write it without the leading dashes: {option.lstrip('-')!r}"
        raise Problem(
            line=node.line, field=node.field, expected="an option name", got=repr(option), hint=hint
        )
    if not _OPTION.fullmatch(option):
        raise Problem(
            line=node.line,
            field=node.field,
            expected="a long option name such as data-checksums (lowercase, no short options)",
            got=repr(option),
        )
    if option in forbidden:
        raise Problem(
            line=node.line,
            field=node.field,
            expected="an option pgha does not set itself",
            got=repr(option),
            hint=forbidden[option],
        )
    return option


def _option_value(node: Node) -> str:
    value = node.value
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise problem(node, "an option value (a string or a number)")
    text_value = str(value)
    if not text_value or "\n" in text_value:
        raise problem(node, "a one-line, non-empty option value")
    return text_value
