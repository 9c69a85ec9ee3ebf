"""A lock holder whose PostgreSQL cannot start gives the lock back (issue 13, item 4).

After a failed start (Failure.START with the server still down) it releases the lock at once, as
Patroni's post_recover does; a start that fails without saying so is timed from the *first* start
attempt of the outage, and after primary_start_timeout the lock goes to a healthy replica.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from pgha.engine.actions import DisableWatchdog, FetchPeerStatus, ReleaseLock, RenewLock
from pgha.engine.context import absorb
from pgha.engine.decision import Reason
from pgha.engine.roles import Role
from pgha.engine.state import NodeState, Pending
from pgha.engine.values import Failure, LockResult, PgRun
from tests.engine.builders import (
    cfg,
    continuing,
    kinds,
    leader_state,
    obs,
    peer,
    primary,
    run,
    state,
    stopped,
    view,
)

OK = LockResult.OK
DOWN = stopped(in_recovery=False, clean_shutdown=False)
STARTING = replace(primary(), run=PgRun.STARTING)


def _leader_view(timeout: float = 20.0) -> Any:
    return view("n1", config=cfg(primary_start_timeout_s=timeout))


# ---------------------------------------------------------------- one step of a renewed holder

# (id, state fields, primary_start_timeout, peers answered, reason, actions, start_began_mono)
RENEWED_DOWN: list[tuple[str, dict[str, Any], float, Any, Reason, list[str], float | None]] = [
    (
        "certain failure, watchdog armed: disable it, then release",
        {"start_failed": True, "start_began_mono": 90.0},
        20.0,
        None,
        Reason.START_FAILED_RELEASE,
        ["DisableWatchdog", "ReleaseLock"],
        None,
    ),
    (
        "certain failure, no watchdog: release",
        {"start_failed": True, "watchdog_timeout_s": None},
        300.0,
        None,
        Reason.START_FAILED_RELEASE,
        ["ReleaseLock"],
        None,
    ),
    (
        "first attempt of the outage: restart in place, timed from now",
        {},
        20.0,
        None,
        Reason.PRIMARY_RESTART_IN_PLACE,
        ["KickWatchdog", "StartPostgres"],
        100.5,
    ),
    (
        "a retry within the timeout keeps the first attempt's time",
        {"start_began_mono": 90.0},
        20.0,
        None,
        Reason.PRIMARY_RESTART_IN_PLACE,
        ["KickWatchdog", "StartPostgres"],
        90.0,
    ),
    (
        "timeout since the first attempt: probe the peers first",
        {"start_began_mono": 80.5},
        20.0,
        None,
        Reason.START_TIMEOUT_DEMOTE,
        ["FetchPeerStatus"],
        80.5,
    ),
    (
        "timeout and a healthy replica: release the lock",
        {"start_began_mono": 80.5},
        20.0,
        (peer("n2"),),
        Reason.START_TIMEOUT_DEMOTE,
        ["DisableWatchdog", "ReleaseLock"],
        None,
    ),
    (
        "timeout and nobody to take over: keep trying in place",
        {"start_began_mono": 80.5},
        20.0,
        (peer("n2", running=False), peer("n3", reachable=False)),
        Reason.PRIMARY_RESTART_IN_PLACE,
        ["KickWatchdog", "StartPostgres"],
        80.5,
    ),
    (
        "timeout 0 keeps its meaning: demote at once when possible",
        {"start_began_mono": 99.0},
        0.0,
        (peer("n2"),),
        Reason.CRASH_FAILOVER_DEMOTE,
        ["Demote", "DisableWatchdog", "StartPostgres", "RunCallback", "ReleaseLock"],
        99.0,
    ),
]


@pytest.mark.parametrize(
    ("fields", "timeout", "peers", "reason", "actions", "began"),
    [case[1:] for case in RENEWED_DOWN],
    ids=[case[0] for case in RENEWED_DOWN],
)
def test_renewed_holder_with_postgres_down(
    fields: dict[str, Any],
    timeout: float,
    peers: Any,
    reason: Reason,
    actions: list[str],
    began: float | None,
) -> None:
    v = _leader_view(timeout)
    if peers is None:
        st = continuing(leader_state(**fields), Pending.RENEW, 100.0)
        d = run(st, obs(100.5, cluster=v, postgres=DOWN, lock_result=OK))
    else:
        st = continuing(leader_state(**fields), Pending.PEERS, 100.0, renew=OK)
        d = run(st, obs(100.5, cluster=v, postgres=DOWN, peers=peers))
    assert (d.reason, kinds(d)) == (reason, actions)
    if d.immediate:
        assert d.actions == (FetchPeerStatus(members=("n2", "n3")),)
        return
    assert d.next_state.start_began_mono == began
    if "ReleaseLock" in actions:
        assert ReleaseLock(version=None) in d.actions or reason is Reason.CRASH_FAILOVER_DEMOTE
        assert d.next_state.lock_deadline_mono is None
        assert d.next_state.watchdog_timeout_s is None
        assert d.wake_on_watch


def test_release_after_a_failed_start_clears_the_memory_and_keeps_the_role() -> None:
    st = continuing(leader_state(start_failed=True, start_began_mono=90.0), Pending.RENEW, 100.0)
    d = run(st, obs(100.5, cluster=_leader_view(), postgres=DOWN, lock_result=OK))
    assert d.actions[:2] == (DisableWatchdog(), ReleaseLock(version=None))
    assert type(d.actions[-1]).__name__ == "UpdateMember"  # the member key still says "down"
    assert (d.next_state.role, d.next_state.start_failed) == (Role.STOPPED, False)


@pytest.mark.parametrize(
    "postgres",
    [STARTING, primary()],
    ids=["still starting", "running"],
)
def test_a_start_failure_does_not_release_while_postgres_is_up_or_starting(postgres: Any) -> None:
    st = continuing(leader_state(start_failed=True), Pending.RENEW, 100.0)
    d = run(st, obs(100.5, cluster=_leader_view(), postgres=postgres, lock_result=OK))
    assert d.reason is not Reason.START_FAILED_RELEASE


def test_a_node_without_the_lock_is_not_asked_to_release() -> None:
    # Failed start on a replica: it just tries again as a replica of the leader.
    st = state(Role.STOPPED, start_failed=True)
    d = run(st, obs(100.0, cluster=view("n2"), postgres=stopped()))
    assert d.reason is Reason.START_REPLICA


# ---------------------------------------------------------------- what the state remembers

# (id, run, failure, before, start_failed after, start_began_mono after)
MEMORY: list[tuple[str, PgRun, Failure | None, dict[str, Any], bool, float | None]] = [
    ("down after a failed start", PgRun.STOPPED, Failure.START, {}, True, None),
    ("down, first attempt still timed", PgRun.STOPPED, Failure.START, {"b": 90.0}, True, 90.0),
    ("down, no news keeps the memory", PgRun.STOPPED, None, {"f": True, "b": 90.0}, True, 90.0),
    ("down, another failure", PgRun.STOPPED, Failure.PROMOTE, {"b": 90.0}, False, 90.0),
    ("starting: not certain", PgRun.STARTING, Failure.START, {"f": True, "b": 90.0}, False, 90.0),
    ("running ends the outage", PgRun.RUNNING, None, {"f": True, "b": 90.0}, False, None),
]


@pytest.mark.parametrize(
    ("pg_run", "failure", "before", "failed", "began"),
    [case[1:] for case in MEMORY],
    ids=[case[0] for case in MEMORY],
)
def test_absorb_remembers_a_failed_start_until_postgres_runs(
    pg_run: PgRun, failure: Failure | None, before: dict[str, Any], failed: bool, began: Any
) -> None:
    st = NodeState(name="n1", start_failed=before.get("f", False), start_began_mono=before.get("b"))
    postgres = replace(DOWN if pg_run is PgRun.STOPPED else primary(), run=pg_run)
    after = absorb(st, obs(100.0, postgres=postgres, failure=failure))
    assert (after.start_failed, after.start_began_mono) == (failed, began)


# ---------------------------------------------------------------- whole cycles


def _cycle(st: NodeState, now: float, timeout: float, **kw: Any) -> Any:
    """One leader cycle: the renewal step, then the decision on the renewed observation."""
    v = _leader_view(timeout)
    d = run(st, obs(now, cluster=v, postgres=DOWN, **kw))
    assert d.actions == (RenewLock(version=10),)
    return run(d.next_state, obs(now + 0.01, cluster=v, postgres=DOWN, lock_result=OK))


def test_a_failed_start_reported_before_the_renewal_releases_the_lock_next_cycle() -> None:
    # The failure arrives with the first observation of the cycle; the renewal step in between
    # carries no failure, so the engine must remember it.
    st = replace(leader_state(now=100.0), lock_deadline_mono=130.0)
    d = _cycle(st, 100.0, 300.0)
    assert d.reason is Reason.PRIMARY_RESTART_IN_PLACE
    d = _cycle(d.next_state, 110.0, 300.0, failure=Failure.START)
    assert (d.reason, kinds(d)) == (Reason.START_FAILED_RELEASE, ["DisableWatchdog", "ReleaseLock"])


def test_silent_start_failures_are_timed_from_the_first_attempt() -> None:
    # Each start is dropped or returns without the server coming up: no failure is reported.
    st = replace(leader_state(now=100.0), lock_deadline_mono=130.0)
    reasons = []
    for now in (100.0, 110.0, 120.0):
        d = _cycle(st, now, 20.0)
        reasons.append(d.reason)
        st = replace(d.next_state, lock_deadline_mono=now + 30.0)
    assert reasons == [
        Reason.PRIMARY_RESTART_IN_PLACE,
        Reason.PRIMARY_RESTART_IN_PLACE,
        Reason.START_TIMEOUT_DEMOTE,  # 120.01 - 100.01 >= 20: ask the peers
    ]
    assert st.start_began_mono == 100.01
