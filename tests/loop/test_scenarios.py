"""Whole-cluster scenarios: the real engine and loop in the in-memory harness, at exact times.

Defaults: ttl 30, loop_wait 10, retry_timeout 10. Actions take no virtual time, so with three empty
nodes started at t=0 the winner (a, first by name) bootstraps at 0 and, in the same cycle (winning
the race is an immediate step), claims `initialize` and takes the lock at 0; it renews every
loop_wait from there: 10, 20, 30, 40, ... The others step after it at 0, already see its leader key
and clone at 0, then follow from their next cycle, at 10.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from pgha import health
from pgha.engine.actions import (
    Demote,
    DisableWatchdog,
    KickWatchdog,
    Promote,
    ReleaseLock,
    Rewind,
    RunCallback,
    StartPostgres,
)
from pgha.engine.config import DynamicConfig, WatchdogMode
from pgha.engine.decision import Reason
from pgha.engine.roles import Role
from pgha.engine.values import Failure, PgRun
from pgha.events import ActionsEvent
from tests.loop.harness import ClusterHarness, timeline

CFG = DynamicConfig()
TTL, LOOP, RETRY = CFG.ttl_s, CFG.loop_wait_s, CFG.retry_timeout_s
LOCKED_AT = 0.0  # the bootstrap winner takes the lock in its first cycle, right after initdb
# Different monotonic origins per node: nothing may compare one node's clock with another's.
OFFSETS = {"a": 1000.0, "b": 50.0, "c": 7777.0}


def bootstrapped(peer_timeout_s: float = 0.0) -> ClusterHarness:
    harness = ClusterHarness(config=CFG, mono_offsets=OFFSETS, peer_timeout_s=peer_timeout_s)
    harness.start()
    harness.run_until(2 * LOOP)
    return harness


def last_renewal_before(t: float) -> float:
    """The leader renews at LOCKED_AT + k * loop_wait."""
    return LOCKED_AT + ((t - LOCKED_AT) // LOOP) * LOOP


def rest(harness: ClusterHarness, name: str, path: str) -> int:
    """The node's REST answer now (its published status, PostgreSQL read live)."""
    node = harness.nodes[name]
    assert node.status is not None
    live = replace(node.status, postgres=node.pg.state())
    return health.answer(path, live, node.clock.now_mono(), {})[0]


def streams_from(harness: ClusterHarness, name: str, leader: str) -> bool:
    pg = harness.pgs[name]
    return pg.following == leader and pg.streams() and pg.wal_lsn == harness.pgs[leader].wal_lsn


# ---------------------------------------------------------------- bootstrap


def test_three_empty_nodes_bootstrap_to_one_primary_and_two_replicas() -> None:
    harness = ClusterHarness(config=CFG, mono_offsets=OFFSETS)
    harness.start()
    harness.run_until(0.0)
    # One cycle of immediate steps: race, initdb, claim `initialize`, race for the lock, lead.
    reasons = [d.reason for _, d in harness.decisions("a")]
    assert reasons == [
        Reason.BOOTSTRAP_RACE,
        Reason.BOOTSTRAP_WON,
        Reason.TAKE_OVER_STANDALONE,
        Reason.RACE,
        Reason.LEADER,
    ]
    assert harness.first("a", Reason.BOOTSTRAP_WON) == 0.0
    assert harness.first("a", Reason.LEADER) == LOCKED_AT
    assert harness.dcs.leader is not None
    assert harness.dcs.leader.holder == "a"
    assert harness.dcs.initialize == harness.pgs["a"].sysid
    assert harness.nodes["a"].watchdog.timeout_s == TTL - CFG.safety_margin_s
    # b and c observe after a's cycle at the same instant: the leader key is there, clone from it.
    assert harness.first("b", Reason.CLONE) == LOCKED_AT
    assert harness.first("c", Reason.CLONE) == LOCKED_AT
    assert harness.primaries() == ["a"]

    harness.run_until(LOOP)
    assert harness.primaries() == ["a"]
    assert harness.first("a", Reason.RENEW_LOCK) == LOCKED_AT + LOOP
    for name in ("b", "c"):
        assert harness.first(name, Reason.FOLLOW_LEADER) == LOCKED_AT + LOOP  # their next cycle
        assert harness.nodes[name].status is not None
        assert harness.nodes[name].status.role is Role.REPLICA
        assert streams_from(harness, name, "a")
        assert (rest(harness, name, "/replica"), rest(harness, name, "/primary")) == (200, 503)
    assert (rest(harness, "a", "/primary"), rest(harness, "a", "/replica")) == (200, 503)
    assert harness.dcs.initialize == harness.pgs["a"].sysid
    assert harness.dcs.config_version is not None
    assert harness.overlaps == []


