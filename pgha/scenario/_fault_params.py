# Each fault kind's parameters, parsed from the value under its key in a `faults:` entry. A kind
# has a short form (a target, e.g. `kill: primary`) where one makes sense and a long form (a
# mapping). The registry (pgha/scenario/_kinds.py) names the parser of every kind; `fault`
# (_faults.py) reads at, for and label around it. An operator's `config` patch and an `etcd_put`
# value are the operator's mistakes to make: they are checked only for being representable (JSON;
# text), never for being a good configuration, since what the cluster does with a bad one is what
# such a scenario tests.
"""Parsing one fault kind's parameters."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from math import isfinite
from types import MappingProxyType
from typing import Any

from pgha.located.tree import Node, choice, items, mapping, problem, suggest
from pgha.located.units import (
    LATENCY_KEYS,
    Sign,
    duration_s,
    finite_number,
    fraction,
    median_p99_s,
)
from pgha.scenario._model import (
    CLUSTER_KEYS,
    MEMBERS_PREFIX,
    Bridge,
    ClockFault,
    ConfigFault,
    DiskFullFault,
    EtcdAction,
    EtcdFault,
    EtcdPutFault,
    FailoverFault,
    FaultParams,
    FrozenDict,
    HealFault,
    KillAgentFault,
    KillFault,
    KillPostgresFault,
    LatencyFault,
    LossFault,
    PartitionFault,
    PauseFault,
    PauseWhat,
    RestartFault,
    SwitchoverFault,
    Target,
)
from pgha.scenario._targets import Scope, Scopes, target

# The key tuples are typed rather than inferred: `pgha compile` type-checks this package inside
# the compiled modules' import cycle, where mypy cannot infer a constant that _kinds.py reads
# through the module (parse.PAUSE_KEYS) before this module is analysed.
NODE_KEYS: tuple[str, ...] = ("node",)
PAUSE_KEYS: tuple[str, ...] = ("node", "what")
PARTITION_FORMS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "isolate": ("isolate",),
        "groups": ("groups",),
        "one_way": ("from", "to"),
        "bridge": ("a", "b", "bridge"),
    }
)
PARTITION_KEYS: tuple[str, ...] = tuple(key for keys in PARTITION_FORMS.values() for key in keys)
CLOCK_KEYS: tuple[str, ...] = ("node", "offset", "drift_ppm", "jump")
ETCD_KEYS: tuple[str, ...] = ("member", "action")
LOSS_KEYS: tuple[str, ...] = ("targets", "rate")
LATENCY_FAULT_KEYS: tuple[str, ...] = ("targets", *LATENCY_KEYS)
SWITCHOVER_KEYS: tuple[str, ...] = ("leader", "candidate", "at")
FAILOVER_KEYS: tuple[str, ...] = ("candidate",)
CONFIG_FAULT_KEYS: tuple[str, ...] = ("patch", "node")
MEMBER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")  # a node name's syntax
ETCD_PUT_KEYS: tuple[str, ...] = ("key", "value")
PATCH_TEXT = (
    "a non-empty mapping of /config keys to change, as PATCH /config sends it (null deletes a key)"
)
JSON_TEXT = "a JSON value (a string, a finite number, true, false, null, a list or a mapping)"
KEY_TEXT = f"a cluster key: {', '.join(CLUSTER_KEYS)} or {MEMBERS_PREFIX}<name>"
VALUE_TEXT = "the value as text (quote it: etcdctl puts bytes, e.g. value: '{\"ttl\": 20}')"


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultContext:
    """What fault parsing needs from the rest of the scenario."""

    scopes: Scopes
    duration_s: float


# A kind's parser: the value under its key, the context, and the fault's `at` (a switchover's
# scheduled time must not be before it).
Parser = Callable[[Node, FaultContext, float], FaultParams]


def end_text(ctx: FaultContext) -> str:
    """The end of the run, for error messages."""
    return f"the duration ({ctx.duration_s:g}s)"


def at_time(node: Node, ctx: FaultContext) -> float:
    """A time in the run: at or after 0, before its end."""
    at_s = duration_s(node, Sign.NON_NEGATIVE)
    if at_s >= ctx.duration_s:
        raise problem(node, f"a time before the end of the run, {end_text(ctx)}")
    return at_s


# ---------------------------------------------------------------- node faults


def _node_target(node: Node, scope: Scope) -> Target:
    if isinstance(node.value, dict):
        fields = mapping(node, NODE_KEYS)
        return target(fields.required("node", scope.expected(many=True)), scope)
    return target(node, scope)


def kill(node: Node, ctx: FaultContext, at_s: float) -> KillFault:
    """The node's machine dies: a node target, short or long form."""
    return KillFault(target=_node_target(node, ctx.scopes.node))


