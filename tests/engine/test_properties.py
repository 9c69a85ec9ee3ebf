"""Property tests over generated states and observations (Hypothesis).

Whatever a node remembers and observes, a decision:
- never promotes without a local lock deadline in the future, and carries that deadline;
- never leaves a PostgreSQL that accepts writes running without the lock at the end of a cycle,
  outside pause (it demotes, halts, or proves the lock);
- never demotes and promotes at once;
- only creates a free leader key, and only compare-and-sets a key that names it;
- kicks the watchdog only after proving the lock in this cycle;
- moves its role only along the transition table (decide raises otherwise).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pgha.engine.actions import AcquireLock, Demote, Halt, KickWatchdog, Promote, RenewLock
from pgha.engine.config import DynamicConfig, SyncMode, WatchdogMode
from pgha.engine.decision import Decision, Reason
from pgha.engine.roles import TRANSITIONS, Role
from pgha.engine.rules import decide
from pgha.engine.state import CycleMemo, NodeState, Pending
from pgha.engine.values import (
    ClusterView,
    FailoverKey,
    FailsafeHeartbeat,
    Failure,
    HistoryEntry,
    LeaderKey,
    LocalConfig,
    LockResult,
    Member,
    Observation,
    PeerStatus,
    PgRun,
    PostgresState,
    SyncKey,
    Tags,
)

NAMES = ("n1", "n2", "n3")
names = st.sampled_from(NAMES)
maybe_name = st.none() | names
lsn = st.integers(min_value=0, max_value=5000)
timeline = st.integers(min_value=1, max_value=4)

configs = st.builds(
    DynamicConfig,
    ttl_s=st.sampled_from([30.0, 20.0, 10.0]),
    loop_wait_s=st.sampled_from([10.0, 2.0]),
    retry_timeout_s=st.sampled_from([10.0, 3.0]),
    primary_start_timeout_s=st.sampled_from([0.0, 300.0]),
    synchronous_mode=st.sampled_from(list(SyncMode)),
    synchronous_mode_strict=st.booleans(),
    failsafe_mode=st.booleans(),
    check_timeline=st.booleans(),
    pause=st.booleans(),
    watchdog_mode=st.sampled_from(list(WatchdogMode)),
    maximum_lag_on_failover_b=st.sampled_from([0, 1048576]),
)

members = st.lists(
    st.builds(
        Member,
        name=names,
        api_url=st.just("http://x"),
        timeline=st.none() | timeline,
        running=st.booleans(),
        tags=st.builds(Tags, nofailover=st.booleans(), nosync=st.booleans()),
    ),
    max_size=3,
    unique_by=lambda m: m.name,
).map(tuple)

views = st.builds(
    ClusterView,
    initialize=st.sampled_from([None, "", "sys", "other"]),
    leader=st.none() | st.builds(LeaderKey, holder=names, version=st.integers(1, 50)),
    members=members,
    failover=st.none()
    | st.builds(
        FailoverKey,
        leader=maybe_name,
        candidate=maybe_name,
        scheduled_at_wall=st.none() | st.floats(900, 1100),
    ),
    sync=st.builds(
        SyncKey,
        leader=maybe_name,
        standbys=st.frozensets(names),
        quorum=st.integers(0, 2),
        version=st.none() | st.integers(1, 9),
    ),
    history=st.lists(st.builds(HistoryEntry, timeline=timeline, switch_lsn=lsn), max_size=3).map(
        tuple
    ),
    status_optime_lsn=st.none() | lsn,
    failsafe=st.none() | st.lists(names, unique=True).map(tuple),
    config=configs,
    config_version=st.none() | st.just(1),
)

postgres = st.builds(
    PostgresState,
    data_present=st.booleans(),
    sysid=st.sampled_from([None, "sys"]),
    run=st.sampled_from(list(PgRun)),
    in_recovery=st.booleans(),
    timeline=st.none() | timeline,
    wal_lsn=lsn,
    following=maybe_name,
    rewind_possible=st.booleans(),
).map(
    # No data directory means nothing runs and nothing is known about it.
    lambda p: p if p.data_present else PostgresState(data_present=False, sysid=None, timeline=None)
)

peers = st.lists(
    st.builds(
        PeerStatus,
        name=names,
        reachable=st.booleans(),
        running=st.booleans(),
        in_recovery=st.booleans(),
        wal_lsn=lsn,
        timeline=st.none() | timeline,
        failover_priority=st.integers(0, 2),
    ),
    max_size=3,
).map(tuple)

NOW = 100.0
memos = st.builds(
    CycleMemo,
    start_mono=st.floats(90, NOW),
    renew=st.none() | st.sampled_from(list(LockResult)),
    acquire=st.none() | st.sampled_from(list(LockResult)),
    initialize=st.none() | st.sampled_from(list(LockResult)),
    peers=st.none() | peers,
    failsafe_acks=st.none() | st.lists(names).map(tuple),
)

states = st.builds(
    NodeState,
    name=st.just("n1"),
    role=st.sampled_from(list(Role)),
    lock_deadline_mono=st.none() | st.floats(90, 140),
    pending=st.sampled_from(list(Pending)),
    pending_sent_mono=st.floats(90, NOW),
    continuing=st.booleans(),
    memo=memos,
    config=configs,
    watchdog_timeout_s=st.none() | st.just(25.0),
    former_leader=maybe_name,
    last_failsafe=st.none() | st.lists(names, unique=True).map(tuple),
    start_began_mono=st.none() | st.floats(0, NOW),
    promote_backoff_until_mono=st.none() | st.floats(90, 140),
    rewind_failed=st.booleans(),
)

observations = st.builds(
    Observation,
    now_mono=st.just(NOW),
    now_wall=st.floats(900, 1100),
    cluster=st.none() | views,
    postgres=postgres,
    lock_result=st.none() | st.sampled_from(list(LockResult)),
    peers=st.none() | peers,
    failsafe_acks=st.none() | st.lists(names).map(tuple),
    failsafe_heartbeat=st.none()
    | st.builds(FailsafeHeartbeat, leader=names, received_mono=st.floats(60, NOW)),
    failure=st.none() | st.sampled_from(list(Failure)),
    watchdog_available=st.booleans(),
)

locals_ = st.builds(
    LocalConfig,
    name=st.just("n1"),
    tags=st.builds(Tags, nofailover=st.booleans(), failover_priority=st.integers(0, 2)),
    replica_method_without_leader=st.booleans(),
)


def _paused(state: NodeState, obs: Observation) -> bool:
    return (obs.cluster.config if obs.cluster is not None else state.config).pause


# Ten times the profile's budget: this is the engine's main safety net and runs fast.
@settings(max_examples=settings.default.max_examples * 10)
@given(states, observations, locals_)
def test_decisions_are_safe_and_legal(
    state: NodeState, obs: Observation, local: LocalConfig
) -> None:
    d: Decision = decide(state, obs, local)  # raises on an illegal role transition
    nxt = d.next_state
    kinds = {type(a) for a in d.actions}
    holds_after = nxt.lock_deadline_mono is not None and nxt.lock_deadline_mono > obs.now_mono

    assert not (Demote in kinds and Promote in kinds)
    for a in d.actions:
        if isinstance(a, Promote):
            assert holds_after
            assert a.not_after_mono == nxt.lock_deadline_mono
        if isinstance(a, AcquireLock):
            assert obs.cluster is not None
            assert obs.cluster.leader is None
        if isinstance(a, RenewLock):
            assert obs.cluster is not None
            assert obs.cluster.leader is not None
            assert obs.cluster.leader.holder == "n1"
            assert obs.cluster.leader.version == a.version
        if isinstance(a, KickWatchdog):
            assert holds_after
            assert a.not_after_mono <= nxt.lock_deadline_mono
    writable = obs.postgres.data_present and obs.postgres.is_primary
    if writable and not d.immediate and not _paused(state, obs):
        assert holds_after or Demote in kinds or Halt in kinds, d.reason
    assert nxt.role is d.next_state.role
    assert isinstance(d.reason, Reason)
    assert d.wake_at_mono >= obs.now_mono
    assert d.immediate == (d.wake_at_mono == obs.now_mono and nxt.continuing)


def test_transition_table_has_no_dead_ends() -> None:
    # Every role can eventually reach STOPPED (crash) and REPLICA (rejoin).
    for role in Role:
        seen, frontier = {role}, [role]
        while frontier:
            for nxt in TRANSITIONS[frontier.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        assert {Role.STOPPED, Role.REPLICA} <= seen | {role}, role
