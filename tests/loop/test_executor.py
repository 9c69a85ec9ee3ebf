"""The executor: one port call per action, results as values, and the not_after rule."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from pgha.engine.actions import (
    AcquireInitialize,
    AcquireLock,
    Action,
    AppendHistory,
    ArmWatchdog,
    Bootstrap,
    Callback,
    ClearFailover,
    CreateReplica,
    DeleteInitialize,
    Demote,
    DemoteMode,
    DisableWatchdog,
    ExpireLeaderKey,
    FetchPeerStatus,
    Follow,
    Halt,
    KickWatchdog,
    PostFailsafe,
    Promote,
    Reinit,
    ReleaseLock,
    RenewLock,
    Rewind,
    RunCallback,
    SetSyncStandbyNames,
    StartPostgres,
    StopPostgres,
    UpdateMember,
    WriteConfig,
    WriteFailsafe,
    WriteInitialize,
    WriteStatus,
    WriteSync,
)
from pgha.engine.values import Failure, HistoryEntry, LockResult, MemberRole, PeerStatus
from pgha.engine.values import SyncStandbyNames as Ssn
from pgha.executor import (
    CALLS as TABLE,
)
from pgha.executor import (
    Act,
    AgentHalted,
    Now,
    Outcome,
    StepResults,
    action_steps,
    execute,
    not_after,
    run_actions,
)
from pgha.ports import ActionFailed
from tests.loop.fakes import World

ENTRY = HistoryEntry(timeline=1, switch_lsn=500, new_leader="n1")
SSN = Ssn(count=1, names=frozenset({"n2"}))

# (action, the port call it makes)
CALLS: list[tuple[Action, tuple[str, tuple[object, ...]]]] = [
    (AcquireInitialize(), ("acquire_initialize", ())),
    (WriteInitialize(sysid="42"), ("write_initialize", ("42",))),
    (DeleteInitialize(), ("delete_initialize", ())),
    (WriteConfig(), ("write_config", ())),
    (Bootstrap(), ("bootstrap", ())),
    (CreateReplica(source="n2"), ("create_replica", ("n2",))),
    (AcquireLock(not_after_mono=1e9), ("acquire_lock", ())),
    (RenewLock(version=7), ("renew_lock", (7,))),
    (ReleaseLock(version=None), ("release_lock", (None,))),
    (ExpireLeaderKey(version=9), ("expire_leader_key", (9,))),
    (Promote(not_after_mono=1e9), ("promote", ())),
    (Demote(mode=DemoteMode.GRACEFUL), ("demote", (DemoteMode.GRACEFUL,))),
    (StartPostgres(as_primary=True), ("start", (True,))),
    (StopPostgres(immediate=False), ("stop", (False,))),
    (Follow(leader="n2"), ("follow", ("n2",))),
    (Rewind(source="n2"), ("rewind", ("n2",))),
    (Reinit(source="n3"), ("reinit", ("n3",))),
    (ArmWatchdog(timeout_s=25.0), ("arm", (25.0,))),
    (KickWatchdog(not_after_mono=1e9), ("kick", ())),
    (DisableWatchdog(), ("disable", ())),
    (FetchPeerStatus(members=("n2",)), ("fetch_status", (("n2",),))),
    (PostFailsafe(members=("n2", "n3")), ("post_failsafe", (("n2", "n3"),))),
    (WriteFailsafe(members=("n1", "n2")), ("write_failsafe", (("n1", "n2"),))),
    (
        WriteSync(leader="n1", standbys=frozenset({"n2"}), quorum=0, version=3),
        ("write_sync", ("n1", frozenset({"n2"}), 0, 3)),
    ),
    (SetSyncStandbyNames(value=SSN), ("set_sync_standby_names", (SSN,))),
    (WriteStatus(optime_lsn=900), ("write_status", (900,))),
    (AppendHistory(entry=ENTRY), ("append_history", (ENTRY,))),
    (ClearFailover(version=5), ("clear_failover", (5,))),
    (
        RunCallback(event=Callback.ON_ROLE_CHANGE, role="primary"),
        ("run", (Callback.ON_ROLE_CHANGE, "primary")),
    ),
    (UpdateMember(role=MemberRole.REPLICA), ("update_member", (MemberRole.REPLICA,))),
]


def test_the_table_covers_the_closed_action_union() -> None:
    assert set(TABLE) | {Halt} == set(get_args(Action))  # Halt raises instead of calling
    assert {type(a) for a, _ in CALLS} == set(get_args(Action)) - {Halt}


@pytest.mark.parametrize(("action", "call"), CALLS, ids=lambda v: type(v).__name__)
def test_each_action_makes_its_one_port_call(action: Action, call: Any) -> None:
    world = World()
    outcome = execute(action, world.ports)
    assert world.port_calls() == [call]
    assert outcome.ok


@pytest.mark.parametrize(
    ("action", "result"),
    [(AcquireLock(not_after_mono=1e9), LockResult.OK), (RenewLock(version=1), LockResult.OK)],
)
def test_lock_results_are_reported(action: Action, result: LockResult) -> None:
    world = World()
    assert execute(action, world.ports) == Outcome(lock_result=result)
    world.dcs.lock_result = LockResult.CAS_FAILED
    assert execute(action, world.ports) == Outcome(ok=False, lock_result=LockResult.CAS_FAILED)


@pytest.mark.parametrize(
    ("action", "method"),
    [
        (AcquireInitialize(), "acquire_initialize"),
        (AcquireLock(not_after_mono=1e9), "acquire_lock"),
        (RenewLock(version=1), "renew_lock"),
    ],
)
def test_a_dcs_error_on_a_lock_operation_is_a_lock_result(action: Action, method: str) -> None:
    world = World()
    world.dcs.raising.add(method)
    assert execute(action, world.ports) == Outcome(
        ok=False, lock_result=LockResult.DCS_ERROR, dcs_error=True
    )


def test_the_initialize_race_reports_like_a_lock() -> None:
    world = World()
    assert execute(AcquireInitialize(), world.ports).lock_result is LockResult.OK
    world.dcs.initialize_won = False
    lost = execute(AcquireInitialize(), world.ports)
    assert lost == Outcome(ok=False, lock_result=LockResult.CAS_FAILED)


@pytest.mark.parametrize(
    "action",
    [
        WriteSync(leader="n1", standbys=frozenset(), quorum=0, version=None),
        ClearFailover(version=1),
    ],
)
def test_a_lost_compare_and_set_is_not_ok(action: Action) -> None:
    world = World()
    world.dcs.cas_won = False
    assert execute(action, world.ports) == Outcome(ok=False)


def test_a_dcs_error_on_another_write_is_not_ok() -> None:
    world = World()
    world.dcs.raising.add("write_status")
    assert execute(WriteStatus(optime_lsn=1), world.ports) == Outcome(ok=False, dcs_error=True)


@pytest.mark.parametrize("failure", [Failure.PROMOTE, None])
def test_action_failed_carries_the_engine_failure(failure: Failure | None) -> None:
    world = World()
    world.postgres.failing["promote"] = failure
    outcome = execute(Promote(not_after_mono=1e9), world.ports)
    assert outcome == Outcome(ok=False, failure=failure)


def test_action_failed_has_a_message() -> None:
    assert str(ActionFailed(Failure.REWIND)) == "rewind"
    assert str(ActionFailed()) == "action failed"
    assert str(ActionFailed(Failure.START, "no data")) == "no data"


def test_a_watchdog_that_cannot_be_armed_is_a_watchdog_failure() -> None:
    world = World()
    world.watchdog.usable = False
    outcome = execute(ArmWatchdog(timeout_s=25.0), world.ports)
    assert outcome == Outcome(ok=False, failure=Failure.WATCHDOG)


def test_peer_answers_and_failsafe_acks_are_results() -> None:
    world = World()
    peers = execute(FetchPeerStatus(members=("n2", "n3")), world.ports).peers
    assert peers == (PeerStatus(name="n2", wal_lsn=7), PeerStatus(name="n3", wal_lsn=7))
    acks = execute(PostFailsafe(members=("n2", "n3")), world.ports).failsafe_acks
    assert acks == ("n2",)


def test_halt_raises() -> None:
    with pytest.raises(AgentHalted):
        execute(Halt(), World().ports)


# ---------------------------------------------------------------- lists of actions


def test_not_after_reads_the_deadline() -> None:
    assert not_after(Promote(not_after_mono=5.0)) == 5.0
    assert not_after(StartPostgres(as_primary=True)) is None
    assert not_after(WriteConfig()) is None


def test_action_steps_asks_the_time_only_for_actions_with_a_deadline() -> None:
    actions = (WriteConfig(), KickWatchdog(not_after_mono=10.0))
    steps = action_steps(actions)
    assert next(steps) == Act(WriteConfig())
    assert steps.send(Outcome()) == Now()
    assert steps.send(9.99) == Act(KickWatchdog(not_after_mono=10.0))
    with pytest.raises(StopIteration) as done:
        steps.send(Outcome())
    assert done.value.value == StepResults(ran=actions)


def test_everything_runs_in_order_and_results_merge() -> None:
    world = World()
    actions = (
        RenewLock(version=3),
        FetchPeerStatus(members=("n2",)),
        PostFailsafe(members=("n3",)),
        KickWatchdog(not_after_mono=101.0),
    )
    results = run_actions(actions, world.ports)
    assert [c[0] for c in world.port_calls()] == [
        "renew_lock",
        "fetch_status",
        "post_failsafe",
        "kick",
    ]
    assert results == StepResults(
        lock_result=LockResult.OK,
        peers=(PeerStatus(name="n2", wal_lsn=7),),
        failsafe_acks=("n3",),
        ran=actions,
    )


def test_the_first_failure_stops_the_list_but_the_member_key_is_still_published() -> None:
    # Patroni's touch_member in `finally`: a member whose PostgreSQL failed keeps its key.
    world = World()
    world.postgres.failing["rewind"] = Failure.REWIND
    update = UpdateMember(role=MemberRole.REPLICA)
    actions = (Rewind(source="n2"), Follow(leader="n2"), update)
    results = run_actions(actions, world.ports)
    assert world.port_calls() == [("rewind", ("n2",)), ("update_member", (MemberRole.REPLICA,))]
    assert results.failure is Failure.REWIND
    assert results.failed == actions[0]
    assert results.ran == (actions[0], update)
    assert results.skipped == (actions[1],)
    assert results.dropped is None


def test_a_failed_start_still_publishes_the_member_key_and_reports_the_failure() -> None:
    world = World()
    world.postgres.failing["start"] = Failure.START
    update = UpdateMember(role=MemberRole.PRIMARY)
    actions = (KickWatchdog(not_after_mono=1e9), StartPostgres(as_primary=True), update)
    results = run_actions(actions, world.ports)
    assert [name for name, _ in world.port_calls()] == ["kick", "start", "update_member"]
    assert (results.failed, results.failure, results.skipped) == (actions[1], Failure.START, ())


def test_the_member_key_update_failing_after_a_failure_keeps_the_first_failure() -> None:
    world = World()
    world.postgres.failing["start"] = Failure.START
    world.dcs.raising.add("update_member")
    actions = (StartPostgres(as_primary=True), UpdateMember(role=MemberRole.PRIMARY))
    results = run_actions(actions, world.ports)
    assert (results.failed, results.failure, results.ran) == (actions[0], Failure.START, actions)


def test_after_a_dcs_error_the_member_key_update_is_skipped_too() -> None:
    # The DCS did not answer within retry_timeout: another write would cost as long again.
    world = World()
    world.dcs.raising.add("write_status")
    actions = (WriteStatus(optime_lsn=1), UpdateMember(role=MemberRole.PRIMARY))
    results = run_actions(actions, world.ports)
    assert world.port_calls() == [("write_status", (1,))]
    assert (results.failed, results.skipped) == (actions[0], actions[1:])


def test_only_the_member_key_update_runs_always() -> None:
    assert {kind for kind, call in TABLE.items() if call.always} == {UpdateMember}


@pytest.mark.parametrize(("now", "runs"), [(99.0, True), (100.0, False), (130.0, False)])
def test_an_action_whose_deadline_is_reached_is_dropped_with_the_rest(
    now: float, runs: bool
) -> None:
    world = World()
    world.clock.now = now
    actions = (Promote(not_after_mono=100.0), RunCallback(event=Callback.ON_START, role="primary"))
    results = run_actions(actions, world.ports)
    if runs:
        assert results == StepResults(ran=actions)
    else:
        assert world.port_calls() == []
        assert results == StepResults(dropped=actions[0], skipped=actions[1:])


def test_the_clock_is_read_when_the_action_is_about_to_run() -> None:
    # Every clock read moves time on by 4 s: the second deadline action is already late.
    world = World()
    world.clock.now, world.clock.step = 90.0, 4.0
    actions = (
        AcquireLock(not_after_mono=100.0),
        WriteStatus(optime_lsn=1),
        KickWatchdog(not_after_mono=94.0),
        DisableWatchdog(),
    )
    results = run_actions(actions, world.ports)
    assert [c[0] for c in world.port_calls()] == ["acquire_lock", "write_status"]
    assert results.ran == actions[:2]
    assert results.dropped == actions[2]
    assert results.skipped == actions[3:]
    assert results.lock_result is LockResult.OK


def test_an_empty_list_gives_empty_results() -> None:
    assert run_actions((), World().ports) == StepResults()
