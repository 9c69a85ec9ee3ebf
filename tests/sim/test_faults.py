"""Faults as really applied (sim/faults.py): one tiny scenario per fault kind, run with
sim.run.build + run, checking the `fault` history events (targets resolved to real hosts when the
fault fires, the same hosts when it ends) and the fault's effect on the simulated world.

Every scenario: nodes n1..n3, etcd members etcd1..etcd3 on hosts of their own, ttl 10, loop_wait 2,
retry_timeout 3, no watchdog, 1 ms latency; the cluster has a primary from about 3 s on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pgha.scenario import FaultKind
from sim.clock import WALL_EPOCH_S
from sim.node import REBOOT_S
from sim.run import CTL_HOST, HAPROXY_HOST, Simulation
from tests.sim.simkit import LAT, fault_events, finish, primary_of, probe, scenario_sim


def phases(events: list[dict[str, Any]]) -> list[tuple[float, str, str, list[str]]]:
    return [(e["t"], e["phase"], e["fault"], e["targets"]) for e in fault_events(events)]


def first_target(events: list[dict[str, Any]]) -> str:
    """The host the first fault was resolved to when it fired."""
    return str(fault_events(events)[0]["targets"][0])


def decisions(events: list[dict[str, Any]], node: str) -> list[float]:
    return [e["t"] for e in events if e["kind"] == "decision" and e["node"] == node]


def reach(sim: Simulation, src: str, dst: str) -> bool:
    return sim.net.connected(src, dst)


def cut_links(sim: Simulation, times: list[float]) -> dict[float, set[tuple[str, str]]]:
    """At each time, the directed (src, dst) pairs that cannot reach each other."""
    hosts = sim.net.hosts
    return probe(
        sim.world.env,
        times,
        lambda: {(a, b) for a in hosts for b in hosts if a != b and not reach(sim, a, b)},
    )


# ---------------------------------------------------------------- machines, agents, PostgreSQL


def test_kill_primary_takes_its_machine_down_for_the_fault_and_ends_on_the_same_host() -> None:
    sim = scenario_sim("[{at: 20s, kill: primary, for: 15s}]")
    seen = probe(
        sim.world.env,
        [19.9, 20.0001, 34.9, 35.0001],
        lambda: {n: (node.machine_up, n in sim.net.down) for n, node in sim.nodes.items()},
    )
    primaries = probe(sim.world.env, [34.9], lambda: primary_of(sim))
    events = finish(sim)
    victim = first_target(events)
    # the end names the same host, though another node is primary by then
    assert phases(events) == [(20.0, "start", "kill", [victim]), (35.0, "end", "kill", [victim])]
    assert primaries[34.9] not in (None, victim)
    assert seen[19.9][victim] == (True, False)
    assert seen[20.0001][victim] == (False, True)
    assert seen[34.9][victim] == (False, True)
    assert seen[35.0001][victim] == (True, False)
    assert all(seen[34.9][n] == (True, False) for n in sim.nodes if n != victim)
    crashed = [e for e in events if e["kind"] == "pg_role" and e["role"] == "crashed"]
    assert [(e["t"], e["node"]) for e in crashed] == [(20.0, victim)]


def test_restart_reboots_a_running_machine_and_starts_a_dead_one() -> None:
    faults = "[{at: 10s, kill: n1}, {at: 20s, restart: n1}, {at: 25s, restart: n3}]"
    sim = scenario_sim(faults, duration=70)
    up = probe(
        sim.world.env,
        [19.9, 20.0001, 25.0001, 25.0 + REBOOT_S - 0.01, 25.0 + REBOOT_S + 0.01],
        lambda: (sim.nodes["n1"].machine_up, sim.nodes["n3"].machine_up),
    )
    events = finish(sim)
    assert phases(events) == [
        (10.0, "start", "kill", ["n1"]),
        (20.0, "end", "kill", ["n1"]),  # the restart ends the kill that was still in force
        (20.0, "start", "restart", ["n1"]),
        (25.0, "start", "restart", ["n3"]),
    ]
    assert up[19.9] == (False, True)
    assert up[20.0001] == (True, True)  # a dead machine starts at once
    assert up[25.0001] == (True, False)  # a running one is reset ...
    assert up[25.0 + REBOOT_S - 0.01] == (True, False)
    assert up[25.0 + REBOOT_S + 0.01] == (True, True)  # ... and boots after REBOOT_S


def test_kill_agent_stops_the_agent_for_the_fault_then_starts_it() -> None:
    sim = scenario_sim("[{at: 20s, kill_agent: replica, for: 10s}]")
    events_seen = probe(
        sim.world.env,
        [25.0, 30.0001],
        lambda: {n: node.agent is not None for n, node in sim.nodes.items()},
    )
    events = finish(sim)
    victim = first_target(events)
    assert phases(events) == [
        (20.0, "start", "kill_agent", [victim]),
        (30.0, "end", "kill_agent", [victim]),
    ]
    assert sim.nodes[victim].pg.running  # only the agent died
    assert events_seen[25.0] == {n: n != victim for n in sim.nodes}
    assert all(events_seen[30.0001].values())
    assert [t for t in decisions(events, victim) if 20.0 < t < 30.0] == []
    assert any(30.0 <= t < 35.0 for t in decisions(events, victim))


def test_kill_postgres_crashes_only_postgres_once() -> None:
    sim = scenario_sim("[{at: 20s, kill_postgres: primary}]")
    ups = probe(sim.world.env, [20.0001], lambda: {n: nd.machine_up for n, nd in sim.nodes.items()})
    events = finish(sim)
    victim = first_target(events)
    assert phases(events) == [(20.0, "start", "kill_postgres", [victim])]  # nothing to undo
    crashed = [e for e in events if e["kind"] == "pg_role" and e["role"] == "crashed"]
    assert [(e["t"], e["node"]) for e in crashed] == [(20.0, victim)]
    assert all(ups[20.0001].values())
    assert any(t > 20.0 for t in decisions(events, victim))  # its agent carries on


@pytest.mark.parametrize("what", ["node", "agent", "postgres"])
def test_pause_freezes_what_it_names_and_resumes_it(what: str) -> None:
    sim = scenario_sim(f"[{{at: 20s, pause: {{node: n3, what: {what}}}, for: 10s}}]")
    node = sim.nodes["n3"]
    state = probe(
        sim.world.env,
        [25.0, 30.0001],
        lambda: (sim.net.is_paused("n3"), node.agent_paused is not None, node.pg.paused),
    )
    events = finish(sim)
    assert phases(events) == [(20.0, "start", "pause", ["n3"]), (30.0, "end", "pause", ["n3"])]
    assert state[25.0] == (what == "node", what in ("node", "agent"), what in ("node", "postgres"))
    assert state[30.0001] == (False, False, False)
    steps = decisions(events, "n3")
    frozen = [t for t in steps if 20.0 < t < 30.0]
    assert bool(frozen) is (what == "postgres")  # a frozen agent takes no steps
    assert any(t >= 30.0 for t in steps)


# ---------------------------------------------------------------- the network


def test_partition_isolate_primary_cuts_it_off_both_ways_from_every_host() -> None:
    sim = scenario_sim("[{at: 20s, partition: {isolate: primary}, for: 10s}]")
    links = cut_links(sim, [25.0, 30.0001])
    events = finish(sim)
    victim = first_target(events)
    assert phases(events) == [
        (20.0, "start", "partition", [victim]),
        (30.0, "end", "partition", [victim]),
    ]
    others = [h for h in sim.net.hosts if h != victim]
    assert links[25.0] == {(victim, h) for h in others} | {(h, victim) for h in others}
    assert links[30.0001] == set()


def test_partition_groups_block_between_groups_and_spare_hosts_in_no_group() -> None:
    sim = scenario_sim("[{at: 20s, partition: {groups: [[n1, etcd1], [n2, n3]]}, for: 10s}]")
    links = cut_links(sim, [25.0])
    events = finish(sim)
    assert phases(events)[0] == (20.0, "start", "partition", ["n1", "etcd1", "n2", "n3"])
    cut = {(a, b) for a in ("n1", "etcd1") for b in ("n2", "n3")}
    assert links[25.0] == cut | {(b, a) for a, b in cut}
    # Hosts in no group are untouched:
    assert {"etcd2", "etcd3", HAPROXY_HOST, CTL_HOST} <= set(
        sim.net.hosts
    )  # in no group: untouched


def test_partition_one_way_drops_only_from_to() -> None:
    sim = scenario_sim("[{at: 20s, partition: {from: n1, to: [n2, etcd1]}, for: 10s}]")
    links = cut_links(sim, [25.0])
    events = finish(sim)
    assert phases(events)[0] == (20.0, "start", "partition", ["n1", "n2", "etcd1"])
    assert links[25.0] == {("n1", "n2"), ("n1", "etcd1")}


def test_partition_bridge_leaves_the_bridge_reaching_both_sides() -> None:
    sim = scenario_sim("[{at: 20s, partition: {a: n1, b: n2, bridge: n3}, for: 10s}]")
    links = cut_links(sim, [25.0])
    events = finish(sim)
    assert phases(events)[0] == (20.0, "start", "partition", ["n1", "n2", "n3"])
    assert links[25.0] == {("n1", "n2"), ("n2", "n1")}


def test_overlapping_partitions_end_separately() -> None:
    faults = (
        "[{at: 10s, partition: {isolate: n1}, for: 20s},"
        " {at: 20s, partition: {from: n1, to: n2}, for: 20s}]"
    )
    sim = scenario_sim(faults)
    blocked = probe(sim.world.env, [25.0, 35.0, 45.0], lambda: not reach(sim, "n1", "n2"))
    finish(sim)
    assert blocked == {25.0: True, 35.0: True, 45.0: False}


def test_heal_ends_every_partition_loss_and_latency_fault_still_active() -> None:
    faults = (
        "[{at: 10s, partition: {isolate: n1}, for: 30s},"
        " {at: 11s, loss: {targets: n2, rate: 100%}, for: 30s},"
        " {at: 12s, latency: {targets: n3, median: 50ms}, for: 30s},"
        " {at: 13s, pause: {node: n3, what: agent}, for: 30s},"
        " {at: 20s, heal: true}]"
    )
    sim = scenario_sim(faults, duration=60)
    net = probe(
        sim.world.env,
        [15.0, 20.0001],
        lambda: (
            reach(sim, "n1", "n2"),
            sim.net.delay("n1", "n2"),
            sim.net.delay("n1", "n3"),
        ),
    )
    events = finish(sim)
    assert net[15.0] == (False, None, None)
    assert net[20.0001] == (True, LAT, LAT)
    ends = [(t, fault) for t, phase, fault, _ in phases(events) if phase == "end"]
    assert ends == [(20.0, "partition"), (20.0, "loss"), (20.0, "latency"), (43.0, "pause")]
    assert (20.0, "start", "heal", []) in phases(events)


def test_heal_also_ends_partition_loss_and_latency_faults_without_for() -> None:
    faults = (
        "[{at: 10s, partition: {isolate: n1}},"
        " {at: 11s, loss: {targets: n2, rate: 100%}},"
        " {at: 12s, latency: {targets: n3, median: 50ms}},"
        " {at: 20s, heal: true}]"
    )
    sim = scenario_sim(faults, duration=60)
    net = probe(
        sim.world.env,
        [20.0001],
        lambda: (reach(sim, "n1", "n2"), sim.net.delay("n1", "n2"), sim.net.delay("n1", "n3")),
    )
    events = finish(sim)
    assert net[20.0001] == (True, LAT, LAT)
    ends = [(t, fault) for t, phase, fault, _ in phases(events) if phase == "end"]
    assert ends == [(20.0, "partition"), (20.0, "loss"), (20.0, "latency")]


def test_loss_drops_every_message_of_its_targets_for_the_fault() -> None:
    sim = scenario_sim("[{at: 20s, loss: {targets: [n1, etcd2], rate: 100%}, for: 10s}]")
    delays = probe(
        sim.world.env,
        [25.0, 30.0001],
        lambda: [sim.net.delay(a, b) for a, b in (("n1", "n2"), ("etcd1", "etcd2"), ("n2", "n3"))],
    )
    events = finish(sim)
    assert phases(events) == [
        (20.0, "start", "loss", ["n1", "etcd2"]),
        (30.0, "end", "loss", ["n1", "etcd2"]),
    ]
    assert fault_events(events)[0]["params"]["rate"] == 1.0
    assert delays[25.0] == [None, None, LAT]
    assert delays[30.0001] == [LAT, LAT, LAT]


def test_latency_changes_the_delay_of_its_targets_for_the_fault() -> None:
    sim = scenario_sim("[{at: 20s, latency: {targets: n1, median: 50ms, p99: 50ms}, for: 10s}]")
    delays = probe(
        sim.world.env,
        [25.0, 30.0001],
        lambda: [sim.net.delay(a, b) for a, b in (("n1", "n2"), ("etcd1", "n1"), ("n2", "n3"))],
    )
    events = finish(sim)
    assert phases(events) == [
        (20.0, "start", "latency", ["n1"]),
        (30.0, "end", "latency", ["n1"]),
    ]
    assert delays[25.0] == [0.05, 0.05, LAT]
    assert delays[30.0001] == [LAT, LAT, LAT]


# ---------------------------------------------------------------- clocks


def test_a_clock_jump_moves_the_wall_clock_only() -> None:
    sim = scenario_sim("[{at: 20s, clock: {node: n2, jump: -40s}}]")
    clock = sim.clocks["n2"]
    readings = probe(
        sim.world.env, [19.0, 21.0], lambda: (clock.wall(sim.world.now), clock.mono(sim.world.now))
    )
    events = finish(sim)
    assert phases(events) == [(20.0, "start", "clock", ["n2"])]
    (wall0, mono0), (wall1, mono1) = readings[19.0], readings[21.0]
    assert wall1 - wall0 == pytest.approx(2.0 - 40.0)
    assert mono1 - mono0 == pytest.approx(2.0)
    assert sim.nodes["n2"].now_wall() == pytest.approx(clock.wall(sim.world.now))


def test_a_clock_offset_and_drift_last_for_the_fault_and_are_restored() -> None:
    sim = scenario_sim("[{at: 20s, clock: {node: primary, offset: 5s, drift_ppm: 1000}, for: 10s}]")
    clocks = sim.clocks
    offsets = probe(
        sim.world.env,
        [19.0, 20.0001, 29.9999, 30.0001, 40.0],
        lambda: {
            h: (c.wall(sim.world.now) - sim.world.now - WALL_EPOCH_S, c.drift_ppm)
            for h, c in clocks.items()
        },
    )
    monos = probe(
        sim.world.env, [20.0, 30.0], lambda: {h: c.mono(sim.world.now) for h, c in clocks.items()}
    )
    events = finish(sim)
    host = first_target(events)
    assert phases(events) == [(20.0, "start", "clock", [host]), (30.0, "end", "clock", [host])]
    assert offsets[19.0][host] == (0.0, 0.0)
    assert offsets[20.0001][host][0] == pytest.approx(5.0, abs=1e-6)
    assert offsets[29.9999][host] == (pytest.approx(5.0 + 10.0 * 1000e-6, abs=1e-6), 1000.0)
    assert offsets[30.0001][host] == (pytest.approx(0.0, abs=1e-9), 0.0)
    assert offsets[40.0][host] == (pytest.approx(0.0, abs=1e-9), 0.0)
    assert monos[30.0][host] - monos[20.0][host] == pytest.approx(10.0 * (1 + 1000e-6))


# ---------------------------------------------------------------- etcd


def test_etcd_kill_of_the_etcd_leader_elects_another_and_restarts_the_same_member() -> None:
    sim = scenario_sim("[{at: 20s, etcd: etcd_leader, for: 20s}]")
    stopped = probe(sim.world.env, [30.0, 40.0001], lambda: set(sim.etcd.stopped))
    events = finish(sim)
    victim = first_target(events)
    assert phases(events) == [(20.0, "start", "etcd", [victim]), (40.0, "end", "etcd", [victim])]
    assert victim in {"etcd1", "etcd2", "etcd3"}
    assert stopped == {30.0: {victim}, 40.0001: set()}
    [election] = [e for e in events if e["kind"] == "etcd_leader"]
    assert 21.0 <= election["t"] <= 22.0
    assert election["node"] != victim
    assert election["term"] == 3
    lock = [e["event"] for e in events if e["kind"] == "lock" and e["t"] > 20.0]
    assert "expired" not in lock  # leases were reset at the new etcd leader


def test_etcd_pause_freezes_the_member_for_the_fault() -> None:
    sim = scenario_sim("[{at: 20s, etcd: {member: etcd2, action: pause}, for: 10s}]")
    paused = probe(sim.world.env, [25.0, 30.0001], lambda: sim.net.is_paused("etcd2"))
    events = finish(sim)
    assert phases(events) == [(20.0, "start", "etcd", ["etcd2"]), (30.0, "end", "etcd", ["etcd2"])]
    assert paused == {25.0: True, 30.0001: False}
    assert not sim.etcd.stopped


def test_etcd_members_placed_on_nodes_are_resolved_to_their_hosts() -> None:
    sim = scenario_sim("[{at: 20s, etcd: {member: etcd1}, for: 10s}]", on_nodes=True)
    stopped = probe(sim.world.env, [25.0], lambda: set(sim.etcd.stopped))
    events = finish(sim)
    assert phases(events) == [(20.0, "start", "etcd", ["n1"]), (30.0, "end", "etcd", ["n1"])]
    assert stopped[25.0] == {"n1"}
    assert sorted(sim.etcd.members) == ["n1", "n2", "n3"]


def test_killing_a_primary_that_also_hosts_the_etcd_leader_refreshes_its_lease() -> None:
    # A new etcd leader is elected and leases are refreshed, which lengthens the wait
    # (docs/design.md, "What real etcd and Patroni did here").
    sim = scenario_sim("[{at: 20s, kill: primary, for: 30s}]", on_nodes=True)
    before = probe(sim.world.env, [19.9], lambda: (primary_of(sim), sim.etcd.leader))
    events = finish(sim)
    victim = first_target(events)
    assert before[19.9] == (victim, victim), "seed 1 no longer puts both leaders on one host"
    renewed = [e["t"] for e in events if e["kind"] == "lock" and e["node"] == victim]
    last_renewal = max(t for t in renewed if t < 20.0)
    [election] = [e for e in events if e["kind"] == "etcd_leader"]
    assert 21.0 <= election["t"] <= 22.0
    [expired] = [e for e in events if e["kind"] == "lock" and e["event"] == "expired"]
    assert expired["node"] == victim
    assert expired["t"] == pytest.approx(election["t"] + 10.0)  # a full ttl at the new leader
    assert expired["t"] > last_renewal + 10.0


# ---------------------------------------------------------------- disk, operator actions


def test_disk_full_makes_the_primary_unwritable_for_the_fault() -> None:
    sim = scenario_sim("[{at: 20s, disk_full: primary, for: 10s}]")
    writable = probe(
        sim.world.env,
        [19.9, 25.0, 30.0001],
        lambda: {n: nd.pg.writable for n, nd in sim.nodes.items()},
    )
    events = finish(sim)
    victim = first_target(events)
    assert phases(events) == [
        (20.0, "start", "disk_full", [victim]),
        (30.0, "end", "disk_full", [victim]),
    ]
    assert writable[19.9][victim] is True
    assert writable[25.0][victim] is False
    assert writable[30.0001][victim] is True


def test_switchover_moves_the_primary_to_the_candidate() -> None:
    sim = scenario_sim("[{at: 20s, switchover: {leader: primary, candidate: replica}}]")
    primaries = probe(sim.world.env, [19.9, 30.0], lambda: primary_of(sim))
    events = finish(sim)
    leader, candidate = fault_events(events)[0]["targets"]
    assert phases(events) == [(20.0, "start", "switchover", [leader, candidate])]
    assert primaries[19.9] == leader
    assert primaries[30.0] == candidate != leader


def test_a_scheduled_switchover_waits_for_its_wall_clock_time() -> None:
    sim = scenario_sim("[{at: 20s, switchover: {leader: primary, candidate: replica, at: 40s}}]")
    primaries = probe(sim.world.env, [39.9, 50.0], lambda: primary_of(sim))
    events = finish(sim)
    leader, candidate = fault_events(events)[0]["targets"]
    assert phases(events) == [(20.0, "start", "switchover", [leader, candidate])]
    assert primaries[39.9] == leader
    assert primaries[50.0] == candidate


def test_failover_to_a_candidate_makes_it_primary() -> None:
    sim = scenario_sim("[{at: 20s, failover: {candidate: replica}}]")
    primaries = probe(sim.world.env, [19.9, 30.0], lambda: primary_of(sim))
    events = finish(sim)
    candidate = first_target(events)
    assert phases(events) == [(20.0, "start", "failover", [candidate])]
    assert primaries[19.9] != candidate
    assert primaries[30.0] == candidate


# ---------------------------------------------------------------- resolution


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("{at: 1s, kill: primary, for: 5s}", "no primary right now"),
        ("{at: 1s, partition: {isolate: primary}, for: 5s}", "no primary right now"),
        ("{at: 1s, switchover: null}", "no primary to switch over from"),
        ("{at: 1s, clock: {node: primary, jump: 5s}}", "no primary right now"),
    ],
)
def test_a_fault_whose_role_target_does_not_exist_is_recorded_as_skipped(
    fault: str, error: str
) -> None:
    sim = scenario_sim(f"[{fault}]", duration=30)
    events = finish(sim)
    [event] = fault_events(events)
    assert event["t"] == 1.0
    assert event["phase"] == "skipped"
    assert event["targets"] == []
    assert event["error"] == error
    assert all(nd.machine_up for nd in sim.nodes.values())


def test_role_targets_are_resolved_when_the_fault_fires() -> None:
    # The first kill takes the primary down; the second, later, hits the new primary.
    faults = "[{at: 20s, kill: primary, for: 30s}, {at: 45s, kill: primary, for: 5s}]"
    sim = scenario_sim(faults, duration=70)
    events = finish(sim)
    starts = [targets for _, phase, _, targets in phases(events) if phase == "start"]
    ends = [targets for _, phase, _, targets in phases(events) if phase == "end"]
    assert len(starts) == 2
    assert starts[0] != starts[1]
    assert ends == starts


def test_faults_get_increasing_ids_and_labels_name_their_targets() -> None:
    faults = (
        "[{at: 10s, pause: n1, for: 5s, label: freeze},"
        " {at: 12s, loss: {targets: n2, rate: 10%}, for: 5s}]"
    )
    sim = scenario_sim(faults)
    events = fault_events(finish(sim))
    assert [(e["id"], e["phase"], e["label"]) for e in events] == [
        (1, "start", "freeze"),
        (2, "start", "loss n2"),
        (1, "end", "freeze"),
        (2, "end", "loss n2"),
    ]


def test_written_data_faults_name_what_they_wrote_and_stay_without_for() -> None:
    # In detail: tests/sim/test_fault_writes.py.
    faults = (
        "[{at: 20s, config: {patch: {ttl: 20}}, for: 5s},"
        " {at: 22s, etcd_put: {key: status, value: x}},"
        " {at: 24s, config: {patch: {loop_wait: 3}}}]"
    )
    events = fault_events(finish(scenario_sim(faults, duration=40)))
    assert [(e["t"], e["phase"], e["label"], e["targets"]) for e in events] == [
        (20.0, "start", "config ttl", []),
        (22.0, "start", "etcd_put status", []),
        (24.0, "start", "config loop_wait", []),
        (25.0, "end", "config ttl", []),
    ]  # no end for the two without `for`, not even when the run heals everything


def test_every_fault_kind_is_covered_by_a_test_here() -> None:
    source = Path(__file__).read_text()
    missing = [k.value for k in FaultKind if f"{k.value}:" not in source]
    assert missing == []


def test_the_end_of_the_run_undoes_a_loss_without_for() -> None:
    sim = scenario_sim("[{at: 10s, loss: {targets: n2, rate: 100%}}]", duration=30)
    events = finish(sim, settle_s=20)
    assert sim.net.delay("n1", "n2") == LAT  # healed for the settle phase
    assert [e["t"] for e in events if e["kind"] == "dcs_error" and e["t"] > 35.0] == []


@pytest.mark.parametrize(
    "fault",
    [
        "{at: 10s, pause: {node: n2, what: agent}}",
        "{at: 10s, pause: n2}",
        "{at: 10s, kill_agent: n2}",
        "{at: 10s, disk_full: n2}",
        "{at: 10s, etcd: {member: etcd2}}",
    ],
)
def test_the_end_of_the_run_undoes_every_fault_still_in_force(fault: str) -> None:
    sim = scenario_sim(f"[{fault}]", duration=30)
    events = finish(sim, settle_s=20)
    node = sim.nodes["n2"]
    assert node.agent is not None
    assert node.agent_paused is None
    assert not sim.net.is_paused("n2")
    assert not node.pg.paused
    assert sim.etcd.stopped == set()
    assert any(e["kind"] == "fault" and e["phase"] == "end" for e in events)


def test_total_loss_at_the_etcd_leader_does_not_hang_the_agents() -> None:
    # No DCS call may hang forever (docs/patroni-rules.md, bug zoo 5): every agent keeps taking
    # steps during the fault.
    sim = scenario_sim("[{at: 20s, loss: {targets: etcd_leader, rate: 100%}, for: 20s}]")
    events = finish(sim)
    for name in sim.nodes:
        assert any(20.0 < t < 40.0 for t in decisions(events, name)), name


def test_a_switchover_while_etcd_is_unreachable_fails_like_patronictl_without_crashing() -> None:
    faults = (
        "[{at: 20s, partition: {isolate: [etcd1, etcd2, etcd3]}, for: 30s},"
        " {at: 25s, switchover: {leader: n1, candidate: n2}}]"
    )
    events = finish(scenario_sim(faults, duration=60))
    errors = [e for e in events if e["kind"] == "dcs_error" and e.get("node") == "ctl"]
    # The request goes to n1's REST API (1 ms each way); n1 reaches no etcd member and answers
    # 503 after retry_timeout (3 s here). Nothing is retried elsewhere: n1 answered.
    assert [(e["op"], e["via"], e["t"]) for e in errors] == [
        ("write_failover", "n1", pytest.approx(28.002, abs=1e-9))
    ]
    assert events[-1]["kind"] == "run_end"


def test_a_switchover_wakes_the_leader_through_its_rest_api() -> None:
    # The leader sleeps up to loop_wait (2 s) between cycles, but the REST API that takes the
    # request wakes it: with every message taking 1 ms, it decides to demote 27 ms after the
    # request (the POST, the REST API's read of the cluster and the key's write through etcd,
    # then the woken cycle's read, lock renewal and peer check), not at its next cycle.
    events = finish(scenario_sim("[{at: 25s, switchover: null}]"))
    renewals = [e for e in events if e.get("event") == "renewed" and e["t"] < 25.0]
    leader = renewals[-1]["node"]
    (demote,) = (e for e in events if e.get("reason") == "switchover_demote")
    assert (demote["node"], demote["t"]) == (leader, pytest.approx(25.027, abs=1e-9))
