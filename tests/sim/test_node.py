"""Simulated database hosts (sim/node.py): the watchdog, the REST API, and the host's faults.

A 3-node cluster built from a scenario (ttl 10, loop_wait 2, watchdog mode off so the agents leave
the device alone) runs with its agents; the tests arm, kick and disable the device themselves and
call the REST API from the load balancer's host over the 1 ms network.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import simpy

from sim.net import Unreachable
from sim.node import REBOOT_S, Refused, SimNode
from sim.run import HAPROXY_HOST, Simulation
from tests.sim.simkit import (
    LAT,
    Outcome,
    attempt,
    close,
    finish,
    later,
    primary_of,
    probe,
    scenario_sim,
)


def on(sim: Simulation, t: float, steps: Callable[[], Generator[Any, Any, Any]]) -> None:
    """Start the generator `steps()` as a process at time `t`."""
    later(sim.world.env, t, lambda: sim.world.env.process(steps()))


def watchdog_events(events: list[dict[str, Any]], node: str) -> list[tuple[float, str]]:
    return [(e["t"], e["event"]) for e in events if e["kind"] == "watchdog" and e["node"] == node]


def downs(sim: Simulation, host: str) -> list[tuple[float, bool]]:
    """Every change of `host` being down, with its time (filled in as the run goes)."""
    changes: list[tuple[float, bool]] = []

    def listen() -> None:
        state = host in sim.net.down
        if state != (changes[-1][1] if changes else False):
            changes.append((sim.world.now, state))

    sim.net.listeners.append(listen)
    return changes


def look(node: SimNode) -> dict[str, Any]:
    return {
        "up": node.machine_up,
        "agent": node.agent is not None and node.agent.is_alive,
        "pg": node.pg.role,
    }


def probe_node(sim: Simulation, node: SimNode, times: list[float]) -> dict[float, Any]:
    """The node's machine, agent and PostgreSQL at each of `times`."""
    return probe(sim.world.env, times, lambda: look(node))


def test_a_starved_watchdog_fires_at_its_timeout_and_the_machine_reboots() -> None:
    sim = scenario_sim(duration=60)
    node = sim.nodes["n1"]
    changes = downs(sim, "n1")
    on(sim, 10.0, lambda: node.watchdog.arm(5.0))
    seen = probe_node(sim, node, [14.999, 15.0001, 44.999, 45.0001])
    events = finish(sim)
    assert watchdog_events(events, "n1") == [(10.0, "armed"), (15.0, "fired")]
    assert seen[14.999]["up"] is seen[14.999]["agent"] is True
    assert seen[14.999]["pg"] in ("primary", "replica")
    assert seen[15.0001] == {"up": False, "agent": False, "pg": "crashed"}
    assert seen[44.999]["up"] is False
    assert seen[45.0001]["up"] is True
    assert seen[45.0001]["agent"] is True  # the agent starts with the machine
    assert changes == [(15.0, True), (15.0 + REBOOT_S, False)]
    crashed = [e["t"] for e in events if e["kind"] == "pg_role" and e.get("node") == "n1"]
    assert 15.0 in crashed


def test_kicking_the_watchdog_postpones_it() -> None:
    sim = scenario_sim(duration=40)
    node = sim.nodes["n1"]
    on(sim, 10.0, lambda: node.watchdog.arm(5.0))
    on(sim, 13.0, node.watchdog.kick)
    on(sim, 17.0, node.watchdog.kick)
    events = finish(sim)
    assert watchdog_events(events, "n1") == [(10.0, "armed"), (22.0, "fired")]


def test_arming_again_restarts_the_timer_with_the_new_timeout() -> None:
    sim = scenario_sim(duration=40)
    node = sim.nodes["n1"]
    on(sim, 10.0, lambda: node.watchdog.arm(5.0))
    on(sim, 12.0, lambda: node.watchdog.arm(8.0))
    events = finish(sim)
    assert watchdog_events(events, "n1") == [(10.0, "armed"), (12.0, "armed"), (20.0, "fired")]


def test_a_disabled_watchdog_never_fires_and_kicks_do_not_arm_it() -> None:
    sim = scenario_sim(duration=40)
    node = sim.nodes["n1"]
    on(sim, 10.0, lambda: node.watchdog.arm(5.0))
    on(sim, 12.0, node.watchdog.disable)
    on(sim, 13.0, node.watchdog.kick)
    seen = probe_node(sim, node, [39.0])
    events = finish(sim)
    assert watchdog_events(events, "n1") == [(10.0, "armed"), (12.0, "disabled")]
    assert seen[39.0]["up"] is True
    assert node.watchdog.timeout_s is None


def test_a_machine_killed_and_restarted_does_not_inherit_its_armed_watchdog() -> None:
    sim = scenario_sim(duration=40)
    node = sim.nodes["n1"]
    on(sim, 10.0, lambda: node.watchdog.arm(5.0))
    later(sim.world.env, 12.0, node.kill)
    later(sim.world.env, 13.0, node.restart)
    seen = probe_node(sim, node, [16.0])
    events = finish(sim)
    assert watchdog_events(events, "n1") == [(10.0, "armed")]
    assert seen[16.0]["up"] is True


