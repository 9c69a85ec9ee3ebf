"""Identity, DCS outages and failsafe mode, bootstrap, clone, standalone take-over."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from pgha.engine.actions import (
    AcquireInitialize,
    Bootstrap,
    CreateReplica,
    Demote,
    DemoteMode,
    DisableWatchdog,
    Halt,
    KickWatchdog,
    PostFailsafe,
    ReleaseLock,
    WriteInitialize,
)
from pgha.engine.decision import Reason
from pgha.engine.roles import Role
from pgha.engine.state import Pending
from pgha.engine.values import (
    Failure,
    LockResult,
    MemberRole,
    PgRun,
    PostgresState,
    Tags,
)
from tests.engine.builders import (
    SYSID,
    cfg,
    continuing,
    empty,
    kinds,
    leader_state,
    local,
    member,
    obs,
    primary,
    replica,
    run,
    state,
    view,
)


def test_foreign_system_identifier_halts_the_agent() -> None:
    d = run(state(), obs(cluster=view("n2"), postgres=replica(sysid="123")))
    assert d.reason is Reason.SYSID_MISMATCH
    assert Halt() in d.actions


class TestDcsUnreachable:
    def test_primary_demotes_offline_and_disables_watchdog_after_the_stop(self) -> None:
        d = run(leader_state(), obs(cluster=None, postgres=primary()))
        assert d.reason is Reason.DCS_UNREACHABLE_DEMOTE
        assert d.actions[0] == Demote(mode=DemoteMode.OFFLINE)
        assert kinds(d).index("DisableWatchdog") > kinds(d).index("Demote")
        assert "ReleaseLock" not in kinds(d)  # offline: the lock expires by itself
        assert d.next_state.lock_deadline_mono is None
        assert d.next_state.role is Role.DEMOTING
        assert not any(type(a).__name__ == "UpdateMember" for a in d.actions)

    def test_replica_keeps_running_and_retries_next_loop(self) -> None:
        d = run(state(), obs(cluster=None, postgres=replica()))
        assert d.reason is Reason.DCS_UNREACHABLE
        assert d.actions == ()
        assert d.wake_at_mono == 110.0
        assert d.wake_on_watch

    def test_paused_primary_is_left_alone(self) -> None:
        st = leader_state(config=cfg(pause=True))
        d = run(st, obs(cluster=None, postgres=primary()))
        assert (d.reason, d.actions) == (Reason.DCS_UNREACHABLE, ())

    def test_renewal_that_hits_a_dcs_error_is_a_dcs_outage(self) -> None:
        st = continuing(leader_state(), Pending.RENEW, 100.0)
        d = run(
            st, obs(101.0, cluster=view("n1"), postgres=primary(), lock_result=LockResult.DCS_ERROR)
        )
        assert d.reason is Reason.DCS_UNREACHABLE_DEMOTE


class TestFailsafe:
    def _st(self, **kw: object) -> Any:
        return leader_state(config=cfg(failsafe_mode=True), last_failsafe=("n1", "n2", "n3"), **kw)

    def test_primary_posts_to_every_other_failsafe_member_first(self) -> None:
        d = run(self._st(), obs(cluster=None, postgres=primary()))
        assert d.reason is Reason.FAILSAFE_CHECK
        assert d.actions == (PostFailsafe(members=("n2", "n3")),)
        assert d.immediate
        assert not d.reread_dcs  # the DCS just failed: do not spend retry_timeout on it again
        assert d.next_state.pending is Pending.FAILSAFE

    def test_all_acks_keep_the_primary_and_extend_the_lock_from_the_send_time(self) -> None:
        st = continuing(self._st(), Pending.FAILSAFE, 100.0)
        d = run(st, obs(100.5, cluster=None, postgres=primary(), failsafe_acks=("n3", "n2")))
        assert d.reason is Reason.FAILSAFE_CONTINUE
        assert d.actions == (KickWatchdog(not_after_mono=130.0),)
        assert d.next_state.lock_deadline_mono == 130.0
        assert d.next_state.failsafe_active

    def test_a_failsafe_proof_older_than_ttl_demotes_offline(self) -> None:
        st = continuing(self._st(), Pending.FAILSAFE, 69.0)
        d = run(st, obs(100.0, cluster=None, postgres=primary(), failsafe_acks=("n2", "n3")))
        assert d.reason is Reason.FAILSAFE_INCOMPLETE_DEMOTE

    def test_a_missing_ack_demotes_offline(self) -> None:
        st = continuing(self._st(), Pending.FAILSAFE, 100.0)
        d = run(st, obs(100.5, cluster=None, postgres=primary(), failsafe_acks=("n2",)))
        assert d.reason is Reason.FAILSAFE_INCOMPLETE_DEMOTE
        assert d.actions[0] == Demote(mode=DemoteMode.OFFLINE)

    def test_single_member_failsafe_continues_without_posting(self) -> None:
        st = leader_state(
            config=cfg(failsafe_mode=True), last_failsafe=("n1",), watchdog_timeout_s=None
        )
        d = run(st, obs(cluster=None, postgres=primary()))
        assert (d.reason, d.actions) == (Reason.FAILSAFE_CONTINUE, ())
        assert d.next_state.lock_deadline_mono == 130.0

    @pytest.mark.parametrize("listed", [None, ("n2", "n3")])
    def test_primary_not_listed_in_failsafe_demotes(self, listed: tuple[str, ...] | None) -> None:
        st = leader_state(config=cfg(failsafe_mode=True), last_failsafe=listed)
        d = run(st, obs(cluster=None, postgres=primary()))
        assert d.reason is Reason.DCS_UNREACHABLE_DEMOTE


class TestBootstrap:
    def test_empty_node_races_for_initialize(self) -> None:
        d = run(state(Role.UNINITIALIZED), obs(cluster=view(initialize=None), postgres=empty()))
        assert (d.reason, d.actions, d.immediate) == (
            Reason.BOOTSTRAP_RACE,
            (AcquireInitialize(),),
            True,
        )

    def test_winner_bootstraps(self) -> None:
        st = continuing(state(Role.UNINITIALIZED), Pending.INITIALIZE, 100.0)
        d = run(st, obs(cluster=view(initialize=""), postgres=empty(), lock_result=LockResult.OK))
        assert d.reason is Reason.BOOTSTRAP_WON
        assert d.actions == (Bootstrap(),)
        assert d.immediate  # claim initialize and the lock right after initdb
        assert d.next_state.role is Role.BOOTSTRAPPING

    def test_loser_waits(self) -> None:
        st = continuing(state(Role.UNINITIALIZED), Pending.INITIALIZE, 100.0)
        o = obs(cluster=view(initialize=""), postgres=empty(), lock_result=LockResult.CAS_FAILED)
        d = run(st, o)
        assert (d.reason, kinds(d)) == (Reason.WAITING_FOR_BOOTSTRAP, [])

    def test_failed_bootstrap_is_cancelled_so_another_node_may_try(self) -> None:
        o = obs(cluster=view(initialize=""), postgres=empty(), failure=Failure.BOOTSTRAP)
        d = run(state(Role.BOOTSTRAPPING), o)
        assert (d.reason, kinds(d)) == (Reason.BOOTSTRAP_FAILED, ["DeleteInitialize"])
        assert d.next_state.role is Role.UNINITIALIZED

    def test_failed_clone_is_reported(self) -> None:
        o = obs(cluster=view("n2"), postgres=empty(), failure=Failure.CREATE_REPLICA)
        d = run(state(Role.CLONING), o)
        assert (d.reason, d.next_state.role) == (Reason.CLONE_FAILED, Role.UNINITIALIZED)

    def test_nofailover_node_never_bootstraps(self) -> None:
        loc = local(tags=Tags(nofailover=True))
        d = run(
            state(Role.UNINITIALIZED), obs(cluster=view(initialize=None), postgres=empty()), loc
        )
        assert d.reason is Reason.WAITING_FOR_BOOTSTRAP

    def test_clone_from_running_clonefrom_member_else_leader(self) -> None:
        members = (
            member("n1"),
            member("n2"),
            member("n3", tags=Tags(clonefrom=True)),
            member("n4", tags=Tags(clonefrom=True), running=False),
        )
        d = run(
            state(Role.UNINITIALIZED),
            obs(cluster=view("n2", member_values=members), postgres=empty()),
        )
        assert d.actions[0] == CreateReplica(source="n3")
        assert d.next_state.role is Role.CLONING
        d = run(state(Role.UNINITIALIZED), obs(cluster=view("n2"), postgres=empty()))
        assert d.actions[0] == CreateReplica(source="n2")

    def test_replica_method_without_leader_restores_when_no_leader(self) -> None:
        loc = local(replica_method_without_leader=True)
        d = run(state(Role.UNINITIALIZED), obs(cluster=view(), postgres=empty()), loc)
        assert d.actions[0] == CreateReplica(source=None)
        d = run(state(Role.UNINITIALIZED), obs(cluster=view(initialize=""), postgres=empty()), loc)
        assert d.reason is Reason.WAITING_FOR_BOOTSTRAP

    def test_holder_without_data_releases_the_lock(self) -> None:
        d = run(state(Role.STOPPED), obs(cluster=view("n1", version=4), postgres=empty()))
        assert d.reason is Reason.RELEASE_LOCK_NO_DATA
        assert d.actions[0] == ReleaseLock(version=4)

    def test_paused_empty_node_does_nothing(self) -> None:
        o = obs(cluster=view(initialize=None, config=cfg(pause=True)), postgres=empty())
        d = run(state(Role.UNINITIALIZED), o)
        assert (d.reason, kinds(d)) == (Reason.PAUSED, [])
        assert d.actions[-1].role is MemberRole.UNINITIALIZED

    def test_bootstrap_finishes_by_claiming_initialize_then_racing(self) -> None:
        o = obs(cluster=view(initialize=""), postgres=primary())
        d = run(state(Role.BOOTSTRAPPING), o)
        assert (d.reason, d.actions) == (
            Reason.TAKE_OVER_STANDALONE,
            (WriteInitialize(sysid=SYSID),),
        )
        assert d.immediate


class TestStandalone:
    def test_running_standalone_primary_is_taken_over(self) -> None:
        d = run(state(Role.UNINITIALIZED), obs(cluster=view(initialize=None), postgres=primary()))
        assert d.actions == (WriteInitialize(sysid=SYSID),)

    @pytest.mark.parametrize("pg", [replica(), replace(primary(), run=PgRun.STOPPED)])
    def test_replica_data_or_stopped_server_waits_for_the_primary(self, pg: PostgresState) -> None:
        d = run(state(Role.UNINITIALIZED), obs(cluster=view(initialize=None), postgres=pg))
        assert d.reason is Reason.START_PRIMARY_FIRST

    def test_someone_elses_bootstrap_in_progress_is_not_taken_over(self) -> None:
        d = run(state(Role.REPLICA), obs(cluster=view(initialize=""), postgres=primary()))
        assert d.reason is not Reason.TAKE_OVER_STANDALONE


def test_watchdog_disable_only_when_armed() -> None:
    d = run(leader_state(watchdog_timeout_s=None), obs(cluster=None, postgres=primary()))
    assert DisableWatchdog() not in d.actions
    assert Bootstrap() not in d.actions