# ---------------------------------------------------------------- failover after a crash


@pytest.mark.parametrize("peer_timeout", [0.0, 2.0])
def test_a_replica_takes_over_when_the_primary_dies(peer_timeout: float) -> None:
    harness = bootstrapped(peer_timeout_s=peer_timeout)
    harness.run_until(41.0)
    harness.write("a", 1000)  # streamed to b and c
    harness.run_until(45.0)
    harness.kill("a", unreplicated_wal=50)  # written on a only: a has diverged

    # The lease runs out ttl after the last renewal; the replicas, woken by the watch, probe the
    # dead node (peer_timeout each) and the first by name wins the atomic create.
    promoted_at = last_renewal_before(45.0) + TTL + peer_timeout
    assert promoted_at == 70.0 + peer_timeout
    harness.run_until(promoted_at + 3 * LOOP)
    assert harness.first("b", Reason.PROMOTE) == promoted_at
    assert harness.ran("b", Promote) == [promoted_at]
    assert harness.dcs.leader is not None
    assert harness.dcs.leader.holder == "b"
    assert harness.primaries() == ["b"]
    new = harness.pgs["b"]
    assert (new.timeline, new.timeline_start_lsn) == (2, 1100)
    assert harness.dcs.history[-1].switch_lsn == 1100  # appended on b's next cycle
    assert streams_from(harness, "c", "b")
    assert harness.overlaps == []


def test_the_old_primary_restarted_with_diverged_wal_is_rewound_then_follows() -> None:
    harness = bootstrapped()
    harness.run_until(41.0)
    harness.write("a", 1000)
    harness.run_until(45.0)
    harness.kill("a", unreplicated_wal=50)
    harness.run_until(95.0)
    assert harness.pgs["a"].wal_lsn == 1150
    assert harness.pgs["a"].timeline == 1
    harness.start("a")
    harness.run_until(95.0)
    assert harness.first("a", Reason.REWIND, after=95.0) == 95.0
    assert harness.ran("a", Rewind) == [95.0]
    harness.run_until(95.0 + LOOP)
    assert harness.first("a", Reason.FOLLOW_LEADER, after=95.0) == 95.0 + LOOP
    harness.write("b", 10)
    assert streams_from(harness, "a", "b")
    assert harness.pgs["a"].wal_lsn == 1110
    assert harness.pgs["a"].timeline == 2
    assert rest(harness, "a", "/replica") == 200
    assert harness.overlaps == []


# ---------------------------------------------------------------- switchover


@pytest.mark.parametrize(("candidate", "winner", "waiting"), [(None, "b", None), ("c", "c", "b")])
def test_a_switchover_moves_the_leader_gracefully(
    candidate: str | None, winner: str, waiting: str | None
) -> None:
    harness = bootstrapped()
    harness.run_until(41.0)
    harness.dcs.write_failover(leader="a", candidate=candidate)
    switch_at = last_renewal_before(41.0) + LOOP  # 50, a's next cycle: renew, check, demote
    assert switch_at == 50.0
    harness.run_until(switch_at)
    assert harness.first("a", Reason.SWITCHOVER_DEMOTE) == switch_at
    assert harness.ran("a", Demote) == [switch_at]
    assert harness.ran("a", ReleaseLock) == [switch_at]
    # the release wakes the watchers at once; the named candidate (or the first equal) wins
    assert harness.first(winner, Reason.PROMOTE) == switch_at
    if waiting is not None:
        assert harness.first(waiting, Reason.NOT_HEALTHIEST_WAIT_CANDIDATE) == switch_at
    assert harness.dcs.failover is None
    assert harness.primaries() == [winner]
    assert harness.overlaps == []

    harness.run_until(switch_at + 2 * LOOP)
    assert harness.primaries() == [winner]
    for name in sorted({"a", "b", "c"} - {winner}):
        assert streams_from(harness, name, winner), timeline(harness, name)
    assert harness.pgs["a"].run is PgRun.RUNNING
    assert harness.pgs["a"].in_recovery


# ---------------------------------------------------------------- losing the DCS


def test_a_primary_cut_from_the_dcs_demotes_before_its_lease_ends() -> None:
    harness = bootstrapped()
    harness.run_until(41.0)
    harness.cut_dcs("a")
    renewed = last_renewal_before(41.0)
    # Its next cycle starts at renewed + loop_wait; the read fails after retry_timeout.
    demoted_at = renewed + LOOP + RETRY
    assert demoted_at <= renewed + LOOP + 2 * RETRY <= renewed + TTL
    harness.run_until(demoted_at - 1)
    assert rest(harness, "a", "/primary") == 200  # still its lock by the local deadline
    harness.run_until(demoted_at)
    assert harness.first("a", Reason.DCS_UNREACHABLE_DEMOTE) == demoted_at
    assert harness.ran("a", Demote) == [demoted_at]
    assert not harness.pgs["a"].writable
    assert rest(harness, "a", "/primary") == 503
    assert harness.nodes["a"].watchdog.timeout_s is None

    harness.run_until(renewed + TTL)
    assert harness.first("b", Reason.PROMOTE) == renewed + TTL
    assert harness.primaries() == ["b"]
    assert harness.overlaps == []
    assert harness.events(kind="watchdog_fired") == []


