"""The loop generator, its status snapshot and events, observation building, the blocking driver."""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from dataclasses import replace
from typing import Any

import pytest

from pgha.engine.actions import (
    AcquireInitialize,
    AcquireLock,
    Bootstrap,
    FetchPeerStatus,
    PostFailsafe,
    UpdateMember,
    WriteSync,
)
from pgha.engine.config import DynamicConfig, WatchdogMode
from pgha.engine.decision import Decision, Reason
from pgha.engine.roles import Role
from pgha.engine.rules import decide
from pgha.engine.state import NodeState
from pgha.engine.values import (
    ClusterView,
    FailsafeHeartbeat,
    Failure,
    LeaderKey,
    LocalConfig,
    LockResult,
    MemberRole,
    Observation,
    PeerStatus,
    PgRun,
    PostgresState,
    Tags,
)
from pgha.events import ActionsEvent, DecisionEvent, Event, describe, jsonable
from pgha.executor import Act, AgentHalted, Now, Outcome, StepResults
from pgha.loop import (
    Emit,
    Observe,
    Publish,
    Request,
    Sleep,
    agent_steps,
    answer_port_request,
    build_observation,
    run_blocking,
)
from pgha.status import AgentStatus, next_status
from tests.loop.fakes import World
from tests.loop.harness import ClusterHarness

LOCAL = LocalConfig(name="n1", api_url="http://n1:8008/patroni", tags=Tags(nosync=True))
EMPTY = PostgresState(data_present=False, run=PgRun.STOPPED)
REPLICA = PostgresState(sysid="42", run=PgRun.RUNNING, in_recovery=True, timeline=1, wal_lsn=500)


def empty_obs(now: float, results: StepResults | None = None, **kw: Any) -> Observation:
    lock = None if results is None else results.lock_result
    return Observation(now_mono=now, cluster=ClusterView(**kw), postgres=EMPTY, lock_result=lock)


# ---------------------------------------------------------------- the generator


def test_one_cycle_as_requests() -> None:
    steps = agent_steps(LOCAL, NodeState(name="n1"))
    assert next(steps) == Observe(StepResults())

    publish = steps.send(empty_obs(100.0))
    assert isinstance(publish, Publish)
    assert publish.status.reason is Reason.BOOTSTRAP_RACE
    assert (publish.status.last_loop_mono, publish.status.dcs_last_seen_mono) == (100.0, 100.0)
    emit = steps.send(None)
    assert isinstance(emit, Emit)
    assert isinstance(emit.event, DecisionEvent)
    assert emit.event.reason is Reason.BOOTSTRAP_RACE
    assert emit.event.immediate
    assert steps.send(None) == Act(AcquireInitialize())
    done = steps.send(Outcome(lock_result=LockResult.OK))
    assert isinstance(done, Emit)
    assert isinstance(done.event, ActionsEvent)
    assert done.event.ran == (AcquireInitialize(),)
    # immediate: the next observation at once, carrying the race result
    won = StepResults(lock_result=LockResult.OK, ran=(AcquireInitialize(),))
    assert steps.send(None) == Observe(won)

    assert isinstance(steps.send(empty_obs(100.0, won, initialize="")), Publish)
    emit = steps.send(None)
    assert isinstance(emit, Emit)
    assert isinstance(emit.event, DecisionEvent)
    assert emit.event.reason is Reason.BOOTSTRAP_WON
    assert emit.event.role is Role.BOOTSTRAPPING
    assert emit.event.immediate  # initdb, then at once claim `initialize` and the lock
    assert steps.send(None) == Act(Bootstrap())
    assert isinstance(steps.send(Outcome()), Emit)
    assert steps.send(None) == Observe(StepResults(ran=(Bootstrap(),)))


