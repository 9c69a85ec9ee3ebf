"""Units (durations, rates, fractions), the cluster, config, network, clocks, workload, checks
and the exploration space."""

from __future__ import annotations

import math

import pytest

from pgha.engine.config import DynamicConfig, SyncMode, WatchdogMode
from pgha.engine.values import Tags
from pgha.scenario import (
    ChecksSpec,
    ClockSpec,
    EtcdPlacement,
    ExploreSpec,
    FaultKind,
    HAProxySpec,
    LatencySpec,
    NetworkSpec,
    NodeSpec,
    ParamRange,
    PostgresSpec,
    WorkloadSpec,
    WorkloadVia,
    parse_scenario,
)
from tests.scenario.texts import EXPLORE_EXAMPLE, parse_body


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5m", 300.0),
        ("90s", 90.0),
        ("1.5s", 1.5),
        ("250ms", 0.25),
        ("2h", 7200.0),
        ("1h30m", 5400.0),
        ("1m30.5s", 90.5),
        ("1d", 86400.0),
        ("500us", 0.0005),
        (".5s", 0.5),
        ("3.", 3.0),
        ("42", 42.0),
        ("0.25", 0.25),
        (" 10s ", 10.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert math.isclose(parse_scenario(f"name: t\nduration: {text}\n").duration_s, seconds)


@pytest.mark.parametrize(
    ("text", "per_s"),
    [
        ("10/s", 10.0),
        ("600/m", 10.0),
        ("36000/h", 10.0),
        ("30/min", 0.5),
        ("5/sec", 5.0),
        ("2.5 / s", 2.5),
        ("7", 7.0),
        ("0.5", 0.5),
    ],
)
def test_rates(text: str, per_s: float) -> None:
    workload = parse_body(f"workload: {{rate: {text}}}\n").workload
    assert workload is not None
    assert math.isclose(workload.rate_per_s, per_s)


@pytest.mark.parametrize(
    ("text", "share"), [("0", 0.0), ("0.25", 0.25), ("1", 1.0), ("2%", 0.02), ("100%", 1.0)]
)
def test_fractions(text: str, share: float) -> None:
    assert math.isclose(parse_body(f"network: {{loss: {text}}}\n").network.loss, share)


def test_defaults_without_optional_sections() -> None:
    scenario = parse_body("")

    assert scenario.description == ""
    assert scenario.seed == 0
    assert scenario.nodes == (NodeSpec(name="n1"), NodeSpec(name="n2"), NodeSpec(name="n3"))
    assert scenario.etcd == ("etcd1", "etcd2", "etcd3")
    assert scenario.etcd_placement is EtcdPlacement.OWN_HOSTS
    assert scenario.config == DynamicConfig()
    assert scenario.config_raw == {}
    assert scenario.network == NetworkSpec()
    assert scenario.network.latency == LatencySpec(median_s=0.001, p99_s=0.010)
    assert scenario.clocks == {}
    assert scenario.workload is None
    assert scenario.checks == ChecksSpec(
        no_split_brain=True,
        no_lost_acknowledged_writes=True,
        max_lost_writes=None,
        failover_within_s=None,
        eventually_healthy_s=None,
    )
    assert scenario.explore is None


def test_counts_name_nodes_and_etcd_members() -> None:
    scenario = parse_body("cluster: {nodes: 5, etcd: 1}\n")

    assert scenario.node_names == ("n1", "n2", "n3", "n4", "n5")
    assert scenario.etcd == ("etcd1",)


def test_node_list_with_tags_and_datacenters() -> None:
    scenario = parse_body(
        "cluster:\n"
        "  nodes:\n"
        "    - {name: n1, tags: {nofailover: true, nosync: true}, datacenter: east}\n"
        "    - {name: n2, tags: {failover_priority: 2, replicatefrom: n1, clonefrom: true}}\n"
        "    - n3\n"
        "  etcd: [e1, e2, e3]\n"
        "  etcd_placement: on_nodes\n"
    )

    assert scenario.nodes == (
        NodeSpec(name="n1", tags=Tags(nofailover=True, nosync=True), datacenter="east"),
        NodeSpec(name="n2", tags=Tags(failover_priority=2, replicatefrom="n1", clonefrom=True)),
        NodeSpec(name="n3"),
    )
    assert scenario.etcd == ("e1", "e2", "e3")
    assert scenario.etcd_placement is EtcdPlacement.ON_NODES
    assert scenario.network.datacenters == {"east": ("n1",)}


def test_config_durations_as_strings_and_patroni_keys() -> None:
    scenario = parse_body(
        "config:\n"
        "  ttl: 20s\n"
        "  loop_wait: 2\n"
        "  retry_timeout: 3s\n"
        "  master_start_timeout: 1m\n"
        "  synchronous_mode: quorum\n"
        "  synchronous_node_count: 2\n"
        "  failsafe_mode: true\n"
        "  maximum_lag_on_failover: 0\n"
        "  watchdog: {mode: required, safety_margin: -1}\n"
        "  postgresql: {parameters: {max_connections: 100}}\n"
        "  slots: [a]\n"
    )

    assert scenario.config == DynamicConfig(
        ttl_s=20.0,
        loop_wait_s=2.0,
        retry_timeout_s=3.0,
        primary_start_timeout_s=60.0,
        synchronous_mode=SyncMode.QUORUM,
        synchronous_node_count=2,
        failsafe_mode=True,
        maximum_lag_on_failover_b=0,
        watchdog_mode=WatchdogMode.REQUIRED,
        safety_margin_s=-1.0,
    )
    assert scenario.config_json() == {
        "ttl": 20.0,
        "loop_wait": 2,
        "retry_timeout": 3.0,
        "master_start_timeout": 60.0,
        "synchronous_mode": "quorum",
        "synchronous_node_count": 2,
        "failsafe_mode": True,
        "maximum_lag_on_failover": 0,
        "watchdog": {"mode": "required", "safety_margin": -1},
        "postgresql": {"parameters": {"max_connections": 100}},
        "slots": ("a",),
    }


def test_config_watchdog_off_and_margin_as_duration() -> None:
    on_off = parse_body("config: {watchdog: {mode: off}}\n").config
    margin = parse_body("config: {watchdog: {safety_margin: 10s}}\n").config

    assert on_off.watchdog_mode is WatchdogMode.OFF
    assert margin.safety_margin_s == 10.0


def test_network_section() -> None:
    network = parse_body(
        "cluster:\n"
        "  nodes: [{name: n1, datacenter: east}, {name: n2, datacenter: west}, n3]\n"
        "network:\n"
        "  latency: 2ms\n"
        "  datacenters: {east: [n1, etcd1], central: [n3]}\n"
        "  inter_dc_latency: {median: 20ms}\n"
        "  loss: 1%\n"
        "  etcd_pre_vote: false\n"
    ).network

    assert network == NetworkSpec(
        latency=LatencySpec(median_s=0.002, p99_s=0.002),
        datacenters={"east": ("n1", "etcd1"), "central": ("n3",), "west": ("n2",)},
        inter_dc_latency=LatencySpec(median_s=0.02, p99_s=0.02),
        loss=0.01,
        etcd_pre_vote=False,
    )


def test_nodes_get_their_datacenter_from_the_network_section() -> None:
    scenario = parse_body("network: {datacenters: {east: [n1], west: [n2, n3]}}\n")

    assert [node.datacenter for node in scenario.nodes] == ["east", "west", "west"]


def test_clocks() -> None:
    clocks = parse_body("clocks: {n1: {offset: -1.5s}, etcd2: {drift_ppm: 200}, n3: {}}\n").clocks

    assert clocks == {
        "n1": ClockSpec(offset_s=-1.5, drift_ppm=0.0),
        "etcd2": ClockSpec(offset_s=0.0, drift_ppm=200.0),
        "n3": ClockSpec(),
    }


@pytest.mark.parametrize(
    ("text", "workload"),
    [
        ("{rate: 10/s}", WorkloadSpec(rate_per_s=10.0)),
        ("{rate: 5, via: direct}", WorkloadSpec(rate_per_s=5.0, via=WorkloadVia.DIRECT, clients=3)),
        (
            "{rate: 1/s, via: direct, clients: 2, timeout: 500ms}",
            WorkloadSpec(rate_per_s=1.0, via=WorkloadVia.DIRECT, clients=2, timeout_s=0.5),
        ),
        ("{rate: 2/s, via: haproxy, clients: 4}", WorkloadSpec(rate_per_s=2.0, clients=4)),
        (
            "{rate: 2/s, haproxy: {check_interval: 500ms, fall: 2, rise: 1}}",
            WorkloadSpec(rate_per_s=2.0, haproxy=HAProxySpec(check_interval_s=0.5, fall=2, rise=1)),
        ),
        (
            "{rate: 2/s, haproxy: {fall: 5}}",
            WorkloadSpec(rate_per_s=2.0, haproxy=HAProxySpec(fall=5)),
        ),
    ],
)
def test_workload(text: str, workload: WorkloadSpec) -> None:
    assert parse_body(f"workload: {text}\n").workload == workload


def test_postgres_timings_default_and_given() -> None:
    assert parse_body("").postgres == PostgresSpec()
    spec = parse_body("postgres: {start: 150ms, stop: 0.1, promote: 0s}\n").postgres
    assert spec == PostgresSpec(start_s=0.15, stop_fast_s=0.1, promote_s=0.0)


def test_checks_with_bounds_and_switched_off_timings() -> None:
    checks = parse_body(
        "checks:\n"
        "  no_split_brain: false\n"
        "  no_lost_acknowledged_writes: false\n"
        "  max_lost_writes: 200\n"
        "  failover_within: null\n"
        "  eventually_healthy: 1m\n"
    ).checks

    assert checks == ChecksSpec(
        no_split_brain=False,
        no_lost_acknowledged_writes=False,
        max_lost_writes=200,
        failover_within_s=None,
        eventually_healthy_s=60.0,
    )


def test_operator_requests_may_be_required_to_succeed() -> None:
    assert parse_body("").checks.operator_requests_succeed is False
    checks = parse_body("checks: {operator_requests_succeed: true}\n").checks
    assert checks == ChecksSpec(operator_requests_succeed=True)


def test_issue_4_explore_section_as_written() -> None:
    explore = parse_scenario(EXPLORE_EXAMPLE).explore

    assert explore == ExploreSpec(
        faults=(
            FaultKind.KILL,
            FaultKind.KILL_AGENT,
            FaultKind.PAUSE,
            FaultKind.PARTITION,
            FaultKind.CLOCK,
            FaultKind.ETCD,
            FaultKind.SWITCHOVER,
        ),
        max_faults=4,
        window_s=(30.0, 480.0),
        params={},
    )


def test_explore_defaults_and_parameter_ranges() -> None:
    explore = parse_body(
        "explore:\n"
        "  faults: [crash, heal]\n"
        "  params: {clock_offset: [-10s, 10s], pause_for: [5s, 1m], loss_rate: [0.01, 0.5]}\n"
    ).explore

    assert explore == ExploreSpec(
        faults=(FaultKind.KILL, FaultKind.HEAL),
        max_faults=3,
        window_s=(0.0, 300.0),
        params={
            "clock_offset": ParamRange(low=-10.0, high=10.0),
            "pause_for": ParamRange(low=5.0, high=60.0),
            "loss_rate": ParamRange(low=0.01, high=0.5),
        },
    )
