"""Nodes without the lock: demote, start, rejoin, follow, and the leader race."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pgha.engine.actions import (
    AcquireLock,
    ClearFailover,
    Demote,
    DemoteMode,
    FetchPeerStatus,
    Follow,
    Reinit,
    Rewind,
    SetSyncStandbyNames,
    StartPostgres,
)
from pgha.engine.config import SyncMode
from pgha.engine.decision import Reason
from pgha.engine.roles import Role
from pgha.engine.state import Pending
from pgha.engine.values import (
    FailoverKey,
    FailsafeHeartbeat,
    Failure,
    HistoryEntry,
    LockResult,
    PgRun,
    SyncStandbyNames,
    Tags,
)
from tests.engine.builders import (
    cfg,
    continuing,
    kinds,
    local,
    member,
    obs,
    peer,
    primary,
    replica,
    run,
    state,
    stopped,
    view,
)

HIST = (HistoryEntry(timeline=1, switch_lsn=5000),)


def leader_view(**kw: object) -> object:
    members = (
        member("n1"),
        member("n2", timeline=2, role_primary=None) if False else member("n2", timeline=2),
        member("n3", timeline=2),
    )
    return view("n2", member_values=members, history=HIST, **kw)


class TestDemoteWithoutLock:
    def test_primary_seeing_another_holder_demotes_immediately_keeping_hands_off_the_lock(
        self,
    ) -> None:
        d = run(
            state(Role.PRIMARY, watchdog_timeout_s=25), obs(cluster=view("n2"), postgres=primary())
        )
        assert d.reason is Reason.NOT_LOCK_HOLDER_DEMOTE
        assert d.actions[0] == Demote(mode=DemoteMode.IMMEDIATE_NOLOCK)
        assert "ReleaseLock" not in kinds(d)
        assert "DisableWatchdog" in kinds(d)
        assert d.next_state.role is Role.DEMOTING


class TestStartAndRejoin:
    def test_stopped_replica_starts_and_follows_the_leader(self) -> None:
        d = run(state(Role.STOPPED), obs(cluster=view("n2"), postgres=stopped()))
        assert d.reason is Reason.START_REPLICA
        assert d.actions[:2] == (StartPostgres(as_primary=False), Follow(leader="n2"))
        assert d.next_state.role is Role.STARTING

    def test_stopped_node_without_leader_starts_following_nobody(self) -> None:
        d = run(state(Role.STOPPED), obs(cluster=view(), postgres=stopped()))
        assert d.actions[:2] == (StartPostgres(as_primary=False), Follow(leader=None))

    def test_diverged_old_primary_is_rewound_before_it_starts(self) -> None:
        v = view("n2", member_values=(member("n1"), member("n2", timeline=2)), history=HIST)
        d = run(state(Role.STOPPED), obs(cluster=v, postgres=stopped(wal_lsn=6000)))
        assert (d.reason, d.actions[0]) == (Reason.REWIND, Rewind(source="n2"))
        assert d.next_state.role is Role.REWINDING

    def test_running_diverged_replica_is_rewound(self) -> None:
        v = view("n2", member_values=(member("n1"), member("n2", timeline=2)), history=HIST)
        d = run(state(Role.REPLICA), obs(cluster=v, postgres=replica(wal_lsn=6000)))
        assert d.actions[0] == Rewind(source="n2")

    def test_rewind_failure_leads_to_reinit_when_allowed(self) -> None:
        c = cfg(remove_data_directory_on_rewind_failure=True)
        v = view(
            "n2", member_values=(member("n1"), member("n2", timeline=2)), history=HIST, config=c
        )
        d = run(
            state(Role.REWINDING),
            obs(cluster=v, postgres=stopped(wal_lsn=6000), failure=Failure.REWIND),
        )
        assert (d.reason, d.actions[0]) == (Reason.REINIT, Reinit(source="n2"))
        assert d.next_state.role is Role.CLONING
        assert not d.next_state.rewind_failed

    @pytest.mark.parametrize(
        ("failure", "now", "later", "rewind_failed"),
        [
            # The source was down or cut off: no verdict on pg_rewind, which runs again.
            (Failure.REWIND_SOURCE, Reason.REWIND, Reason.REWIND, False),
            # pg_rewind failed against a healthy leader: without remove_data_directory_on_rewind_
            # failure only a manual reinit helps, now and on every later cycle.
            (Failure.REWIND, Reason.NEEDS_MANUAL_REINIT, Reason.NEEDS_MANUAL_REINIT, True),
        ],
    )
    def test_a_rewind_failure_is_final_only_when_the_source_answered(
        self, failure: Failure, now: Reason, later: Reason, rewind_failed: bool
    ) -> None:
        v = view("n2", member_values=(member("n1"), member("n2", timeline=2)), history=HIST)
        down = stopped(wal_lsn=6000)
        d = run(state(Role.REWINDING), obs(cluster=v, postgres=down, failure=failure))
        assert (d.reason, d.next_state.rewind_failed) == (now, rewind_failed)
        again = run(d.next_state, obs(110.0, cluster=v, postgres=down))
        assert again.reason is later
        assert kinds(again) == (["Rewind"] if later is Reason.REWIND else [])

    def test_diverged_without_any_remedy_needs_manual_reinit(self) -> None:
        c = cfg(use_pg_rewind=False)
        v = view(
            "n2", member_values=(member("n1"), member("n2", timeline=2)), history=HIST, config=c
        )
        d = run(state(Role.REPLICA), obs(cluster=v, postgres=replica(wal_lsn=6000)))
        assert (d.reason, kinds(d)) == (Reason.NEEDS_MANUAL_REINIT, [])

    def test_replica_follows_leader_and_clears_its_own_ssn(self) -> None:
        pg = replica(ssn=SyncStandbyNames(count=1, names=frozenset({"n3"})))
        d = run(state(Role.REPLICA), obs(cluster=view("n2"), postgres=pg))
        assert d.reason is Reason.FOLLOW_LEADER
        assert d.actions[:2] == (SetSyncStandbyNames(value=SyncStandbyNames()), Follow(leader="n2"))
        assert d.wake_on_watch

    def test_already_following_does_nothing(self) -> None:
        d = run(state(Role.REPLICA), obs(cluster=view("n2"), postgres=replica(following="n2")))
        assert (d.reason, kinds(d)) == (Reason.FOLLOW_LEADER, [])

    @pytest.mark.parametrize(("running", "upstream"), [(True, "n3"), (False, "n2")])
    def test_replicatefrom_cascades_while_that_member_runs(
        self, running: bool, upstream: str
    ) -> None:
        members = (member("n1"), member("n2"), member("n3", running=running))
        loc = local(tags=Tags(replicatefrom="n3"))
        d = run(
            state(Role.REPLICA),
            obs(cluster=view("n2", member_values=members), postgres=replica()),
            loc,
        )
        assert Follow(leader=upstream) in d.actions

    def test_starting_replica_does_not_race(self) -> None:
        pg = replace(replica(), run=PgRun.STARTING)
        d = run(state(Role.STARTING), obs(cluster=view(), postgres=pg))
        assert (d.reason, kinds(d)) == (Reason.START_REPLICA, [])


class TestRace:
    def test_replica_probes_every_known_member_including_the_former_leader(self) -> None:
        st = state(Role.REPLICA, old_members=(member("n1"), member("n4")), former_leader="n4")
        d = run(st, obs(cluster=view(failsafe=("n5",)), postgres=replica()))
        assert (d.reason, d.actions) == (
            Reason.PROBE_PEERS,
            (FetchPeerStatus(members=("n2", "n3", "n4", "n5")),),
        )
        assert d.immediate

    def test_healthiest_replica_races_by_atomic_create(self) -> None:
        st = continuing(state(Role.REPLICA), Pending.PEERS, 100.0)
        d = run(st, obs(100.2, cluster=view(), peers=(peer("n2", wal_lsn=900), peer("n3"))))
        assert (d.reason, d.actions) == (Reason.RACE, (AcquireLock(not_after_mono=110.2),))
        assert d.next_state.role is Role.CANDIDATE

    def test_winner_clears_the_failover_key_and_promotes(self) -> None:
        st = continuing(state(Role.CANDIDATE), Pending.ACQUIRE, 100.0)
        fo = FailoverKey(candidate="n1", version=8)
        d = run(st, obs(100.3, cluster=view("n1", failover=fo), lock_result=LockResult.OK))
        assert d.reason is Reason.PROMOTE
        assert d.actions[0] == ClearFailover(version=8)
        assert d.next_state.lock_deadline_mono == 130.0

    def test_loser_stands_down(self) -> None:
        st = continuing(state(Role.CANDIDATE), Pending.ACQUIRE, 100.0)
        d = run(st, obs(100.3, cluster=view(), lock_result=LockResult.CAS_FAILED))
        assert (d.reason, d.next_state.role) == (Reason.LOST_RACE, Role.REPLICA)

    def test_loser_that_is_a_primary_demotes(self) -> None:
        st = continuing(state(Role.CANDIDATE), Pending.ACQUIRE, 100.0)
        d = run(
            st, obs(100.3, cluster=view(), postgres=primary(), lock_result=LockResult.CAS_FAILED)
        )
        assert d.reason is Reason.NOT_HEALTHIEST_DEMOTE

    @pytest.mark.parametrize(
        ("peers", "reason"),
        [
            ((peer("n2", in_recovery=False),), Reason.NOT_HEALTHIEST_PRIMARY_ALIVE),
            ((peer("n2", wal_lsn=1001),), Reason.NOT_HEALTHIEST_PEER_AHEAD),
            ((peer("n2", failover_priority=2),), Reason.NOT_HEALTHIEST_PRIORITY),
        ],
    )
    def test_peer_answers_can_forbid_the_race(
        self, peers: tuple[object, ...], reason: Reason
    ) -> None:
        st = continuing(state(Role.REPLICA), Pending.PEERS, 100.0)
        d = run(st, obs(100.2, cluster=view(), peers=peers, postgres=replica(following="n9")))
        assert d.reason is reason
        assert Follow(leader=None) in d.actions

    @pytest.mark.parametrize(
        "p",
        [
            peer("n2", in_recovery=False, reachable=False),
            peer("n2", in_recovery=False, running=False),
            peer("n2", wal_lsn=5000, nofailover=True),
            peer("n2", wal_lsn=5000, watchdog_failed=True),
            peer("n1", wal_lsn=5000),
        ],
    )
    def test_unreachable_down_nofailover_watchdog_failed_peers_and_myself_are_ignored(
        self, p: object
    ) -> None:
        st = continuing(state(Role.REPLICA), Pending.PEERS, 100.0)
        d = run(st, obs(100.2, cluster=view(), peers=(p,)))
        assert d.reason is Reason.RACE

    def test_equal_priority_of_the_former_leader_is_ignored(self) -> None:
        st = continuing(state(Role.REPLICA, former_leader="n2"), Pending.PEERS, 100.0)
        d = run(st, obs(100.2, cluster=view(), peers=(peer("n2", failover_priority=5),)))
        assert d.reason is Reason.RACE

    def test_failsafe_heartbeat_within_ttl_means_a_leader_exists(self) -> None:
        beat = FailsafeHeartbeat(leader="n2", received_mono=80.0)
        d = run(state(Role.REPLICA), obs(cluster=view(), failsafe_heartbeat=beat))
        assert (d.reason, d.actions[0]) == (Reason.FAILSAFE_LEADER_CACHED, Follow(leader="n2"))
        d = run(
            state(Role.REPLICA),
            obs(cluster=view(), failsafe_heartbeat=beat, postgres=replica(following="n2")),
        )
        assert kinds(d) == []
        d = run(state(Role.REPLICA), obs(130.0, cluster=view(), failsafe_heartbeat=beat))
        assert d.reason is Reason.PROBE_PEERS

    def test_stale_primary_with_current_timeline_retakes_the_free_lock_without_probing(
        self,
    ) -> None:
        d = run(state(Role.PRIMARY), obs(cluster=view(), postgres=primary(timeline=1)))
        assert d.reason is Reason.RACE


class TestRefusalsBeforeProbing:
    @pytest.mark.parametrize(
        ("st_kw", "loc_kw", "view_kw", "pg_kw", "reason"),
        [
            ({"promote_backoff_until_mono": 101.0}, {}, {}, {}, Reason.NOT_HEALTHIEST_BACKOFF),
            ({}, {"tags": Tags(nofailover=True)}, {}, {}, Reason.NOT_HEALTHIEST_NOFAILOVER),
            ({}, {"tags": Tags(failover_priority=0)}, {}, {}, Reason.NOT_HEALTHIEST_NOFAILOVER),
            ({}, {}, {"status_optime_lsn": 1000 + 1048577}, {}, Reason.NOT_HEALTHIEST_LAG),
            (
                {},
                {},
                {"config": cfg(check_timeline=True), "history": HIST},
                {},
                Reason.NOT_HEALTHIEST_TIMELINE,
            ),
            (
                {},
                {},
                {"config": cfg(check_timeline=True)},
                {"timeline": None},
                Reason.NOT_HEALTHIEST_TIMELINE,
            ),
            (
                {},
                {},
                {"config": cfg(failsafe_mode=True), "failsafe": ("n2", "n3")},
                {},
                Reason.NOT_HEALTHIEST_NOT_IN_FAILSAFE,
            ),
        ],
    )
    def test_refusal(
        self,
        st_kw: dict[str, object],
        loc_kw: dict[str, object],
        view_kw: dict[str, object],
        pg_kw: dict[str, object],
        reason: Reason,
    ) -> None:
        d = run(
            state(Role.REPLICA, **st_kw),
            obs(cluster=view(**view_kw), postgres=replica(**pg_kw)),
            local(**loc_kw),
        )
        assert d.reason is reason
        assert not d.immediate

    def test_lag_within_bound_is_fine_and_backoff_expires(self) -> None:
        st = state(Role.REPLICA, promote_backoff_until_mono=100.0)
        d = run(st, obs(cluster=view(status_optime_lsn=1000 + 1048576)))
        assert d.reason is Reason.PROBE_PEERS

    def test_required_watchdog_without_device_refuses(self) -> None:
        from pgha.engine.config import WatchdogMode

        v = view(config=cfg(watchdog_mode=WatchdogMode.REQUIRED))
        d = run(state(Role.REPLICA), obs(cluster=v, watchdog_available=False))
        assert d.reason is Reason.NOT_HEALTHIEST_WATCHDOG

    def test_sync_mode_only_sync_standbys_race(self) -> None:
        from pgha.engine.values import SyncKey

        v = view(
            config=cfg(synchronous_mode=SyncMode.ON),
            sync=SyncKey(leader="n2", standbys=frozenset({"n3"})),
        )
        assert run(state(Role.REPLICA), obs(cluster=v)).reason is Reason.NOT_HEALTHIEST_NOT_SYNC
        assert (
            run(state(Role.REPLICA, name="n3"), obs(cluster=v), local("n3")).reason
            is Reason.PROBE_PEERS
        )

    @pytest.mark.parametrize(
        ("peers", "reason"),
        [
            # an async replica ahead (WAL of commits still waiting for me) is not compared
            ((peer("n3", wal_lsn=5000),), Reason.RACE),
            ((peer("n3", wal_lsn=5000), peer("n2", running=False)), Reason.RACE),
            # the sync leader ahead is not compared either (an isolated old primary)
            ((peer("n2", wal_lsn=5000),), Reason.RACE),
            # a primary alive among the sync candidates still forbids it
            ((peer("n2", in_recovery=False),), Reason.NOT_HEALTHIEST_PRIMARY_ALIVE),
        ],
    )
    def test_sync_standby_compares_itself_with_the_sync_candidates_only(
        self, peers: tuple[object, ...], reason: Reason
    ) -> None:
        # Patroni's is_healthiest_node in synchronous mode; with every peer compared, a sync
        # standby frozen through a switchover stayed behind an async replica for good (soak).
        from pgha.engine.values import SyncKey

        v = view(
            config=cfg(synchronous_mode=SyncMode.ON),
            sync=SyncKey(leader="n2", standbys=frozenset({"n1"})),
        )
        st = continuing(state(Role.REPLICA), Pending.PEERS, 100.0)
        assert run(st, obs(100.2, cluster=v, peers=peers)).reason is reason


def test_primary_hearing_another_primarys_failsafe_heartbeat_demotes() -> None:
    beat = FailsafeHeartbeat(leader="n2", received_mono=95.0)
    d = run(state(Role.PRIMARY), obs(cluster=view(), postgres=primary(), failsafe_heartbeat=beat))
    assert d.reason is Reason.NOT_LOCK_HOLDER_DEMOTE
    assert d.actions[0] == Demote(mode=DemoteMode.IMMEDIATE_NOLOCK)
