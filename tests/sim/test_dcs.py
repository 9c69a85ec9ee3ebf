"""The agent's simulated etcd client (sim/dcs.py): deadlines, endpoint rotation, terms, the lock.

Members e1..e3, database hosts n1 and n2, 1 ms one-way latency, election timeout 1 s. A request
through the leader costs 4 ms, through a follower 6 ms, a serializable read 2 ms.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from pgha.engine.config import DynamicConfig
from pgha.engine.values import FailoverKey, LockResult, Member, MemberRole, SyncKey
from pgha.ports import DcsError
from sim.dcs import ATTEMPT_S, SimDcs, view_of
from sim.etcd import EtcdCluster, Snapshot
from tests.sim.simkit import LAT, Net, Outcome, attempt, close, later

MEMBERS = ["e1", "e2", "e3"]
TTL = 5.0
RETRY = 5.0
CONFIG = DynamicConfig(ttl_s=TTL, loop_wait_s=1.0, retry_timeout_s=RETRY)
VIA_LEADER = 4 * LAT
VIA_FOLLOWER = 6 * LAT


class Dcs(Net):
    def __init__(self, *, seed: int = 1) -> None:
        super().__init__(*MEMBERS, "n1", "n2", seed=seed)
        self.etcd = EtcdCluster(self.world, self.net, MEMBERS, election_timeout_s=1.0)
        self.clients = {
            host: SimDcs(self.world, self.net, self.etcd, host, bootstrap_config=CONFIG)
            for host in ("n1", "n2")
        }

    @property
    def leader(self) -> str:
        assert self.etcd.leader is not None
        return self.etcd.leader

    def followers(self) -> list[str]:
        return [m for m in MEMBERS if m != self.etcd.leader]

    def client(self, host: str, endpoint: str, *, linearizable: bool = True) -> SimDcs:
        """The host's client, pointed at `endpoint` (normally picked by the seed)."""
        client = self.clients[host]
        client._endpoint = client.endpoints.index(endpoint)
        client.linearizable = linearizable
        return client

    def cut_off(self, member: str, fault_id: int = 1) -> None:
        """Cut `member` off from the other members; the database hosts still reach it."""
        others = [m for m in MEMBERS if m != member]
        self.net.block(self.both_ways([member], others), fault_id)

    def do(self, steps: Generator[Any, Any, Any], at: float) -> Outcome:
        return attempt(self.env, steps, at=at)

    def run(self, until: float) -> None:
        self.env.run(until=until)


def test_a_read_through_the_leader_costs_one_majority_round_trip() -> None:
    d = Dcs()
    d.etcd.put("leader", "n2")
    client = d.client("n1", d.leader)
    read = d.do(client.read_cluster(), at=1.0)
    d.run(2)
    assert close(read.t, 1.0 + VIA_LEADER)
    assert read.value.leader.holder == "n2"
    assert client.max_term == 2


def test_a_read_through_a_cut_off_member_rotates_and_succeeds_within_retry_timeout() -> None:
    d = Dcs()
    stuck = d.followers()[0]
    d.cut_off(stuck)
    client = d.client("n1", stuck)
    read = d.do(client.read_cluster(), at=1.0)
    d.run(10)
    assert read.error is None
    after = client.member  # the next endpoint in name order, and the client stays there
    assert after == MEMBERS[(MEMBERS.index(stuck) + 1) % 3]
    cost = VIA_LEADER if after == d.leader else VIA_FOLLOWER
    assert close(read.t, 1.0 + ATTEMPT_S + cost)  # one whole attempt lost on the stuck member


def test_with_no_quorum_at_all_a_read_raises_dcs_error_exactly_at_retry_timeout() -> None:
    d = Dcs()
    for i, member in enumerate(MEMBERS):
        d.cut_off(member, fault_id=i + 1)
    client = d.client("n1", "e1")
    read = d.do(client.read_cluster(), at=1.0)
    lock = d.do(d.client("n2", "e2").acquire_lock(), at=1.0)
    d.run(20)
    assert isinstance(read.error, DcsError)
    assert close(read.t, 1.0 + RETRY)
    # attempts of ATTEMPT_S (2 s), 2 s, then the 1 s left: every member was tried
    assert client.member == "e1"
    assert lock.value is LockResult.DCS_ERROR
    assert close(lock.t, 1.0 + RETRY)


def test_with_every_member_stopped_dcs_error_comes_at_retry_timeout() -> None:
    d = Dcs()
    for member in MEMBERS:
        d.etcd.stop(member)
    read = d.do(d.client("n1", "e1").read_cluster(), at=1.0)
    d.run(20)
    assert isinstance(read.error, DcsError)
    assert read.t is not None
    assert read.t == pytest.approx(1.0 + RETRY, abs=1e-9)