def test_losing_the_whole_dcs_demotes_the_primary_and_it_recovers_after() -> None:
    harness = bootstrapped()
    harness.run_until(41.0)
    for name in harness.names:
        harness.cut_dcs(name)
    harness.run_until(99.0)
    # a renewed at 40: its next cycle at 50 (loop_wait) fails its read at 60 (retry_timeout)
    assert harness.first("a", Reason.DCS_UNREACHABLE_DEMOTE) == 40.0 + LOOP + RETRY == 60.0
    assert harness.primaries() == []
    assert harness.first("b", Reason.DCS_UNREACHABLE) == 60.0  # b's cycle at 50, same read
    for name in harness.names:
        harness.heal_dcs(name)
    harness.run_until(99.0 + 3 * LOOP)
    assert len(harness.primaries()) == 1
    leader = harness.primaries()[0]
    for name in sorted(set(harness.names) - {leader}):
        assert streams_from(harness, name, leader), timeline(harness, name)
    assert harness.overlaps == []
    assert harness.events(kind="watchdog_fired") == []


def failsafe_cut(watchdog: WatchdogMode) -> ClusterHarness:
    cfg = DynamicConfig(failsafe_mode=True, watchdog_mode=watchdog)
    harness = ClusterHarness(config=cfg, mono_offsets=OFFSETS)
    harness.start()
    harness.run_until(41.0)
    harness.cut_dcs("a")
    harness.run_until(150.0)
    return harness


def test_failsafe_keeps_a_primary_cut_from_the_dcs_while_every_member_acks() -> None:
    harness = failsafe_cut(WatchdogMode.OFF)
    # Each round: the cycle starts (50), the read fails after retry_timeout (60), POST /failsafe
    # to b and c; the next observation reuses that failed read (no second retry_timeout) and
    # continues at once (60), with the lock deadline renewed from the POST. The next cycle starts
    # loop_wait after the failed read (70): a round every loop_wait + retry_timeout = 20 s.
    checks = [t for t, d in harness.decisions("a") if d.reason is Reason.FAILSAFE_CHECK]
    continues = [t for t, d in harness.decisions("a") if d.reason is Reason.FAILSAFE_CONTINUE]
    assert checks == continues == [60.0, 80.0, 100.0, 120.0, 140.0]
    assert harness.nodes["a"].status is not None
    assert harness.nodes["a"].status.lock_deadline_mono == OFFSETS["a"] + 140.0 + TTL
    assert harness.dcs.leader is None  # the lease ran out at 70 (last renewal 40 + ttl)
    for name in ("b", "c"):  # the POSTs keep them from racing
        assert harness.first(name, Reason.FAILSAFE_LEADER_CACHED) == 70.0
        assert harness.ran(name, Promote) == []
    assert harness.primaries() == ["a"]
    assert rest(harness, "a", "/primary") == 200


# ---------------------------------------------------------------- what the harness found


def test_failsafe_keeps_the_primary_with_the_default_watchdog() -> None:
    # Was a bug: the observation carrying the PostFailsafe acks read the DCS again, so a round
    # cost loop_wait + 2 retry_timeout = 30 s between kicks, over the 25 s watchdog timeout (ttl
    # - safety_margin). The failsafe step now says reread_dcs=False: kicks every loop_wait +
    # retry_timeout = 20 s (40 renewal, then 60, 80, ...).
    harness = failsafe_cut(WatchdogMode.AUTOMATIC)
    assert harness.events("a", "watchdog_fired") == []
    assert harness.ran("a", KickWatchdog, after=41.0) == [60.0, 80.0, 100.0, 120.0, 140.0]
    assert harness.nodes["a"].watchdog.timeout_s == TTL - CFG.safety_margin_s  # still armed
    assert harness.primaries() == ["a"]


# Was a bug: rejoin.needs_rewind treated a local timeline missing from /history as divergence,
# and the new leader appends /history only on its first steady cycle, a loop_wait after the
# promotion, while its member key already shows the new timeline. It now answers "unknown": the
# node follows without a rewind, and decides again once /history has the line.


