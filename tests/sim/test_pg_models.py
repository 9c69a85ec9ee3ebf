"""Scripted scenarios for the PostgreSQL, HAProxy and workload models, with exact virtual times.

Network latency has p99 == median, so every one-way delay is exactly LAT and every time below is
computed from PgTiming's fields.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from typing import Any

import pytest
import simpy

from pgha.engine.actions import DemoteMode
from pgha.engine.values import Failure, PgRun, SyncStandbyNames, SyncState
from pgha.ports import ActionFailed
from sim.haproxy import SimHAProxy
from sim.net import Latency, Network, Unreachable
from sim.postgres import (
    INITIAL_LSN,
    PgTiming,
    SimPostgres,
    WriteRejected,
    WriteUnknown,
)
from sim.workload import Workload
from sim.world import ListRecorder, World

LAT = 0.001
T = PgTiming()
REC = 128
BASE = 40_000_000
NAMES = ("n1", "n2", "n3")


class Cluster:
    """Three simulated servers on a fixed-latency network, driven by scripts."""

    def __init__(self, seed: int = 1, latency: Latency | None = None) -> None:
        self.recorder = ListRecorder()
        self.world = World(seed=seed, recorder=self.recorder)
        self.env = self.world.env
        self.net = Network(self.world, latency or Latency(LAT, LAT))
        self.pg: dict[str, SimPostgres] = {}
        for name in NAMES:
            self.net.add_host(name)
            self.pg[name] = SimPostgres(self.world, self.net, name, self.pg, base_data_b=BASE)

    def do(self, steps: Generator[Any, Any, Any]) -> Any:
        """Run one operation to its end; return its value."""
        return self.env.run(until=self.env.process(steps))

    def at(self, t: float) -> None:
        """Run until `t`, including the events scheduled at `t`."""
        self.env.run(until=t)
        while self.env.peek() <= t:
            self.env.step()

    def build(self) -> float:
        """Bootstrap n1, clone n2 and n3 from it in parallel; returns when both replicas run."""
        self.do(self.pg["n1"].bootstrap())
        clones = [self.env.process(self.pg[n].create_replica("n1")) for n in ("n2", "n3")]
        self.env.run(until=self.env.all_of(clones))
        return float(self.env.now)

    def write(self, node: str, write_id: int) -> tuple[int, int]:
        result: tuple[int, int] = self.do(self.pg[node].write(write_id))
        return result

    def isolate(self, node: str, fault_id: int = 1) -> None:
        others = [n for n in NAMES if n != node]
        self.net.block([(node, o) for o in others] + [(o, node) for o in others], fault_id)

    def heal(self, fault_id: int = 1) -> None:
        self.net.unblock(fault_id)

    def events(self, kind: str, node: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.recorder.of(kind) if node is None or e.get("node") == node]


def clone_time() -> float:
    size = BASE + REC  # initdb's WAL holds one record
    return T.basebackup_base_s + size / T.basebackup_bytes_per_s + T.start_s


# ---------------------------------------------------------------- streaming


def test_bootstrap_then_replicas_follow_the_primary_with_the_exact_delay() -> None:
    c = Cluster()
    ready = c.build()
    assert ready == pytest.approx(T.initdb_s + T.start_s + clone_time(), abs=1e-9)
    primary, replica = c.pg["n1"], c.pg["n2"]
    assert primary.role == "primary"
    assert primary.writable
    assert replica.state().following == "n1"
    assert replica.streaming_from == "n1"
    assert [e["role"] for e in c.events("pg_role", "n1")] == ["starting", "primary"]
    assert [e["t"] for e in c.events("writable", "n1")] == [T.initdb_s + T.start_s]

    c.at(10.0)
    timeline, lsn = c.write("n1", 1)
    assert (timeline, lsn) == (1, INITIAL_LSN + 2 * REC)
    c.at(10.0 + LAT * 0.999)
    assert replica.lsn() == lsn - REC  # not yet
    c.at(10.0 + LAT)
    assert replica.lsn() == lsn
    assert c.pg["n3"].lsn() == lsn
    rows = primary.state().standbys
    assert [(r.name, r.sync_state, r.flush_lsn) for r in rows] == [
        ("n2", SyncState.ASYNC, lsn),
        ("n3", SyncState.ASYNC, lsn),
    ]


def test_partitioned_replica_freezes_and_catches_up_after_heal() -> None:
    c = Cluster()
    c.build()
    c.at(10.0)
    c.write("n1", 1)
    c.at(11.0)
    c.isolate("n3")
    c.write("n1", 2)
    c.at(12.0)
    assert c.pg["n3"].final_ids() == [1]
    assert c.pg["n2"].final_ids() == [1, 2]
    assert c.pg["n3"].streaming_from is None
    c.heal()
    assert c.pg["n3"].final_ids() == [1, 2]  # catch-up is immediate on reconnect


def test_promote_gives_a_new_timeline_and_the_other_replica_follows_it() -> None:
    c = Cluster()
    c.build()
    c.at(10.0)
    _, end = c.write("n1", 1)
    c.at(11.0)
    c.pg["n1"].crash()
    assert [e["role"] for e in c.events("pg_role", "n1")][-1] == "crashed"
    c.do(c.pg["n2"].promote())
    promoted = 11.0 + T.promote_s
    assert c.env.now == pytest.approx(promoted)
    state = c.pg["n2"].state()
    assert (state.timeline, state.timeline_start_lsn, state.in_recovery) == (2, end, False)
    assert c.pg["n2"].history() == [(1, end)]
    assert state.wal_lsn == end + REC  # the end-of-recovery record

    c.do(c.pg["n3"].follow("n2"))
    assert c.pg["n3"].streaming_from == "n2"
    c.at(promoted + LAT)
    n3_roles = c.events("pg_role", "n3")
    assert n3_roles[-1] == {
        "t": pytest.approx(promoted + LAT),
        "kind": "pg_role",
        "node": "n3",
        "role": "replica",
        "timeline": 2,
        "lsn": end + REC,
    }
    c.at(12.0)
    timeline, lsn = c.write("n2", 2)
    assert timeline == 2
    c.at(12.0 + LAT)
    assert c.pg["n3"].lsn() == lsn
    assert c.pg["n3"].final_ids() == [1, 2]


def test_a_replica_ahead_of_the_switch_point_is_diverged() -> None:
    c = Cluster()
    c.build()
    c.at(10.0)
    c.isolate("n3")
    c.write("n1", 1)  # n2 has it, n3 does not
    c.at(11.0)
    c.pg["n1"].crash()
    c.heal()
    c.do(c.pg["n3"].follow(None))
    c.do(c.pg["n3"].promote())
    c.do(c.pg["n2"].follow("n3"))
    assert c.pg["n2"].streaming_from is None  # its LSN is past n3's switch point
    assert c.pg["n2"].state().timeline == 1


def test_old_primary_with_extra_writes_is_diverged_and_rewind_makes_it_a_prefix() -> None:
    c = Cluster()
    c.build()
    c.at(10.0)
    c.write("n1", 1)
    c.at(11.0)
    c.isolate("n1")
    for write_id in (10, 11, 12):  # acknowledged by the cut-off old primary only
        c.write("n1", write_id)
    c.do(c.pg["n2"].promote())
    c.do(c.pg["n3"].follow("n2"))
    c.write("n2", 20)
    c.heal()
    c.do(c.pg["n1"].demote(DemoteMode.IMMEDIATE_NOLOCK))  # stopped: the engine starts it
    c.do(c.pg["n1"].start(False))
    c.do(c.pg["n1"].follow("n2"))
    assert c.pg["n1"].streaming_from is None
    assert c.pg["n1"].final_ids() == [1, 10, 11, 12]

    began = float(c.env.now)
    c.do(c.pg["n1"].rewind("n2"))
    diverged = 3 * REC
    took = T.stop_fast_s + T.rewind_base_s + diverged / T.rewind_bytes_per_s + T.start_s
    assert c.env.now == pytest.approx(began + took, abs=1e-9)
    assert c.pg["n1"].streaming_from == "n2"
    assert c.pg["n1"].final_ids() == c.pg["n2"].final_ids() == [1, 20]
    assert c.pg["n1"].state().timeline == 2
    assert c.pg["n1"].history() == c.pg["n2"].history()


def test_graceful_demote_ships_the_shutdown_checkpoint_so_no_rewind_is_needed() -> None:
    c = Cluster()
    c.build()
    c.at(10.0)
    c.write("n1", 1)
    c.do(c.pg["n1"].demote(DemoteMode.GRACEFUL))
    assert c.env.now == pytest.approx(10.0 + T.checkpoint_s + T.stop_fast_s)
    assert not c.pg["n1"].running  # left stopped: the watchdog is disabled at this safepoint
    c.do(c.pg["n1"].start(False))
    assert c.env.now == pytest.approx(10.0 + T.checkpoint_s + T.stop_fast_s + T.start_s)
    end = c.pg["n1"].lsn()
    assert c.pg["n2"].lsn() == end  # checkpoint and shutdown checkpoint both arrived
    c.do(c.pg["n2"].promote())
    c.do(c.pg["n1"].follow("n2"))
    c.at(c.env.now + LAT)  # the new timeline's first record arrives
    assert c.pg["n1"].streaming_from == "n2"
    assert c.pg["n1"].state().timeline == 2


def test_failures_raise_action_failed_with_the_engine_failure() -> None:
    c = Cluster()
    c.build()
    c.pg["n1"].crash()
    with pytest.raises(ActionFailed) as rewind:
        c.do(c.pg["n2"].rewind("n1"))
    assert rewind.value.failure is Failure.REWIND_SOURCE  # the source is down: try again later
    c.do(c.pg["n1"].start(True))
    c.isolate("n1")
    with pytest.raises(ActionFailed) as clone:
        c.do(c.pg["n3"].reinit("n1"))
    assert clone.value.failure is Failure.CREATE_REPLICA
    c.pg["n2"].crash()
    c.pg["n2"].disk_full(True)
    with pytest.raises(ActionFailed) as start:
        c.do(c.pg["n2"].start(False))
    assert start.value.failure is Failure.START


def _diverged_old_primary(c: Cluster) -> None:
    # n1 acknowledges a write alone while cut off, n2 promotes: n1 must be rewound from n2.
    c.build()
    c.at(10.0)
    c.isolate("n1")
    c.write("n1", 10)
    c.do(c.pg["n2"].promote())
    c.do(c.pg["n1"].demote(DemoteMode.IMMEDIATE_NOLOCK))


def _source_cut_off_during_the_rewind(c: Cluster) -> None:
    c.heal()
    c.env.process(_cut_n2_after(c, T.stop_fast_s + T.rewind_base_s / 2))


def _cut_n2_after(c: Cluster, seconds: float) -> Generator[Any, Any, None]:
    yield c.env.timeout(seconds)
    c.isolate("n2", fault_id=2)


@pytest.mark.parametrize(
    ("situation", "failure"),
    [
        ("source cut off", Failure.REWIND_SOURCE),
        ("source down", Failure.REWIND_SOURCE),
        ("source cut off during the run", Failure.REWIND_SOURCE),
        ("no common history", Failure.REWIND),
    ],
)
def test_rewind_failures_say_whether_the_source_was_to_blame(
    situation: str, failure: Failure
) -> None:
    # Patroni's Rewind.execute: a leader that cannot be reached is no verdict on pg_rewind (it is
    # tried again); a pg_rewind that fails against a healthy leader is final.
    c = Cluster()
    _diverged_old_primary(c)
    setup = {
        "source cut off": lambda: None,
        "source down": lambda: (c.heal(), c.pg["n2"].crash()),
        "source cut off during the run": lambda: _source_cut_off_during_the_rewind(c),
        "no common history": lambda: (c.heal(), c.pg["n2"].wipe(), c.do(c.pg["n2"].bootstrap())),
    }
    setup[situation]()
    with pytest.raises(ActionFailed) as failed:
        c.do(c.pg["n1"].rewind("n2"))
    assert failed.value.failure is failure
    assert c.pg["n1"].final_ids()[-1] == 10  # the data is untouched: a later rewind can run


def _killed_after(c: Cluster, steps: Generator[Any, Any, Any], seconds: float) -> None:
    # Run `steps` as an agent's action; the agent is killed `seconds` into it.
    def agent() -> Generator[Any, Any, None]:
        with contextlib.suppress(simpy.Interrupt):
            yield from steps

    process = c.env.process(agent())
    c.at(c.env.now + seconds)
    process.interrupt()


@pytest.mark.parametrize(("operation", "run"), [("start", PgRun.RUNNING), ("stop", PgRun.STOPPED)])
def test_the_postmaster_carries_on_when_the_agent_that_signalled_it_dies(
    operation: str, run: PgRun
) -> None:
    c = Cluster()
    c.build()
    c.at(10.0)
    pg = c.pg["n2"]
    if operation == "start":
        c.do(pg.stop(immediate=False))
    began = float(c.env.now)
    took = T.start_s if operation == "start" else T.stop_fast_s
    _killed_after(c, pg.start(False) if operation == "start" else pg.stop(False), took / 2)
    c.at(began + took)
    assert pg.state().run is run
    assert pg.state().clean_shutdown is (operation == "stop")


def test_a_stop_while_an_orphaned_start_runs_leaves_the_server_stopped() -> None:
    c = Cluster()
    c.build()
    c.at(10.0)
    pg = c.pg["n2"]
    c.do(pg.stop(immediate=True))  # unclean: the next start takes crash recovery too
    _killed_after(c, pg.start(False), 0.1)
    c.do(pg.stop(immediate=False))  # the next agent stops it before the start is over
    c.at(10.0 + T.start_s + T.crash_recovery_s + 1.0)
    assert pg.state().run is PgRun.STOPPED


def test_crash_recovery_lengthens_the_next_start() -> None:
    c = Cluster()
    c.build()
    c.at(10.0)
    c.pg["n1"].crash()
    assert not c.pg["n1"].state().clean_shutdown
    c.do(c.pg["n1"].start(True))
    assert c.env.now == pytest.approx(10.0 + T.start_s + T.crash_recovery_s)
    assert c.pg["n1"].writable
    assert c.pg["n1"].state().timeline == 1


def test_pause_blocks_writes_and_replication_until_resume() -> None:
    c = Cluster()
    c.build()
    c.at(10.0)
    c.pg["n1"].pause()
    assert not c.pg["n1"].writable
    assert c.pg["n2"].streaming_from is None
    write = c.env.process(c.pg["n1"].write(1))
    c.at(15.0)
    assert not write.triggered
    c.pg["n1"].resume()
    c.env.run(until=write)
    assert c.env.now == 15.0
    c.at(15.0 + LAT)
    assert c.pg["n2"].final_ids() == [1]
    assert [(e["t"], e["writable"]) for e in c.events("writable", "n1")][-2:] == [
        (10.0, False),
        (15.0, True),
    ]


def test_writes_are_rejected_by_replicas_and_stopped_servers() -> None:
    c = Cluster()
    c.build()
    with pytest.raises(WriteRejected, match="read_only"):
        c.write("n2", 1)
    c.pg["n1"].disk_full(True)
    with pytest.raises(WriteRejected, match="disk_full"):
        c.write("n1", 1)
    c.pg["n1"].crash()
    with pytest.raises(WriteRejected, match="down"):
        c.write("n1", 1)


# ---------------------------------------------------------------- synchronous replication


def test_a_synchronous_commit_waits_exactly_one_round_trip() -> None:
    c = Cluster()
    c.build()
    c.do(c.pg["n1"].set_ssn(SyncStandbyNames(count=1, names=frozenset({"n2", "n3"}))))
    rows = {r.name: r.sync_state for r in c.pg["n1"].state().standbys}
    assert rows == {"n2": SyncState.SYNC, "n3": SyncState.POTENTIAL}
    c.at(10.0)
    c.write("n1", 1)
    assert c.env.now == pytest.approx(10.0 + 2 * LAT)


def test_quorum_commit_waits_for_the_fastest_standbys() -> None:
    c = Cluster()
    c.build()
    c.net.set_latency(["n3"], Latency(0.05, 0.05), fault_id=9)
    c.isolate("n3")
    c.heal()  # n3 reconnects with the slow link's delays
    ssn = SyncStandbyNames(count=1, names=frozenset({"n2", "n3"}), quorum=True)
    c.do(c.pg["n1"].set_ssn(ssn))
    assert {r.sync_state for r in c.pg["n1"].state().standbys} == {SyncState.QUORUM}
    c.at(10.0)
    c.write("n1", 1)
    assert c.env.now == pytest.approx(10.0 + 2 * LAT)
    c.do(c.pg["n1"].set_ssn(SyncStandbyNames(count=2, names=frozenset({"n2", "n3"}), quorum=True)))
    c.at(11.0)
    c.write("n1", 2)
    assert c.env.now == pytest.approx(11.0 + 2 * 0.05)


def test_a_commit_blocks_while_the_sync_standby_is_cut_off() -> None:
    c = Cluster()
    c.build()
    c.do(c.pg["n1"].set_ssn(SyncStandbyNames(count=1, names=frozenset({"n2"}))))
    c.at(10.0)
    c.isolate("n2")
    with pytest.raises(WriteUnknown, match="timeout"):
        c.do(c.pg["n1"].write(1, deadline_t=15.0))
    assert c.env.now == 15.0
    assert c.pg["n1"].final_ids().count(1) == 1  # committed locally, not acknowledged
    waiting = c.env.process(c.pg["n1"].write(2))
    c.at(20.0)
    assert not waiting.triggered
    c.heal()
    c.env.run(until=waiting)
    assert c.env.now == pytest.approx(20.0 + LAT)  # n2 had it on reconnect: one reply away
    assert c.pg["n2"].final_ids() == [1, 2]


def test_a_crash_while_waiting_for_a_standby_makes_the_outcome_unknown() -> None:
    c = Cluster()
    c.build()
    c.do(c.pg["n1"].set_ssn(SyncStandbyNames(star=True)))
    c.isolate("n2")
    c.isolate("n3", fault_id=2)
    waiting = c.env.process(c.pg["n1"].write(1))
    c.at(10.0)
    c.pg["n1"].crash()
    with pytest.raises(WriteUnknown, match="terminated"):
        c.env.run(until=waiting)


def test_client_through_direct_path_gets_info_when_sync_commit_blocks() -> None:
    c = Cluster()
    c.build()
    c.do(c.pg["n1"].set_ssn(SyncStandbyNames(count=1, names=frozenset({"n2"}))))
    c.isolate("n2")
    work = Workload(
        c.world, c.net, rate_per_s=1.0, via="direct", nodes=["n1"], pg_of=c.pg.get, jitter=0.0
    )
    start = float(c.env.now)
    work.start(until_s=start + 0.5)
    c.at(start + 10.0)
    assert work.counts == {"invoke": 1, "ok": 0, "fail": 0, "info": 1}
    info = c.recorder.of("info")[0]
    assert info == {
        "t": pytest.approx(start + 5.0),
        "kind": "info",
        "node": "c1",
        "op": "write",
        "id": 1,
        "error": "timeout",
        "served_by": "n1",
    }


# ---------------------------------------------------------------- HAProxy


def scripted_haproxy(c: Cluster, healthy: dict[str, Any]) -> SimHAProxy:
    def probe(backend: str) -> Generator[Any, Any, bool]:
        answer = healthy[backend]
        if answer == "slow":
            yield c.env.timeout(2.0)
            return True
        if answer == "error":
            raise Unreachable(backend)
        return bool(answer)
        yield  # pragma: no cover

    return SimHAProxy(c.world, c.net, "haproxy", ["n1", "n2"], probe, interval_s=3.0, phase_s=0.0)


def test_haproxy_marks_down_after_fall_failures_and_up_after_rise_successes() -> None:
    c = Cluster()
    healthy: dict[str, Any] = {"n1": True, "n2": False}
    hap = scripted_haproxy(c, healthy)
    hap.start()  # n1 checked at 0, 3, 6 ...; n2 at 1.5, 4.5, 7.5 ...
    c.at(1.0)
    assert (hap.route(), hap.is_up("n2")) == ("n1", True)  # init-state up
    c.at(1.6)
    assert not hap.is_up("n2")  # from init-state up one failure is enough
    c.at(10.0)
    killed = hap.killed("n1")
    healthy["n1"] = False  # checks at 12, 15, 18 fail
    c.at(17.9)
    assert hap.is_up("n1")
    assert hap.epoch("n1") == 0
    c.at(18.0)
    assert not hap.is_up("n1")
    assert hap.route() is None
    assert killed.triggered
    assert hap.epoch("n1") == 1
    healthy["n2"] = True  # checks at 19.5, 22.5 succeed
    c.at(22.4)
    assert hap.route() is None
    c.at(22.5)
    assert hap.route() == "n2"


def test_haproxy_counts_errors_and_slow_answers_as_failures() -> None:
    c = Cluster()
    healthy: dict[str, Any] = {"n1": "error", "n2": "slow"}
    hap = scripted_haproxy(c, healthy)
    hap.start()
    c.at(5.0)
    assert not hap.is_up("n1")
    assert not hap.is_up("n2")
    healthy["n1"] = True
    c.at(6.0)
    assert not hap.is_up("n1")  # one success is not `rise`
    c.at(9.0)
    assert hap.route() == "n1"


# ---------------------------------------------------------------- workload


def wired_haproxy(c: Cluster) -> SimHAProxy:
    """HAProxy probing each node's writability over the network (as /primary would answer)."""

    def probe(backend: str) -> Generator[Any, Any, bool]:
        pg = c.pg[backend]

        def handler(_deadline: float) -> Generator[Any, Any, bool]:
            return pg.writable
            yield  # pragma: no cover

        try:
            answer: bool = yield from c.net.call("haproxy", backend, handler, 1.0)
        except Unreachable:
            return False
        return answer

    return SimHAProxy(c.world, c.net, "haproxy", list(NAMES), probe, phase_s=0.0)