def test_the_watchdog_device_can_be_absent() -> None:
    sim = scenario_sim()
    node = sim.nodes["n1"]
    assert node.watchdog.available()
    node.watchdog_device = False
    assert not node.watchdog.available()


# ---------------------------------------------------------------- REST


def rest(sim: Simulation, name: str, path: str, *, at: float, timeout: float = 2.0) -> Outcome:
    node = sim.nodes[name]
    call = sim.net.call(HAPROXY_HOST, name, node.rest_handler(name, path), timeout)
    return attempt(sim.world.env, call, at=at)


def test_rest_answers_from_the_running_agent_after_one_round_trip() -> None:
    sim = scenario_sim(duration=30)
    body = rest(sim, "n1", "/patroni", at=10.0)
    primary = {n: rest(sim, n, "/primary", at=10.0) for n in sim.nodes}
    seen: dict[str, str | None] = {}
    later(sim.world.env, 10.0, lambda: seen.setdefault("primary", primary_of(sim)))
    finish(sim)
    assert close(body.t, 10.0 + 2 * LAT)
    assert body.value["patroni"]["name"] == "n1"
    assert body.value["state"] == "running"
    assert {n: out.value for n, out in primary.items()} == {
        n: 200 if n == seen["primary"] else 503 for n in sim.nodes
    }


def test_rest_of_a_node_whose_agent_is_killed_refuses_at_once() -> None:
    sim = scenario_sim(duration=30)
    later(sim.world.env, 10.0, sim.nodes["n1"].kill_agent)
    out = rest(sim, "n1", "/patroni", at=11.0)
    finish(sim)
    assert isinstance(out.error, Refused)
    assert out.t is not None
    assert 11.0 < out.t <= 11.0 + 2 * LAT  # refused, not timed out


def test_rest_of_a_frozen_agent_times_out_exactly() -> None:
    sim = scenario_sim(duration=30)
    later(sim.world.env, 10.0, sim.nodes["n1"].pause_agent)
    out = rest(sim, "n1", "/patroni", at=11.0, timeout=2.0)
    finish(sim)
    assert isinstance(out.error, Unreachable)
    assert close(out.t, 13.0)


def test_rest_of_a_frozen_agent_answers_once_it_resumes() -> None:
    sim = scenario_sim(duration=30)
    node = sim.nodes["n1"]
    later(sim.world.env, 10.0, node.pause_agent)
    later(sim.world.env, 12.0, node.resume_agent)
    out = rest(sim, "n1", "/patroni", at=11.0, timeout=2.0)
    finish(sim)
    assert out.value["patroni"]["name"] == "n1"
    assert close(out.t, 12.0 + LAT)


def test_rest_of_a_dead_machine_times_out_exactly() -> None:
    sim = scenario_sim(duration=30)
    later(sim.world.env, 10.0, sim.nodes["n1"].kill)
    out = rest(sim, "n1", "/patroni", at=11.0, timeout=1.5)
    finish(sim)
    assert isinstance(out.error, Unreachable)
    assert close(out.t, 12.5)


def test_a_frozen_agent_takes_no_steps_until_it_resumes() -> None:
    sim = scenario_sim(duration=40)
    node = sim.nodes["n3"]
    later(sim.world.env, 10.0, node.pause_agent)
    later(sim.world.env, 25.0, node.resume_agent)
    events = finish(sim)
    steps = [e["t"] for e in events if e["kind"] == "decision" and e["node"] == "n3"]
    assert [t for t in steps if 10.0 < t < 25.0] == []
    assert any(t < 10.0 for t in steps)
    assert any(25.0 <= t < 30.0 for t in steps)


def test_a_killed_agent_is_gone_and_its_node_keeps_postgres_running() -> None:
    sim = scenario_sim(duration=30)
    node = sim.nodes["n3"]
    later(sim.world.env, 10.0, node.kill_agent)
    seen = probe_node(sim, node, [15.0])
    events = finish(sim)
    assert seen[15.0]["up"] is True
    assert seen[15.0]["agent"] is False
    assert seen[15.0]["pg"] in ("primary", "replica")  # PostgreSQL runs on without its agent
    steps = [e["t"] for e in events if e["kind"] == "decision" and e["node"] == "n3"]
    assert [t for t in steps if 10.0 < t < 30.0] == []  # nobody restarts it (no fault ends)


def test_restart_of_a_running_machine_does_nothing() -> None:
    sim = scenario_sim(duration=30)
    node = sim.nodes["n3"]
    agents: list[simpy.Process | None] = []
    later(sim.world.env, 10.0, lambda: agents.append(node.agent))
    later(sim.world.env, 10.0, node.restart)
    later(sim.world.env, 10.5, lambda: agents.append(node.agent))
    finish(sim)
    assert agents[0] is agents[1] is not None