def restart(node: Node, ctx: FaultContext, at_s: float) -> RestartFault:
    """The node's machine starts again (or reboots): a node target."""
    return RestartFault(target=_node_target(node, ctx.scopes.node))


def kill_agent(node: Node, ctx: FaultContext, at_s: float) -> KillAgentFault:
    """The agent process dies: a node target."""
    return KillAgentFault(target=_node_target(node, ctx.scopes.node))


def kill_postgres(node: Node, ctx: FaultContext, at_s: float) -> KillPostgresFault:
    """PostgreSQL crashes once: a node target."""
    return KillPostgresFault(target=_node_target(node, ctx.scopes.node))


def disk_full(node: Node, ctx: FaultContext, at_s: float) -> DiskFullFault:
    """The data disk fills up: a node target."""
    return DiskFullFault(target=_node_target(node, ctx.scopes.node))


def pause(node: Node, ctx: FaultContext, at_s: float) -> PauseFault:
    """A node target (the whole node), or {node, what}."""
    scope = ctx.scopes.node
    if not isinstance(node.value, dict):
        return PauseFault(target=target(node, scope))
    fields = mapping(node, PAUSE_KEYS)
    what = fields.get("what")
    return PauseFault(
        target=target(fields.required("node", scope.expected(many=True)), scope),
        what=PauseWhat.NODE if what is None else PauseWhat(choice(what, _values(PauseWhat))),
    )


def _values(enum_type: type[PauseWhat] | type[EtcdAction]) -> tuple[str, ...]:
    return tuple(member.value for member in enum_type)


# ---------------------------------------------------------------- partition


def partition(node: Node, ctx: FaultContext, at_s: float) -> PartitionFault:
    """One of four forms: {isolate}, {groups}, {from, to} or {a, b, bridge}."""
    fields = mapping(node, PARTITION_KEYS)
    forms = [
        form for form, keys in PARTITION_FORMS.items() if any(k in fields.entries for k in keys)
    ]
    if len(forms) != 1:
        expected = "one form: {isolate}, {groups}, {from, to} or {a, b, bridge}"
        raise problem(node, expected)
    scope = ctx.scopes.host
    if forms[0] == "isolate":
        return PartitionFault(isolate=_isolate(fields.entries["isolate"], scope))
    if forms[0] == "groups":
        return PartitionFault(groups=_groups(fields.entries["groups"], scope))
    sides = {
        key: target(fields.required(key, scope.expected(many=True)), scope)
        for key in PARTITION_FORMS[forms[0]]
    }
    _disjoint([(fields.entries[key], side) for key, side in sides.items()])
    if forms[0] == "one_way":
        return PartitionFault(one_way=(sides["from"], sides["to"]))
    return PartitionFault(bridge=Bridge(a=sides["a"], b=sides["b"], bridge=sides["bridge"]))


def _isolate(node: Node, scope: Scope) -> Target:
    isolated = target(node, scope)
    if set(isolated.names) >= set(scope.names):
        raise problem(node, "some hosts to isolate, not every host")
    return isolated


def _groups(node: Node, scope: Scope) -> tuple[tuple[Target, ...], ...]:
    group_nodes = items(node, "a list of at least two groups (lists of hosts)")
    if len(group_nodes) < 2:
        raise problem(node, "a list of at least two groups (lists of hosts)")
    groups: list[tuple[Target, ...]] = []
    placed: list[tuple[Node, Target]] = []
    for group_node in group_nodes:
        members = [
            (item, target(item, scope, many=False)) for item in items(group_node, "a list of hosts")
        ]
        placed.extend(members)
        groups.append(tuple(member for _, member in members))
    _disjoint(placed)
    return tuple(groups)


