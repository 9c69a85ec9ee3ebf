# The cluster section names every host a scenario may refer to, so it is parsed first. Given as
# counts, nodes are n1..nN and etcd members etcd1..etcdM (the naming); given as lists,
# names must be distinct across nodes and etcd members and must not be a role word, so a target
# such as `primary` is never ambiguous. With etcd_placement `on_nodes`, member i runs on node i.
# The config section is Patroni's dynamic configuration: durations may be strings here and are
# turned into seconds before the engine's own parser (`parse_dynamic_config`) checks ranges.
"""The `cluster:` and `config:` sections."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from pgha.engine.config import (
    DURATION_KEYS,
    ENGINE_KEYS,
    IGNORED_KEYS,
    WATCHDOG_KEYS,
    ConfigError,
    DynamicConfig,
    parse_dynamic_config,
)
from pgha.engine.values import Tags
from pgha.located.tree import (
    Fields,
    Node,
    boolean,
    choice,
    integer,
    items,
    mapping,
    problem,
    text,
)
from pgha.located.units import Sign, duration_s
from pgha.scenario._model import EtcdPlacement, FrozenDict, NodeSpec
from pgha.scenario._targets import ROLE_WORDS, Scope
from pgha.scenario._targets import name as scoped_name

CLUSTER_KEYS = ("nodes", "etcd", "etcd_placement")
NODE_SPEC_KEYS = ("name", "tags", "datacenter")
TAG_KEYS = tuple(f.name for f in fields(Tags))
CONFIG_KEYS = (*ENGINE_KEYS, "watchdog", *sorted(IGNORED_KEYS))
DEFAULT_COUNT = 3
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
_NAME_TEXT = "a name of letters, digits, '_', '.' or '-' starting with a letter, not a role"


@dataclass(frozen=True, slots=True, kw_only=True)
class Cluster:
    """The parsed `cluster:` section."""

    nodes: tuple[NodeSpec, ...]
    etcd: tuple[str, ...]
    placement: EtcdPlacement


def cluster(node: Node | None) -> Cluster:
    """The `cluster:` section; 3 nodes and 3 etcd members when absent."""
    fields_ = mapping(node if node is not None else Node({}, 1, "cluster"), CLUSTER_KEYS)
    node_names, node_entries = _node_entries(fields_.get("nodes"))
    etcd = _etcd_names(fields_.get("etcd"), taken=node_names)
    placement_node = fields_.get("etcd_placement")
    placement = EtcdPlacement.OWN_HOSTS
    if placement_node is not None:
        placement = EtcdPlacement(choice(placement_node, [p.value for p in EtcdPlacement]))
        if placement is EtcdPlacement.ON_NODES and len(etcd) > len(node_names):
            raise problem(placement_node, "own_hosts when there are more etcd members than nodes")
    scope = Scope(what="another node", names=node_names, roles=frozenset())
    specs = tuple(
        _node_spec(name, entry, scope) for name, entry in zip(node_names, node_entries, strict=True)
    )
    return Cluster(nodes=specs, etcd=etcd, placement=placement)


def _counted(node: Node | None, prefix: str) -> tuple[str, ...] | None:
    if node is None:
        return tuple(f"{prefix}{i}" for i in range(1, DEFAULT_COUNT + 1))
    if isinstance(node.value, int) and not isinstance(node.value, bool):
        count = integer(node, 1)
        return tuple(f"{prefix}{i}" for i in range(1, count + 1))
    return None


def _new_name(node: Node, taken: tuple[str, ...]) -> str:
    value = text(node, _NAME_TEXT)
    if not _NAME.fullmatch(value) or value in ROLE_WORDS:
        raise problem(node, _NAME_TEXT)
    if value in taken:
        raise problem(node, "a name not used by another node or etcd member")
    return value


def _node_entries(node: Node | None) -> tuple[tuple[str, ...], tuple[Fields | None, ...]]:
    counted = _counted(node, "n")
    if counted is not None:
        return counted, (None,) * len(counted)
    assert node is not None  # _counted answers for an absent node
    names: list[str] = []
    entries: list[Fields | None] = []
    for item in items(node, "a count of nodes or a list of nodes"):
        entry = mapping(item, NODE_SPEC_KEYS) if isinstance(item.value, dict) else None
        name_node = item if entry is None else entry.required("name", _NAME_TEXT)
        names.append(_new_name(name_node, tuple(names)))
        entries.append(entry)
    return tuple(names), tuple(entries)


def _etcd_names(node: Node | None, taken: tuple[str, ...]) -> tuple[str, ...]:
    counted = _counted(node, "etcd")
    if counted is not None:
        return counted
    assert node is not None  # _counted answers for an absent node
    names: list[str] = []
    for item in items(node, "a count of etcd members or a list of their names"):
        names.append(_new_name(item, (*taken, *names)))
    return tuple(names)


def _node_spec(name: str, entry: Fields | None, others: Scope) -> NodeSpec:
    if entry is None:
        return NodeSpec(name=name)
    tags = entry.get("tags")
    datacenter = entry.get("datacenter")
    return NodeSpec(
        name=name,
        tags=Tags() if tags is None else _tags(tags, name, others),
        datacenter=None if datacenter is None else text(datacenter, "a datacenter name"),
    )


def _tags(node: Node, own_name: str, others: Scope) -> Tags:
    values: dict[str, Any] = {}
    for key, child in mapping(node, TAG_KEYS).entries.items():
        if key == "failover_priority":
            values[key] = integer(child, 0)
        elif key == "replicatefrom":
            values[key] = scoped_name(child, others)
            if values[key] == own_name:
                raise problem(child, "another node's name")
        else:
            values[key] = boolean(child)
    return Tags(**values)


# ---------------------------------------------------------------- config


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The parsed `config:` section: the engine's value and the Patroni keys as given."""

    value: DynamicConfig
    raw: Mapping[str, Any]


def plain(node: Node) -> Any:
    """A node's value without positions: mappings read-only, lists as tuples."""
    if isinstance(node.value, dict):
        return FrozenDict({key: plain(child) for key, child in node.value.items()})
    if isinstance(node.value, tuple):
        return tuple(plain(child) for child in node.value)
    return node.value


def config(node: Node | None) -> Config:
    """The `config:` section, checked by the engine's parser; Patroni's defaults when absent."""
    if node is None:
        return Config(value=parse_dynamic_config({}), raw=FrozenDict())
    raw: dict[str, Any] = {}
    for key, child in mapping(node, CONFIG_KEYS).entries.items():
        raw[key] = _config_value(key, child)
    try:
        value = parse_dynamic_config(raw)
    except ConfigError as err:
        raise problem(_config_node(node, err.key), err.expected) from None
    return Config(value=value, raw=FrozenDict(raw))


def _config_value(key: str, node: Node) -> Any:
    if key in DURATION_KEYS:
        return _config_duration(node)
    if key == "watchdog" and isinstance(node.value, dict):
        entries = mapping(node, WATCHDOG_KEYS).entries
        watchdog = {name: plain(child) for name, child in entries.items()}
        if "safety_margin" in entries:
            watchdog["safety_margin"] = _config_duration(entries["safety_margin"])
        return FrozenDict(watchdog)
    return plain(node)


def _config_duration(node: Node) -> float | int:
    # Numbers pass through as given (so config_raw keeps `ttl: 30`); the engine checks ranges.
    if isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return node.value
    return duration_s(node, Sign.ANY)


def _config_node(node: Node, dotted_key: str) -> Node:
    for part in dotted_key.split("."):
        assert isinstance(node.value, dict)  # the engine names keys we passed it
        node = node.value[part]
    return node
