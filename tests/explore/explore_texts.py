"""Scenario texts shared by the explorer's tests: short runs, so the suite stays fast."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Watchdog off and clients writing to each node: a frozen primary agent gives split brain, so a
# small sweep over these kinds finds failures (the split-brain Patroni showed, docs/design.md).
NO_WATCHDOG = """
name: no-watchdog
seed: 1
duration: 3m
cluster: {nodes: 3, etcd: 3}
config: {ttl: 30, loop_wait: 10, retry_timeout: 10, watchdog: {mode: "off"}}
workload: {rate: 10/s, via: direct}
checks: {no_lost_acknowledged_writes: false}
explore:
  faults: [pause, kill, clock, switchover]
  max_faults: 4
  window: [30s, 2m]
"""

# A failover within 1 s cannot happen (the lock's ttl is 30 s): killing the primary always breaks
# `failover_within`; latency and clock faults never trigger that check.
CERTAIN = """
name: certain
seed: 3
duration: 2m
cluster: {nodes: 3, etcd: 3}
workload: {rate: 10/s, via: haproxy}
checks: {no_lost_acknowledged_writes: false, failover_within: 1s}
explore:
  faults: [kill, latency, clock]
  max_faults: 4
  window: [30s, 90s]
"""

# Small extra latency breaks nothing.
CALM = """
name: calm
seed: 0
duration: 2m
cluster: {nodes: 3, etcd: 3}
workload: {rate: 10/s, via: haproxy}
checks: {no_lost_acknowledged_writes: false}
explore:
  faults: [latency]
  max_faults: 2
  window: [30s, 90s]
  params: {latency_median: [1ms, 20ms], latency_p99: [1ms, 50ms]}
"""

# The issue's explore section, on the issue's 10-minute example cluster.
ISSUE_EXPLORE = """
name: issue-explore
duration: 10m
cluster: {nodes: 3, etcd: 3}
workload: {rate: 10/s, via: haproxy}
explore:
  faults: [kill, kill_agent, pause, partition, clock, etcd, switchover]
  max_faults: 4
  window: [30s, 8m]
"""

ALL_KINDS = """
name: all-kinds
duration: 10m
cluster: {nodes: 3, etcd: 3}
explore:
  faults: [kill, restart, kill_agent, kill_postgres, pause, partition, heal, clock, etcd, loss,
           latency, disk_full, switchover, failover, config, etcd_put]
  max_faults: 5
  window: [10s, 9m]
  params:
    pause_for: [5s, 6s]
    clock_offset: [-2s, 2s]
    clock_drift_ppm: [10, 20]
    clock_jump: [1s, 3s]
    loss_rate: [0.5, 0.5]
    latency_median: [10ms, 20ms]
    latency_p99: [30ms, 40ms]
"""


def write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    """`text` as a scenario file in `tmp_path`."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path
