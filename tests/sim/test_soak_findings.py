"""What the soak sweeps of issue 15 found (`pgha sim explore scenarios/soak-async.yaml`), each
pinned with exact virtual times: every message takes exactly 1 ms.

- Seed 1230: an old primary back from a partition saw the new leader in etcd but could not reach
  it yet; its pg_rewind failed and the engine took that for a pg_rewind that failed against a
  healthy leader: it waited for a manual reinit for the rest of the run. Patroni's
  Rewind.execute gives up only when the leader answered; an unreachable leader is tried again.
- Seeds 3221 and 3979: the agent was killed while PostgreSQL was starting; the simulated start
  ran in the agent's own process and died with it, leaving the server "starting" for ever. A real
  postmaster carries on without the agent that ran pg_ctl.
"""

from __future__ import annotations

import io
import json
from typing import Any

from pgha.checks import run_checks
from pgha.history import HistoryWriter, iter_history
from pgha.scenario import parse_scenario
from sim.postgres import PgTiming
from sim.run import run_scenario

# Seed 3: n1 is the first primary. From 60 s to 100 s it is cut off from etcd and the replicas,
# but HAProxy still reaches it, so it acknowledges writes alone (its WAL diverges); from 60 s to
# 140 s it cannot reach the replicas at all, so its pg_rewind has no source until 140 s.
CUT_OFF_SOURCE = """
name: rewind-source-cut-off
seed: 3
duration: 4m
cluster: {nodes: 3, etcd: 3}
network: {latency: {median: 1ms, p99: 1ms}}
workload: {rate: 10/s, via: haproxy}
faults:
  - {at: 60s, partition: {groups: [[n1], [n2, n3, etcd1, etcd2, etcd3]]}, for: 40s}
  - {at: 60s, partition: {groups: [[n1], [n2, n3]]}, for: 80s}
checks:
  no_lost_acknowledged_writes: true
  max_lost_writes: 300
  eventually_healthy: 30s
"""

T = PgTiming()


def _run(text: str) -> tuple[list[dict[str, Any]], bool]:
    buffer = io.StringIO()
    scenario = parse_scenario(text)
    run_scenario(scenario, recorder=HistoryWriter(buffer))
    lines = buffer.getvalue().splitlines()
    report = run_checks(iter_history(lines), scenario.checks)
    return [json.loads(line) for line in lines], report.ok


def test_a_rewind_whose_source_is_cut_off_is_tried_again_until_it_works() -> None:
    events, ok = _run(CUT_OFF_SOURCE)
    n1 = [e for e in events if e.get("node") == "n1"]
    decisions = [(e["t"], e["reason"]) for e in n1 if e["kind"] == "decision" and e["t"] > 99]
    # The partition from etcd heals at 100 s: n1 reads the new leader at once and is diverged.
    # Its pg_rewind cannot reach the leader until 140 s; each cycle (loop_wait 10 s) tries again
    # instead of waiting for a manual reinit.
    tries = [t for t, reason in decisions if reason == "rewind"]
    assert tries == [100.03, 103.078, 113.082, 123.086, 133.09, 143.094]
    assert "needs_manual_reinit" not in {reason for _, reason in decisions}
    # The try after 140 s works: stop (500 ms), pg_rewind of 100 diverged 128-byte records
    # (1 s + 12800 B at 100 MB/s), start (1 s): a replica of the new leader on timeline 2.
    roles = [(e["t"], e["role"], e["timeline"]) for e in n1 if e["kind"] == "pg_role"]
    stopped = 143.094 + T.stop_fast_s
    rewound = stopped + T.rewind_base_s + 12800 / T.rewind_bytes_per_s
    assert (stopped, "stopped", 1) in roles
    assert (round(rewound, 6), "starting", 1) in roles
    assert (round(rewound + T.start_s, 6), "replica", 2) in roles
    assert ok  # healthy within 30 s of the last fault; the old primary's writes within bound


# Seed 3: n1 is the first primary. n2's machine dies at 60 s and boots at 90 s; its agent starts
# PostgreSQL at once (crash recovery 1 s, start 1 s) and is killed 1 s into it, for 2 s.
AGENT_KILLED_WHILE_STARTING = """
name: agent-killed-while-postgres-starts
seed: 3
duration: 3m
cluster: {nodes: 3, etcd: 3}
network: {latency: {median: 1ms, p99: 1ms}}
workload: {rate: 10/s, via: haproxy}
faults:
  - {at: 60s, kill: n2, for: 30s}
  - {at: 91s, kill_agent: n2, for: 2s}
checks:
  eventually_healthy: 30s
"""


def test_postgres_finishes_starting_when_the_agent_that_started_it_is_killed() -> None:
    events, ok = _run(AGENT_KILLED_WHILE_STARTING)
    n2 = [e for e in events if e.get("node") == "n2" and e["t"] >= 90]
    roles = [(e["t"], e["role"]) for e in n2 if e["kind"] == "pg_role"]
    started = 90.006
    up = round(started + T.crash_recovery_s + T.start_s, 6)
    assert roles[:2] == [(started, "starting"), (up, "replica")]
    # The agent that comes back at 93 s finds a replica following the leader, and its first
    # decision comes 6 ms after it starts, as the one at 90.006 s did after the boot.
    decisions = [(e["t"], e["reason"]) for e in n2 if e["kind"] == "decision"]
    assert decisions[1] == (93.006, "follow_leader")
    assert ok


# soak-sync seed 3853, shrunk: n3 leads, n1 is its sync standby and n2 an async replica. n1's
# PostgreSQL is frozen (SIGSTOP) from 275.1 s to 287.6 s and an operator asks for a switchover at
# 280.4 s. Commits wait for n1, so n2 received WAL n1 has not (never acknowledged); compared with
# every peer, n1 saw n2 ahead and stood down, n2 may not promote in sync mode and n3 is the former
# leader: no primary for the rest of the run. Patroni compares a sync standby with the sync
# candidates only.
SYNC_STANDBY_FROZEN = """
name: sync-standby-frozen-through-a-switchover
seed: 3853
duration: 600s
cluster: {nodes: 3, etcd: 3}
config:
  ttl: 30
  loop_wait: 10
  retry_timeout: 10
  synchronous_mode: true
  watchdog: {mode: automatic, safety_margin: 5}
workload: {rate: 10/s, via: haproxy, clients: 1, timeout: 5s}
faults:
  - {at: 35.1s, etcd: {member: random, action: pause}, for: 5.6s}
  - {at: 275.1s, pause: {node: replica, what: postgres}, for: 12.5s}
  - {at: 280.4s, switchover: {}}
checks:
  no_lost_acknowledged_writes: true
  eventually_healthy: 60s
"""


def test_a_sync_standby_frozen_through_a_switchover_takes_over_when_it_thaws() -> None:
    events, ok = _run(SYNC_STANDBY_FROZEN)
    locks = [(e["t"], e["node"], e["event"]) for e in events if e["kind"] == "lock"]
    assert (282.171344, "n3", "released") in locks
    assert (282.205225, "n1", "acquired") in locks  # the race it used to lose to n2's WAL
    roles = [e for e in events if e["kind"] == "pg_role" and e["t"] > 280]
    primaries = [(e["t"], e["node"]) for e in roles if e["role"] == "primary"]
    # PostgreSQL thaws at 287.6 s and the promotion it was asked for takes 0.5 s.
    assert primaries[0] == (round(287.6 + T.promote_s, 6), "n1")
    assert ok
