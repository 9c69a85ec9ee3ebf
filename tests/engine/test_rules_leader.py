"""The lock holder: renewal by CAS, crash handling, switchover, promotion, watchdog."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from pgha.engine.actions import (
    AppendHistory,
    ArmWatchdog,
    Callback,
    ClearFailover,
    Demote,
    DemoteMode,
    DisableWatchdog,
    FetchPeerStatus,
    KickWatchdog,
    Promote,
    ReleaseLock,
    RenewLock,
    RunCallback,
    StartPostgres,
    WriteConfig,
    WriteFailsafe,
    WriteInitialize,
    WriteStatus,
)
from pgha.engine.config import WatchdogMode
from pgha.engine.decision import Reason
from pgha.engine.roles import Role
from pgha.engine.state import Pending
from pgha.engine.values import (
    FailoverKey,
    Failure,
    HistoryEntry,
    LockResult,
    PgRun,
)
from tests.engine.builders import (
    SYSID,
    cfg,
    continuing,
    kinds,
    leader_state,
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


def renewed_obs(now: float = 100.5, **kw: object) -> Any:
    kw.setdefault("cluster", view("n1"))
    kw.setdefault("postgres", primary())
    return obs(now, lock_result=OK, **kw)


def after_renew(**kw: object) -> Any:
    return continuing(leader_state(**kw), Pending.RENEW, 100.0)


class TestRenewal:
    def test_holder_renews_by_compare_and_set_before_anything_else(self) -> None:
        d = run(leader_state(), obs(cluster=view("n1", version=42), postgres=primary()))
        assert (d.reason, d.actions) == (Reason.RENEW_LOCK, (RenewLock(version=42),))
        assert d.immediate
        assert d.next_state.pending is Pending.RENEW
        assert d.next_state.pending_sent_mono == 100.0

    def test_successful_renewal_sets_deadline_from_send_time_and_kicks_watchdog(self) -> None:
        d = run(after_renew(), renewed_obs(100.5))
        assert d.reason is Reason.LEADER
        assert d.next_state.lock_deadline_mono == 130.0
        assert KickWatchdog(not_after_mono=130.0) in d.actions
        assert WriteStatus(optime_lsn=1000) in d.actions
        assert d.next_state.role is Role.PRIMARY
        assert d.wake_at_mono == 110.0  # cycle start + loop_wait
        assert not d.wake_on_watch

    def test_cas_failure_demotes_immediately_without_touching_the_lock(self) -> None:
        d = run(
            after_renew(),
            obs(100.5, cluster=view("n1"), postgres=primary(), lock_result=LockResult.CAS_FAILED),
        )
        assert d.reason is Reason.LOCK_CAS_FAILED_DEMOTE
        assert d.actions[0] == Demote(mode=DemoteMode.IMMEDIATE_NOLOCK)
        assert "ReleaseLock" not in kinds(d)
        assert d.next_state.lock_deadline_mono is None

    def test_cas_failure_of_a_non_primary_only_drops_the_claim(self) -> None:
        st = continuing(state(Role.REPLICA), Pending.RENEW, 100.0)
        d = run(
            st,
            obs(100.5, cluster=view("n1"), postgres=replica(), lock_result=LockResult.CAS_FAILED),
        )
        assert (d.reason, kinds(d)) == (Reason.LOCK_CAS_FAILED, [])

    def test_leader_keeps_bookkeeping_keys(self) -> None:
        v = view("n1", initialize="", config_version=None, config=cfg(failsafe_mode=True))
        pg = primary(timeline=3, timeline_start_lsn=777)
        d = run(after_renew(), renewed_obs(cluster=v, postgres=pg))
        assert WriteFailsafe(members=("n1", "n2", "n3")) in d.actions
        assert (
            AppendHistory(entry=HistoryEntry(timeline=2, switch_lsn=777, new_leader="n1"))
            in d.actions
        )
        assert WriteInitialize(sysid=SYSID) in d.actions
        assert WriteConfig() in d.actions

    def test_watchdog_is_reconfigured_when_ttl_changes(self) -> None:
        v = view("n1", config=cfg(ttl_s=20, loop_wait_s=2, retry_timeout_s=3))
        d = run(after_renew(), renewed_obs(cluster=v))
        assert d.actions[0] == ArmWatchdog(timeout_s=15)
        assert d.next_state.watchdog_timeout_s == 15

    def test_watchdog_off_means_no_kick(self) -> None:
        v = view("n1", config=cfg(watchdog_mode=WatchdogMode.OFF))
        d = run(after_renew(watchdog_timeout_s=None), renewed_obs(cluster=v))
        assert "KickWatchdog" not in kinds(d)
        assert "ArmWatchdog" not in kinds(d)


class TestPromotion:
    def test_holder_with_replica_arms_watchdog_then_promotes_with_deadline(self) -> None:
        st = continuing(state(Role.CANDIDATE, watchdog_timeout_s=None), Pending.RENEW, 100.0)
        d = run(st, renewed_obs(postgres=replica()))
        assert d.reason is Reason.PROMOTE
        assert kinds(d)[:2] == ["ArmWatchdog", "Promote"]
        assert Promote(not_after_mono=130.0) in d.actions
        assert d.next_state.role is Role.PROMOTING

    def test_required_watchdog_that_cannot_arm_releases_the_lock(self) -> None:
        v = view("n1", config=cfg(watchdog_mode=WatchdogMode.REQUIRED))
        st = continuing(state(Role.REPLICA), Pending.RENEW, 100.0)
        d = run(st, renewed_obs(cluster=v, postgres=replica(), watchdog_available=False))
        assert d.reason is Reason.WATCHDOG_UNAVAILABLE
        assert kinds(d) == ["ReleaseLock"]

    def test_required_watchdog_failure_on_a_primary_demotes_immediately(self) -> None:
        v = view("n1", config=cfg(watchdog_mode=WatchdogMode.REQUIRED))
        d = run(after_renew(), renewed_obs(cluster=v, failure=Failure.WATCHDOG))
        assert d.reason is Reason.WATCHDOG_FAILED_DEMOTE
        assert d.actions[0] == Demote(mode=DemoteMode.IMMEDIATE)
        assert ReleaseLock(version=10) in d.actions

    def test_required_watchdog_with_too_little_slack_cannot_lead(self) -> None:
        v = view("n1", config=cfg(watchdog_mode=WatchdogMode.REQUIRED, safety_margin_s=25))
        d = run(after_renew(), renewed_obs(cluster=v))
        assert d.reason is Reason.WATCHDOG_FAILED_DEMOTE

    def test_automatic_watchdog_failure_carries_on_without_it(self) -> None:
        d = run(after_renew(), renewed_obs(failure=Failure.WATCHDOG, watchdog_available=False))
        assert d.reason is Reason.LEADER
        assert "KickWatchdog" not in kinds(d)

    def test_failed_pre_promote_releases_lock_and_backs_off_ttl(self) -> None:
        st = continuing(state(Role.PROMOTING), Pending.RENEW, 100.0)
        d = run(st, renewed_obs(postgres=replica(), failure=Failure.PROMOTE))
        assert d.reason is Reason.PROMOTE_FAILED
        assert kinds(d) == ["ReleaseLock"]
        assert d.next_state.promote_backoff_until_mono == 130.5
        assert d.next_state.role is Role.REPLICA


class TestCrashedPrimary:
    def test_restart_in_place_when_start_timeout_allows(self) -> None:
        d = run(
            after_renew(), renewed_obs(postgres=stopped(in_recovery=False, clean_shutdown=False))
        )
        assert d.reason is Reason.PRIMARY_RESTART_IN_PLACE
        assert StartPostgres(as_primary=True, not_after_mono=130.0) in d.actions
        assert d.next_state.start_began_mono == 100.5
        assert d.next_state.role is Role.STARTING

    def test_timeout_zero_fails_over_when_a_replica_is_healthy(self) -> None:
        v = view("n1", config=cfg(primary_start_timeout_s=0))
        d = run(after_renew(), renewed_obs(cluster=v, postgres=stopped(in_recovery=False)))
        assert (d.reason, d.actions) == (
            Reason.CRASH_FAILOVER_DEMOTE,
            (FetchPeerStatus(members=("n2", "n3")),),
        )
        d = run(
            d.next_state,
            obs(100.7, cluster=v, postgres=stopped(in_recovery=False), peers=(peer("n2"),)),
        )
        assert d.reason is Reason.CRASH_FAILOVER_DEMOTE
        assert d.actions[:5] == (
            Demote(mode=DemoteMode.IMMEDIATE),
            DisableWatchdog(),  # at the safepoint: stopped, before the start
            StartPostgres(as_primary=False),
            RunCallback(event=Callback.ON_ROLE_CHANGE, role="replica"),
            ReleaseLock(version=10),
        )

    def test_timeout_zero_restarts_in_place_when_nobody_can_take_over(self) -> None:
        v = view("n1", config=cfg(primary_start_timeout_s=0))
        st = continuing(after_renew(), Pending.PEERS, 100.5, renew=OK)
        o = obs(
            100.7,
            cluster=v,
            postgres=stopped(in_recovery=False),
            peers=(peer("n2", running=False),),
        )
        d = run(st, o)
        assert d.reason is Reason.PRIMARY_RESTART_IN_PLACE

    def test_start_timeout_demotes_when_failover_possible(self) -> None:
        v = view("n1", config=cfg(primary_start_timeout_s=60))
        starting = replace(primary(), run=PgRun.STARTING)
        st = continuing(leader_state(start_began_mono=30.0), Pending.RENEW, 100.0)
        d = run(st, obs(100.5, cluster=v, postgres=starting, lock_result=OK))
        assert d.reason is Reason.START_TIMEOUT_DEMOTE
        assert d.immediate  # probing the peers first

    def test_still_starting_within_timeout_waits_and_keeps_kicking(self) -> None:
        starting = replace(primary(), run=PgRun.STARTING)
        st = continuing(leader_state(start_began_mono=None), Pending.RENEW, 100.0)
        d = run(st, obs(100.5, cluster=view("n1"), postgres=starting, lock_result=OK))
        assert d.reason is Reason.PRIMARY_STARTING
        assert kinds(d) == ["KickWatchdog"]
        assert d.next_state.start_began_mono == 100.5


class TestSwitchover:
    def _run(self, fo: FailoverKey, now_wall: float = 1000.0, peers: object = None) -> Any:
        v = view("n1", failover=fo)
        if peers is None:
            return run(after_renew(), renewed_obs(cluster=v, now_wall=now_wall))
        st = continuing(after_renew(), Pending.PEERS, 100.5, renew=OK)
        return run(st, obs(100.7, cluster=v, postgres=primary(), peers=peers, now_wall=now_wall))

    def test_switchover_probes_then_demotes_gracefully_releasing_after_the_stop(self) -> None:
        fo = FailoverKey(leader="n1", candidate="n2", version=3)
        d = self._run(fo)
        assert d.reason is Reason.SWITCHOVER_CHECK
        d = self._run(fo, peers=(peer("n2"), peer("n3")))
        assert d.reason is Reason.SWITCHOVER_DEMOTE
        assert d.actions[:5] == (
            Demote(mode=DemoteMode.GRACEFUL),
            DisableWatchdog(),  # at the safepoint: stopped, before the start
            StartPostgres(as_primary=False),
            RunCallback(event=Callback.ON_ROLE_CHANGE, role="replica"),
            ReleaseLock(version=10),
        )
        assert d.wake_on_watch  # no longer the holder: wake on the leader key
        assert d.next_state.role is Role.DEMOTING

    def test_switchover_to_an_unhealthy_candidate_is_refused_and_cleared(self) -> None:
        fo = FailoverKey(leader="n1", candidate="n2", version=3)
        d = self._run(fo, peers=(peer("n2", reachable=False), peer("n3")))
        assert d.reason is Reason.SWITCHOVER_IMPOSSIBLE
        assert ClearFailover(version=3) in d.actions

    @pytest.mark.parametrize(
        "fo", [FailoverKey(leader="n2", candidate="n3"), FailoverKey(candidate="n1")]
    )
    def test_mismatched_leader_or_self_candidate_is_cleared(self, fo: FailoverKey) -> None:
        d = self._run(fo)
        assert d.reason is Reason.SWITCHOVER_INVALID

    def test_scheduled_switchover_waits_then_fires_on_time(self) -> None:
        fo = FailoverKey(leader="n1", scheduled_at_wall=1100.0)
        d = self._run(fo, now_wall=1000.0)
        assert d.reason is Reason.SWITCHOVER_SCHEDULED
        d = self._run(fo, now_wall=1095.0)
        assert d.reason is Reason.SWITCHOVER_SCHEDULED
        assert d.wake_at_mono == pytest.approx(105.5)
        d = self._run(fo, now_wall=1100.0)
        assert d.reason is Reason.SWITCHOVER_CHECK

    def test_stale_scheduled_switchover_is_dropped(self) -> None:
        fo = FailoverKey(leader="n1", scheduled_at_wall=1000.0, version=5)
        d = self._run(fo, now_wall=1015.1)
        assert d.reason is Reason.SWITCHOVER_STALE
        assert ClearFailover(version=5) in d.actions
        d = self._run(fo, now_wall=1015.0)
        assert d.reason is Reason.SWITCHOVER_CHECK


def test_required_usable_watchdog_is_armed_and_the_leader_carries_on() -> None:
    v = view("n1", config=cfg(watchdog_mode=WatchdogMode.REQUIRED))
    d = run(after_renew(), renewed_obs(cluster=v))
    assert d.reason is Reason.LEADER
    assert KickWatchdog(not_after_mono=130.0) in d.actions


def test_starting_primary_without_watchdog_is_not_kicked_and_keeps_its_start_time() -> None:
    starting = replace(primary(), run=PgRun.STARTING)
    st = continuing(
        leader_state(start_began_mono=90.0, watchdog_timeout_s=None), Pending.RENEW, 100.0
    )
    d = run(st, obs(100.5, cluster=view("n1"), postgres=starting, lock_result=OK))
    assert (d.reason, kinds(d)) == (Reason.PRIMARY_STARTING, [])
    assert d.next_state.start_began_mono == 90.0


def test_start_timeout_without_a_healthy_replica_keeps_waiting() -> None:
    v = view("n1", config=cfg(primary_start_timeout_s=60))
    starting = replace(primary(), run=PgRun.STARTING)
    st = continuing(leader_state(start_began_mono=30.0), Pending.PEERS, 100.0, renew=OK)
    d = run(st, obs(100.5, cluster=v, postgres=starting, peers=(peer("n2", running=False),)))
    assert d.reason is Reason.PRIMARY_STARTING


def test_a_demoted_node_that_still_holds_the_lock_promotes_again() -> None:
    # It demoted offline while etcd had no leader (so its lease never ran out); with the DCS back
    # its compare-and-set succeeds and it promotes again, straight from REPLICA.
    st = continuing(state(Role.REPLICA), Pending.RENEW, 100.0)
    d = run(st, renewed_obs(postgres=replica()))
    assert d.reason is Reason.PROMOTE
    assert d.next_state.role is Role.PROMOTING