def test_a_cycle_that_ends_sleeps_until_the_wake_time() -> None:
    steps = agent_steps(LOCAL, NodeState(name="n1"))
    next(steps)
    # Someone else bootstrapped and holds no lock yet: wait, watching the leader key.
    assert isinstance(steps.send(empty_obs(100.0, initialize="7")), Publish)
    emit = steps.send(None)
    assert isinstance(emit, Emit)
    assert isinstance(emit.event, DecisionEvent)
    assert emit.event.reason is Reason.WAITING_FOR_BOOTSTRAP
    assert steps.send(None) == Act(UpdateMember(role=MemberRole.UNINITIALIZED))
    assert isinstance(steps.send(Outcome()), Emit)
    assert steps.send(None) == Sleep(110.0, True)
    assert steps.send(None) == Observe(
        StepResults(ran=(UpdateMember(role=MemberRole.UNINITIALIZED),))
    )


FAILSAFE = NodeState(
    name="n1",
    role=Role.PRIMARY,
    lock_deadline_mono=120.0,
    config=DynamicConfig(failsafe_mode=True, watchdog_mode=WatchdogMode.OFF),
    last_failsafe=("n1", "n2"),
)
PRIMARY = replace(REPLICA, in_recovery=False)


def test_a_failsafe_round_observes_again_without_reading_the_dcs() -> None:
    steps = agent_steps(LOCAL, FAILSAFE)
    assert next(steps) == Observe(StepResults())
    failed = Observation(now_mono=110.0, cluster=None, postgres=PRIMARY)
    publish = steps.send(failed)
    assert isinstance(publish, Publish)
    assert publish.status.reason is Reason.FAILSAFE_CHECK
    assert not publish.status.dcs_reachable
    assert isinstance(steps.send(None), Emit)
    assert steps.send(None) == Act(PostFailsafe(members=("n2",)))
    assert isinstance(steps.send(Outcome(failsafe_acks=("n2",))), Emit)
    # The decision said reread_dcs=False: reuse this step's (failed) read instead of another one.
    acked = StepResults(failsafe_acks=("n2",), ran=(PostFailsafe(members=("n2",)),))
    assert steps.send(None) == Observe(acked, reread_dcs=False, previous_view=None)

    reused = Observation(now_mono=110.0, cluster=None, postgres=PRIMARY, failsafe_acks=("n2",))
    publish = steps.send(reused)
    assert isinstance(publish, Publish)
    assert publish.status.reason is Reason.FAILSAFE_CONTINUE
    assert publish.status.failsafe_active
    assert publish.status.lock_deadline_mono == 110.0 + 30.0  # sent at 110, + ttl
    assert not publish.status.dcs_reachable
    assert isinstance(steps.send(None), Emit)
    assert isinstance(steps.send(None), Emit)  # no actions: the watchdog is off
    assert steps.send(None) == Sleep(120.0, False)  # still the holder: no watch
    assert steps.send(None) == Observe(StepResults())  # a new cycle reads the DCS again


def test_the_reused_view_is_the_one_of_the_previous_step() -> None:
    def no_reread(state: NodeState, obs: Observation, local: LocalConfig) -> Decision:
        del obs, local
        return Decision(
            next_state=state,
            actions=(),
            wake_at_mono=100.0,
            immediate=True,
            wake_on_watch=False,
            reason=Reason.FAILSAFE_CHECK,
            reread_dcs=False,
        )

    steps = agent_steps(LOCAL, NodeState(name="n1"), decide=no_reread)
    next(steps)
    view = ClusterView(initialize="42")
    steps.send(Observation(now_mono=100.0, cluster=view, postgres=EMPTY))
    while not isinstance(request := steps.send(None), Observe):
        pass
    assert request == Observe(StepResults(), reread_dcs=False, previous_view=view)


def drive(
    steps: Generator[Request, Any, None],
    observe: Callable[[Observe], Observation],
    now: float,
    outcome: Callable[[Act], Outcome],
    decisions: int,
) -> list[Request]:
    """Answer requests until `decisions` decisions have run their actions."""
    seen: list[Request] = []
    request = next(steps)
    while True:
        seen.append(request)
        answer: Any = None
        if isinstance(request, Emit) and isinstance(request.event, ActionsEvent):
            decisions -= 1
            if decisions == 0:
                return seen
        elif isinstance(request, Observe):
            answer = observe(request)
        elif isinstance(request, Now):
            answer = now
        elif isinstance(request, Act):
            answer = outcome(request)
        request = steps.send(answer)