def _disjoint(sides: list[tuple[Node, Target]]) -> None:
    # A host is never cut off from itself: no host (or role) may appear on two sides.
    seen: set[str] = set()
    for node, side in sides:
        keys = [side.role.value] if side.role is not None else list(side.names)
        for key in keys:
            if key in seen:
                raise problem(node, f"hosts on one side only ({key} is on two sides)")
            seen.add(key)


# ---------------------------------------------------------------- clock, etcd, network


def heal(node: Node, ctx: FaultContext, at_s: float) -> HealFault:
    """true, null or {}: heal takes no parameters."""
    if node.value is None or node.value is True or node.value == {}:
        return HealFault()
    raise problem(node, "true, null or {} (heal takes no parameters)")


def clock(node: Node, ctx: FaultContext, at_s: float) -> ClockFault:
    """A host and either a jump, or an offset and/or a drift."""
    fields = mapping(node, CLOCK_KEYS)
    scope = ctx.scopes.host
    host = target(fields.required("node", scope.expected(many=True)), scope)
    offset, drift, jump = (fields.get(key) for key in ("offset", "drift_ppm", "jump"))
    if jump is not None and (offset, drift) != (None, None):
        raise problem(node, "either jump, or offset and/or drift_ppm")
    if (offset, drift, jump) == (None, None, None):
        raise problem(node, "one of offset, drift_ppm or jump")
    return ClockFault(
        target=host,
        offset_s=None if offset is None else duration_s(offset, Sign.ANY),
        drift_ppm=None if drift is None else finite_number(drift, "a drift in ppm (a number)"),
        jump_s=None if jump is None else duration_s(jump, Sign.NON_ZERO),
    )


def etcd(node: Node, ctx: FaultContext, at_s: float) -> EtcdFault:
    """An etcd member (killed), or {member, action}."""
    scope = ctx.scopes.etcd
    if not isinstance(node.value, dict):
        return EtcdFault(member=target(node, scope, many=False))
    fields = mapping(node, ETCD_KEYS)
    action = fields.get("action")
    return EtcdFault(
        member=target(fields.required("member", scope.expected(many=False)), scope, many=False),
        action=EtcdAction.KILL
        if action is None
        else EtcdAction(choice(action, _values(EtcdAction))),
    )


def loss(node: Node, ctx: FaultContext, at_s: float) -> LossFault:
    """{targets, rate}."""
    fields = mapping(node, LOSS_KEYS)
    scope = ctx.scopes.host
    return LossFault(
        targets=target(fields.required("targets", scope.expected(many=True)), scope),
        rate=fraction(fields.required("rate", "a fraction such as 0.2 or 20%"), allow_zero=False),
    )


def latency(node: Node, ctx: FaultContext, at_s: float) -> LatencyFault:
    """{targets, median, p99} (p99 defaults to the median)."""
    fields = mapping(node, LATENCY_FAULT_KEYS)
    scope = ctx.scopes.host
    rest = {key: child for key, child in fields.entries.items() if key != "targets"}
    median_s, p99_s = median_p99_s(Node(rest, node.line, node.field), Sign.POSITIVE)
    return LatencyFault(
        targets=target(fields.required("targets", scope.expected(many=True)), scope),
        median_s=median_s,
        p99_s=p99_s,
    )


# ---------------------------------------------------------------- operator actions


