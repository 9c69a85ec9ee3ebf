"""Every mistake is a ScenarioError with the line, the field and what was expected."""

from __future__ import annotations

import pytest

from pgha.scenario import (
    ClockFault,
    FaultKind,
    FaultSpec,
    HealFault,
    KillFault,
    PartitionFault,
    Target,
)
from tests.scenario.texts import HEADER, error_of

H = HEADER  # two lines: a body's first line is line 3
F = HEADER + "faults:\n  - "  # a fault entry on line 4

# (text, line, field, a fragment of `expected`)
BAD: list[tuple[str, int, str, str]] = [
    # YAML itself
    ("name: [x\nduration: 5m\n", 2, "<yaml>", "valid YAML"),
    ("name: x\n\x07\n", 2, "<yaml>", "valid YAML"),
    ("name: !custom x\n", 1, "<yaml>", "valid YAML"),
    ("", 1, "<root>", "a mapping of scenario keys"),
    ("- a\n- b\n", 1, "<root>", "a mapping with keys name"),
    (H + "a: &x [*x]\n", 3, "a[0]", "a value"),
    (H + "? [a, b]\n: 1\n", 3, "<root>", "a plain key"),
    (H + "base: &b {seed: 1}\n<<: *b\n", 4, "<root>", "a plain key"),
    (H + "seed: 1\nseed: 2\n", 4, "seed", "each key once"),
    # top level
    ("duration: 5m\n", 1, "name", "a scenario name (required)"),
    ("name: t\n", 1, "duration", "(required)"),
    ("name: ''\nduration: 5m\n", 1, "name", "a scenario name"),
    ("name: 2020-01-01\nduration: 5m\n", 1, "name", "a scenario name"),
    (H + "netwrok: {}\n", 3, "netwrok", "one of the keys name, description"),
    (H + "description: [a]\n", 3, "description", "a description"),
    (H + "seed: -1\n", 3, "seed", "an integer >= 0"),
    (H + "seed: true\n", 3, "seed", "an integer >= 0"),
    (H + "seed: 1.5\n", 3, "seed", "an integer >= 0"),
    # durations
    ("name: t\nduration: 5x\n", 2, "duration", "a duration > 0"),
    ("name: t\nduration: 0s\n", 2, "duration", "a duration > 0"),
    ("name: t\nduration: -5m\n", 2, "duration", "a duration > 0"),
    ("name: t\nduration: .inf\n", 2, "duration", "a duration > 0"),
    ("name: t\nduration: true\n", 2, "duration", "a duration > 0"),
    ("name: t\nduration: 5 m\n", 2, "duration", "a duration > 0"),
    ("name: t\nduration: m\n", 2, "duration", "a duration > 0"),
    # cluster
    (H + "cluster: {nodes: 0}\n", 3, "cluster.nodes", "an integer >= 1"),
    (H + "cluster: {nodes: many}\n", 3, "cluster.nodes", "a count of nodes or a list"),
    (H + "cluster: {nodes: []}\n", 3, "cluster.nodes", "a count of nodes or a list"),
    (H + "cluster: {nodes: [n1, n1]}\n", 3, "cluster.nodes[1]", "a name not used"),
    (H + "cluster: {nodes: [n1, primary]}\n", 3, "cluster.nodes[1]", "not a role"),
    (H + "cluster: {nodes: [1node]}\n", 3, "cluster.nodes[0]", "starting with a letter"),
    (H + "cluster: {nodes: [{tags: {}}]}\n", 3, "cluster.nodes[0].name", "(required)"),
    (H + "cluster: {nodes: [{name: n1, tag: {}}]}\n", 3, "cluster.nodes[0].tag", "one of the keys"),
    (
        H + "cluster: {nodes: [{name: a, tags: {nofailover: 1}}]}\n",
        3,
        "cluster.nodes[0].tags.nofailover",
        "true or false",
    ),
    (
        H + "cluster: {nodes: [{name: a, tags: {failover_priority: -1}}]}\n",
        3,
        "cluster.nodes[0].tags.failover_priority",
        "an integer >= 0",
    ),
    (
        H + "cluster: {nodes: [{name: a, tags: {replicatefrom: a}}]}\n",
        3,
        "cluster.nodes[0].tags.replicatefrom",
        "another node's name",
    ),
    (
        H + "cluster: {nodes: [{name: a, tags: {replicatefrom: b}}]}\n",
        3,
        "cluster.nodes[0].tags.replicatefrom",
        "another node (a)",
    ),
    (
        H + "cluster: {nodes: [{name: a, tags: {custom: 1}}]}\n",
        3,
        "cluster.nodes[0].tags.custom",
        "one of the keys nofailover",
    ),
    (
        H + "cluster: {nodes: [{name: a, datacenter: 1}]}\n",
        3,
        "cluster.nodes[0].datacenter",
        "a datacenter name",
    ),
    (H + "cluster: {etcd: [etcd1, n1]}\n", 3, "cluster.etcd[1]", "a name not used"),
    (H + "cluster: {etcd: [e1, e1]}\n", 3, "cluster.etcd[1]", "a name not used"),
    (H + "cluster: {etcd: -3}\n", 3, "cluster.etcd", "an integer >= 1"),
    (H + "cluster: {etcd_placement: shared}\n", 3, "cluster.etcd_placement", "own_hosts, on_nodes"),
    (H + "cluster: {etcd_placement: [1]}\n", 3, "cluster.etcd_placement", "own_hosts, on_nodes"),
    (
        H + "cluster: {nodes: 2, etcd: 3, etcd_placement: on_nodes}\n",
        3,
        "cluster.etcd_placement",
        "own_hosts when there are more etcd members",
    ),
    (H + "cluster: 3\n", 3, "cluster", "a mapping with keys nodes, etcd"),
    # config
    (H + "config: {tll: 30}\n", 3, "config.tll", "one of the keys ttl"),
    (H + "config: {ttl: 1s}\n", 3, "config.ttl", "from 3 to 3600"),
    (H + "config: {ttl: soon}\n", 3, "config.ttl", "a duration of either sign"),
    (H + "config:\n  loop_wait: 0\n", 4, "config.loop_wait", "from 1 to 3600"),
    (H + "config: {synchronous_mode: always}\n", 3, "config.synchronous_mode", "'quorum'"),
    (H + "config: {synchronous_node_count: 0}\n", 3, "config.synchronous_node_count", "to 262143"),
    (H + "config: {failsafe_mode: yes please}\n", 3, "config.failsafe_mode", "true or false"),
    (H + "config: {watchdog: {mode: sometimes}}\n", 3, "config.watchdog.mode", "automatic"),
    (H + "config: {watchdog: {margin: 5}}\n", 3, "config.watchdog.margin", "mode, safety_margin"),
    (
        H + "config: {watchdog: {safety_margin: x}}\n",
        3,
        "config.watchdog.safety_margin",
        "a duration",
    ),
    (H + "config: {watchdog: on}\n", 3, "config.watchdog", "a mapping with mode"),
    # network
    (
        H + "network: {latency: {median: 1ms, p99: 0.5ms}}\n",
        3,
        "network.latency.p99",
        "a duration >= median",
    ),
    (H + "network: {latency: {p99: 1ms}}\n", 3, "network.latency.median", "(required)"),
    (H + "network: {latency: -1ms}\n", 3, "network.latency", "a duration >= 0"),
    (
        H + "network: {latency: {median: 1ms, p95: 2ms}}\n",
        3,
        "network.latency.p95",
        "one of the keys median, p99",
    ),
    (H + "network: {loss: 1.5}\n", 3, "network.loss", "a fraction from 0 to 1"),
    (H + "network: {loss: -0.1}\n", 3, "network.loss", "a fraction from 0 to 1"),
    (H + "network: {loss: 200%}\n", 3, "network.loss", "a fraction from 0 to 1"),
    (H + "network: {loss: lots}\n", 3, "network.loss", "a fraction from 0 to 1"),
    (H + "network: {etcd_pre_vote: 1}\n", 3, "network.etcd_pre_vote", "true or false"),
    (H + "network: {datacenters: [east]}\n", 3, "network.datacenters", "a mapping of datacenter"),
    (H + "network: {datacenters: {east: [n9]}}\n", 3, "network.datacenters.east[0]", "a host"),
    (
        H + "network: {datacenters: {east: [n1], west: [n1]}}\n",
        3,
        "network.datacenters.west",
        "each host in one datacenter",
    ),
    (
        H + "cluster: {nodes: [{name: n1, datacenter: east}]}\n"
        "network: {datacenters: {west: [n1]}}\n",
        4,
        "network.datacenters",
        "n1 in one datacenter",
    ),
    (
        H + "cluster: {etcd_placement: on_nodes}\nnetwork: {datacenters: {east: [etcd1]}}\n",
        4,
        "network.datacenters.east[0]",
        "a host (n1, n2, n3)",
    ),
    # clocks
    (H + "clocks: {n7: {offset: 1s}}\n", 3, "clocks.n7", "a host name (n1, n2, n3, etcd1"),
    (H + "clocks: [n1]\n", 3, "clocks", "a mapping of host names"),
    (H + "clocks: {n1: {offset: 1s, drift: 5}}\n", 3, "clocks.n1.drift", "offset, drift_ppm"),
    (H + "clocks: {n1: {drift_ppm: fast}}\n", 3, "clocks.n1.drift_ppm", "a drift in ppm"),
    (H + "clocks: {n1: {offset: 2}}\nclocks2: 1\n", 4, "clocks2", "one of the keys"),
    # workload
    (H + "workload: {via: haproxy}\n", 3, "workload.rate", "(required)"),
    (H + "workload: {rate: 10/d}\n", 3, "workload.rate", "a rate > 0"),
    (H + "workload: {rate: 0}\n", 3, "workload.rate", "a rate > 0"),
    (H + "workload: {rate: 0/s}\n", 3, "workload.rate", "a rate > 0"),
    (
        H + "workload: {rate: 1, haproxy: {fall: 0}}\n",
        3,
        "workload.haproxy.fall",
        "an integer >= 1",
    ),
    (
        H + "workload: {rate: 1, haproxy: {check_interval: -1s}}\n",
        3,
        "workload.haproxy.check_interval",
        "> 0",
    ),
    (
        H + "workload: {rate: 1, haproxy: {inter: 1s}}\n",
        3,
        "workload.haproxy.inter",
        "check_interval",
    ),
    (H + "workload: {rate: 1/s, via: pgbouncer}\n", 3, "workload.via", "haproxy, direct"),
    (H + "postgres: {start: -1s}\n", 3, "postgres.start", ">= 0"),
    (H + "postgres: {stop_fast: 1s}\n", 3, "postgres.stop_fast", "stop_immediate"),
    (H + "postgres: 5\n", 3, "postgres", "a mapping"),
    (H + "network: {down_hosts: dead}\n", 3, "network.down_hosts", "silent, unreachable"),
    (H + "workload: {rate: 1/s, clients: 0}\n", 3, "workload.clients", "an integer >= 1"),
    (
        H + "workload: {rate: 1/s, via: direct, clients: 4}\n",
        3,
        "workload.clients",
        "at most one client per node (3)",
    ),
    (H + "workload: {rate: 1/s, timeout: 0s}\n", 3, "workload.timeout", "a duration > 0"),
    # checks
    (H + "checks: {no_split_brain: yes-ish}\n", 3, "checks.no_split_brain", "true or false"),
    (H + "checks: {max_lost_writes: -1}\n", 3, "checks.max_lost_writes", "an integer >= 0"),
    (H + "checks: {failover_within: 0s}\n", 3, "checks.failover_within", "a duration > 0"),
    (H + "checks: {failover: 10s}\n", 3, "checks.failover", "one of the keys no_split_brain"),
    (
        H + "checks: {operator_requests_succeed: 1}\n",
        3,
        "checks.operator_requests_succeed",
        "true or false",
    ),
    # explore
    (H + "explore: {max_faults: 2}\n", 3, "explore.faults", "(required)"),
    (H + "explore: {faults: []}\n", 3, "explore.faults", "a non-empty list of fault kinds"),
    (H + "explore: {faults: [kil]}\n", 3, "explore.faults[0]", "one of kill, restart"),
    (H + "explore: {faults: [kill, crash]}\n", 3, "explore.faults[1]", "each fault kind once"),
    (H + "explore: {faults: [kill], max_faults: 0}\n", 3, "explore.max_faults", ">= 1"),
    (H + "explore: {faults: [kill], window: [1m]}\n", 3, "explore.window", "[start, end]"),
    (H + "explore: {faults: [kill], window: [2m, 1m]}\n", 3, "explore.window", "start < end"),
    (H + "explore: {faults: [kill], window: [1m, 8m]}\n", 3, "explore.window", "(300s)"),
    (H + "explore: {faults: [kill], window: 1m}\n", 3, "explore.window", "[start, end]"),
    (H + "explore: {faults: [kill], params: [1, 2]}\n", 3, "explore.params", "a mapping of"),
    (H + "explore: {faults: [kill], params: {x: [1]}}\n", 3, "explore.params.x", "[low, high]"),
    (H + "explore: {faults: [kill], params: {x: [2, 1]}}\n", 3, "explore.params.x", "low <= high"),
    (
        H + "explore: {faults: [kill], params: {x: [a, 1]}}\n",
        3,
        "explore.params.x[0]",
        "a duration of either sign",
    ),
    (
        H + "explore: {faults: [kill], params: {x: [true, 1]}}\n",
        3,
        "explore.params.x[0]",
        "[low, high]",
    ),
    # faults: the entry
    (H + "faults: {at: 1m, kill: n1}\n", 3, "faults", "a list of faults"),
    (F + "kill n1\n", 4, "faults[0]", "a mapping with keys at, for"),
    (F + "{at: 1m}\n", 4, "faults[0]", "exactly one fault kind (kill, restart"),
    (F + "{at: 1m, kill: n1, pause: n2}\n", 4, "faults[0]", "exactly one fault kind"),
    (F + "{at: 1m, kill: n1, crash: n2}\n", 4, "faults[0].crash", "'kill' once"),
    (F + "{kill: n1}\n", 4, "faults[0].at", "a time such as 60s (required)"),
    (F + "{at: 1m, kil: n1}\n", 4, "faults[0].kil", "one of the keys at, for"),
    (F + "{at: 5m, kill: n1}\n", 4, "faults[0].at", "a time before the end of the run"),
    (F + "{at: -1s, kill: n1}\n", 4, "faults[0].at", "a duration >= 0"),
    (F + "{at: 1m, kill: n1, label: ''}\n", 4, "faults[0].label", "a string"),
    (
        H + "faults:\n  - {at: 1m, kill: n1}\n  - {at: 2m, kill: n4}\n",
        5,
        "faults[1].kill",
        "a node (n1, n2, n3)",
    ),
    # faults: for
    (F + "{at: 1m, heal: true, for: 10s}\n", 4, "faults[0].for", "no 'for': heal cannot"),
    (F + "{at: 1m, restart: n1, for: 10s}\n", 4, "faults[0].for", "no 'for': restart"),
    (F + "{at: 1m, kill_postgres: n1, for: 10s}\n", 4, "faults[0].for", "no 'for': kill_postgres"),
    (F + "{at: 1m, switchover: n2, for: 10s}\n", 4, "faults[0].for", "no 'for': switchover"),
    (F + "{at: 1m, failover: n2, for: 10s}\n", 4, "faults[0].for", "no 'for': failover"),
    (
        F + "{at: 1m, clock: {node: n1, jump: 5s}, for: 10s}\n",
        4,
        "faults[0].for",
        "no 'for': a clock jump",
    ),
    (F + "{at: 4m, kill: n1, for: 61s}\n", 4, "faults[0].for", "at + for within the duration"),
    (F + "{at: 1m, kill: n1, for: 0s}\n", 4, "faults[0].for", "a duration > 0"),
    # faults: targets
    (F + "{at: 1m, kill: n9}\n", 4, "faults[0].kill", "a node (n1, n2, n3), a list of them"),
    (F + "{at: 1m, kill: etcd1}\n", 4, "faults[0].kill", "a node (n1, n2, n3)"),
    (F + "{at: 1m, kill: etcd_leader}\n", 4, "faults[0].kill", "a role (primary, replica"),
    (F + "{at: 1m, kill: 1}\n", 4, "faults[0].kill", "a node (n1, n2, n3)"),
    (F + "{at: 1m, kill: []}\n", 4, "faults[0].kill", "a non-empty list of names of a node"),
    (F + "{at: 1m, kill: [n1, primary]}\n", 4, "faults[0].kill[1]", "names of a node"),
    (F + "{at: 1m, kill: [n1, n1]}\n", 4, "faults[0].kill[1]", "each name once"),
    (
        F + "{at: 1m, kill: {node: n1, what: agent}}\n",
        4,
        "faults[0].kill.what",
        "one of the keys node",
    ),
    (F + "{at: 1m, kill: {}}\n", 4, "faults[0].kill.node", "(required)"),
    (F + "{at: 1m, etcd: primary}\n", 4, "faults[0].etcd", "an etcd member (etcd1, etcd2, etcd3)"),
    (F + "{at: 1m, etcd: [etcd1]}\n", 4, "faults[0].etcd", "an etcd member"),
    (
        F + "{at: 1m, etcd: {member: etcd1, action: stop}}\n",
        4,
        "faults[0].etcd.action",
        "one of kill, pause",
    ),
    (F + "{at: 1m, etcd: {action: kill}}\n", 4, "faults[0].etcd.member", "(required)"),
    (F + "{at: 1m, failover: primary}\n", 4, "faults[0].failover", "a role (replica, sync_standby"),
    (F + "{at: 1m, failover: {}}\n", 4, "faults[0].failover.candidate", "(required)"),
    (
        F + "{at: 1m, switchover: {leader: replica}}\n",
        4,
        "faults[0].switchover.leader",
        "a role (primary)",
    ),
    (
        F + "{at: 1m, switchover: {leader: n1, candidate: n1}}\n",
        4,
        "faults[0].switchover.candidate",
        "a candidate other than the leader",
    ),
    (
        F + "{at: 1m, switchover: {at: 30s}}\n",
        4,
        "faults[0].switchover.at",
        "at or after the fault's at (60s)",
    ),
    (F + "{at: 1m, switchover: {at: 6m}}\n", 4, "faults[0].switchover.at", "before the end"),
    (
        H + "cluster: {etcd_placement: on_nodes}\n"
        "faults:\n  - {at: 1m, partition: {isolate: etcd1}}\n",
        5,
        "faults[0].partition.isolate",
        "a host (n1, n2, n3)",
    ),
    # faults: pause
    (
        F + "{at: 1m, pause: {node: n1, what: disk}}\n",
        4,
        "faults[0].pause.what",
        "one of node, agent, postgres",
    ),
    (F + "{at: 1m, pause: {what: agent}}\n", 4, "faults[0].pause.node", "(required)"),
    # faults: partition
    (F + "{at: 1m, partition: n1}\n", 4, "faults[0].partition", "a mapping with keys isolate"),
    (F + "{at: 1m, partition: {isolat: n1}}\n", 4, "faults[0].partition.isolat", "isolate, groups"),
    (F + "{at: 1m, partition: {}}\n", 4, "faults[0].partition", "one form: {isolate}"),
    (F + "{at: 1m, partition: {isolate: n1, from: n2}}\n", 4, "faults[0].partition", "one form"),
    (F + "{at: 1m, partition: {from: n1}}\n", 4, "faults[0].partition.to", "(required)"),
    (
        F + "{at: 1m, partition: {from: n1, to: n1}}\n",
        4,
        "faults[0].partition.to",
        "hosts on one side only (n1 is on two sides)",
    ),
    (
        F + "{at: 1m, partition: {from: primary, to: primary}}\n",
        4,
        "faults[0].partition.to",
        "(primary is on two sides)",
    ),
    (
        F + "{at: 1m, partition: {a: n1, b: n2, bridge: [n2, n3]}}\n",
        4,
        "faults[0].partition.bridge",
        "(n2 is on two sides)",
    ),
    (F + "{at: 1m, partition: {a: n1, b: n2}}\n", 4, "faults[0].partition.bridge", "(required)"),
    (
        F + "{at: 1m, partition: {isolate: [n1, n2, n3, etcd1, etcd2, etcd3]}}\n",
        4,
        "faults[0].partition.isolate",
        "some hosts to isolate, not every host",
    ),
    (
        F + "{at: 1m, partition: {groups: [[n1]]}}\n",
        4,
        "faults[0].partition.groups",
        "at least two groups",
    ),
    (
        F + "{at: 1m, partition: {groups: n1}}\n",
        4,
        "faults[0].partition.groups",
        "at least two groups",
    ),
    (
        F + "{at: 1m, partition: {groups: [n1, n2]}}\n",
        4,
        "faults[0].partition.groups[0]",
        "a list of hosts",
    ),
    (
        F + "{at: 1m, partition: {groups: [[n1], []]}}\n",
        4,
        "faults[0].partition.groups[1]",
        "a list of hosts",
    ),
    (
        F + "{at: 1m, partition: {groups: [[n1], [n2, n1]]}}\n",
        4,
        "faults[0].partition.groups[1][1]",
        "(n1 is on two sides)",
    ),
    (
        F + "{at: 1m, partition: {groups: [[n1], [[n2]]]}}\n",
        4,
        "faults[0].partition.groups[1][0]",
        "a host (n1, n2, n3, etcd1, etcd2, etcd3) or a role",
    ),
    (
        F + "{at: 1m, partition: {groups: [[n1], [n7]]}}\n",
        4,
        "faults[0].partition.groups[1][0]",
        "a host",
    ),
    # faults: heal, clock, loss, latency
    (F + "{at: 1m, heal: false}\n", 4, "faults[0].heal", "true, null or {}"),
    (F + "{at: 1m, heal: n1}\n", 4, "faults[0].heal", "true, null or {}"),
    (F + "{at: 1m, clock: {node: n1}}\n", 4, "faults[0].clock", "one of offset, drift_ppm or jump"),
    (
        F + "{at: 1m, clock: {node: n1, jump: 1s, offset: 1s}}\n",
        4,
        "faults[0].clock",
        "either jump, or offset and/or drift_ppm",
    ),
    (
        F + "{at: 1m, clock: {node: n1, jump: 0s}}\n",
        4,
        "faults[0].clock.jump",
        "a duration other than 0",
    ),
    (F + "{at: 1m, clock: {jump: 5s}}\n", 4, "faults[0].clock.node", "(required)"),
    (F + "{at: 1m, clock: n1}\n", 4, "faults[0].clock", "a mapping with keys node, offset"),
    (
        F + "{at: 1m, clock: {node: n1, drift_ppm: x}}\n",
        4,
        "faults[0].clock.drift_ppm",
        "a drift in ppm",
    ),
    (F + "{at: 1m, loss: {targets: n1}}\n", 4, "faults[0].loss.rate", "(required)"),
    (
        F + "{at: 1m, loss: {targets: n1, rate: 0}}\n",
        4,
        "faults[0].loss.rate",
        "a fraction from above 0 to 1",
    ),
    (F + "{at: 1m, loss: {rate: 0.5}}\n", 4, "faults[0].loss.targets", "(required)"),
    (F + "{at: 1m, latency: {targets: n1}}\n", 4, "faults[0].latency.median", "(required)"),
    (
        F + "{at: 1m, latency: {targets: n1, median: 0s}}\n",
        4,
        "faults[0].latency.median",
        "a duration > 0",
    ),
    (
        F + "{at: 1m, latency: {targets: n1, median: 9ms, p99: 1ms}}\n",
        4,
        "faults[0].latency.p99",
        "a duration >= median (0.009s)",
    ),
    (F + "{at: 1m, latency: {median: 9ms}}\n", 4, "faults[0].latency.targets", "(required)"),
]