def race_obs(request: Observe) -> Observation:
    view = ClusterView(initialize="42", config_version=1)
    results = request.results
    return Observation(now_mono=100.0, cluster=view, postgres=REPLICA, peers=results.peers)


def no_peers(request: Act) -> Outcome:
    assert isinstance(request.action, FetchPeerStatus)
    return Outcome(peers=())


def test_the_loop_drops_a_late_action_and_observes_again() -> None:
    # Probe (nobody), then race: AcquireLock is due by 100 + retry_timeout; the clock says 110.
    steps = agent_steps(LOCAL, replace(NodeState(name="n1"), role=Role.REPLICA))
    seen = drive(steps, race_obs, 110.0, no_peers, decisions=2)
    assert [r.action for r in seen if isinstance(r, Act)] == [FetchPeerStatus(members=())]
    assert seen.count(Now()) == 1
    last = seen[-1]
    assert isinstance(last, Emit)
    assert isinstance(last.event, ActionsEvent)
    assert last.event.dropped == AcquireLock(not_after_mono=110.0)
    assert last.event.ran == ()
    assert steps.send(None) == Observe(StepResults(dropped=AcquireLock(not_after_mono=110.0)))


# ---------------------------------------------------------------- status and events


def decided(obs: Observation, state: NodeState | None = None) -> Decision:
    return decide(state or NodeState(name="n1"), obs, LOCAL)


def test_status_keeps_the_last_dcs_view_when_a_read_fails() -> None:
    seen = Observation(now_mono=100.0, now_wall=5.0, cluster=ClusterView(), postgres=EMPTY)
    first = next_status(AgentStatus(name="n1"), LOCAL, seen, decided(seen))
    assert first.dcs_reachable
    assert first.cluster == ClusterView()
    assert (first.dcs_last_seen_mono, first.dcs_last_seen_wall) == (100.0, 5.0)
    assert first.tags == Tags(nosync=True)
    failed = Observation(now_mono=130.0, now_wall=35.0, cluster=None, postgres=EMPTY)
    second = next_status(first, LOCAL, failed, decided(failed))
    assert not second.dcs_reachable
    assert second.cluster == ClusterView()
    assert (second.dcs_last_seen_mono, second.dcs_last_seen_wall) == (100.0, 5.0)
    assert second.last_loop_mono == 130.0
    assert second.reason is Reason.DCS_UNREACHABLE


def test_status_keeps_the_dcs_fields_when_the_view_was_reused() -> None:
    seen = Observation(now_mono=100.0, now_wall=5.0, cluster=ClusterView(), postgres=EMPTY)
    first = next_status(AgentStatus(name="n1"), LOCAL, seen, decided(seen))
    reused = replace(seen, now_mono=101.0, now_wall=6.0)  # the same view, not read again
    second = next_status(first, LOCAL, reused, decided(reused), dcs_read=False)
    assert second.dcs_reachable  # as of the latest real read
    assert (second.dcs_last_seen_mono, second.dcs_last_seen_wall) == (100.0, 5.0)
    assert second.cluster == ClusterView()
    assert second.last_loop_mono == 101.0
    failed = replace(seen, now_mono=130.0, cluster=None)
    third = next_status(second, LOCAL, failed, decided(failed))
    fourth = next_status(third, LOCAL, failed, decided(failed), dcs_read=False)
    assert not fourth.dcs_reachable
    assert fourth.dcs_last_seen_mono == 100.0


def test_status_lock_fields_come_from_the_engine_state() -> None:
    obs = Observation(
        now_mono=100.0,
        cluster=ClusterView(leader=LeaderKey(holder="n1", version=3)),
        postgres=replace(REPLICA, in_recovery=False),
    )
    state = NodeState(name="n1", role=Role.PRIMARY, lock_deadline_mono=120.0)
    status = next_status(AgentStatus(name="n1"), LOCAL, obs, decided(obs, state))
    assert status.holds_lock
    assert status.lock_deadline_mono == 120.0
    assert status.role is Role.PRIMARY