def switchover(node: Node, ctx: FaultContext, at_s: float) -> SwitchoverFault:
    """Nothing, a candidate, or {leader, candidate, at}."""
    if node.value is None or node.value == {}:
        return SwitchoverFault()
    if not isinstance(node.value, dict):
        return SwitchoverFault(candidate=target(node, ctx.scopes.candidate, many=False))
    fields = mapping(node, SWITCHOVER_KEYS)
    leader, candidate, scheduled = (fields.get(key) for key in SWITCHOVER_KEYS)
    spec = SwitchoverFault(
        leader=None if leader is None else target(leader, ctx.scopes.leader, many=False),
        candidate=None
        if candidate is None
        else target(candidate, ctx.scopes.candidate, many=False),
        scheduled_at_s=None if scheduled is None else _scheduled(scheduled, ctx, at_s),
    )
    if candidate is not None and spec.leader is not None and spec.leader == spec.candidate:
        raise problem(candidate, "a candidate other than the leader")
    return spec


def _scheduled(node: Node, ctx: FaultContext, at_s: float) -> float:
    scheduled_s = at_time(node, ctx)
    if scheduled_s < at_s:
        raise problem(node, f"a scheduled time at or after the fault's at ({at_s:g}s)")
    return scheduled_s


def failover(node: Node, ctx: FaultContext, at_s: float) -> FailoverFault:
    """A candidate, or {candidate}."""
    scope = ctx.scopes.candidate
    if isinstance(node.value, dict):
        node = mapping(node, FAILOVER_KEYS).required("candidate", scope.expected(many=False))
    return FailoverFault(candidate=target(node, scope, many=False))


# ---------------------------------------------------------------- operator mistakes, DCS garbage


def config(node: Node, ctx: FaultContext, at_s: float) -> ConfigFault:
    """{patch, node}: a JSON merge patch as PATCH /config sends it."""
    if isinstance(node.value, dict) and "patch" not in node.value:
        unknown = [key for key in node.value if key not in CONFIG_FAULT_KEYS]
        if unknown:  # `config: {ttl: 20}`: the change goes under `patch`
            child = node.value[unknown[0]]
            hint = f"write config: {{patch: {{{unknown[0]}: ...}}}}"
            raise problem(child, "one of the keys patch, node", hint)
    fields = mapping(node, CONFIG_FAULT_KEYS)
    patch = fields.required("patch", PATCH_TEXT)
    if not isinstance(patch.value, dict) or not patch.value:
        raise problem(patch, PATCH_TEXT)
    asked = fields.get("node")
    scope = ctx.scopes.node
    return ConfigFault(
        patch=json_value(patch),
        node=None if asked is None else target(asked, scope, many=False),
    )


def json_value(node: Node) -> Any:
    """A JSON value as the scenario holds it: mappings read-only, lists as tuples."""
    value = node.value
    if isinstance(value, dict):
        return FrozenDict({key: json_value(child) for key, child in value.items()})
    if isinstance(value, tuple):
        return tuple(json_value(child) for child in value)
    if isinstance(value, float) and not isfinite(value):
        raise problem(node, JSON_TEXT, "JSON has no infinity or NaN")
    if value is None or isinstance(value, str | int | float):  # bool is an int
        return value
    raise problem(node, JSON_TEXT, "quote it to send it as a string")


def etcd_put(node: Node, ctx: FaultContext, at_s: float) -> EtcdPutFault:
    """{key, value}: a cluster key and the bytes to put into it, as text."""
    fields = mapping(node, ETCD_PUT_KEYS)
    key = fields.required("key", KEY_TEXT)
    value = fields.required("value", VALUE_TEXT)
    if not isinstance(value.value, str):
        raise problem(value, VALUE_TEXT)
    return EtcdPutFault(key=cluster_key(key), value=value.value)


def cluster_key(node: Node) -> str:
    """One key under the cluster's prefix: a fixed key or `members/<name>` (any name: a member
    key of a node that does not exist is garbage too)."""
    word = node.value
    if not isinstance(word, str):
        raise problem(node, KEY_TEXT)
    member = word.removeprefix(MEMBERS_PREFIX)
    if word in CLUSTER_KEYS or (member != word and MEMBER_NAME.fullmatch(member)):
        return word
    hint = suggest(word, [*CLUSTER_KEYS, MEMBERS_PREFIX])
    if member != word:
        hint = "a member's name is letters, digits, '_', '.' or '-', starting with a letter"
    raise problem(node, KEY_TEXT, hint)