@pytest.mark.parametrize(("text", "line", "field", "expected"), BAD, ids=[row[2] for row in BAD])
def test_bad_input_is_reported_at_its_line_and_field(
    text: str, line: int, field: str, expected: str
) -> None:
    err = error_of(text)

    assert (err.path, err.line, err.field) == ("t.yaml", line, field)
    assert expected in err.expected
    assert str(err).startswith(f"t.yaml:{line}: {field}: expected {err.expected}, got ")


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        (H + "netwrok: {}\n", "did you mean 'network'?"),
        (F + "{at: 1m, partition: {isolat: primary}}\n", "did you mean 'isolate'?"),
        (F + "{at: 1m, kill: n11}\n", "did you mean 'n1'?"),
        (F + "{at: 1m, kill: [n1, replica]}\n", "a role stands alone, not in a list"),
        (F + "{at: 1m, kill: etcd_leader}\n", "etcd_leader is not a role a node can be chosen by"),
        (H + "clocks: {etdc1: {}}\n", "did you mean 'etcd1'?"),
        (H + "workload: {rate: 1/s, via: haproxi}\n", "did you mean 'haproxy'?"),
        (H + "zzz: 1\n", ""),
    ],
)
def test_hints(text: str, hint: str) -> None:
    assert error_of(text).hint == hint


