"""Manual failover without a leader, and the leader's `failover_possible`
(docs/patroni-rules.md §2.4, §2.5)."""

from __future__ import annotations

import pytest

from pgha.engine.candidates import failover_possible
from pgha.engine.config import SyncMode
from pgha.engine.context import make_context
from pgha.engine.decision import Reason
from pgha.engine.roles import Role
from pgha.engine.state import Pending
from pgha.engine.values import FailoverKey, PeerStatus, SyncKey, Tags
from tests.engine.builders import (
    cfg,
    continuing,
    local,
    member,
    obs,
    peer,
    primary,
    replica,
    run,
    state,
    view,
)


def race(name: str, fo: FailoverKey, peers: tuple[PeerStatus, ...], **st_kw: object) -> Reason:
    st = continuing(state(Role.REPLICA, name=name, **st_kw), Pending.PEERS, 100.0)
    return run(st, obs(100.2, cluster=view(failover=fo), peers=peers), local(name)).reason


class TestManualFailoverWithoutLeader:
    def test_named_candidate_races_without_lag_checks(self) -> None:
        fo = FailoverKey(candidate="n1")
        st = state(Role.REPLICA)
        d = run(st, obs(cluster=view(failover=fo, status_optime_lsn=10**9)))
        assert d.reason is Reason.PROBE_PEERS
        assert race("n1", fo, (peer("n2", wal_lsn=99999),)) is Reason.RACE

    def test_others_wait_for_a_healthy_candidate(self) -> None:
        fo = FailoverKey(candidate="n3")
        assert race("n1", fo, (peer("n3"),)) is Reason.NOT_HEALTHIEST_WAIT_CANDIDATE

    def test_unhealthy_candidate_lets_the_healthiest_other_node_take_over(self) -> None:
        fo = FailoverKey(candidate="n3")
        assert race("n1", fo, (peer("n3", reachable=False), peer("n2", wal_lsn=10))) is Reason.RACE
        assert race("n1", fo, (peer("n3", reachable=False), peer("n2", wal_lsn=2000))) is (
            Reason.NOT_HEALTHIEST_PEER_AHEAD
        )

    def test_former_leader_ahead_is_not_compared_by_others(self) -> None:
        fo = FailoverKey(candidate="n3")
        peers = (peer("n3", running=False), peer("n2", wal_lsn=5000))
        assert race("n1", fo, peers, former_leader="n2") is Reason.RACE

    def test_former_leader_races_only_if_nobody_else_can(self) -> None:
        fo = FailoverKey(candidate="n3")
        peers = (peer("n3", running=False), peer("n2"))
        assert race("n1", fo, peers, former_leader="n1") is Reason.NOT_HEALTHIEST_FORMER_LEADER
        peers = (peer("n3", running=False), peer("n2", reachable=False))
        assert race("n1", fo, peers, former_leader="n1") is Reason.RACE


def _leader_ctx(fo: FailoverKey | None = None, **kw: object) -> object:
    st = continuing(state(Role.PRIMARY, lock_deadline_mono=130.0), Pending.NONE, 100.0)
    return make_context(st, obs(cluster=view("n1", failover=fo, **kw), postgres=primary()), local())


class TestFailoverPossible:
    def test_any_healthy_member_within_lag(self) -> None:
        ctx = _leader_ctx()
        assert failover_possible(ctx, (peer("n2"),))
        assert not failover_possible(ctx, (peer("n2", wal_lsn=1000 - 1048577),))
        assert not failover_possible(ctx, (peer("n9"),))

    def test_only_the_named_candidate_counts_unless_excluded(self) -> None:
        ctx = _leader_ctx(FailoverKey(leader="n1", candidate="n3"))
        assert not failover_possible(ctx, (peer("n2"),))
        assert failover_possible(ctx, (peer("n2"),), exclude="n3")

    def test_nofailover_members_and_members_without_api_never_count(self) -> None:
        members = (member("n1"), member("n2", tags=Tags(nofailover=True)), member("n3", api_url=""))
        ctx = _leader_ctx(member_values=members)
        assert not failover_possible(ctx, (peer("n2"), peer("n3")))

    def test_check_timeline_rejects_candidates_behind(self) -> None:
        ctx = _leader_ctx(config=cfg(check_timeline=True))
        assert not failover_possible(ctx, (peer("n2", timeline=0),))
        assert failover_possible(ctx, (peer("n2", timeline=1),))

    @pytest.mark.parametrize(("manual", "expected"), [(False, False), (True, True)])
    def test_sync_mode_allows_only_sync_standbys_except_manual_failover(
        self, manual: bool, expected: bool
    ) -> None:
        fo = FailoverKey(candidate="n3") if manual else FailoverKey(leader="n1")
        sync = SyncKey(leader="n1", standbys=frozenset({"n2"}), version=1)
        ctx = _leader_ctx(fo, config=cfg(synchronous_mode=SyncMode.ON), sync=sync)
        assert failover_possible(ctx, (peer("n3"),)) is expected


def test_replica_with_any_peer_answer_is_judged_against_it() -> None:
    st = continuing(state(Role.REPLICA), Pending.PEERS, 100.0)
    d = run(st, obs(100.2, cluster=view(), peers=(), postgres=replica(wal_lsn=0)))
    assert d.reason is Reason.RACE


def test_quorum_mode_needs_enough_voters_not_ahead() -> None:
    c = cfg(synchronous_mode=SyncMode.QUORUM)
    sync = SyncKey(leader="n3", standbys=frozenset({"n1", "n2"}), quorum=1, version=2)
    st = continuing(state(Role.REPLICA), Pending.PEERS, 100.0)
    d = run(st, obs(100.2, cluster=view(config=c, sync=sync), peers=(peer("n2", wal_lsn=900),)))
    assert d.reason is Reason.RACE
    d = run(st, obs(100.2, cluster=view(config=c, sync=sync), peers=(peer("n2", running=False),)))
    assert d.reason is Reason.NOT_HEALTHIEST_QUORUM


def test_quorum_failover_needs_quorum_plus_one_healthy_voters() -> None:
    sync = SyncKey(leader="n1", standbys=frozenset({"n2", "n3"}), quorum=1, version=1)
    ctx = _leader_ctx(
        FailoverKey(leader="n1"), config=cfg(synchronous_mode=SyncMode.QUORUM), sync=sync
    )
    assert not failover_possible(ctx, (peer("n2"),))
    assert failover_possible(ctx, (peer("n2"), peer("n3")))


def test_quorum_voters_with_nofailover_still_vote_and_ahead_sync_leader_is_ignored() -> None:
    c = cfg(synchronous_mode=SyncMode.QUORUM)
    sync = SyncKey(leader="n3", standbys=frozenset({"n1", "n2"}), quorum=1, version=2)
    st = continuing(state(Role.REPLICA), Pending.PEERS, 100.0)
    peers = (peer("n2", wal_lsn=900, nofailover=True), peer("n3", wal_lsn=5000))
    d = run(st, obs(100.2, cluster=view(config=c, sync=sync), peers=peers))
    assert d.reason is Reason.RACE