def scripted_failover(
    seed: int, latency: Latency | None = None, jitter: float = 0.0, poll_s: float | None = None
) -> Cluster:
    c = Cluster(seed=seed, latency=latency)
    if poll_s is not None:
        c.env.process(poll(c, poll_s))
    c.build()
    c.at(7.05)
    hap = wired_haproxy(c)
    hap.start()  # n1 checked at 7.05, 10.05, ...; n2 at 8.05, ...; n3 at 9.05, ...
    work = Workload(
        c.world,
        c.net,
        rate_per_s=10.0,
        via="haproxy",
        nodes=list(NAMES),
        pg_of=c.pg.get,
        haproxy=hap,
        jitter=jitter,
    )
    c.at(10.0)
    work.start(until_s=39.95)
    c.at(20.05)
    c.pg["n1"].crash()
    c.at(25.0)
    c.do(c.pg["n2"].promote())
    c.do(c.pg["n3"].follow("n2"))
    c.at(45.0)
    c.work = work  # type: ignore[attr-defined]
    return c


def test_workload_outcomes_in_a_scripted_failover_through_haproxy() -> None:
    c = scripted_failover(seed=3)
    work: Workload = c.work  # type: ignore[attr-defined]
    # 10.0 .. 20.0 ok on n1; n1 crashes at 20.05 but stays UP until its third failed check at
    # 28.05 (writes refused); no backend until n2 (promoted at 25.5) is UP after the checks at
    # 26.05 and 29.05; from 29.1 on n2 acknowledges on timeline 2.
    assert work.counts == {"invoke": 300, "ok": 210, "fail": 90, "info": 0}
    oks = c.recorder.of("ok")
    assert [e["served_by"] for e in oks] == ["n1"] * 101 + ["n2"] * 109
    assert {e["timeline"] for e in oks[:101]} == {1}
    assert {e["timeline"] for e in oks[101:]} == {2}
    errors = [e["error"] for e in c.recorder.of("fail")]
    assert errors == ["refused"] * 80 + ["no_backend"] * 10
    assert oks[0]["t"] == pytest.approx(10.0 + 4 * LAT)
    ids = [e["id"] for e in c.recorder.of("invoke")]
    assert ids == list(range(1, 301))
    acknowledged = {e["id"] for e in oks}
    assert acknowledged <= set(c.pg["n2"].final_ids()) == set(c.pg["n3"].final_ids())


