"""The planner both worlds resolve faults with (pgha/faults): targets to hosts from what a world
answers (asked only what a target needs), the pairs a partition cuts, the operator's asking order
and operator requests; and the two world helpers `heal` and `restart` share. Table-driven, with a
ClusterView written down as data."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from pgha.faults import (
    Applied,
    ConfigChange,
    FaultResult,
    Firing,
    OperatorAsk,
    Resolver,
    Skip,
    asking_order,
    config_ask,
    end_kills_on,
    end_network_faults,
    failover_ask,
    partition_pairs,
    switchover_ask,
)
from pgha.scenario import (
    Bridge,
    ConfigFault,
    FailoverFault,
    FaultKind,
    FaultSpec,
    FrozenDict,
    KillFault,
    LossFault,
    PartitionFault,
    SwitchoverFault,
    Target,
    TargetRole,
)

SEED = 7
NODES = ("n1", "n2", "n3")
ETCD = ("etcd1", "etcd2", "etcd3")


@dataclass
class View:
    """A cluster as data; `asked` lists the questions the planner asked, in order."""

    primary_now: str | None = "n1"
    replicas_now: tuple[str, ...] = ("n3", "n2")
    standbys_now: tuple[str, ...] = ()
    leader_now: str | None = "etcd2"
    hosts: Mapping[str, str] = field(default_factory=dict)  # name -> host (default: itself)
    members: Mapping[str, str] = field(default_factory=dict)  # etcd name -> as the world acts
    asked: list[str] = field(default_factory=list)

    def nodes(self) -> tuple[str, ...]:
        return NODES

    def etcd_members(self) -> tuple[str, ...]:
        return ETCD

    def primary(self) -> str | None:
        self.asked.append("primary")
        return self.primary_now

    def replicas(self) -> tuple[str, ...]:
        self.asked.append("replicas")
        return self.replicas_now

    def sync_standbys(self) -> tuple[str, ...]:
        self.asked.append("sync_standbys")
        return self.standbys_now

    def etcd_leader(self) -> str | None:
        self.asked.append("etcd_leader")
        return self.leader_now

    def host_of(self, name: str) -> str:
        return self.hosts.get(name, name)

    def member(self, name: str) -> str:
        return self.members.get(name, name)


def chosen(pool: tuple[str, ...]) -> str:
    """What the planner's seeded choice among `pool` is (it chooses from the sorted pool)."""
    return random.Random(SEED).choice(sorted(pool))


def role(name: str) -> Target:
    return Target.of_role(TargetRole(name))


ON_NODES = {"etcd1": "n1", "etcd2": "n2", "etcd3": "n3"}  # etcd members on the nodes' hosts

# (target, etcd, the view, the hosts, the questions asked)
RESOLVED: list[tuple[Target, bool, View, tuple[str, ...], list[str]]] = [
    (Target.named("n2", "n1"), False, View(), ("n2", "n1"), []),
    (Target.named("etcd1"), False, View(hosts=ON_NODES), ("n1",), []),
    (Target.named("etcd1"), True, View(hosts=ON_NODES), ("etcd1",), []),  # chaos: by name
    (Target.named("etcd1"), True, View(members=ON_NODES), ("n1",), []),  # sim: by host
    (role("primary"), False, View(), ("n1",), ["primary"]),
    (role("replica"), False, View(), (chosen(("n2", "n3")),), ["replicas"]),
    (role("sync_standby"), False, View(standbys_now=("n3",)), ("n3",), ["sync_standbys"]),
    (
        role("sync_standby"),
        False,
        View(),
        (chosen(("n2", "n3")),),
        ["sync_standbys", "replicas"],  # no synchronous standby: a replica
    ),
    (role("etcd_leader"), True, View(hosts=ON_NODES), ("etcd2",), ["etcd_leader"]),
    (role("etcd_leader"), False, View(hosts=ON_NODES), ("n2",), ["etcd_leader"]),
    (role("random"), False, View(), (chosen(NODES),), []),
    (role("random"), True, View(), (chosen(ETCD),), []),
]


