"""Garbage in the DCS never halts anyone, and the leader repairs what it owns (issue 13, item 7).

A value in `initialize` that cannot be a system identifier is not another cluster's: nobody halts,
nobody bootstraps over it or deletes it, and the leader rewrites it. A leader key without a lease
(written by hand: agents always write it on a lease) is deleted by a compare-and-set on its version
once it has not changed for ttl on the node's own clock. A malformed `/failover` is deleted by the
leader; a malformed `/sync` (decoded as "active, nobody electable") blocks every promotion and
the leader rewrites it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from pgha.engine.actions import (
    ClearFailover,
    ExpireLeaderKey,
    Follow,
    Halt,
    RenewLock,
    WriteInitialize,
    WriteSync,
)
from pgha.engine.config import SyncMode
from pgha.engine.context import absorb
from pgha.engine.decision import Reason
from pgha.engine.roles import Role
from pgha.engine.state import NodeState, Pending, UnleasedLeader
from pgha.engine.values import (
    ClusterView,
    FailoverKey,
    LeaderKey,
    LockResult,
    Observation,
    SyncKey,
    sysid_valid,
)
from tests.engine.builders import (
    SYSID,
    cfg,
    continuing,
    empty,
    kinds,
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
TTL = 30.0  # DynamicConfig's default
GARBAGE = "garbage"
OTHER_SYSID = "7100000000000000002"


def unleased(holder: str = GARBAGE, version: int = 7, **kw: Any) -> ClusterView:
    """A view whose leader key has no lease (written with etcdctl, say)."""
    return replace(
        view(holder, **kw), leader=LeaderKey(holder=holder, version=version, leased=False)
    )


def renewed(st: NodeState, cluster: ClusterView, **kw: Any) -> tuple[NodeState, Observation]:
    """The holder right after a successful renewal sent at 100.0, observing `cluster`."""
    kw.setdefault("postgres", primary())
    return continuing(st, Pending.RENEW, 100.0), obs(100.5, cluster=cluster, lock_result=OK, **kw)


# ---------------------------------------------------------------- initialize


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (SYSID, True),
        ("1234567890", True),  # Patroni: even 1 << 32 has 10 digits
        ("123456789", False),
        (GARBAGE, False),
        ("", False),
        (None, False),
        ("-7000000000000000001", False),
        ("7000000000000000001 ", False),
        ("\uff17" * 19, False),  # fullwidth digits: isdigit() but not ASCII
        ("7e18", False),
    ],
)
def test_sysid_valid(value: str | None, valid: bool) -> None:
    assert sysid_valid(value) is valid


# (id, initialize value, halts)
IDENTITY: list[tuple[str, str | None, bool]] = [
    ("my own identifier", SYSID, False),
    ("another cluster's identifier", OTHER_SYSID, True),
    ("garbage", GARBAGE, False),
    ("digits, too short for an identifier", "123", False),
    ("bootstrap in progress", "", False),
    ("absent", None, False),
]


@pytest.mark.parametrize(
    ("init", "halts"), [(i, h) for _, i, h in IDENTITY], ids=[row[0] for row in IDENTITY]
)
@pytest.mark.parametrize("who", ["leader", "replica", "stopped replica"])
def test_only_a_valid_foreign_identifier_halts(init: str | None, halts: bool, who: str) -> None:
    cases = {
        "leader": renewed(leader_state(), view("n1", initialize=init)),
        "replica": (state(), obs(cluster=view("n2", initialize=init), postgres=replica())),
        "stopped replica": (state(), obs(cluster=view("n2", initialize=init), postgres=stopped())),
    }
    st, observation = cases[who]
    d = run(st, observation)
    assert (Halt() in d.actions) is halts
    assert (d.reason is Reason.SYSID_MISMATCH) is halts


@pytest.mark.parametrize("init", [GARBAGE, "123", ""])
def test_the_leader_rewrites_an_invalid_initialize(init: str) -> None:
    d = run(*renewed(leader_state(), view("n1", initialize=init)))
    assert d.reason is Reason.LEADER
    assert WriteInitialize(sysid=SYSID) in d.actions


# (id, postgres, leader holder, local settings, reason)
NON_LEADER: list[tuple[str, Any, str | None, dict[str, Any], Reason]] = [
    ("running replica follows the leader", replica(following="n2"), "n2", {}, Reason.FOLLOW_LEADER),
    ("stopped replica starts", stopped(), "n2", {}, Reason.START_REPLICA),
    ("no data, a leader: clone from it", empty(), "n2", {}, Reason.CLONE),
    ("no data, no leader: wait", empty(), None, {}, Reason.WAITING_FOR_BOOTSTRAP),
    (
        "no data, no leader, a method without a leader: restore",
        empty(),
        None,
        {"replica_method_without_leader": True},
        Reason.CLONE,
    ),
    ("stopped replica, no leader: start", stopped(), None, {}, Reason.START_REPLICA),
]


@pytest.mark.parametrize(
    ("pg", "holder", "loc", "reason"),
    [row[1:] for row in NON_LEADER],
    ids=[row[0] for row in NON_LEADER],
)
def test_a_non_leader_neither_halts_nor_bootstraps_nor_touches_initialize(
    pg: Any, holder: str | None, loc: dict[str, Any], reason: Reason
) -> None:
    d = run(state(), obs(cluster=view(holder, initialize=GARBAGE), postgres=pg), local(**loc))
    assert d.reason is reason
    touched = {"Halt", "AcquireInitialize", "WriteInitialize", "DeleteInitialize", "Bootstrap"}
    assert not touched & set(kinds(d))


def test_a_running_primary_without_a_cluster_does_not_claim_a_garbage_initialize() -> None:
    # take_over_standalone is only for an absent `initialize`: here the node races normally.
    d = run(state(Role.STARTING), obs(cluster=view(None, initialize=GARBAGE), postgres=primary()))
    assert d.reason is Reason.RACE
    assert "WriteInitialize" not in kinds(d)


# ---------------------------------------------------------------- a leader key without a lease


def _seen(since: float, version: int = 7) -> UnleasedLeader:
    return UnleasedLeader(version=version, since_mono=since)


# (id, remembered, view's leader key, expected memory)
MEMORY: list[tuple[str, UnleasedLeader | None, LeaderKey | None, UnleasedLeader | None]] = [
    (
        "first sight: timed from now",
        None,
        LeaderKey(holder="x", version=7, leased=False),
        _seen(100),
    ),
    ("same version: kept", _seen(50), LeaderKey(holder="x", version=7, leased=False), _seen(50)),
    (
        "rewritten (new version): timed again",
        _seen(50),
        LeaderKey(holder="x", version=8, leased=False),
        _seen(100, 8),
    ),
    ("a leased key: forgotten", _seen(50), LeaderKey(holder="x", version=7), None),
    ("no leader key: forgotten", _seen(50), None, None),
]


@pytest.mark.parametrize(
    ("seen", "leader", "expected"), [r[1:] for r in MEMORY], ids=[r[0] for r in MEMORY]
)
def test_unleased_leader_memory(
    seen: UnleasedLeader | None, leader: LeaderKey | None, expected: UnleasedLeader | None
) -> None:
    cluster = replace(view(), leader=leader)
    after = absorb(state(unleased_leader=seen), obs(cluster=cluster))
    assert after.unleased_leader == expected


def test_a_failed_read_keeps_the_memory() -> None:
    after = absorb(state(unleased_leader=_seen(50)), obs(cluster=None))
    assert after.unleased_leader == _seen(50)


# (id, state, view, postgres, reason, actions)
UNLEASED: list[tuple[str, NodeState, ClusterView, Any, Reason, list[str]]] = [
    (
        "replica, younger than ttl: follows the holder meanwhile",
        state(unleased_leader=_seen(100 - TTL + 0.1)),
        unleased(),
        replica(following=GARBAGE),
        Reason.FOLLOW_LEADER,
        [],
    ),
    (
        "replica, unchanged for ttl: deletes it at its version",
        state(unleased_leader=_seen(100 - TTL)),
        unleased(),
        replica(following=GARBAGE),
        Reason.UNLEASED_LEADER_EXPIRED,
        ["ExpireLeaderKey"],
    ),
    (
        "first sight: not before ttl from now",
        state(),
        unleased(),
        replica(following=GARBAGE),
        Reason.FOLLOW_LEADER,
        [],
    ),
    (
        "a primary seeing it demotes at once (it is not the holder)",
        leader_state(unleased_leader=_seen(99)),
        unleased(),
        primary(),
        Reason.NOT_LOCK_HOLDER_DEMOTE,
        ["Demote", "DisableWatchdog", "StartPostgres", "RunCallback"],
    ),
    (
        "a node without data deletes it too",
        state(Role.UNINITIALIZED, unleased_leader=_seen(0)),
        unleased(),
        empty(),
        Reason.UNLEASED_LEADER_EXPIRED,
        ["ExpireLeaderKey"],
    ),
    (
        "in pause as well",
        state(unleased_leader=_seen(0)),
        unleased(config=cfg(pause=True)),
        replica(),
        Reason.UNLEASED_LEADER_EXPIRED,
        ["ExpireLeaderKey"],
    ),
    (
        "my name without a lease and no lock of mine: not renewed, never taken",
        state(unleased_leader=_seen(99)),
        unleased("n1"),
        replica(),
        Reason.PROBE_PEERS,
        ["FetchPeerStatus"],
    ),
    (
        "my name without a lease and no lock of mine, unchanged for ttl: deleted",
        state(unleased_leader=_seen(0)),
        unleased("n1"),
        replica(),
        Reason.UNLEASED_LEADER_EXPIRED,
        ["ExpireLeaderKey"],
    ),
    (
        "my name without a lease while I hold the lock: renew it (puts my lease back)",
        leader_state(unleased_leader=_seen(0)),
        unleased("n1"),
        primary(),
        Reason.RENEW_LOCK,
        ["RenewLock"],
    ),
]


@pytest.mark.parametrize(
    ("st", "cluster", "pg", "reason", "actions"),
    [r[1:] for r in UNLEASED],
    ids=[r[0] for r in UNLEASED],
)
def test_a_leader_key_without_a_lease(
    st: NodeState, cluster: ClusterView, pg: Any, reason: Reason, actions: list[str]
) -> None:
    d = run(st, obs(cluster=cluster, postgres=pg))
    assert d.reason is reason
    assert kinds(d) == actions
    if "ExpireLeaderKey" in actions:
        assert d.actions[0] == ExpireLeaderKey(version=7)
        assert not d.immediate
        assert d.wake_on_watch  # the deletion changes the leader key: everyone wakes to race
    if "RenewLock" in actions:
        assert d.actions == (RenewLock(version=7),)


def test_a_leased_key_never_expires_however_old() -> None:
    # The memory is only kept for keys without a lease, so a leased one is never deleted.
    st = state(unleased_leader=_seen(-1000))
    d = run(st, obs(cluster=view("n2"), postgres=replica(following="n2")))
    assert d.reason is Reason.FOLLOW_LEADER
    assert d.next_state.unleased_leader is None


def test_the_deletion_is_timed_on_my_clock_from_the_first_read() -> None:
    # Observed at 100 first, then at 129.9 (not yet) and 130 (ttl on my clock): deleted.
    st = state()
    for now, reason in ((100.0, Reason.FOLLOW_LEADER), (129.9, Reason.FOLLOW_LEADER)):
        d = run(st, obs(now, cluster=unleased(), postgres=replica(following=GARBAGE)))
        assert d.reason is reason
        st = d.next_state
    d = run(st, obs(130.0, cluster=unleased(), postgres=replica(following=GARBAGE)))
    assert d.reason is Reason.UNLEASED_LEADER_EXPIRED


def test_a_rewrite_restarts_the_wait() -> None:
    st = state(unleased_leader=_seen(0))
    d = run(st, obs(cluster=unleased(version=8), postgres=replica(following=GARBAGE)))
    assert d.reason is Reason.FOLLOW_LEADER
    assert d.next_state.unleased_leader == _seen(100, 8)


def test_after_the_deletion_the_healthiest_races() -> None:
    st = continuing(state(), Pending.PEERS, 100.0)
    d = run(st, obs(100.1, cluster=view(None), postgres=replica(), peers=(peer("n2"),)))
    assert d.reason is Reason.RACE


def test_the_renewed_holder_keeps_leading_with_its_lease_back() -> None:
    d = run(*renewed(leader_state(unleased_leader=_seen(0)), view("n1", version=9)))
    assert d.reason is Reason.LEADER
    assert d.next_state.unleased_leader is None
    assert d.next_state.holds_lock(100.5)


# ---------------------------------------------------------------- /failover and /sync


def test_the_leader_deletes_a_malformed_failover_last() -> None:
    d = run(*renewed(leader_state(), view("n1", failover_invalid_version=42)))
    assert d.reason is Reason.LEADER
    assert d.actions[-2] == ClearFailover(version=42)  # then only the member key update


def test_a_valid_failover_is_no_repair() -> None:
    key = FailoverKey(leader="n1", candidate="n2", scheduled_at_wall=10_000.0, version=5)
    d = run(*renewed(leader_state(), view("n1", failover=key)))
    assert d.reason is Reason.SWITCHOVER_SCHEDULED
    assert "ClearFailover" not in kinds(d)


def test_a_replica_ignores_a_malformed_failover() -> None:
    d = run(state(), obs(cluster=view("n2", failover_invalid_version=42), postgres=replica()))
    assert "ClearFailover" not in kinds(d)


BLOCKED = SyncKey(leader="", version=5)  # how the codec reads a malformed `/sync`


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        (SyncMode.ON, Reason.NOT_HEALTHIEST_NOT_SYNC),
        (SyncMode.QUORUM, Reason.NOT_HEALTHIEST_QUORUM),
    ],
)
def test_a_malformed_sync_lets_no_replica_promote(mode: SyncMode, reason: Reason) -> None:
    cluster = view(None, sync=BLOCKED, config=cfg(synchronous_mode=mode))
    st = continuing(state(), Pending.PEERS, 100.0)
    peers = (peer("n2", wal_lsn=900), peer("n3", wal_lsn=900))
    d = run(st, obs(100.1, cluster=cluster, postgres=replica(), peers=peers))
    assert d.reason is reason
    assert "AcquireLock" not in kinds(d)


@pytest.mark.parametrize(
    ("mode", "write"),
    [
        (SyncMode.ON, WriteSync(leader="n1", standbys=frozenset(), quorum=0, version=5)),
        (SyncMode.OFF, WriteSync(leader=None, standbys=frozenset(), quorum=0, version=5)),
    ],
)
def test_the_leader_rewrites_a_malformed_sync(mode: SyncMode, write: WriteSync) -> None:
    cluster = view("n1", sync=BLOCKED, config=cfg(synchronous_mode=mode))
    d = run(*renewed(leader_state(), cluster))
    assert write in d.actions


@pytest.mark.parametrize("leased", [True, False])
def test_a_replica_keeps_its_upstream_while_a_non_member_holds_the_key(leased: bool) -> None:
    # The old primary n2 still acknowledges writes until its own next cycle; a replica that
    # stopped streaming from it at once would miss them (explore: lost writes after a foreign
    # leader key followed by the old primary's crash). Nobody to stream from in "garbage".
    cluster = view(GARBAGE) if leased else unleased()
    d = run(state(), obs(cluster=cluster, postgres=replica(following="n2")))
    assert d.reason is Reason.FOLLOW_LEADER
    assert not any(isinstance(a, Follow) for a in d.actions)
    d = run(state(), obs(cluster=view("n3"), postgres=replica(following="n2")))
    assert Follow(leader="n3") in d.actions  # a member that holds the key is followed at once
