# The planner both worlds resolve a fault with, when it fires. Targets stay symbolic in a scenario
# (`primary`, `replica`, `etcd_leader`, names): the world answers what it knows now through a
# ClusterView (which node PostgreSQL really runs as primary on, which nodes run as replicas, the
# synchronous standbys, the etcd leader), and the planner turns a target into the hosts to act on,
# choosing among several with the run's seeded random stream. It does no I/O itself: a question
# is asked of the view only when the target needs its answer (in the chaos world an answer costs a
# round trip to every node), in the same order in both worlds, so the same seed draws the same
# choices. The planner also says which host pairs a partition cuts, and the order an operator asks
# the agents' REST APIs in (the leader or the candidate first, then the others in their order).
"""Resolving fault targets and operator requests: the pure planner shared by sim and chaos."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from pgha.faults._world import Skip
from pgha.scenario import (
    ConfigFault,
    FailoverFault,
    PartitionFault,
    SwitchoverFault,
    Target,
    TargetRole,
)

Pair = tuple[str, str]  # (src, dst): messages from src to dst are dropped
Document = dict[str, Any]  # a JSON object


class ClusterView(Protocol):
    """What a world answers about its cluster now, when a target needs it."""

    def nodes(self) -> Sequence[str]:
        """The database nodes, in the scenario's order."""
        ...

    def etcd_members(self) -> Sequence[str]:
        """The etcd members, as the world names them."""
        ...

    def primary(self) -> str | None:
        """The node PostgreSQL runs as primary on now (the first in the nodes' order)."""
        ...

    def replicas(self) -> Iterable[str]:
        """The nodes that run now, not as primary."""
        ...

    def sync_standbys(self) -> Iterable[str]:
        """The synchronous standbys now."""
        ...

    def etcd_leader(self) -> str | None:
        """The etcd member that leads now."""
        ...

    def host_of(self, name: str) -> str:
        """The host a scenario name lives on (etcd members may share node hosts)."""
        ...

    def member(self, name: str) -> str:
        """An etcd member's scenario name as the world acts on it."""
        ...


class Resolver:
    """Targets -> hosts (or etcd members), resolved now from a ClusterView with a seeded RNG."""

    def __init__(self, view: ClusterView, rng: random.Random) -> None:
        self.view = view
        self._rng = rng

    def resolve(self, target: Target, *, etcd: bool = False) -> tuple[str, ...]:
        """The hosts of a target (the etcd members, with `etcd`). Raises Skip when a role has
        nobody in it right now."""
        if target.role is None:
            locate = self.view.member if etcd else self.view.host_of
            return tuple(locate(name) for name in target.names)
        found = _PICK[target.role](self, etcd)
        if found is None:
            raise Skip(f"no {target.role.value} right now")
        return (found if etcd else self.view.host_of(found),)

    def one(self, target: Target) -> str:
        """A target of a field that takes one host."""
        return self.resolve(target)[0]

    def nodes(self, target: Target) -> tuple[str, ...]:
        """A target that must be database nodes (Skip otherwise)."""
        hosts = self.resolve(target)
        nodes = self.view.nodes()
        missing = [host for host in hosts if host not in nodes]
        if missing:
            raise Skip(f"{', '.join(missing)} is not a database node")
        return hosts

    def primary(self) -> str | None:
        """The primary now, if there is one."""
        return self.view.primary()

    def _choice(self, names: Iterable[str]) -> str | None:
        pool = sorted(names)
        return self._rng.choice(pool) if pool else None

    def _primary(self, _: bool) -> str | None:
        return self.view.primary()

    def _replica(self, _: bool) -> str | None:
        return self._choice(self.view.replicas())

    def _sync_standby(self, etcd: bool) -> str | None:
        standby = self._choice(self.view.sync_standbys())
        return standby if standby is not None else self._replica(etcd)

    def _etcd_leader(self, _: bool) -> str | None:
        return self.view.etcd_leader()

    def _random(self, etcd: bool) -> str | None:
        return self._choice(self.view.etcd_members() if etcd else self.view.nodes())


_PICK: Mapping[TargetRole, Callable[[Resolver, bool], str | None]] = MappingProxyType(
    {
        TargetRole.PRIMARY: Resolver._primary,
        TargetRole.REPLICA: Resolver._replica,
        TargetRole.SYNC_STANDBY: Resolver._sync_standby,
        TargetRole.ETCD_LEADER: Resolver._etcd_leader,
        TargetRole.RANDOM: Resolver._random,
    }
)