@pytest.mark.parametrize(
    ("config", "available", "failure", "failed"),
    [
        (DynamicConfig(watchdog_mode=WatchdogMode.REQUIRED), False, None, True),
        (DynamicConfig(watchdog_mode=WatchdogMode.REQUIRED), True, None, False),
        (DynamicConfig(watchdog_mode=WatchdogMode.REQUIRED), True, Failure.WATCHDOG, True),
        (DynamicConfig(watchdog_mode=WatchdogMode.REQUIRED, loop_wait_s=26.0), True, None, True),
        (DynamicConfig(watchdog_mode=WatchdogMode.AUTOMATIC), False, Failure.WATCHDOG, False),
    ],
)
def test_watchdog_failed(
    config: DynamicConfig, available: bool, failure: Failure | None, failed: bool
) -> None:
    obs = Observation(
        now_mono=100.0,
        cluster=ClusterView(config=config),
        postgres=EMPTY,
        watchdog_available=available,
        failure=failure,
    )
    status = next_status(AgentStatus(name="n1"), LOCAL, obs, decided(obs))
    assert status.watchdog_failed is failed


def test_events_are_json_records() -> None:
    sync = WriteSync(leader="n1", standbys=frozenset({"n3", "n2"}), quorum=1, version=None)
    assert describe(sync) == {
        "action": "WriteSync",
        "leader": "n1",
        "standbys": ["n2", "n3"],
        "quorum": 1,
        "version": None,
    }
    decision = DecisionEvent(
        node="n1",
        now_mono=1.0,
        reason=Reason.LEADER,
        role=Role.PRIMARY,
        actions=(sync,),
        wake_at_mono=11.0,
        immediate=False,
        wake_on_watch=False,
        dcs_ok=True,
    )
    record = decision.record()
    assert record["kind"] == "decision"
    assert record["reason"] == "leader"
    assert record["actions"] == [jsonable(sync)]
    actions = ActionsEvent(
        node="n1",
        ran=(sync,),
        failed=sync,
        dropped=None,
        skipped=(AcquireInitialize(),),
        lock_result=LockResult.OK,
        failure=Failure.START,
    )
    assert actions.record() == {
        "kind": "actions",
        "node": "n1",
        "ran": [describe(sync)],
        "failed": describe(sync),
        "dropped": None,
        "skipped": [{"action": "AcquireInitialize"}],
        "lock_result": "ok",
        "failure": "start",
    }
    json.dumps([record, actions.record()])
    assert jsonable([{1, 2}, PeerStatus(name="p")])[0] == [1, 2]


# ---------------------------------------------------------------- drivers' helpers


def test_build_observation_reads_every_port_and_the_clock_last() -> None:
    world = World()
    world.dcs.view = ClusterView(initialize="42")
    world.dcs.on_read.append(world.clock)  # the DCS read takes 5 s
    world.postgres.pg = REPLICA
    world.watchdog.usable = False
    world.peers.heartbeat = FailsafeHeartbeat(leader="n2", received_mono=99.0)
    results = StepResults(
        lock_result=LockResult.OK,
        peers=(PeerStatus(name="n2"),),
        failsafe_acks=("n3",),
        failure=Failure.REWIND,
    )
    obs = build_observation(world.ports, results)
    assert obs == Observation(
        now_mono=105.0,
        now_wall=1_700_000_105.0,
        cluster=ClusterView(initialize="42"),
        postgres=REPLICA,
        lock_result=LockResult.OK,
        peers=(PeerStatus(name="n2"),),
        failsafe_acks=("n3",),
        failsafe_heartbeat=FailsafeHeartbeat(leader="n2", received_mono=99.0),
        failure=Failure.REWIND,
        watchdog_available=False,
    )
    assert world.calls[-1] == ("now_mono", ())