def poll(c: Cluster, every_s: float) -> Generator[Any, Any, None]:
    """Read every server's state often (as agents and REST handlers do)."""
    while True:
        for pg in c.pg.values():
            pg.state()
        yield c.env.timeout(every_s)


def test_reading_state_more_often_changes_nothing() -> None:
    spread = Latency(0.001, 0.010)
    quiet = scripted_failover(seed=5, latency=spread, jitter=0.2).recorder.events
    polled = scripted_failover(seed=5, latency=spread, jitter=0.2, poll_s=0.037).recorder.events
    assert quiet == polled


def test_same_seed_gives_identical_histories() -> None:
    spread = Latency(0.001, 0.010)
    first = scripted_failover(seed=11, latency=spread, jitter=0.2).recorder.events
    second = scripted_failover(seed=11, latency=spread, jitter=0.2).recorder.events
    other = scripted_failover(seed=12, latency=spread, jitter=0.2).recorder.events
    assert first == second
    assert first != other


def test_direct_clients_write_to_their_own_nodes() -> None:
    c = Cluster()
    c.build()
    start = float(c.env.now)
    work = Workload(c.world, c.net, rate_per_s=3.0, via="direct", nodes=list(NAMES), pg_of=c.pg.get)
    work.start(until_s=start + 10.0)
    c.at(start + 20.0)
    invokes = c.recorder.of("invoke")
    assert {e["node"]: e["target"] for e in invokes} == {"c1": "n1", "c2": "n2", "c3": "n3"}
    assert {e["served_by"] for e in c.recorder.of("ok")} == {"n1"}
    assert {e["error"] for e in c.recorder.of("fail")} == {"read_only"}
    assert work.counts["ok"] + work.counts["fail"] == work.counts["invoke"] == len(invokes)
    assert c.pg["n1"].state().run is PgRun.RUNNING


@pytest.mark.parametrize("immediate", [False, True])
def test_stop_leaves_the_server_stopped_and_a_fast_stop_is_clean(immediate: bool) -> None:
    c = Cluster()
    c.build()
    c.at(10.0)
    c.write("n1", 1)
    c.do(c.pg["n1"].stop(immediate))
    took = T.stop_immediate_s if immediate else T.stop_fast_s
    assert c.env.now == pytest.approx(10.0 + took)
    assert not c.pg["n1"].running
    if not immediate:
        assert c.pg["n2"].lsn() == c.pg["n1"].lsn()  # the shutdown checkpoint reached it
    c.do(c.pg["n1"].start(True))  # an immediate stop pays crash recovery at the next start
    recovery = T.crash_recovery_s if immediate else 0.0
    assert c.env.now == pytest.approx(10.0 + took + recovery + T.start_s)
