"""`dump_scenario`: YAML that `parse_scenario` reads back to an equal Scenario."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pgha.scenario import Scenario, dump_scenario, load_scenario, parse_scenario
from sim.explore import schedule_for_seed
from tests.explore.explore_texts import ALL_KINDS, ISSUE_EXPLORE, ROOT

SCENARIO_FILES = sorted((ROOT / "scenarios").glob("**/*.yaml"))


def without_file_marks(scenario: Scenario) -> Scenario:
    """What only a file gives (the source name, each fault's line) left out of the comparison."""
    faults = tuple(replace(spec, line=0) for spec in scenario.faults)
    return replace(scenario, source="<string>", faults=faults)


def round_trip(scenario: Scenario) -> Scenario:
    return parse_scenario(dump_scenario(scenario))


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_bundled_scenario_round_trips(path: Path) -> None:
    scenario = load_scenario(path)
    assert without_file_marks(round_trip(scenario)) == without_file_marks(scenario)


@pytest.mark.parametrize("text", [ALL_KINDS, ISSUE_EXPLORE], ids=["all-kinds", "issue"])
def test_generated_schedules_round_trip(text: str) -> None:
    scenario = parse_scenario(text)
    for seed in range(150):
        explored = replace(scenario, faults=schedule_for_seed(scenario, seed), seed=seed)
        assert without_file_marks(round_trip(explored)) == explored, dump_scenario(explored)


RICH = """
name: rich
description: |
  Two lines
  of text.
seed: 42
duration: 1h30m
cluster:
  nodes:
    - {name: alpha, tags: {nofailover: true, failover_priority: 0}, datacenter: east}
    - {name: beta, tags: {replicatefrom: alpha, nosync: true}}
    - gamma
  etcd: [e1, e2, e3]
  etcd_placement: on_nodes
config:
  ttl: 40s
  loop_wait: 5
  retry_timeout: 10
  synchronous_mode: quorum
  maximum_lag_on_failover: 2048
  watchdog: {mode: "off", safety_margin: 2.5}
network:
  latency: {median: 2ms, p99: 20ms}
  datacenters: {west: [beta, gamma]}
  inter_dc_latency: 30ms
  loss: 1%
  etcd_pre_vote: false
clocks:
  beta: {offset: -1.25s, drift_ppm: 12.5}
workload: {rate: 600/m, via: direct, clients: 2, timeout: 250ms}
faults:
  - {at: 0s, partition: {groups: [[alpha], [beta, gamma]]}, for: 30s, label: cut alpha}
  - {at: 1m, partition: {from: primary, to: [beta, gamma]}, for: 1s}
  - {at: 2m, partition: {a: alpha, b: beta, bridge: gamma}, for: 2s}
  - {at: 3m, heal: true}
  - {at: 4m, switchover: {leader: primary, candidate: beta, at: 5m}}
  - {at: 4m, failover: {candidate: random}}
  - {at: 6m, clock: {node: gamma, offset: 2s, drift_ppm: -50}, for: 1m}
  - {at: 8m, etcd: {member: e2, action: pause}, for: 10s}
  - {at: 9m, loss: {targets: [alpha, beta], rate: 0.5}, for: 1.5s}
  - {at: 10m, latency: {targets: sync_standby, median: 50ms, p99: 200ms}}
  - {at: 11m, pause: {node: [alpha, gamma], what: postgres}, for: 10ms}
  - {at: 12m, restart: beta}
  - {at: 13m, disk_full: {node: replica}, for: 1m}
checks: {no_split_brain: true, max_lost_writes: 3, failover_within: 45s, eventually_healthy: null}
explore:
  faults: [kill, pause]
  max_faults: 2
  window: [1m, 1h]
  params: {pause_for: [5s, 1m], clock_drift_ppm: [-10, 10.5]}
"""


def test_a_scenario_using_every_section_round_trips() -> None:
    scenario = parse_scenario(RICH)
    assert without_file_marks(round_trip(scenario)) == without_file_marks(scenario)


def test_a_required_operator_check_round_trips_and_is_written_only_when_on() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "switchover.yaml")
    assert "operator_requests_succeed" not in dump_scenario(scenario)
    required = replace(scenario, checks=replace(scenario.checks, operator_requests_succeed=True))
    assert "operator_requests_succeed: true" in dump_scenario(required)
    assert without_file_marks(round_trip(required)) == without_file_marks(required)


def test_the_dump_reads_like_a_scenario_file() -> None:
    text = dump_scenario(load_scenario(ROOT / "scenarios" / "primary-crash.yaml"))
    assert "- {at: 60s, kill: primary, for: 90s}" in text
    assert "workload: {rate: 10/s, via: haproxy" in text
    assert "duration: 240s" in text
    assert "source" not in text