@pytest.mark.parametrize(("target", "etcd", "view", "hosts", "asked"), RESOLVED)
def test_a_target_resolves_to_hosts_asking_only_what_it_needs(
    target: Target, etcd: bool, view: View, hosts: tuple[str, ...], asked: list[str]
) -> None:
    resolver = Resolver(view, random.Random(SEED))
    assert resolver.resolve(target, etcd=etcd) == hosts
    assert view.asked == asked


@pytest.mark.parametrize(
    ("target", "view", "why"),
    [
        (role("primary"), View(primary_now=None), "no primary right now"),
        (role("replica"), View(replicas_now=()), "no replica right now"),
        (role("sync_standby"), View(replicas_now=()), "no sync_standby right now"),
        (role("etcd_leader"), View(leader_now=None), "no etcd_leader right now"),
    ],
)
def test_a_role_with_nobody_in_it_is_skipped(target: Target, view: View, why: str) -> None:
    with pytest.raises(Skip, match=f"^{why}$"):
        Resolver(view, random.Random(SEED)).resolve(target)


def test_a_database_node_target_refuses_other_hosts() -> None:
    resolver = Resolver(View(hosts={"etcd1": "e1"}), random.Random(SEED))
    assert resolver.nodes(Target.named("n3")) == ("n3",)
    with pytest.raises(Skip, match=r"^e1 is not a database node$"):
        resolver.nodes(Target.named("etcd1"))


# ---------------------------------------------------------------- partitions


def _named(target: Target) -> tuple[str, ...]:
    return target.names


N1, N2, N3, E1 = (Target.named(name) for name in ("n1", "n2", "n3", "etcd1"))
EVERYONE = ("n1", "n2", "n3", "etcd1", "client")

# (partition, the pairs it cuts, the hosts it names)
PARTITIONS: list[tuple[PartitionFault, set[tuple[str, str]], tuple[str, ...]]] = [
    (
        PartitionFault(isolate=N1),
        {pair for h in ("n2", "n3", "etcd1", "client") for pair in (("n1", h), (h, "n1"))},
        ("n1",),
    ),
    (
        PartitionFault(groups=((N1,), (N2, E1))),
        {("n1", "n2"), ("n2", "n1"), ("n1", "etcd1"), ("etcd1", "n1")},
        ("n1", "n2", "etcd1"),
    ),
    (
        PartitionFault(one_way=(N1, Target.named("n2", "n3"))),
        {("n1", "n2"), ("n1", "n3")},
        EVERYONE[:3],
    ),
    (PartitionFault(one_way=(N1, Target.named("n1", "n2"))), {("n1", "n2")}, ("n1", "n1", "n2")),
    (
        PartitionFault(bridge=Bridge(a=N1, b=N2, bridge=N3)),
        {("n1", "n2"), ("n2", "n1")},
        EVERYONE[:3],
    ),
]


@pytest.mark.parametrize(("partition", "cut", "hosts"), PARTITIONS)
def test_a_partition_cuts_its_pairs_and_never_a_host_from_itself(
    partition: PartitionFault, cut: set[tuple[str, str]], hosts: tuple[str, ...]
) -> None:
    pairs, named = partition_pairs(partition, _named, EVERYONE)
    assert (set(pairs), named) == (cut, hosts)
    assert len(pairs) == len(cut)  # each pair once


# ---------------------------------------------------------------- operator requests


@pytest.mark.parametrize(
    ("first", "order"),
    [(None, NODES), ("n1", NODES), ("n2", ("n2", "n1", "n3")), ("n3", ("n3", "n1", "n2"))],
)
def test_the_operator_asks_the_named_node_first_then_the_others_in_order(
    first: str | None, order: tuple[str, ...]
) -> None:
    assert asking_order(NODES, first) == order


