"""Exact values a decision carries: callbacks, remembered state, sync steps, and boundaries."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pgha.engine.actions import (
    AppendHistory,
    Callback,
    Demote,
    DemoteMode,
    Follow,
    Promote,
    RunCallback,
    SetSyncStandbyNames,
    UpdateMember,
    WriteInitialize,
    WriteSync,
)
from pgha.engine.candidates import failover_possible
from pgha.engine.config import SyncMode, WatchdogMode
from pgha.engine.context import make_context
from pgha.engine.decision import Reason
from pgha.engine.roles import Role
from pgha.engine.state import Pending
from pgha.engine.values import (
    FailoverKey,
    FailsafeHeartbeat,
    Failure,
    LockResult,
    MemberRole,
    PgRun,
    Standby,
    SyncKey,
    SyncStandbyNames,
    SyncState,
)
from tests.engine.builders import (
    cfg,
    continuing,
    leader_state,
    local,
    obs,
    peer,
    primary,
    replica,
    run,
    state,
    stopped,
    view,
)

OK = LockResult.OK
TO_PRIMARY = RunCallback(event=Callback.ON_ROLE_CHANGE, role="primary")
TO_REPLICA = RunCallback(event=Callback.ON_ROLE_CHANGE, role="replica")
SYNC_ON = cfg(synchronous_mode=SyncMode.ON)


def won(**view_kw: object) -> object:
    st = continuing(state(Role.CANDIDATE, failsafe_active=True), Pending.ACQUIRE, 100.0)
    return run(st, obs(100.2, cluster=view("n1", **view_kw), lock_result=OK))


class TestPromotionCarries:
    def test_callback_watchdog_failsafe_reset_and_quorum_hold(self) -> None:
        d = won()
        assert d.actions[-2:] == (TO_PRIMARY, UpdateMember(role=MemberRole.REPLICA))
        assert d.next_state.watchdog_timeout_s == 25.0
        assert d.next_state.failsafe_active is False
        assert d.next_state.quorum_hold_until_mono == 110.2
        assert d.next_state.pending is Pending.NONE
        assert not d.next_state.continuing

    def test_sync_mode_fences_sync_key_and_clears_ssn_before_promoting(self) -> None:
        d = won(config=SYNC_ON, sync=SyncKey(leader="n2", standbys=frozenset({"n1"}), version=4))
        assert d.actions[1:4] == (
            WriteSync(leader="n1", standbys=frozenset(), quorum=0, version=4),
            SetSyncStandbyNames(value=SyncStandbyNames()),
            Promote(not_after_mono=130.0),
        )

    def test_watchdog_off_keeps_the_remembered_timeout(self) -> None:
        d = won(config=cfg(watchdog_mode=WatchdogMode.OFF))
        assert d.next_state.watchdog_timeout_s is None

    def test_paused_manual_promotion_runs_the_callback_without_watchdog(self) -> None:
        paused = cfg(pause=True)
        st = continuing(state(Role.CANDIDATE, watchdog_timeout_s=25.0), Pending.ACQUIRE, 100.0)
        v = view("n1", config=paused, failover=FailoverKey(candidate="n1"))
        d = run(st, obs(100.2, cluster=v, lock_result=OK))
        assert d.actions[-2] == TO_PRIMARY
        assert d.next_state.watchdog_timeout_s is None


class TestDemotionCarries:
    def test_callback_and_forgotten_lock_watchdog_failsafe(self) -> None:
        st = leader_state(failsafe_active=True)
        d = run(st, obs(cluster=view("n2"), postgres=primary()))
        assert d.actions[-2:] == (TO_REPLICA, UpdateMember(role=MemberRole.PRIMARY))
        assert d.next_state.watchdog_timeout_s is None
        assert d.next_state.failsafe_active is False
        assert d.next_state.lock_deadline_mono is None

    def test_sync_mode_demotion_clears_ssn(self) -> None:
        pg = primary(ssn=SyncStandbyNames(count=1, names=frozenset({"n2"})))
        d = run(leader_state(), obs(cluster=view("n2", config=SYNC_ON), postgres=pg))
        assert SetSyncStandbyNames(value=SyncStandbyNames()) in d.actions


class TestRememberedState:
    @pytest.mark.parametrize(
        ("decision_state", "pg", "view_kw", "failure"),
        [
            (
                state(Role.REPLICA, config=cfg(pause=True)),
                replica(),
                {"config": cfg(pause=True)},
                None,
            ),
            (
                state(Role.REPLICA),
                replica(),
                {"config": cfg(watchdog_mode=WatchdogMode.REQUIRED)},
                Failure.WATCHDOG,
            ),
            (state(Role.PROMOTING), replica(), {}, Failure.PROMOTE),
        ],
    )
    def test_holder_that_gives_the_lock_back_forgets_it(
        self,
        decision_state: object,
        pg: object,
        view_kw: dict[str, object],
        failure: Failure | None,
    ) -> None:
        st = continuing(decision_state, Pending.RENEW, 100.0)
        d = run(
            st,
            obs(100.2, cluster=view("n1", **view_kw), postgres=pg, lock_result=OK, failure=failure),
        )
        assert d.next_state.lock_deadline_mono is None
        assert d.next_state.watchdog_timeout_s is None or failure is not None

    def test_paused_primary_forgets_its_watchdog(self) -> None:
        st = continuing(leader_state(config=cfg(pause=True)), Pending.RENEW, 100.0)
        v = view("n1", config=cfg(pause=True))
        d = run(st, obs(100.2, cluster=v, postgres=primary(), lock_result=OK))
        assert d.next_state.watchdog_timeout_s is None
        d = run(
            state(Role.REPLICA, watchdog_timeout_s=25.0), obs(cluster=view(config=cfg(pause=True)))
        )
        assert d.next_state.watchdog_timeout_s is None

    def test_no_data_holder_forgets_the_lock(self) -> None:
        from tests.engine.builders import empty

        d = run(leader_state(), obs(cluster=view("n1"), postgres=empty()))
        assert d.next_state.lock_deadline_mono is None

    def test_reinit_resets_the_rewind_failure(self) -> None:
        from pgha.engine.values import HistoryEntry, Member

        c = cfg(remove_data_directory_on_rewind_failure=True)
        members = (Member(name="n1", timeline=1), Member(name="n2", timeline=2))
        v = view(
            "n2", member_values=members, history=(HistoryEntry(timeline=1, switch_lsn=5),), config=c
        )
        d = run(
            state(Role.STOPPED, rewind_failed=True), obs(cluster=v, postgres=stopped(wal_lsn=6000))
        )
        assert d.next_state.rewind_failed is False

    def test_steps_remember_what_they_wait_for(self) -> None:
        from tests.engine.builders import empty

        d = run(state(Role.UNINITIALIZED), obs(cluster=view(initialize=None), postgres=empty()))
        assert d.next_state.pending is Pending.INITIALIZE
        st = continuing(state(Role.REPLICA), Pending.PEERS, 100.0)
        d = run(st, obs(100.1, cluster=view(), peers=()))
        assert d.next_state.pending is Pending.ACQUIRE
        d = run(state(Role.UNINITIALIZED), obs(cluster=view(initialize=None), postgres=primary()))
        assert d.next_state.pending is Pending.NONE
        assert d.next_state.continuing

    def test_failsafe_list_is_remembered_from_the_view(self) -> None:
        d = run(state(Role.REPLICA), obs(cluster=view("n2", failsafe=("n1", "n2"))))
        assert d.next_state.last_failsafe == ("n1", "n2")

    def test_member_key_reports_what_postgres_is(self) -> None:
        d = run(state(Role.PRIMARY), obs(cluster=view("n2"), postgres=primary()))
        assert d.actions[-1] == UpdateMember(role=MemberRole.PRIMARY)
        d = run(state(Role.REPLICA), obs(cluster=view("n2"), postgres=replica()))
        assert d.actions[-1] == UpdateMember(role=MemberRole.REPLICA)


class TestSteadySync:
    def _steady(self, pg: object, sync: SyncKey, **st_kw: object) -> object:
        st = continuing(leader_state(**st_kw), Pending.RENEW, 100.0)
        return run(
            st,
            obs(100.2, cluster=view("n1", config=SYNC_ON, sync=sync), postgres=pg, lock_result=OK),
        )

    def test_explicit_enable_of_sync_key(self) -> None:
        d = self._steady(primary(), SyncKey())
        assert WriteSync(leader="n1", standbys=frozenset(), quorum=0, version=None) in d.actions

    def test_sync_key_grows_after_the_remembered_settle_time(self) -> None:
        pg = primary(
            ssn=SyncStandbyNames(count=1, names=frozenset({"n2"})),
            standbys=(Standby(name="n2", sync_state=SyncState.SYNC, flush_lsn=1000),),
        )
        sync = SyncKey(leader="n1", version=5)
        d = self._steady(pg, sync, sync_changed_mono=97.0, sync_flush_lsn=900)
        assert WriteSync(leader="n1", standbys=frozenset({"n2"}), quorum=0, version=5) in d.actions
        assert (d.next_state.sync_changed_mono, d.next_state.sync_flush_lsn) == (97.0, 900)
        d = self._steady(pg, sync, sync_changed_mono=99.0, sync_flush_lsn=900)
        assert not any(isinstance(a, WriteSync) for a in d.actions)


class TestBoundaries:
    def test_lock_is_not_held_at_its_deadline(self) -> None:
        assert not leader_state(lock_deadline_mono=100.0).holds_lock(100.0)
        assert leader_state(lock_deadline_mono=100.0).holds_lock(99.999)

    def test_watchdog_with_zero_slack_is_usable(self) -> None:
        c = cfg(watchdog_mode=WatchdogMode.REQUIRED, ttl_s=15, loop_wait_s=10, retry_timeout_s=2.5)
        d = run(state(Role.REPLICA), obs(cluster=view(config=c)))
        assert d.reason is Reason.PROBE_PEERS
        d = run(
            continuing(leader_state(), Pending.RENEW, 100.0),
            obs(100.2, cluster=view("n1", config=c), postgres=primary(), lock_result=OK),
        )
        assert d.reason is Reason.LEADER

    def test_unusable_watchdog_only_matters_when_required(self) -> None:
        d = run(state(Role.REPLICA), obs(cluster=view(), watchdog_available=False))
        assert d.reason is Reason.PROBE_PEERS

    def test_failsafe_heartbeat_expires_exactly_at_ttl(self) -> None:
        beat = FailsafeHeartbeat(leader="n2", received_mono=70.0)
        assert (
            run(state(), obs(cluster=view(), failsafe_heartbeat=beat)).reason is Reason.PROBE_PEERS
        )
        beat = FailsafeHeartbeat(leader="n2", received_mono=70.1)
        assert (
            run(state(), obs(cluster=view(), failsafe_heartbeat=beat)).reason
            is Reason.FAILSAFE_LEADER_CACHED
        )

    def test_start_timeout_fires_exactly_at_the_timeout(self) -> None:
        starting = replace(primary(), run=PgRun.STARTING)
        c = cfg(primary_start_timeout_s=60)
        st = continuing(leader_state(start_began_mono=40.5), Pending.RENEW, 100.0)
        d = run(st, obs(100.5, cluster=view("n1", config=c), postgres=starting, lock_result=OK))
        assert d.reason is Reason.START_TIMEOUT_DEMOTE
        st = continuing(leader_state(start_began_mono=40.6), Pending.RENEW, 100.0)
        d = run(st, obs(100.5, cluster=view("n1", config=c), postgres=starting, lock_result=OK))
        assert d.reason is Reason.PRIMARY_STARTING

    @pytest.mark.parametrize(
        ("ahead", "reason", "wake"),
        [
            (10.0, Reason.SWITCHOVER_SCHEDULED, 110.0),
            (0.5, Reason.SWITCHOVER_SCHEDULED, 100.7),
            (0.0, Reason.SWITCHOVER_CHECK, 100.2),
        ],
    )
    def test_scheduled_switchover_window(self, ahead: float, reason: Reason, wake: float) -> None:
        fo = FailoverKey(leader="n1", scheduled_at_wall=1000.0 + ahead)
        st = continuing(leader_state(), Pending.RENEW, 100.0)
        d = run(
            st,
            obs(
                100.2,
                now_wall=1000.0,
                cluster=view("n1", failover=fo),
                postgres=primary(),
                lock_result=OK,
            ),
        )
        assert d.reason is reason
        assert d.wake_at_mono == pytest.approx(wake)

    def test_check_timeline_accepts_the_cluster_timeline(self) -> None:
        d = run(
            state(),
            obs(cluster=view(config=cfg(check_timeline=True)), postgres=replica(timeline=1)),
        )
        assert d.reason is Reason.PROBE_PEERS

    def test_bookkeeping_only_when_needed(self) -> None:
        st = continuing(leader_state(), Pending.RENEW, 100.0)
        d = run(st, obs(100.2, cluster=view("n1"), postgres=primary(timeline=1), lock_result=OK))
        assert not any(isinstance(a, AppendHistory | WriteInitialize) for a in d.actions)
        d = run(
            st,
            obs(
                100.2,
                cluster=view("n1", initialize=""),
                postgres=primary(sysid=None),
                lock_result=OK,
            ),
        )
        assert not any(isinstance(a, WriteInitialize) for a in d.actions)

    def test_failover_possible_at_exactly_the_lag_bound_and_without_own_timeline(self) -> None:
        st = continuing(leader_state(), Pending.NONE, 100.0)
        ctx = make_context(
            st,
            obs(
                cluster=view("n1", config=cfg(check_timeline=True)), postgres=primary(timeline=None)
            ),
            local(),
        )
        assert failover_possible(ctx, (peer("n2", wal_lsn=1000 - 1048576, timeline=1),))
        assert not failover_possible(ctx, (peer("n2", timeline=None),))

    def test_quorum_manual_failover_needs_one_healthy_candidate(self) -> None:
        sync = SyncKey(leader="n1", standbys=frozenset({"n2", "n3"}), quorum=1, version=1)
        c = cfg(synchronous_mode=SyncMode.QUORUM)
        st = continuing(leader_state(), Pending.NONE, 100.0)
        ctx = make_context(
            st,
            obs(
                cluster=view("n1", config=c, sync=sync, failover=FailoverKey(candidate="n2")),
                postgres=primary(),
            ),
            local(),
        )
        assert failover_possible(ctx, (peer("n2"),))


class TestPeerComparisons:
    def test_ahead_peer_that_is_not_the_sync_leader_refuses_in_sync_mode(self) -> None:
        sync = SyncKey(leader="n3", standbys=frozenset({"n1", "n2"}), version=1)
        st = continuing(state(), Pending.PEERS, 100.0)
        d = run(
            st,
            obs(100.2, cluster=view(config=SYNC_ON, sync=sync), peers=(peer("n2", wal_lsn=2000),)),
        )
        assert d.reason is Reason.NOT_HEALTHIEST_PEER_AHEAD

    def test_ahead_sync_leader_counts_when_sync_mode_is_off(self) -> None:
        sync = SyncKey(leader="n2", version=1)
        st = continuing(state(), Pending.PEERS, 100.0)
        d = run(st, obs(100.2, cluster=view(sync=sync), peers=(peer("n2", wal_lsn=2000),)))
        assert d.reason is Reason.NOT_HEALTHIEST_PEER_AHEAD

    def test_quorum_vote_check_only_in_quorum_mode(self) -> None:
        sync = SyncKey(leader="n3", standbys=frozenset({"n1"}), quorum=2, version=1)
        st = continuing(state(), Pending.PEERS, 100.0)
        d = run(st, obs(100.2, cluster=view(config=SYNC_ON, sync=sync), peers=()))
        assert d.reason is Reason.RACE

    def test_unreachable_voters_do_not_vote(self) -> None:
        sync = SyncKey(leader="n3", standbys=frozenset({"n1", "n2"}), quorum=1, version=1)
        st = continuing(state(), Pending.PEERS, 100.0)
        c = cfg(synchronous_mode=SyncMode.QUORUM)
        d = run(
            st,
            obs(
                100.2,
                cluster=view(config=c, sync=sync),
                peers=(peer("n2", wal_lsn=10, reachable=False),),
            ),
        )
        assert d.reason is Reason.NOT_HEALTHIEST_QUORUM

    def test_manual_failover_to_a_member_that_did_not_answer(self) -> None:
        st = continuing(state(), Pending.PEERS, 100.0)
        d = run(
            st,
            obs(
                100.2,
                cluster=view(failover=FailoverKey(candidate="n3")),
                peers=(peer("n2", wal_lsn=10),),
            ),
        )
        assert d.reason is Reason.RACE

    def test_standing_down_keeps_non_candidate_roles_and_follows_nobody_only_if_following(
        self,
    ) -> None:
        d = run(
            state(Role.STARTING),
            obs(cluster=view(), postgres=replica(following=None)),
        )
        assert d.reason is Reason.PROBE_PEERS
        d = run(
            state(Role.REPLICA, promote_backoff_until_mono=200.0),
            obs(cluster=view(), postgres=replica()),
        )
        assert (d.next_state.role, d.actions[:-1]) == (Role.REPLICA, ())
        d = run(
            state(Role.REPLICA, promote_backoff_until_mono=200.0),
            obs(cluster=view(), postgres=replica(following="n2")),
        )
        assert d.actions[0] == Follow(leader=None)


def test_standalone_is_not_taken_over_with_a_leader_or_in_pause() -> None:
    d = run(state(Role.STARTING), obs(cluster=view("n2", initialize=None), postgres=primary()))
    assert d.reason is Reason.NOT_LOCK_HOLDER_DEMOTE
    d = run(
        state(Role.STARTING),
        obs(cluster=view(initialize=None, config=cfg(pause=True)), postgres=primary()),
    )
    assert d.reason is Reason.PAUSED_TAKE_LOCK


def test_demote_when_the_view_names_another_holder_even_in_sync_mode() -> None:
    d = run(leader_state(), obs(cluster=view("n2", config=SYNC_ON), postgres=primary()))
    assert d.actions[0] == Demote(mode=DemoteMode.IMMEDIATE_NOLOCK)
