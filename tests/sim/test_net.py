"""The simulated network (sim/net.py): delays, partitions, loss, latency faults, pauses, calls.

Latency is fixed at 1 ms one way, so a call to an instant handler answers after exactly 2 ms and a
call that gets no answer ends exactly at its timeout.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import pytest
import simpy

from sim.net import Latency, Unreachable, instant
from tests.sim.simkit import LAT, Net, attempt, close, later

HOSTS = ("a", "b", "c", "d")


def recording(env: simpy.Environment, seen: list[float], value: Any = "ok") -> Callable[..., Any]:
    """A handler that notes when it ran at the destination and answers `value`."""

    def handler(_deadline: float) -> Generator[simpy.Event, Any, Any]:
        seen.append(float(env.now))
        return value
        yield  # pragma: no cover - a generator

    return handler


def failing(error: Exception) -> Callable[..., Any]:
    def handler(_deadline: float) -> Generator[simpy.Event, Any, Any]:
        raise error
        yield  # pragma: no cover - a generator

    return handler


def reach(w: Net) -> set[tuple[str, str]]:
    """Every directed pair of distinct hosts that can currently talk."""
    return {(s, d) for s in HOSTS for d in HOSTS if s != d and w.net.connected(s, d)}


ALL = {(s, d) for s in HOSTS for d in HOSTS if s != d}


def test_a_call_costs_one_round_trip_and_returns_the_answer() -> None:
    w = Net(*HOSTS)
    ran: list[float] = []
    out = attempt(w.env, w.net.call("a", "b", recording(w.env, ran, 42), 1.0), at=0.5)
    w.env.run(until=2)
    assert out.value == 42
    assert out.error is None
    assert close(ran[0], 0.5 + LAT)
    assert close(out.t, 0.5 + 2 * LAT)


def test_a_host_always_reaches_itself_at_no_cost() -> None:
    w = Net(*HOSTS)
    w.net.block(w.both_ways(["a"], ["b", "c", "d"]), fault_id=1)
    w.net.block([("a", "a")], fault_id=2)  # a self-pair is ignored
    assert w.net.connected("a", "a")
    assert w.net.delay("a", "a") == 0.0
    out = attempt(w.env, w.net.call("a", "a", instant("self"), 1.0), at=0.25)
    w.env.run(until=2)
    assert out.value == "self"
    assert out.t == 0.25


def test_isolating_a_host_blocks_it_both_ways_and_leaves_the_others() -> None:
    w = Net(*HOSTS)
    w.net.block(w.both_ways(["a"], ["b", "c", "d"]), fault_id=1)
    assert reach(w) == {p for p in ALL if "a" not in p}


def test_groups_block_between_groups_both_ways_and_hosts_in_no_group_reach_everyone() -> None:
    w = Net(*HOSTS)
    w.net.block(w.both_ways(["a"], ["b", "c"]), fault_id=1)  # groups [[a], [b, c]]; d in none
    assert reach(w) == ALL - {("a", "b"), ("b", "a"), ("a", "c"), ("c", "a")}
    assert all(w.net.connected("d", h) and w.net.connected(h, "d") for h in "abc")


def test_a_one_way_block_drops_only_one_direction() -> None:
    w = Net(*HOSTS)
    w.net.block([("a", "b")], fault_id=1)
    assert reach(w) == ALL - {("a", "b")}
    assert w.net.delay("a", "b") is None
    assert w.net.delay("b", "a") == LAT


def test_a_blocked_request_costs_exactly_the_timeout() -> None:
    w = Net(*HOSTS)
    w.net.block([("a", "b")], fault_id=1)
    ran: list[float] = []
    out = attempt(w.env, w.net.call("a", "b", recording(w.env, ran), 1.5), at=0.5)
    w.env.run(until=5)
    assert isinstance(out.error, Unreachable)
    assert close(out.t, 2.0)
    assert ran == []


def test_a_lost_answer_costs_exactly_the_timeout_and_the_handler_still_ran() -> None:
    w = Net(*HOSTS)
    w.net.block([("a", "b")], fault_id=1)  # b -> a requests arrive, answers a -> b are lost
    ran: list[float] = []
    out = attempt(w.env, w.net.call("b", "a", recording(w.env, ran), 1.5), at=0.5)
    w.env.run(until=5)
    assert close(ran[0], 0.5 + LAT)  # its effects stay applied
    assert isinstance(out.error, Unreachable)
    assert close(out.t, 2.0)


def test_unblocking_a_fault_id_leaves_other_faults_on_the_same_pair() -> None:
    w = Net(*HOSTS)
    w.net.block([("a", "b"), ("a", "c")], fault_id=1)
    w.net.block([("a", "b")], fault_id=2)
    w.net.unblock(1)
    assert reach(w) == ALL - {("a", "b")}
    w.net.unblock(2)
    assert reach(w) == ALL
    w.net.unblock(99)  # unknown ids are harmless
    assert reach(w) == ALL


def test_heal_all_ends_every_partition() -> None:
    w = Net(*HOSTS)
    w.net.block(w.both_ways(["a"], ["b", "c", "d"]), fault_id=1)
    w.net.block([("c", "d")], fault_id=2)
    w.net.heal_all()
    assert reach(w) == ALL


def test_a_host_that_is_down_reaches_nobody_not_even_itself() -> None:
    w = Net(*HOSTS)
    w.net.set_down("b", True)
    assert reach(w) == {p for p in ALL if "b" not in p}
    assert not w.net.connected("b", "b")
    assert w.net.delay("b", "b") is None
    out = attempt(w.env, w.net.call("a", "b", instant(1), 0.75))
    w.env.run(until=1)
    assert isinstance(out.error, Unreachable)
    assert close(out.t, 0.75)
    w.net.set_down("b", False)
    assert reach(w) == ALL


def test_a_host_going_down_while_the_request_travels_gives_no_answer() -> None:
    w = Net(*HOSTS)
    ran: list[float] = []
    out = attempt(w.env, w.net.call("a", "b", recording(w.env, ran), 1.0))
    later(w.env, LAT / 2, lambda: w.net.set_down("b", True))
    w.env.run(until=2)
    assert ran == []
    assert isinstance(out.error, Unreachable)
    assert close(out.t, 1.0)


def test_total_loss_drops_every_message_until_cleared() -> None:
    w = Net(*HOSTS)
    w.net.set_loss(["b"], 1.0, fault_id=3)
    assert all(w.net.delay(h, "b") is None and w.net.delay("b", h) is None for h in "acd")
    assert w.net.delay("a", "c") == LAT
    assert w.net.connected("a", "b")  # loss is random, not a partition
    out = attempt(w.env, w.net.call("a", "b", instant(1), 0.5))
    w.env.run(until=1)
    assert isinstance(out.error, Unreachable)
    assert close(out.t, 0.5)
    w.net.clear(4)  # another fault's id: the loss stays
    assert w.net.delay("a", "b") is None
    w.net.clear(3)
    assert w.net.delay("a", "b") == LAT


def test_partial_loss_drops_about_that_share() -> None:
    w = Net(*HOSTS)
    w.net.set_loss(["b"], 0.25, fault_id=1)
    dropped = sum(w.net.delay("a", "c" if i % 2 else "b") is None for i in range(4000))
    # 2000 messages touch b (each may be dropped at b only): about 500 dropped
    assert 400 < dropped < 600


def test_a_latency_fault_changes_the_delay_to_and_from_its_hosts() -> None:
    w = Net(*HOSTS)
    w.net.set_latency(["b"], Latency(0.05, 0.05), fault_id=7)
    assert w.net.delay("a", "b") == 0.05
    assert w.net.delay("b", "c") == 0.05
    assert w.net.delay("a", "c") == LAT
    out = attempt(w.env, w.net.call("a", "b", instant(1), 1.0))
    w.env.run(until=1)
    assert close(out.t, 0.1)
    w.net.clear(7)
    assert w.net.delay("a", "b") == LAT


def test_an_answer_slower_than_the_timeout_is_lost_at_the_timeout() -> None:
    w = Net(*HOSTS)
    w.net.set_latency(["b"], Latency(0.3, 0.3), fault_id=1)
    out = attempt(w.env, w.net.call("a", "b", instant(1), 0.5))  # there 0.3, back 0.3 > 0.5
    w.env.run(until=2)
    assert isinstance(out.error, Unreachable)
    assert close(out.t, 0.5)


def test_a_request_slower_than_the_timeout_costs_the_caller_only_the_timeout() -> None:
    # The request takes 3 s to arrive; the caller's socket times out after 1 s.
    w = Net(*HOSTS)
    w.net.set_latency(["b"], Latency(3.0, 3.0), fault_id=1)
    out = attempt(w.env, w.net.call("a", "b", instant(1), 1.0))
    w.env.run(until=10)
    assert isinstance(out.error, Unreachable)
    assert close(out.t, 1.0)


def test_inter_datacenter_links_use_their_own_latency() -> None:
    w = Net()
    w.net.add_host("a", "dc1")
    w.net.add_host("b", "dc1")
    w.net.add_host("c", "dc2")
    w.net.inter_dc_latency = Latency(0.02, 0.02)
    assert w.net.delay("a", "b") == LAT
    assert w.net.delay("a", "c") == 0.02
    assert w.net.delay("c", "b") == 0.02


def test_lognormal_latency_has_the_configured_median_and_p99() -> None:
    w = Net("a", "b")
    w.net.default_latency = Latency(0.001, 0.01)
    draws = sorted(d for d in (w.net.delay("a", "b") for _ in range(20000)) if d is not None)
    assert draws[len(draws) // 2] == pytest.approx(0.001, rel=0.05)
    assert draws[int(len(draws) * 0.99)] == pytest.approx(0.01, rel=0.15)


def test_a_paused_host_runs_the_handler_only_after_resume() -> None:
    w = Net(*HOSTS)
    w.net.pause("b")
    assert w.net.is_paused("b")
    ran: list[float] = []
    out = attempt(w.env, w.net.call("a", "b", recording(w.env, ran, "late"), 2.0))
    later(w.env, 0.7, lambda: w.net.resume("b"))
    w.env.run(until=3)
    assert close(ran[0], 0.7)
    assert out.value == "late"
    assert close(out.t, 0.7 + LAT)
    assert not w.net.is_paused("b")


def test_a_call_to_a_paused_host_times_out_exactly_at_the_timeout() -> None:
    w = Net(*HOSTS)
    w.net.pause("b")
    ran: list[float] = []
    out = attempt(w.env, w.net.call("a", "b", recording(w.env, ran), 1.25), at=0.5)
    w.env.run(until=3)
    assert ran == []
    assert isinstance(out.error, Unreachable)
    assert close(out.t, 1.75)
    w.net.resume("b")  # nothing waits any more: resuming runs nothing
    w.env.run(until=4)
    assert ran == []


def test_pausing_twice_needs_one_resume() -> None:
    w = Net(*HOSTS)
    w.net.pause("b")
    w.net.pause("b")
    w.net.resume("b")
    assert not w.net.is_paused("b")
    w.net.resume("b")  # resuming a running host is harmless


def test_a_remote_error_comes_back_after_the_round_trip() -> None:
    w = Net(*HOSTS)
    out = attempt(w.env, w.net.call("a", "b", failing(KeyError("nope")), 1.0))
    w.env.run(until=2)
    assert isinstance(out.error, KeyError)
    assert close(out.t, 2 * LAT)


def test_a_remote_error_whose_answer_is_lost_costs_the_timeout() -> None:
    w = Net(*HOSTS)
    w.net.block([("b", "a")], fault_id=1)  # the answer path
    out = attempt(w.env, w.net.call("a", "b", failing(KeyError("nope")), 1.0))
    w.env.run(until=2)
    assert isinstance(out.error, Unreachable)
    assert close(out.t, 1.0)


def test_listeners_hear_every_change_of_reachability() -> None:
    w = Net(*HOSTS)
    heard: list[str] = []
    w.net.listeners.append(lambda: heard.append("x"))
    w.net.block([("a", "b")], 1)
    w.net.unblock(1)
    w.net.set_down("c", True)
    w.net.set_down("c", False)
    w.net.pause("d")
    w.net.resume("d")
    w.net.heal_all()
    assert len(heard) == 7
