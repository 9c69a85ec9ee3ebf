"""The simulated etcd cluster (sim/etcd.py): leadership, elections, terms, pre-vote, leases, reads.

Three members e1..e3 and a client host c on a network with a fixed 1 ms one-way latency; the
election timeout is 1 s, so an election ends between 1 s and 2 s after the leader was lost.
A request through the leader costs the client 4 ms (1 ms there, a 2 ms majority round trip, 1 ms
back); through a follower 6 ms (the follower's round trip to the leader adds 2 ms).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from sim.etcd import EtcdCluster, Snapshot
from sim.net import Latency, Unreachable
from tests.sim.simkit import LAT, Net, Outcome, attempt, close, later

MEMBERS = ["e1", "e2", "e3"]
TIMEOUT = 1.0  # the election timeout


class Etcd(Net):
    def __init__(self, *, pre_vote: bool = True, seed: int = 1) -> None:
        super().__init__(*MEMBERS, "c", seed=seed)
        self.cluster = EtcdCluster(
            self.world, self.net, MEMBERS, pre_vote=pre_vote, election_timeout_s=TIMEOUT
        )
        self.expired: list[tuple[float, str, Any]] = []
        self.cluster.on_expired.append(
            lambda key, value: self.expired.append((float(self.env.now), key, value))
        )

    @property
    def leader(self) -> str:
        leader = self.cluster.leader
        assert leader is not None
        return leader

    def followers(self) -> list[str]:
        return [m for m in MEMBERS if m != self.cluster.leader]

    def cut_off(self, member: str, fault_id: int = 1) -> None:
        """Partition `member` from the other members (the client c still reaches everyone)."""
        others = [m for m in MEMBERS if m != member]
        self.net.block(self.both_ways([member], others), fault_id)

    def elections(self) -> list[dict[str, Any]]:
        return self.recorder.of("etcd_leader")

    def read(self, member: str, *, linearizable: bool, timeout: float, at: float) -> Outcome:
        def handler(deadline: float) -> Generator[Any, Any, Snapshot]:
            return (yield from self.cluster.serve_read(member, deadline, linearizable=linearizable))

        return attempt(self.env, self.net.call("c", member, handler, timeout), at=at)

    def write(self, member: str, key: str, value: Any, *, timeout: float, at: float) -> Outcome:
        def handler(deadline: float) -> Generator[Any, Any, tuple[Any, int]]:
            op = lambda c: c.put(key, value)  # noqa: E731 - a one-line transaction
            return (yield from self.cluster.serve_write(member, op, deadline))

        return attempt(self.env, self.net.call("c", member, handler, timeout), at=at)

    def run(self, until: float) -> None:
        self.env.run(until=until)


def test_the_cluster_starts_with_a_leader_at_term_2() -> None:
    e = Etcd()
    assert e.cluster.leader in MEMBERS
    assert e.cluster.term == 2
    assert all(e.cluster.current(m) for m in MEMBERS)


def test_requests_cost_a_majority_round_trip_through_the_leader() -> None:
    e = Etcd()
    via_leader = e.write(e.leader, "k", 1, timeout=1, at=0.5)
    via_follower = e.write(e.followers()[0], "k", 2, timeout=1, at=0.5)
    serializable = e.read(e.followers()[0], linearizable=False, timeout=1, at=0.5)
    e.run(1)
    assert via_leader.value == (2, 2)  # (the op's result: the revision, the raft term)
    assert close(via_leader.t, 0.5 + 4 * LAT)
    assert via_follower.value == (3, 2)
    assert close(via_follower.t, 0.5 + 6 * LAT)
    assert close(serializable.t, 0.5 + 2 * LAT)  # answered locally, no leader involved
    assert e.cluster.kv["k"].value == 2


def test_the_leader_stays_while_a_majority_is_connected() -> None:
    e = Etcd()
    leader = e.leader
    follower = e.followers()[0]
    later(e.env, 1.0, lambda: e.cut_off(follower))
    write = e.write(leader, "k", 1, timeout=1, at=5)
    e.run(20)
    assert e.cluster.leader == leader
    assert e.cluster.term == 2
    assert e.elections() == []
    assert close(write.t, 5 + 4 * LAT)  # the majority round trip uses the connected follower
    assert not e.cluster.current(follower)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_isolating_the_leader_elects_another_member_after_the_election_timeout(
    seed: int,
) -> None:
    e = Etcd(seed=seed)
    old = e.leader
    later(e.env, 1.0, lambda: e.cut_off(old))
    e.run(1.0 + 1e-9)
    assert e.cluster.leader is None  # lost at once: it no longer reaches a majority
    e.run(10)
    [election] = e.elections()
    assert election["t"] - 1.0 >= TIMEOUT
    assert election["t"] - 1.0 <= 2 * TIMEOUT
    assert election["node"] == e.cluster.leader != old
    assert election["term"] == e.cluster.term == 3
    assert not e.cluster.current(old)


def test_a_request_during_the_election_waits_for_the_new_leader() -> None:
    e = Etcd()
    old = e.leader
    member = e.followers()[0]
    later(e.env, 1.0, lambda: e.cut_off(old))
    write = e.write(member, "k", "v", timeout=5, at=1.0)
    e.run(10)
    [election] = e.elections()
    commit = 0.0 if election["node"] == member else 2 * LAT  # the hop to the new leader and back
    assert write.error is None
    assert close(write.t, election["t"] + commit + 2 * LAT + LAT)
    assert write.value[1] == 3  # answered in the new term


def test_leases_are_reset_to_their_full_ttl_at_the_new_leader() -> None:
    e = Etcd()
    lease = e.cluster.grant(5.0)
    e.cluster.put("leader", "n1", lease)
    old = e.leader
    later(e.env, 1.0, lambda: e.cut_off(old))
    e.run(5.5)  # the lease would have expired at 5 s without the leader change
    assert "leader" in e.cluster.kv
    e.run(20)
    [election] = e.elections()
    [(when, key, value)] = e.expired
    assert (key, value) == ("leader", "n1")
    assert close(when, election["t"] + 5.0)
    assert "leader" not in e.cluster.kv
    assert lease not in e.cluster.leases


def test_a_keepalive_extends_a_lease_by_its_ttl() -> None:
    e = Etcd()
    lease = e.cluster.grant(2.0)
    e.cluster.put("k", 1, lease)
    later(e.env, 1.5, lambda: e.cluster.keepalive(lease))
    e.run(10)
    assert e.expired == [(3.5, "k", 1)]
    assert not e.cluster.keepalive(lease)  # gone


def test_no_lease_expires_while_there_is_no_leader() -> None:
    e = Etcd()
    lease = e.cluster.grant(2.0)
    e.cluster.put("k", 1, lease)
    e.cluster.put("other", 2)  # no lease: never expires

    def split_all() -> None:
        for i, member in enumerate(MEMBERS):
            e.cut_off(member, fault_id=10 + i)

    later(e.env, 0.5, split_all)
    later(e.env, 10.0, e.net.heal_all)
    e.run(10.0)
    assert e.cluster.leader is None
    assert e.expired == []
    assert "k" in e.cluster.kv
    e.run(30)
    [election] = e.elections()
    assert 10.0 < election["t"] <= 10.0 + 2 * TIMEOUT
    [(when, key, value)] = e.expired
    assert (key, value) == ("k", 1)
    assert close(when, election["t"] + 2.0)
    assert "other" in e.cluster.kv


def test_a_cut_off_member_answers_serializable_reads_from_its_stale_copy() -> None:
    e = Etcd()
    follower = e.followers()[0]
    e.cluster.put("x", 1)
    later(e.env, 1.0, lambda: e.cut_off(follower))
    later(e.env, 2.0, lambda: e.cluster.put("x", 2))
    stale = e.read(follower, linearizable=False, timeout=1.5, at=3.0)
    fresh = e.read(e.followers()[1], linearizable=False, timeout=1.5, at=3.0)
    e.run(4)
    assert close(stale.t, 3.0 + 2 * LAT)
    assert stale.value.kv["x"].value == 1
    assert stale.value.term == 2
    assert fresh.value.kv["x"].value == 2
    assert fresh.value.revision > stale.value.revision


def test_a_cut_off_member_hangs_linearizable_reads_and_writes_until_the_deadline() -> None:
    e = Etcd()
    follower = e.followers()[0]
    later(e.env, 1.0, lambda: e.cut_off(follower))
    read = e.read(follower, linearizable=True, timeout=1.5, at=3.0)
    write = e.write(follower, "y", 1, timeout=1.5, at=3.0)
    e.run(10)
    assert isinstance(read.error, Unreachable)
    assert close(read.t, 4.5)
    assert isinstance(write.error, Unreachable)
    assert close(write.t, 4.5)
    assert "y" not in e.cluster.kv  # never applied


def test_a_rejoining_member_serves_current_data_again() -> None:
    e = Etcd()
    follower = e.followers()[0]
    later(e.env, 1.0, lambda: e.cut_off(follower))
    later(e.env, 2.0, lambda: e.cluster.put("x", 2))
    later(e.env, 3.0, lambda: e.net.unblock(1))
    read = e.read(follower, linearizable=False, timeout=1, at=3.5)
    e.run(5)
    assert read.value.kv["x"].value == 2
    assert e.cluster.current(follower)


def test_the_old_leader_cut_off_answers_with_its_old_term() -> None:
    e = Etcd()
    old = e.leader
    later(e.env, 1.0, lambda: e.cut_off(old))
    read = e.read(old, linearizable=False, timeout=1, at=5.0)
    e.run(6)
    assert e.cluster.term == 3
    assert read.value.term == 2


def test_pre_vote_off_a_member_isolated_for_several_timeouts_forces_a_leader_change() -> None:
    e = Etcd(pre_vote=False)
    follower = e.followers()[0]
    later(e.env, 1.0, lambda: e.cut_off(follower))
    later(e.env, 4.5, lambda: e.net.unblock(1))  # 3.5 election timeouts alone
    e.run(4.5 + 1e-9)
    assert e.cluster.leader is None  # the leader stepped down for the higher term
    e.run(20)
    [election] = e.elections()
    assert 4.5 + TIMEOUT <= election["t"] <= 4.5 + 2 * TIMEOUT
    assert election["term"] >= 2 + 3 + 1  # three rounds of campaigning, then the election
    assert election["node"] in MEMBERS
    assert e.cluster.term == election["term"]


def test_pre_vote_off_a_member_isolated_for_less_than_a_timeout_changes_nothing() -> None:
    e = Etcd(pre_vote=False)
    leader = e.leader
    later(e.env, 1.0, lambda: e.cut_off(e.followers()[0]))
    later(e.env, 1.5, lambda: e.net.unblock(1))
    e.run(20)
    assert e.elections() == []
    assert (e.cluster.leader, e.cluster.term) == (leader, 2)


def test_pre_vote_on_a_rejoining_member_does_not_disturb_the_leader() -> None:
    e = Etcd(pre_vote=True)
    leader = e.leader
    later(e.env, 1.0, lambda: e.cut_off(e.followers()[0]))
    later(e.env, 11.0, lambda: e.net.unblock(1))  # ten election timeouts alone
    e.run(30)
    assert e.elections() == []
    assert (e.cluster.leader, e.cluster.term) == (leader, 2)


def test_a_stopped_member_refuses_at_once() -> None:
    e = Etcd()
    follower = e.followers()[0]
    e.cluster.stop(follower)
    read = e.read(follower, linearizable=False, timeout=2, at=1.0)
    write = e.write(follower, "k", 1, timeout=2, at=1.0)
    e.run(5)
    for out in (read, write):
        assert isinstance(out.error, Unreachable)
        assert out.t is not None
        assert out.t > 1.0  # refused after one round trip, not timed out
        assert out.t <= 1.0 + 2 * LAT
    assert e.cluster.leader is not None  # two of three still make a majority
    assert "k" not in e.cluster.kv


def test_stopping_the_leader_elects_another_and_restarting_it_keeps_the_new_one() -> None:
    e = Etcd()
    old = e.leader
    later(e.env, 1.0, lambda: e.cluster.stop(old))
    later(e.env, 10.0, lambda: e.cluster.start(old))
    e.run(20)
    [election] = e.elections()
    assert 2.0 <= election["t"] <= 3.0
    assert e.cluster.leader == election["node"] != old
    assert e.cluster.current(old)  # rejoined as a follower


def test_two_members_stopped_leave_no_leader_and_the_last_one_hangs_writes() -> None:
    e = Etcd()
    last = e.leader
    for member in e.followers():
        e.cluster.stop(member)
    assert e.cluster.leader is None
    write = e.write(last, "k", 1, timeout=3, at=0)
    e.run(30)
    assert e.elections() == []
    assert isinstance(write.error, Unreachable)
    assert close(write.t, 3.0)
    assert "k" not in e.cluster.kv


def test_a_paused_leader_loses_leadership() -> None:
    e = Etcd()
    old = e.leader
    later(e.env, 1.0, lambda: e.net.pause(old))
    e.run(10)
    [election] = e.elections()
    assert 2.0 <= election["t"] <= 3.0
    assert e.cluster.leader != old


def test_a_request_through_a_slow_leader_gives_up_at_the_clients_deadline() -> None:
    # The leader's links take 1.5 s each way: a commit needs seconds, the client waits 1 s.
    e = Etcd()
    e.net.set_latency([e.leader], Latency(1.5, 1.5), fault_id=1)
    write = e.write(e.followers()[0], "k", 1, timeout=1.0, at=0.0)
    e.run(20)
    assert isinstance(write.error, Unreachable)
    assert close(write.t, 1.0)


def test_a_request_through_a_leader_that_drops_everything_gives_up_at_the_deadline() -> None:
    e = Etcd()
    e.net.set_loss([e.leader], 1.0, fault_id=1)
    write = e.write(e.followers()[0], "k", 1, timeout=1.05, at=0.0)
    e.run(20)
    assert isinstance(write.error, Unreachable)
    assert close(write.t, 1.05)
