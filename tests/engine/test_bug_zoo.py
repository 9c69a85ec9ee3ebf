"""One test per bug-zoo entry (docs/patroni-rules.md §5) that the engine alone can show."""

from __future__ import annotations

import pytest

from pgha.engine.actions import (
    AcquireLock,
    Demote,
    DemoteMode,
    FetchPeerStatus,
    ReleaseLock,
    RenewLock,
)
from pgha.engine.config import SyncMode
from pgha.engine.decision import Reason
from pgha.engine.roles import Role
from pgha.engine.state import Pending
from pgha.engine.values import (
    FailoverKey,
    FailsafeHeartbeat,
    HistoryEntry,
    LockResult,
    PgRun,
    SyncKey,
)
from tests.engine.builders import (
    cfg,
    continuing,
    kinds,
    leader_state,
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


def test_01_cas_failure_on_a_stale_etcd_member_demotes_instead_of_trusting_the_read() -> None:
    # The stale member still shows n1 as holder; the CAS fails: demote, do not re-read and stay.
    st = continuing(leader_state(), Pending.RENEW, 100.0)
    o = obs(100.4, cluster=view("n1"), postgres=primary(), lock_result=LockResult.CAS_FAILED)
    d = run(st, o)
    assert d.actions[0] == Demote(mode=DemoteMode.IMMEDIATE_NOLOCK)
    assert d.next_state.lock_deadline_mono is None


def test_02_leadership_proof_is_a_local_deadline_never_a_dcs_read() -> None:
    # A freshly started agent reads a view naming it holder: that is a claim, not proof.
    d = run(state(Role.STARTING), obs(cluster=view("n1"), postgres=primary()))
    assert d.actions == (RenewLock(version=10),)
    assert d.next_state.lock_deadline_mono is None
    # A deadline that passed is gone, whatever the view says.
    st = leader_state(lock_deadline_mono=100.0)
    d = run(st, obs(100.0, cluster=view("n1"), postgres=primary()))
    assert d.next_state.lock_deadline_mono is None


def test_03_stalled_old_primary_with_a_lower_timeline_does_not_retake_the_lock() -> None:
    history = (HistoryEntry(timeline=1, switch_lsn=5000),)  # cluster timeline is 2
    d = run(state(Role.PRIMARY), obs(cluster=view(history=history), postgres=primary(timeline=1)))
    assert d.reason is Reason.NOT_HEALTHIEST_DEMOTE
    assert d.actions[0] == Demote(mode=DemoteMode.IMMEDIATE_NOLOCK)
    assert not any(isinstance(a, AcquireLock) for a in d.actions)


def test_04_a_race_is_an_atomic_create_and_a_lost_create_stands_down() -> None:
    st = continuing(state(Role.REPLICA), Pending.PEERS, 100.0)
    d = run(st, obs(100.1, cluster=view(), peers=(peer("n2"),)))
    assert d.actions == (AcquireLock(not_after_mono=110.1),)  # create-if-absent: no version
    d = run(d.next_state, obs(100.2, cluster=view("n2"), lock_result=LockResult.CAS_FAILED))
    assert d.reason is Reason.FOLLOW_LEADER  # the winner leads; the loser follows it
    assert d.next_state.role is Role.REPLICA
    assert not any(isinstance(a, RenewLock | ReleaseLock) for a in d.actions)


def test_05_unreachable_dcs_demotes_the_primary_in_the_same_step() -> None:
    d = run(leader_state(), obs(cluster=None, postgres=primary()))
    assert d.actions[0] == Demote(mode=DemoteMode.OFFLINE)


def test_06_vanished_key_replicas_probe_the_former_leader_and_wait_while_it_is_primary() -> None:
    st = state(Role.REPLICA, former_leader="n3", old_members=(member("n3"),))
    v = view(members=("n1", "n2"))  # n3's member key expired with the session
    d = run(st, obs(cluster=v))
    assert d.actions == (FetchPeerStatus(members=("n2", "n3")),)
    peers = (peer("n2"), peer("n3", in_recovery=False))
    d = run(d.next_state, obs(100.1, cluster=v, peers=peers))
    assert d.reason is Reason.NOT_HEALTHIEST_PRIMARY_ALIVE


@pytest.mark.parametrize(
    ("view_kw", "reason"),
    [
        ({"status_optime_lsn": 5_000_000}, Reason.NOT_HEALTHIEST_LAG),
        (
            {
                "config": cfg(check_timeline=True),
                "history": (HistoryEntry(timeline=1, switch_lsn=900),),
            },
            Reason.NOT_HEALTHIEST_TIMELINE,
        ),
    ],
)
def test_07_wrong_restart_order_node_behind_status_or_history_does_not_promote(
    view_kw: dict[str, object], reason: Reason
) -> None:
    d = run(state(Role.REPLICA), obs(cluster=view(**view_kw), postgres=replica(wal_lsn=1000)))
    assert d.reason is reason


def test_08_sync_mode_with_only_nosync_replicas_no_async_node_promotes() -> None:
    c = cfg(synchronous_mode=SyncMode.ON, primary_start_timeout_s=0)
    sync = SyncKey(leader="n1", standbys=frozenset(), version=3)
    d = run(state(Role.REPLICA, name="n2"), obs(cluster=view(config=c, sync=sync)), local("n2"))
    assert d.reason is Reason.NOT_HEALTHIEST_NOT_SYNC
    # The crashed primary does not hand over to async nodes: it restarts in place.
    st = continuing(leader_state(), Pending.PEERS, 100.0, renew=LockResult.OK)
    pg = stopped(in_recovery=False)
    d = run(
        st, obs(100.2, cluster=view("n1", config=c, sync=sync), postgres=pg, peers=(peer("n2"),))
    )
    assert d.reason is Reason.PRIMARY_RESTART_IN_PLACE


def test_09_switchover_in_sync_mode_never_lets_an_async_node_race() -> None:
    c = cfg(synchronous_mode=SyncMode.ON)
    sync = SyncKey(leader="n1", standbys=frozenset({"n2"}), version=3)
    fo = FailoverKey(leader="n1")
    d = run(
        state(Role.REPLICA, name="n3"),
        obs(cluster=view(config=c, sync=sync, failover=fo)),
        local("n3"),
    )
    assert d.reason is Reason.NOT_HEALTHIEST_NOT_SYNC


def test_11_failsafe_cache_is_reset_on_promotion_and_expires_after_ttl() -> None:
    st = continuing(state(Role.CANDIDATE, failsafe_active=True), Pending.ACQUIRE, 100.0)
    d = run(st, obs(100.2, cluster=view("n1"), lock_result=LockResult.OK))
    assert d.reason is Reason.PROMOTE
    assert not d.next_state.failsafe_active
    old_beat = FailsafeHeartbeat(leader="n1", received_mono=60.0)
    d = run(
        state(Role.REPLICA, name="n2"),
        obs(cluster=view(), failsafe_heartbeat=old_beat),
        local("n2"),
    )
    assert d.reason is Reason.PROBE_PEERS


@pytest.mark.parametrize("mode", list(DemoteMode))
def test_13_watchdog_is_disabled_only_after_the_stop_at_the_safepoint(mode: DemoteMode) -> None:
    from pgha.engine.context import make_context
    from pgha.engine.moves import demote_actions

    ctx = make_context(leader_state(), obs(cluster=view("n1"), postgres=primary()), local())
    names = [type(a).__name__ for a in demote_actions(ctx, mode)]
    assert names.index("Demote") < names.index("DisableWatchdog")


def test_14_graceful_switchover_releases_the_lock_only_after_postgres_stopped() -> None:
    st = continuing(leader_state(), Pending.PEERS, 100.0, renew=LockResult.OK)
    v = view("n1", failover=FailoverKey(leader="n1", candidate="n2"))
    d = run(st, obs(100.2, cluster=v, postgres=primary(), peers=(peer("n2", wal_lsn=1000),)))
    names = kinds(d)
    assert names.index("Demote") < names.index("ReleaseLock")
    # The watchdog goes at the safepoint, before the release: a failed release stops the list.
    assert names.index("Demote") < names.index("DisableWatchdog") < names.index("ReleaseLock")


def test_stopped_primary_starting_without_the_lock_is_not_left_writable() -> None:
    from dataclasses import replace

    pg = replace(primary(), run=PgRun.STARTING)
    d = run(state(Role.STARTING), obs(cluster=view("n2"), postgres=pg))
    assert d.reason is Reason.NOT_LOCK_HOLDER_DEMOTE
