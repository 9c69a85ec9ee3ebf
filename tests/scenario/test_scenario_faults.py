"""Every fault kind in its short and long forms, targets, `for`, labels and ordering."""

from __future__ import annotations

import pytest

from pgha.scenario import (
    Bridge,
    ClockFault,
    ConfigFault,
    DiskFullFault,
    EtcdAction,
    EtcdFault,
    EtcdPutFault,
    FailoverFault,
    FaultKind,
    FaultParams,
    FrozenDict,
    HealFault,
    KillAgentFault,
    KillFault,
    KillPostgresFault,
    LatencyFault,
    LossFault,
    PartitionFault,
    PartitionForm,
    PauseFault,
    PauseWhat,
    RestartFault,
    SwitchoverFault,
    Target,
    TargetRole,
)
from tests.scenario.texts import one_fault, parse_body

N1, N2, N3 = Target.named("n1"), Target.named("n2"), Target.named("n3")
E1, E2 = Target.named("etcd1"), Target.named("etcd2")
PRIMARY = Target.of_role(TargetRole.PRIMARY)
REPLICA = Target.of_role(TargetRole.REPLICA)
SYNC = Target.of_role(TargetRole.SYNC_STANDBY)
ETCD_LEADER = Target.of_role(TargetRole.ETCD_LEADER)
RANDOM = Target.of_role(TargetRole.RANDOM)