# ---------------------------------------------------------------- partitions


def split(groups: Sequence[Sequence[str]]) -> list[Pair]:
    """Hosts in different groups cannot reach each other, both ways."""
    pairs: list[Pair] = []
    for i, group in enumerate(groups):
        for other in groups[i + 1 :]:
            for a in group:
                pairs.extend(pair for b in other for pair in ((a, b), (b, a)))
    return pairs


def partition_pairs(
    p: PartitionFault, resolve: Callable[[Target], tuple[str, ...]], everyone: Sequence[str]
) -> tuple[list[Pair], tuple[str, ...]]:
    """The directed pairs a partition cuts and the hosts it names.

    `resolve` turns a target into host names when the fault fires; `everyone` is every host that
    can send (`isolate` cuts its targets off from all of them, clients and HAProxy included). A
    host is never cut off from itself.
    """
    if p.isolate is not None:
        inside = resolve(p.isolate)
        return split([list(inside), [h for h in everyone if h not in inside]]), inside
    if p.groups is not None:
        groups = [[h for t in group for h in resolve(t)] for group in p.groups]
        return split(groups), tuple(h for g in groups for h in g)
    if p.one_way is not None:
        src, dst = resolve(p.one_way[0]), resolve(p.one_way[1])
        return [(s, d) for s in src for d in dst if s != d], (*src, *dst)
    assert p.bridge is not None
    a, b = resolve(p.bridge.a), resolve(p.bridge.b)
    return split([list(a), list(b)]), (*a, *b, *resolve(p.bridge.bridge))


# ---------------------------------------------------------------- operator requests


def asking_order(nodes: Sequence[str], first: str | None) -> tuple[str, ...]:
    """Every database node, `first` first: the order an operator asks their REST APIs in until
    one answers (the nodes in their order when nobody is asked first)."""
    if first is None:
        return tuple(nodes)
    return (first, *(node for node in nodes if node != first))


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatorAsk:
    """An operator request, resolved: the leader and candidate it names, the node asked first
    and the order the agents' REST APIs are asked in."""

    leader: str | None = None
    candidate: str | None = None
    first: str | None = None
    order: tuple[str, ...]

    @property
    def parties(self) -> tuple[str, ...]:
        """The leader and the candidate it names, in that order (the simulator records both
        even when a drawn candidate is the leader itself)."""
        return tuple(host for host in (self.leader, self.candidate) if host)

    @property
    def asked(self) -> tuple[str, ...]:
        """The node asked first, if one was named (the hosts a `config` change records)."""
        return () if self.first is None else (self.first,)


def switchover_ask(p: SwitchoverFault, resolver: Resolver) -> OperatorAsk:
    """From the named leader (else the primary now; Skip without one) to the candidate, if
    named; the leader is asked first."""
    leader = resolver.one(p.leader) if p.leader is not None else resolver.primary()
    if leader is None:
        raise Skip("no primary to switch over from")
    candidate = resolver.one(p.candidate) if p.candidate is not None else None
    order = asking_order(resolver.view.nodes(), leader)
    return OperatorAsk(leader=leader, candidate=candidate, first=leader, order=order)


def failover_ask(p: FailoverFault, resolver: Resolver) -> OperatorAsk:
    """To the candidate, which is asked first."""
    candidate = resolver.one(p.candidate)
    order = asking_order(resolver.view.nodes(), candidate)
    return OperatorAsk(candidate=candidate, first=candidate, order=order)


def config_ask(p: ConfigFault, resolver: Resolver) -> OperatorAsk:
    """`node` first if named (a database node), else the nodes in their order."""
    asked = resolver.nodes(p.node)[0] if p.node is not None else None
    return OperatorAsk(first=asked, order=asking_order(resolver.view.nodes(), asked))


@dataclass
class ConfigChange:
    """One `config` fault in flight: the patch as sent, the asking order, and the document its
    accepted change replaced (set when it is answered; `for` puts it back)."""

    fault_id: int
    patch: Document
    order: tuple[str, ...]
    previous: Document | None = None

    @classmethod
    def of(cls, fault_id: int, p: ConfigFault, ask: OperatorAsk) -> ConfigChange:
        """The change `p` makes: its patch as sent (plain JSON objects and arrays)."""
        patch: Document = json.loads(json.dumps(p.patch))
        return cls(fault_id, patch, ask.order)