def test_got_describes_the_value_found() -> None:
    assert error_of(H + "seed: null\n").got == "null"
    assert error_of(H + "seed: false\n").got == "false"
    assert error_of(H + "seed: [1]\n").got == "a list"
    assert error_of(H + "seed: {a: 1}\n").got == "a mapping"
    assert error_of(H + "seed: 1.5\n").got == "1.5"
    assert error_of("name: 2020-01-01\nduration: 5m\n").got == "a date"


def test_block_style_errors_point_at_the_offending_line() -> None:
    err = error_of(
        H + "faults:\n"
        "  - at: 10s\n"
        "    partition:\n"
        "      groups:\n"
        "        - [n1]\n"
        "        - [n2, etcd9]\n"
    )

    assert (err.line, err.field) == (8, "faults[0].partition.groups[1][1]")


def test_values_reject_inconsistent_construction_in_code() -> None:
    with pytest.raises(ValueError, match="either names or a role"):
        Target()
    with pytest.raises(ValueError, match="exactly one form"):
        PartitionFault(isolate=Target.named("n1"), one_way=(Target.named("n1"), Target.named("n2")))
    with pytest.raises(ValueError, match="kill takes KillFault"):
        FaultSpec(at_s=1.0, kind=FaultKind.KILL, params=HealFault())


def test_values_built_in_code_need_no_line() -> None:
    spec = FaultSpec(
        at_s=1.0, kind=FaultKind.CLOCK, params=ClockFault(target=Target.named("n1"), jump_s=2.0)
    )

    assert (spec.line, spec.end_s, spec.label) == (0, None, None)
    assert FaultSpec(at_s=0.0, kind=FaultKind.KILL, params=KillFault(target=Target.named("a")))