def test_a_failed_dcs_read_is_no_view() -> None:
    world = World()
    world.dcs.raising.add("read_cluster")
    assert build_observation(world.ports, StepResults()).cluster is None


@pytest.mark.parametrize("previous", [None, ClusterView(initialize="7")])
def test_an_observation_without_a_dcs_read_reuses_the_previous_view(
    previous: ClusterView | None,
) -> None:
    world = World()
    world.dcs.view = ClusterView(initialize="42")
    world.postgres.pg = REPLICA
    request = Observe(StepResults(failsafe_acks=("n2",)), reread_dcs=False, previous_view=previous)
    obs = answer_port_request(request, world.ports)
    assert isinstance(obs, Observation)
    assert obs.cluster == previous
    assert obs.failsafe_acks == ("n2",)
    assert obs.postgres == REPLICA
    assert "read_cluster" not in [name for name, _ in world.calls]


# ---------------------------------------------------------------- the blocking driver


def single_node() -> tuple[ClusterHarness, Callable[[float, bool], None]]:
    harness = ClusterHarness(names=("a",), mono_offsets={"a": 500.0})
    node = harness.nodes["a"]

    def sleep(until_mono: float, watch: bool) -> None:
        del watch
        harness.clock.now = until_mono - node.clock.mono_offset

    return harness, sleep


def test_run_blocking_bootstraps_a_single_node_on_a_virtual_clock() -> None:
    harness, sleep = single_node()
    events: list[Event] = []
    statuses: list[AgentStatus] = []
    run_blocking(
        harness.nodes["a"].local,
        NodeState(name="a"),
        harness.nodes["a"].ports,
        sleep=sleep,
        stop=lambda: harness.now > 20.0,
        on_event=events.append,
        on_status=statuses.append,
    )
    assert harness.now == 30.0
    assert harness.primaries() == ["a"]
    reasons = [e.reason for e in events if isinstance(e, DecisionEvent)]
    # t=0, one cycle of immediate steps from the race to the lock; renewals every loop_wait (10)
    assert reasons == [
        Reason.BOOTSTRAP_RACE,
        Reason.BOOTSTRAP_WON,
        Reason.TAKE_OVER_STANDALONE,
        Reason.RACE,
        Reason.LEADER,
        Reason.RENEW_LOCK,  # 10
        Reason.LEADER,
        Reason.RENEW_LOCK,  # 20
        Reason.LEADER,
    ]
    assert statuses[-1].holds_lock
    assert statuses[-1].lock_deadline_mono == 520.0 + 30.0
    assert harness.dcs.leader is not None
    assert harness.dcs.leader.holder == "a"


def test_run_blocking_without_callbacks() -> None:
    harness, sleep = single_node()
    node = harness.nodes["a"]
    ran: list[float] = []

    def stop() -> bool:
        ran.append(harness.now)
        return len(ran) > 6

    run_blocking(node.local, NodeState(name="a"), node.ports, sleep=sleep, stop=stop)
    # race, initdb, claim, lock race, lead: five immediate steps at 0; sleep; renew at loop_wait
    assert ran == [0.0, 0.0, 0.0, 0.0, 0.0, 10.0, 10.0]
    assert harness.pgs["a"].writable


def test_run_blocking_stops_before_observing() -> None:
    harness, sleep = single_node()
    node = harness.nodes["a"]
    run_blocking(node.local, NodeState(name="a"), node.ports, sleep=sleep, stop=lambda: True)
    assert harness.dcs.initialize is None


def test_run_blocking_raises_when_the_engine_halts() -> None:
    harness, sleep = single_node()
    node = harness.nodes["a"]
    node.pg.data_present, node.pg.sysid, node.pg.timeline = True, "7000000000000000111", 1
    harness.dcs.initialize = "7000000000000000222"  # only a valid-looking identifier is foreign
    with pytest.raises(AgentHalted):
        run_blocking(node.local, NodeState(name="a"), node.ports, sleep=sleep, stop=lambda: False)