FORMS: list[tuple[str, FaultKind, FaultParams]] = [
    ("kill: primary", FaultKind.KILL, KillFault(target=PRIMARY)),
    ("kill: {node: n2}", FaultKind.KILL, KillFault(target=N2)),
    ("crash: n1", FaultKind.KILL, KillFault(target=N1)),
    ("restart: n1", FaultKind.RESTART, RestartFault(target=N1)),
    ("restart: {node: [n1, n2]}", FaultKind.RESTART, RestartFault(target=Target.named("n1", "n2"))),
    ("kill_agent: replica", FaultKind.KILL_AGENT, KillAgentFault(target=REPLICA)),
    ("kill_agent: {node: n3}", FaultKind.KILL_AGENT, KillAgentFault(target=N3)),
    ("kill_postgres: sync_standby", FaultKind.KILL_POSTGRES, KillPostgresFault(target=SYNC)),
    ("kill_postgres: {node: n1}", FaultKind.KILL_POSTGRES, KillPostgresFault(target=N1)),
    ("disk_full: n2", FaultKind.DISK_FULL, DiskFullFault(target=N2)),
    ("disk_full: {node: random}", FaultKind.DISK_FULL, DiskFullFault(target=RANDOM)),
    ("pause: primary", FaultKind.PAUSE, PauseFault(target=PRIMARY, what=PauseWhat.NODE)),
    ("pause: {node: n1}", FaultKind.PAUSE, PauseFault(target=N1, what=PauseWhat.NODE)),
    (
        "pause: {node: n1, what: agent}",
        FaultKind.PAUSE,
        PauseFault(target=N1, what=PauseWhat.AGENT),
    ),
    (
        "pause: {node: n2, what: postgres}",
        FaultKind.PAUSE,
        PauseFault(target=N2, what=PauseWhat.POSTGRES),
    ),
    ("partition: {isolate: primary}", FaultKind.PARTITION, PartitionFault(isolate=PRIMARY)),
    ("partition: {isolate: etcd_leader}", FaultKind.PARTITION, PartitionFault(isolate=ETCD_LEADER)),
    (
        "partition: {isolate: [n1, etcd1]}",
        FaultKind.PARTITION,
        PartitionFault(isolate=Target.named("n1", "etcd1")),
    ),
    (
        "partition: {groups: [[primary, etcd1], [n2, n3]]}",
        FaultKind.PARTITION,
        PartitionFault(groups=((PRIMARY, E1), (N2, N3))),
    ),
    (
        "partition: {from: n1, to: [etcd1, etcd2]}",
        FaultKind.PARTITION,
        PartitionFault(one_way=(N1, Target.named("etcd1", "etcd2"))),
    ),
    (
        "partition: {a: [n1, etcd1], b: [n2, etcd2], bridge: n3}",
        FaultKind.PARTITION,
        PartitionFault(
            bridge=Bridge(a=Target.named("n1", "etcd1"), b=Target.named("n2", "etcd2"), bridge=N3)
        ),
    ),
    ("heal: true", FaultKind.HEAL, HealFault()),
    ("heal: null", FaultKind.HEAL, HealFault()),
    ("heal: {}", FaultKind.HEAL, HealFault()),
    ("clock: {node: n3, jump: 40s}", FaultKind.CLOCK, ClockFault(target=N3, jump_s=40.0)),
    ("clock: {node: n3, jump: -1m}", FaultKind.CLOCK, ClockFault(target=N3, jump_s=-60.0)),
    (
        "clock: {node: etcd1, offset: -2s, drift_ppm: 50}",
        FaultKind.CLOCK,
        ClockFault(target=E1, offset_s=-2.0, drift_ppm=50.0),
    ),
    (
        "clock: {node: primary, drift_ppm: -20.5}",
        FaultKind.CLOCK,
        ClockFault(target=PRIMARY, drift_ppm=-20.5),
    ),
    ("etcd: etcd_leader", FaultKind.ETCD, EtcdFault(member=ETCD_LEADER, action=EtcdAction.KILL)),
    ("etcd: {member: etcd2}", FaultKind.ETCD, EtcdFault(member=E2, action=EtcdAction.KILL)),
    (
        "etcd: {member: random, action: pause}",
        FaultKind.ETCD,
        EtcdFault(member=RANDOM, action=EtcdAction.PAUSE),
    ),
    ("loss: {targets: n1, rate: 0.2}", FaultKind.LOSS, LossFault(targets=N1, rate=0.2)),
    (
        "loss: {targets: [n1, n2], rate: 5%}",
        FaultKind.LOSS,
        LossFault(targets=Target.named("n1", "n2"), rate=0.05),
    ),
    (
        "latency: {targets: etcd_leader, median: 50ms}",
        FaultKind.LATENCY,
        LatencyFault(targets=ETCD_LEADER, median_s=0.05, p99_s=0.05),
    ),
    (
        "latency: {targets: n2, median: 50ms, p99: 0.2}",
        FaultKind.LATENCY,
        LatencyFault(targets=N2, median_s=0.05, p99_s=0.2),
    ),
    ("switchover: null", FaultKind.SWITCHOVER, SwitchoverFault()),
    ("switchover: {}", FaultKind.SWITCHOVER, SwitchoverFault()),
    ("switchover: n2", FaultKind.SWITCHOVER, SwitchoverFault(candidate=N2)),
    (
        "switchover: {leader: primary, candidate: sync_standby, at: 2m}",
        FaultKind.SWITCHOVER,
        SwitchoverFault(leader=PRIMARY, candidate=SYNC, scheduled_at_s=120.0),
    ),
    (
        "switchover: {leader: n1, candidate: n2}",
        FaultKind.SWITCHOVER,
        SwitchoverFault(leader=N1, candidate=N2),
    ),
    ("switchover: {leader: n1}", FaultKind.SWITCHOVER, SwitchoverFault(leader=N1)),
    ("failover: n3", FaultKind.FAILOVER, FailoverFault(candidate=N3)),
    ("failover: {candidate: replica}", FaultKind.FAILOVER, FailoverFault(candidate=REPLICA)),
    (
        "config: {patch: {ttl: 20, loop_wait: 5}}",
        FaultKind.CONFIG,
        ConfigFault(patch=FrozenDict(ttl=20, loop_wait=5)),
    ),
    (
        "config: {patch: {ttl: '20', watchdog: {mode: off}, slots: [a, 1.5, null]}, node: primary}",
        FaultKind.CONFIG,
        ConfigFault(
            patch=FrozenDict(ttl="20", watchdog=FrozenDict(mode=False), slots=("a", 1.5, None)),
            node=PRIMARY,
        ),
    ),
    (
        "config: {patch: {ttl: null}, node: n2}",
        FaultKind.CONFIG,
        ConfigFault(patch=FrozenDict(ttl=None), node=N2),
    ),
    (
        "etcd_put: {key: leader, value: garbage}",
        FaultKind.ETCD_PUT,
        EtcdPutFault(key="leader", value="garbage"),
    ),
    (
        "etcd_put: {key: initialize, value: ''}",
        FaultKind.ETCD_PUT,
        EtcdPutFault(key="initialize", value=""),
    ),
    (
        "etcd_put: {key: members/ghost, value: '{\"role\": 5}'}",
        FaultKind.ETCD_PUT,
        EtcdPutFault(key="members/ghost", value='{"role": 5}'),
    ),
]


