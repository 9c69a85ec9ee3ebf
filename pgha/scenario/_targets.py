# Targets are checked against the cluster as far as a file can be: names must exist and roles must
# make sense for the fault (`etcd_leader` names an etcd member, so it cannot be killed with `kill`,
# which takes database nodes). Whether `primary` and `n2` are the same host is only known when the
# fault fires, so that is the world's business.
"""Which names and roles a fault may target, and parsing one target."""

from __future__ import annotations

from dataclasses import dataclass

from pgha.located.tree import Node, items, problem, suggest
from pgha.scenario._model import EtcdPlacement
from pgha.scenario._values import Target, TargetRole

ROLE_WORDS = frozenset(role.value for role in TargetRole)
NODE_ROLES = frozenset(
    {TargetRole.PRIMARY, TargetRole.REPLICA, TargetRole.SYNC_STANDBY, TargetRole.RANDOM}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Scope:
    """The names and roles one target field accepts."""

    what: str  # "a node", "a host", "an etcd member"
    names: tuple[str, ...]
    roles: frozenset[TargetRole]

    def expected(self, *, many: bool) -> str:
        """What the field expects, for error messages."""
        listed = ", ".join(self.names)
        roles = ", ".join(role.value for role in TargetRole if role in self.roles)
        lists = ", a list of them" if many else ""
        if not roles:
            return f"{self.what} ({listed}){lists}"
        return f"{self.what} ({listed}){lists} or a role ({roles})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Scopes:
    """Every scope of one cluster."""

    node: Scope
    host: Scope
    etcd: Scope
    candidate: Scope
    leader: Scope


def scopes(nodes: tuple[str, ...], etcd: tuple[str, ...], placement: EtcdPlacement) -> Scopes:
    """The scopes of a cluster; etcd members are network hosts only on hosts of their own."""
    hosts = nodes + etcd if placement is EtcdPlacement.OWN_HOSTS else nodes
    return Scopes(
        node=Scope(what="a node", names=nodes, roles=NODE_ROLES),
        host=Scope(what="a host", names=hosts, roles=frozenset(TargetRole)),
        etcd=Scope(
            what="an etcd member",
            names=etcd,
            roles=frozenset({TargetRole.ETCD_LEADER, TargetRole.RANDOM}),
        ),
        candidate=Scope(
            what="a node",
            names=nodes,
            roles=frozenset({TargetRole.REPLICA, TargetRole.SYNC_STANDBY, TargetRole.RANDOM}),
        ),
        leader=Scope(what="a node", names=nodes, roles=frozenset({TargetRole.PRIMARY})),
    )


def _word(node: Node, scope: Scope, *, many: bool) -> str:
    value = node.value
    if not isinstance(value, str) or not value:
        raise problem(node, scope.expected(many=many))
    return value


def _role(node: Node, word: str, scope: Scope, *, many: bool) -> Target:
    role = TargetRole(word)
    if role not in scope.roles:
        hint = f"{word} is not a role {scope.what} can be chosen by"
        raise problem(node, scope.expected(many=many), hint)
    return Target.of_role(role)


def name(node: Node, scope: Scope, *, many: bool = False) -> str:
    """One name from the scope (no role)."""
    word = _word(node, scope, many=many)
    if word not in scope.names:
        raise problem(node, scope.expected(many=many), suggest(word, scope.names))
    return word


def target(node: Node, scope: Scope, *, many: bool = True) -> Target:
    """A name, a list of names (when `many`), or a role allowed by the scope."""
    if many and isinstance(node.value, tuple):
        return Target.named(*names(node, scope))
    word = _word(node, scope, many=many)
    if word in ROLE_WORDS:
        return _role(node, word, scope, many=many)
    return Target.named(name(node, scope, many=many))


def names(node: Node, scope: Scope) -> tuple[str, ...]:
    """A non-empty list of distinct names from the scope."""
    found: list[str] = []
    for item in items(node, f"a non-empty list of names of {scope.what}"):
        if isinstance(item.value, str) and item.value in ROLE_WORDS:
            raise problem(item, f"names of {scope.what}", "a role stands alone, not in a list")
        word = name(item, scope, many=True)
        if word in found:
            raise problem(item, f"each name once in {node.field}")
        found.append(word)
    return tuple(found)
