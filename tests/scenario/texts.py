"""Scenario texts and small helpers shared by the scenario tests."""

from __future__ import annotations

from pgha.scenario import FaultSpec, Scenario, ScenarioError, parse_scenario

# The example of issue 3, exactly as written there (it must run as written).
ISSUE_EXAMPLE = """\
name: primary-crash
description: The primary's machine dies; a replica takes over.
seed: 7
duration: 5m
cluster:
  nodes: 3            # or a list: [{name: n1, tags: {nofailover: true}}, ...]
  etcd: 3             # etcd members, on hosts of their own
config:               # dynamic configuration: Patroni's keys and defaults
  ttl: 30
  loop_wait: 10
  retry_timeout: 10
  synchronous_mode: false
  watchdog: {mode: automatic, safety_margin: 5}
network:
  latency: {median: 1ms, p99: 10ms}
clocks:
  n2: {offset: 2s, drift_ppm: 100}
workload: {rate: 10/s, via: haproxy}
faults:
  - {at: 60s, kill: primary, for: 90s}            # machine dies, comes back after 90 s
  - {at: 200s, partition: {isolate: primary}, for: 45s}
  - {at: 260s, pause: {node: n1, what: agent}, for: 40s}
  - {at: 280s, clock: {node: n3, jump: 40s}}
checks:
  no_split_brain: true
  no_lost_acknowledged_writes: true
  failover_within: 45s
  eventually_healthy: 60s
"""

# The `explore:` section of issue 4, in a scenario long enough for its window.
EXPLORE_EXAMPLE = """\
name: explore-me
duration: 10m
explore:
  faults: [kill, kill_agent, pause, partition, clock, etcd, switchover]
  max_faults: 4
  window: [30s, 8m]
"""

# Two lines of header, so a body given to `parse_body` starts on line 3.
HEADER = "name: t\nduration: 5m\n"


def parse_body(body: str) -> Scenario:
    """A 5-minute scenario of 3 nodes and 3 etcd members, plus `body`."""
    return parse_scenario(HEADER + body, "t.yaml")


def one_fault(entry: str, cluster: str = "") -> FaultSpec:
    """The only fault of a scenario whose `faults:` list holds the flow mapping `entry`."""
    (spec,) = parse_body(f"{cluster}faults:\n  - {entry}\n").faults
    return spec


def error_of(text: str) -> ScenarioError:
    """The ScenarioError raised by parsing `text` (fails the test when none is raised)."""
    try:
        parse_scenario(text, "t.yaml")
    except ScenarioError as err:
        return err
    raise AssertionError(f"no ScenarioError for {text!r}")