@pytest.mark.parametrize(("form", "kind", "params"), FORMS, ids=[form for form, _, _ in FORMS])
def test_fault_forms(form: str, kind: FaultKind, params: FaultParams) -> None:
    spec = one_fault(f"{{at: 1m, {form}}}")

    assert (spec.at_s, spec.kind, spec.params, spec.for_s) == (60.0, kind, params, None)
    assert spec.line == 4


def test_every_fault_kind_has_a_tested_form() -> None:
    assert {kind for _, kind, _ in FORMS} == set(FaultKind)


def test_block_style_fault_entry() -> None:
    scenario = parse_body(
        "faults:\n"
        "  - at: 10s\n"
        "    label: first\n"
        "    partition:\n"
        "      groups:\n"
        "        - [n1]\n"
        "        - [n2, n3]\n"
    )

    (spec,) = scenario.faults
    assert spec.params == PartitionFault(groups=((N1,), (N2, N3)))
    assert (spec.line, spec.label) == (4, "first")


@pytest.mark.parametrize(
    "form",
    [
        "kill: n1",
        "kill_agent: n1",
        "pause: n1",
        "partition: {isolate: n1}",
        "clock: {node: n1, offset: 3s}",
        "etcd: etcd1",
        "loss: {targets: n1, rate: 1}",
        "latency: {targets: n1, median: 1s}",
        "disk_full: n1",
    ],
)
def test_for_undoes_faults_that_can_be_undone(form: str) -> None:
    spec = one_fault(f"{{at: 1m, {form}, for: 1m30s}}")

    assert (spec.for_s, spec.end_s) == (90.0, 150.0)


def test_a_fault_may_end_exactly_at_the_end_of_the_run() -> None:
    assert one_fault("{at: 4m, kill: n1, for: 60}").end_s == 300.0


def test_faults_are_sorted_by_time_and_keep_their_order_at_equal_times() -> None:
    scenario = parse_body(
        "faults:\n"
        "  - {at: 2m, heal: true}\n"
        "  - {at: 1m, kill: n1}\n"
        "  - {at: 2m, kill: n2}\n"
        "  - {at: 0s, kill: n3}\n"
    )

    assert [(spec.at_s, spec.line) for spec in scenario.faults] == [
        (0.0, 7),
        (60.0, 5),
        (120.0, 4),
        (120.0, 6),
    ]


def test_no_faults_and_an_empty_list_mean_the_same() -> None:
    assert parse_body("").faults == parse_body("faults: []\n").faults == ()


@pytest.mark.parametrize(
    ("form", "target"),
    [
        ("kill: n1", N1),
        ("kill: [n1, n3]", Target.named("n1", "n3")),
        ("kill: primary", PRIMARY),
        ("kill: replica", REPLICA),
        ("kill: sync_standby", SYNC),
        ("kill: random", RANDOM),
    ],
)
def test_targets_are_names_lists_of_names_or_roles(form: str, target: Target) -> None:
    params = one_fault(f"{{at: 1m, {form}}}").params

    assert isinstance(params, KillFault)
    assert params.target == target


def test_targets_use_the_names_of_listed_nodes_and_etcd_members() -> None:
    cluster = "cluster: {nodes: [db-a, db-b], etcd: [e1, e2, e3]}\n"

    kill = one_fault("{at: 1m, kill: db-b}", cluster)
    etcd = one_fault("{at: 1m, etcd: e3}", cluster)

    assert kill.params == KillFault(target=Target.named("db-b"))
    assert etcd.params == EtcdFault(member=Target.named("e3"))


def test_etcd_members_on_nodes_are_not_network_hosts_of_their_own() -> None:
    cluster = "cluster: {etcd_placement: on_nodes}\n"

    spec = one_fault("{at: 1m, partition: {isolate: n1}}", cluster)

    assert spec.params == PartitionFault(isolate=N1)


def test_target_str_and_partition_form() -> None:
    assert (str(N1), str(Target.named("n1", "n2")), str(PRIMARY)) == ("n1", "n1,n2", "primary")
    forms = [one_fault(f"{{at: 1m, {form}}}").params for form, _, _ in FORMS[15:21]]
    assert [p.form for p in forms if isinstance(p, PartitionFault)] == [
        PartitionForm.ISOLATE,
        PartitionForm.ISOLATE,
        PartitionForm.ISOLATE,
        PartitionForm.GROUPS,
        PartitionForm.ONE_WAY,
        PartitionForm.BRIDGE,
    ]