# (the request, the view, what the planner makes of it)
ASKS: list[tuple[SwitchoverFault | FailoverFault | ConfigFault, View, OperatorAsk]] = [
    (
        SwitchoverFault(),
        View(primary_now="n2"),
        OperatorAsk(leader="n2", first="n2", order=("n2", "n1", "n3")),
    ),
    (
        SwitchoverFault(leader=role("primary"), candidate=N3),
        View(primary_now="n2"),
        OperatorAsk(leader="n2", candidate="n3", first="n2", order=("n2", "n1", "n3")),
    ),
    (
        FailoverFault(candidate=role("replica")),
        View(),
        OperatorAsk(
            candidate=chosen(("n2", "n3")),
            first=chosen(("n2", "n3")),
            order=asking_order(NODES, chosen(("n2", "n3"))),
        ),
    ),
    (ConfigFault(patch=FrozenDict({"ttl": 20})), View(), OperatorAsk(order=NODES)),
    (
        ConfigFault(patch=FrozenDict({"ttl": 20}), node=N3),
        View(),
        OperatorAsk(first="n3", order=("n3", "n1", "n2")),
    ),
]


@pytest.mark.parametrize(("request_", "view", "ask"), ASKS)
def test_an_operator_request_resolves_its_parties_and_asking_order(
    request_: SwitchoverFault | FailoverFault | ConfigFault, view: View, ask: OperatorAsk
) -> None:
    resolver = Resolver(view, random.Random(SEED))
    if isinstance(request_, SwitchoverFault):
        assert switchover_ask(request_, resolver) == ask
    elif isinstance(request_, FailoverFault):
        assert failover_ask(request_, resolver) == ask
    else:
        assert config_ask(request_, resolver) == ask


def test_a_switchover_without_a_primary_is_skipped() -> None:
    with pytest.raises(Skip, match=r"^no primary to switch over from$"):
        switchover_ask(SwitchoverFault(), Resolver(View(primary_now=None), random.Random(SEED)))


def test_parties_and_asked_are_the_hosts_a_request_records() -> None:
    assert OperatorAsk(leader="n1", candidate="n1", order=NODES).parties == ("n1", "n1")
    assert OperatorAsk(candidate="n2", order=NODES).parties == ("n2",)
    assert OperatorAsk(first="n3", order=NODES).asked == ("n3",)
    assert OperatorAsk(order=NODES).asked == ()


def test_a_config_change_sends_its_patch_as_plain_json() -> None:
    patch = FrozenDict({"ttl": 20, "tags": (1, FrozenDict({"a": None}))})
    change = ConfigChange.of(4, ConfigFault(patch=patch), OperatorAsk(order=NODES))
    assert change == ConfigChange(4, {"ttl": 20, "tags": [1, {"a": None}]}, NODES)
    assert type(change.patch) is dict


# ---------------------------------------------------------------- what heal and restart end


@dataclass
class World:
    """A FaultWorld as data: `end` records what it ended."""

    active: list[Applied] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)

    def apply(self, spec: FaultSpec) -> FaultResult:
        raise NotImplementedError

    def end(self, applied: Applied) -> float | None:
        self.ended.append(applied.id)
        return 0.0

    def heal_everything(self) -> float:
        return 0.0


def _active(fid: int, params: KillFault | LossFault | PartitionFault, *hosts: str) -> Applied:
    kinds = {
        KillFault: FaultKind.KILL,
        LossFault: FaultKind.LOSS,
        PartitionFault: FaultKind.PARTITION,
    }
    spec = FaultSpec(at_s=0.0, kind=kinds[type(params)], params=params)
    return Firing(id=fid, spec=spec).applied(hosts, lambda: None, at=0.0)


def test_heal_ends_the_network_faults_and_restart_the_kills_on_its_machines() -> None:
    world = World(
        active=[
            _active(1, KillFault(target=N1), "n1"),
            _active(2, PartitionFault(isolate=N2), "n2"),
            _active(3, KillFault(target=N3), "n3"),
            _active(4, LossFault(targets=N1, rate=0.5), "n1"),
        ]
    )
    end_network_faults(world)
    assert world.ended == [2, 4]
    world.ended.clear()
    end_kills_on(world, ("n3", "n2"))
    assert world.ended == [3]