def test_an_answer_with_a_lower_term_than_already_seen_is_not_trusted() -> None:
    d = Dcs()
    old = d.leader
    d.cut_off(old)  # old keeps a stale copy at term 2; the others elect a leader at term 3
    d.run(5)
    assert d.etcd.term == 3
    d.etcd.put("leader", "n2")  # written after the old leader was cut off
    client = d.client("n1", d.followers()[0], linearizable=False)
    first = d.do(client.read_cluster(), at=5.0)
    d.run(6)
    assert first.value.leader.holder == "n2"
    assert client.max_term == 3
    client._endpoint = client.endpoints.index(old)
    second = d.do(client.read_cluster(), at=6.0)
    d.run(7)
    # the stale member answered (term 2) and was passed over for the next one
    assert close(second.t, 6.0 + 2 * LAT + 2 * LAT)
    assert second.value.leader.holder == "n2"
    assert client.member != old
    assert client.max_term == 3


def test_a_fresh_client_does_get_the_stale_answer_serializable_reads_allow() -> None:
    # The contrast to the test above: without a higher term seen, the stale copy is accepted.
    d = Dcs()
    old = d.leader
    d.cut_off(old)
    d.run(5)
    d.etcd.put("leader", "n2")
    read = d.do(d.client("n1", old, linearizable=False).read_cluster(), at=5.0)
    d.run(6)
    assert close(read.t, 5.0 + 2 * LAT)
    assert read.value.leader is None
    assert d.clients["n1"].max_term == 2


def test_acquire_lock_is_an_atomic_create() -> None:
    d = Dcs()
    one = d.do(d.client("n1", d.leader).acquire_lock(), at=1.0)
    two = d.do(d.client("n2", d.leader).acquire_lock(), at=1.0)
    d.run(2)
    results = {"n1": one.value, "n2": two.value}
    assert sorted(r.value for r in results.values()) == ["cas_failed", "ok"]
    [holder] = [h for h, r in results.items() if r is LockResult.OK]
    assert d.etcd.kv["leader"].value == holder
    assert close(one.t, 1.0 + VIA_LEADER)
    late = d.do(d.clients["n1" if holder == "n2" else "n2"].acquire_lock(), at=3.0)
    d.run(4)
    assert late.value is LockResult.CAS_FAILED
    assert d.etcd.kv["leader"].value == holder


def test_renew_lock_needs_the_current_version_and_the_holder() -> None:
    d = Dcs()
    n1 = d.client("n1", d.leader)
    n2 = d.client("n2", d.leader)
    d.do(n1.acquire_lock(), at=0.0)
    d.run(1)
    first = d.etcd.kv["leader"].mod_rev
    renewed = d.do(n1.renew_lock(first), at=1.0)
    d.run(2)
    assert renewed.value is LockResult.OK
    second = d.etcd.kv["leader"].mod_rev
    assert second > first
    stale = d.do(n1.renew_lock(first), at=2.0)
    other = d.do(n2.renew_lock(second), at=2.0)
    d.run(3)
    assert stale.value is LockResult.CAS_FAILED
    assert other.value is LockResult.CAS_FAILED
    assert d.etcd.kv["leader"].value == "n1"
    assert d.etcd.kv["leader"].mod_rev == second


def test_renew_lock_fails_once_the_lease_expired() -> None:
    d = Dcs()
    n1 = d.client("n1", d.leader)
    d.do(n1.acquire_lock(), at=0.0)
    d.run(1)
    version = d.etcd.kv["leader"].mod_rev
    late = d.do(n1.renew_lock(version), at=TTL + 1)
    d.run(TTL + 2)
    assert late.value is LockResult.CAS_FAILED
    assert "leader" not in d.etcd.kv


def test_lease_expiry_deletes_the_leader_and_member_keys_and_fires_a_leader_watch() -> None:
    d = Dcs()
    n1 = d.client("n1", d.leader)
    n2 = d.client("n2", d.leader)
    d.do(n1.acquire_lock(), at=0.0)  # applied at the leader at 3 ms: the lease is granted
    member = Member(name="n1", role=MemberRole.PRIMARY)
    d.do(n1.update_member(member), at=0.5)  # applied at 503 ms: the lease kept alive
    d.do(n2.read_cluster(), at=0.8)  # a watch starts after the watcher's latest read
    d.run(1.0)
    assert d.etcd.kv["leader"].lease == d.etcd.kv["members/n1"].lease == n1.lease
    watch: dict[str, Any] = {}
    later(d.env, 1.0, lambda: watch.setdefault("event", n2.watch()))
    d.do(n1.update_member(member), at=2.0)  # a member key change: no leader watch event
    d.run(3.0)
    assert not watch["event"].triggered
    expiry = 2.0 + 3 * LAT + TTL
    d.run(expiry - 1e-6)
    assert {"leader", "members/n1"} <= set(d.etcd.kv)
    d.run(expiry + 1e-6)
    assert "leader" not in d.etcd.kv
    assert "members/n1" not in d.etcd.kv
    assert not watch["event"].triggered  # delivered through n2's member, 1 ms later
    d.run(expiry + LAT + 1e-6)
    assert watch["event"].triggered