def test_after_a_failover_the_other_replica_follows_without_a_rewind() -> None:
    harness = bootstrapped()
    harness.run_until(45.0)
    harness.kill("a")
    promoted_at = last_renewal_before(45.0) + TTL  # 70: the lease of the renewal at 40 ends
    harness.run_until(promoted_at)
    assert harness.first("b", Reason.PROMOTE) == promoted_at
    assert harness.dcs.history == ()  # b appends it on its next cycle
    # c, woken by the key change, sees b's member key on timeline 2 and no /history line yet
    assert harness.first("c", Reason.FOLLOW_LEADER, after=promoted_at) == promoted_at
    assert streams_from(harness, "c", "b")
    harness.run_until(promoted_at + 2 * LOOP)
    assert [h.timeline for h in harness.dcs.history] == [1]  # appended at 80
    assert harness.ran("c", Rewind) == [], timeline(harness, "c")
    assert streams_from(harness, "c", "b")


def test_after_a_switchover_the_old_primary_follows_without_a_rewind() -> None:
    harness = bootstrapped()
    harness.run_until(41.0)
    harness.dcs.write_failover(leader="a")
    switch_at = last_renewal_before(41.0) + LOOP  # 50
    harness.run_until(switch_at)
    # a demoted and released: it now watches the leader key, so b's acquire wakes it at once,
    # before b appends /history (switch_at + loop_wait).
    assert harness.first("b", Reason.PROMOTE) == switch_at
    assert harness.first("a", Reason.FOLLOW_LEADER) == switch_at
    assert harness.dcs.history == ()
    assert streams_from(harness, "a", "b")
    harness.run_until(switch_at + 3 * LOOP)
    assert harness.ran("a", Rewind) == [], timeline(harness, "a")
    assert streams_from(harness, "a", "b")


def test_a_failed_lock_release_during_a_switchover_does_not_leave_the_watchdog_armed() -> None:
    # Was a bug: demote_actions disabled the watchdog after ReleaseLock; a failed release
    # skipped the disable while next_state said the watchdog was off, so the device stayed armed
    # with nobody kicking and reset the node (by then a healthy replica).
    harness = bootstrapped()
    harness.run_until(41.0)
    harness.dcs.write_failover(leader="a")
    harness.nodes["a"].dcs.failing.add("release_lock")
    harness.run_until(50.0)
    actions = harness.events("a", "actions")[-1].event
    assert isinstance(actions, ActionsEvent)
    ran = [type(a) for a in actions.ran]
    assert ran == [Demote, DisableWatchdog, StartPostgres, RunCallback, ReleaseLock]
    assert actions.failed == ReleaseLock(version=1)
    assert harness.nodes["a"].watchdog.timeout_s is None
    assert harness.pgs["a"].run is PgRun.RUNNING  # a replica already: the start came first
    assert harness.pgs["a"].in_recovery
    harness.cut_dcs("a")  # and the DCS stays away
    harness.run_until(100.0)
    assert harness.events("a", "watchdog_fired") == []
    assert harness.first("b", Reason.PROMOTE) == 80.0  # a's unreleased lease (50 + ttl) ran out


# ---------------------------------------------------------------- a primary that cannot start


def test_a_leader_whose_postgres_cannot_start_releases_the_lock_and_keeps_its_member_key() -> None:
    # Issue 13, items 4 and 5. a's PostgreSQL crashes at 45 s and every start fails from then on.
    harness = bootstrapped()
    harness.run_until(45.0)
    harness.pgs["a"].failing.add(Failure.START)
    harness.pgs["a"].crash()
    # 50: a renews, restarts in place, the start fails; the member key is still published.
    harness.run_until(50.0)
    assert harness.first("a", Reason.PRIMARY_RESTART_IN_PLACE) == 50.0
    started = [e for e in harness.events("a", "actions") if e.t == 50.0][-1].event
    assert isinstance(started, ActionsEvent)
    assert started.failure is Failure.START
    assert [type(a).__name__ for a in started.ran][-2:] == ["StartPostgres", "UpdateMember"]
    # 60: the failure is certain: a releases the lock at once; b, woken by the watch, promotes.
    harness.run_until(60.0)
    assert harness.first("a", Reason.START_FAILED_RELEASE) == 60.0
    assert harness.ran("a", ReleaseLock) == [60.0]
    assert harness.first("b", Reason.PROMOTE) == 60.0
    assert harness.primaries() == ["b"]
    # Long after ttl, a still fails to start and its member key says so instead of expiring.
    harness.run_until(60.0 + 3 * TTL)
    members = {m.name: m for m in harness.dcs.view().members}
    assert set(members) == {"a", "b", "c"}
    assert not members["a"].running
    assert harness.first("a", Reason.START_REPLICA, after=60.0) == 60.0  # woken by the watch
    assert harness.primaries() == ["b"]
    assert harness.overlaps == []
