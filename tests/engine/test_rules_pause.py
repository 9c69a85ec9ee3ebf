"""Pause (maintenance) mode: no automatic changes, no watchdog, lock kept or returned."""

from __future__ import annotations

from pgha.engine.actions import AcquireLock, DisableWatchdog, Promote, ReleaseLock, WriteStatus
from pgha.engine.decision import Reason
from pgha.engine.roles import Role
from pgha.engine.state import Pending
from pgha.engine.values import FailoverKey, LockResult
from tests.engine.builders import (
    cfg,
    continuing,
    kinds,
    leader_state,
    obs,
    primary,
    replica,
    run,
    state,
    view,
)

PAUSED = cfg(pause=True)


def test_paused_leader_renews_then_keeps_the_lock_and_disables_the_watchdog() -> None:
    d = run(leader_state(), obs(cluster=view("n1", config=PAUSED), postgres=primary()))
    assert d.reason is Reason.RENEW_LOCK
    st = continuing(leader_state(config=PAUSED), Pending.RENEW, 100.0)
    d = run(
        st,
        obs(
            100.2, cluster=view("n1", config=PAUSED), postgres=primary(), lock_result=LockResult.OK
        ),
    )
    assert d.reason is Reason.PAUSED_LEADER
    assert d.actions[:2] == (DisableWatchdog(), WriteStatus(optime_lsn=1000))
    assert d.next_state.watchdog_timeout_s is None


def test_paused_holder_whose_postgres_is_not_primary_releases_the_lock() -> None:
    st = continuing(state(Role.REPLICA, config=PAUSED), Pending.RENEW, 100.0)
    d = run(
        st,
        obs(
            100.2, cluster=view("n1", config=PAUSED), postgres=replica(), lock_result=LockResult.OK
        ),
    )
    assert d.reason is Reason.PAUSED_RELEASE_LOCK
    assert d.actions[0] == ReleaseLock(version=None)


def test_paused_cas_failure_does_not_demote() -> None:
    st = continuing(leader_state(config=PAUSED), Pending.RENEW, 100.0)
    o = obs(
        100.2,
        cluster=view("n1", config=PAUSED),
        postgres=primary(),
        lock_result=LockResult.CAS_FAILED,
    )
    d = run(st, o)
    assert (d.reason, kinds(d)) == (Reason.LOCK_CAS_FAILED, [])


def test_paused_parallel_primary_is_not_demoted() -> None:
    d = run(state(Role.PRIMARY), obs(cluster=view("n2", config=PAUSED), postgres=primary()))
    assert (d.reason, kinds(d)) == (Reason.PAUSED, [])
    assert d.next_state.role is Role.PRIMARY


def test_paused_running_primary_of_this_cluster_takes_a_free_lock() -> None:
    d = run(state(Role.STARTING), obs(cluster=view(config=PAUSED), postgres=primary()))
    assert d.reason is Reason.PAUSED_TAKE_LOCK
    assert d.actions == (AcquireLock(not_after_mono=110.0),)
    st = d.next_state
    d = run(
        st,
        obs(
            100.2, cluster=view("n1", config=PAUSED), postgres=primary(), lock_result=LockResult.OK
        ),
    )
    assert d.reason is Reason.PAUSED_LEADER
    assert d.next_state.role is Role.PRIMARY


def test_paused_lost_take_goes_back_to_what_postgres_is() -> None:
    d = run(state(Role.STARTING), obs(cluster=view(config=PAUSED), postgres=primary()))
    o = obs(
        100.2, cluster=view(config=PAUSED), postgres=primary(), lock_result=LockResult.CAS_FAILED
    )
    d = run(d.next_state, o)
    assert (d.reason, d.next_state.role) == (Reason.PAUSED, Role.STARTING)
    d = run(state(Role.CANDIDATE), obs(cluster=view(config=PAUSED), postgres=replica()))
    assert d.next_state.role is Role.REPLICA


def test_paused_replicas_never_race() -> None:
    d = run(state(Role.REPLICA), obs(cluster=view(config=PAUSED), postgres=replica()))
    assert (d.reason, kinds(d)) == (Reason.PAUSED, [])


def test_paused_manual_failover_to_me_takes_the_lock_and_promotes() -> None:
    v = view(config=PAUSED, failover=FailoverKey(candidate="n1", version=2))
    d = run(state(Role.REPLICA), obs(cluster=v, postgres=replica()))
    assert d.reason is Reason.PAUSED_TAKE_LOCK
    v2 = view("n1", config=PAUSED, failover=FailoverKey(candidate="n1", version=2))
    d = run(d.next_state, obs(100.2, cluster=v2, postgres=replica(), lock_result=LockResult.OK))
    assert d.reason is Reason.PROMOTE
    assert Promote(not_after_mono=130.0) in d.actions
    assert "ClearFailover" not in kinds(d)  # pause keeps the key