def test_a_watch_fires_at_once_for_a_leader_change_after_the_latest_read() -> None:
    d = Dcs()
    n1, n2 = d.client("n1", d.leader), d.client("n2", d.leader)
    d.do(n2.read_cluster(), at=0.0)
    d.do(n1.acquire_lock(), at=0.1)  # changes the leader key after n2's read
    d.run(1.0)
    event = n2.watch()  # n2 decided on a view without a leader: it must not sleep through this
    d.run(1.0 + LAT + 1e-6)
    assert event.triggered
    d.do(n2.read_cluster(), at=2.0)
    d.run(3.0)
    assert not n2.watch().triggered  # nothing changed since that read


def test_the_leader_watch_fires_on_a_lock_change_only_through_a_current_member() -> None:
    d = Dcs()
    stuck = d.followers()[0]
    d.cut_off(stuck)
    watcher = d.client("n2", stuck)
    event = watcher.watch()
    acquired = d.do(d.client("n1", d.leader).acquire_lock(), at=1.0)
    d.run(5)
    assert acquired.value is LockResult.OK
    assert not event.triggered  # its member no longer hears from the leader


def test_a_lost_lock_lease_is_replaced_by_a_new_one_on_the_next_acquire() -> None:
    d = Dcs()
    n1 = d.client("n1", d.leader)
    d.do(n1.acquire_lock(), at=0.0)
    d.run(1)
    first = n1.lease
    again = d.do(n1.acquire_lock(), at=TTL + 1)
    d.run(TTL + 2)
    assert again.value is LockResult.OK
    assert n1.lease != first
    assert d.etcd.kv["leader"].lease == n1.lease


def test_release_lock_deletes_only_our_own_key_at_its_version() -> None:
    d = Dcs()
    n1 = d.client("n1", d.leader)
    n2 = d.client("n2", d.leader)
    d.do(n1.acquire_lock(), at=0.0)
    d.run(1)
    version = d.etcd.kv["leader"].mod_rev
    d.do(n2.release_lock(None), at=1.0)  # not the holder
    d.do(n1.release_lock(version - 1), at=1.0)  # a stale version
    d.run(2)
    assert d.etcd.kv["leader"].value == "n1"
    d.do(n1.release_lock(version), at=2.0)
    d.run(3)
    assert "leader" not in d.etcd.kv


def test_initialize_is_claimed_once() -> None:
    d = Dcs()
    one = d.do(d.client("n1", d.leader).acquire_initialize(), at=0.0)
    two = d.do(d.client("n2", d.leader).acquire_initialize(), at=0.0)
    d.run(1)
    assert sorted([one.value, two.value]) == [False, True]


def test_view_of_maps_every_key_and_its_revision() -> None:
    d = Dcs()
    etcd = d.etcd
    etcd.put("initialize", "sys1")
    etcd.put("members/n2", Member(name="n2"))
    etcd.put("members/n1", Member(name="n1"))
    leader_rev = etcd.put("leader", "n1")
    failover_rev = etcd.put("failover", FailoverKey(candidate="n2"))
    sync_rev = etcd.put("sync", SyncKey(leader="n1", standbys=frozenset({"n2"})))
    etcd.put("status", 1234)
    etcd.put("failsafe", ("n1", "n2"))
    view = view_of(Snapshot(dict(etcd.kv), etcd.revision, etcd.term), CONFIG)
    assert view.leader is not None
    assert view.failover is not None
    assert view.initialize == "sys1"
    assert (view.leader.holder, view.leader.version) == ("n1", leader_rev)
    assert [m.name for m in view.members] == ["n1", "n2"]
    assert view.failover.candidate == "n2"
    assert view.failover.version == failover_rev
    assert view.sync.standbys == frozenset({"n2"})
    assert view.sync.version == sync_rev
    assert view.status_optime_lsn == 1234
    assert view.failsafe == ("n1", "n2")
    assert view.config is CONFIG  # no config key: the bootstrap config
    assert view.config_version is None
    empty = view_of(Snapshot({}, 1, 2), CONFIG)
    assert (empty.initialize, empty.leader, empty.members) == (None, None, ())
    assert empty.sync == SyncKey()


def test_the_config_key_replaces_the_bootstrap_config_for_later_deadlines() -> None:
    d = Dcs()
    client = d.client("n1", d.leader)
    d.do(client.write_config(), at=0.0)
    d.run(1)
    stored = DynamicConfig(ttl_s=20.0, loop_wait_s=2.0, retry_timeout_s=1.0)
    d.etcd.put("config", stored)
    d.do(client.read_cluster(), at=1.0)
    d.run(2)
    assert client.config == stored
    for i, member in enumerate(MEMBERS):
        d.cut_off(member, fault_id=i + 1)
    read = d.do(client.read_cluster(), at=3.0)
    d.run(10)
    assert isinstance(read.error, DcsError)
    assert close(read.t, 3.0 + 1.0)  # the stored retry_timeout, not the bootstrap one


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_first_endpoint_comes_from_the_seed(seed: int) -> None:
    a, b = Dcs(seed=seed), Dcs(seed=seed)
    assert a.clients["n1"].member == b.clients["n1"].member
