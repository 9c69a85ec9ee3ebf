"""PgPort against real PostgreSQL 15 servers: bootstrap, clone, promote, rewind, demote, synchronous
standby names, dynamic configuration, pgBackRest, the stopped state and failures."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgha.agent.pg.exec import OsUser, make_data_dir, run
from pgha.agent.pg.port import PgPort
from pgha.agent.pg.state import parse_lsn
from pgha.engine.actions import DemoteMode
from pgha.engine.values import Failure, PgRun, PostgresState, SyncStandbyNames, SyncState
from pgha.ports import ActionFailed
from tests.agent.conftest import OS_USER, PG_BIN
from tests.agent.pg_helpers import (
    PASSWORDS,
    REPLICATION,
    PgCluster,
    backrest_settings,
    cluster,
    kill_postmaster,
    query,
    scalar,
)
from tests.probes import wait_for

pytestmark = pytest.mark.agent


@pytest.fixture
def pgs(workdir: Path) -> Iterator[PgCluster]:
    with cluster(workdir) as pgs:
        yield pgs


def _primary(pgs: PgCluster, name: str = "pg1") -> PgPort:
    pg = pgs.add(name)
    pg.bootstrap()
    return pg


def _with_replica(pgs: PgCluster) -> tuple[PgPort, PgPort]:
    pg1 = _primary(pgs)
    assert pg1.sync_slots(["pg1", "pg2"])
    pg2 = pgs.add("pg2")
    pg2.create_replica("pg1")
    return pg1, pg2


def _write(pgs: PgCluster, name: str, value: str) -> int:
    """Insert `value` on `name`; the node's WAL position after the commit."""
    settings = pgs.settings[name]
    query(settings, "CREATE TABLE IF NOT EXISTS t (v text)")
    query(settings, "INSERT INTO t VALUES (%s)", (value,))
    lsn = parse_lsn(scalar(settings, "SELECT pg_current_wal_lsn()::text"))
    assert lsn is not None
    return lsn


def _values(pgs: PgCluster, name: str) -> set[str]:
    return {row[0] for row in query(pgs.settings[name], "SELECT v FROM t")}


def _caught_up(pg: PgPort, lsn: int) -> PostgresState | None:
    state = pg.state()
    return state if state.run is PgRun.RUNNING and state.wal_lsn >= lsn else None


# ---------------------------------------------------------------- bootstrap and the stopped state


def test_bootstrap_starts_a_primary_with_the_agents_roles(pgs: PgCluster) -> None:
    pg = _primary(pgs)
    settings = pgs.settings["pg1"]

    state = pg.state()

    assert (state.run, state.in_recovery, state.timeline, state.following) == (
        PgRun.RUNNING,
        False,
        1,
        None,
    )
    assert state.data_present
    assert state.rewind_possible
    assert state.sysid == str(scalar(settings, "SELECT system_identifier FROM pg_control_system()"))
    assert state.wal_lsn == parse_lsn(scalar(settings, "SELECT pg_current_wal_lsn()::text"))
    roles = dict(query(settings, "SELECT rolname, rolreplication FROM pg_roles"))
    assert roles["replicator"] is True
    assert roles["rewinder"] is False
    assert scalar(settings, "SHOW data_checksums") == "on"
    data = Path(settings.data_dir)
    assert (data / "postgresql.base.conf").exists()
    assert not (data / "standby.signal").exists()
    assert stat.S_IMODE((data / "pgha.pgpass").stat().st_mode) == 0o600
    with pytest.raises(ActionFailed) as again:
        pg.bootstrap()
    assert again.value.failure is Failure.BOOTSTRAP


def test_stopped_state_comes_from_pg_controldata(pgs: PgCluster) -> None:
    pg = _primary(pgs)
    running = pg.state()

    pg.stop(immediate=False)
    clean = pg.state()
    pg.start(as_primary=True)
    written = _write(pgs, "pg1", "after restart")
    pg.stop(immediate=True)
    crashed = pg.state()
    pg.start(as_primary=True)
    kill_postmaster(pgs.settings["pg1"])
    killed = pg.state()
    pg.start(as_primary=True)

    assert (clean.run, clean.clean_shutdown, clean.in_recovery) == (PgRun.STOPPED, True, False)
    assert (clean.sysid, clean.timeline) == (running.sysid, 1)
    assert clean.wal_lsn >= running.wal_lsn
    assert (crashed.run, crashed.clean_shutdown, crashed.sysid) == (
        PgRun.STOPPED,
        False,
        running.sysid,
    )
    assert crashed.wal_lsn <= written  # the latest checkpoint: where it is known consistent
    assert (killed.run, killed.clean_shutdown) == (PgRun.STOPPED, False)
    assert pg.state().run is PgRun.RUNNING
    assert "after restart" in _values(pgs, "pg1")


# ---------------------------------------------------------------- replicas, promotion, rewind


def test_basebackup_replica_streams_with_its_member_name(pgs: PgCluster) -> None:
    pg1, pg2 = _with_replica(pgs)
    lsn = _write(pgs, "pg1", "one")

    replica = wait_for("pg2 to replay pg1's write", lambda: _caught_up(pg2, lsn), 15.0)
    primary = wait_for("a standby", lambda: pg1.state() if pg1.state().standbys else None, 15.0)

    assert (replica.in_recovery, replica.following, replica.timeline) == (True, "pg1", 1)
    assert replica.sysid == primary.sysid
    assert primary.standbys[0].name == "pg2"
    assert primary.standbys[0].sync_state is SyncState.ASYNC
    rows = query(pgs.settings["pg1"], "SELECT application_name, state FROM pg_stat_replication")
    assert rows == [("pg2", "streaming")]
    slots = query(pgs.settings["pg1"], "SELECT slot_name, active FROM pg_replication_slots")
    assert slots == [("pg2", True)]
    assert _values(pgs, "pg2") == {"one"}


def test_reinit_clones_again_from_the_source(pgs: PgCluster) -> None:
    pg1, pg2 = _with_replica(pgs)
    marker = Path(pgs.settings["pg2"].data_dir, "stray-file")
    marker.write_text("from the old copy")
    lsn = _write(pgs, "pg1", "after the first copy")

    pg2.reinit("pg1")
    replica = wait_for("pg2 to stream again", lambda: _caught_up(pg2, lsn), 15.0)

    assert not marker.exists()
    assert (replica.in_recovery, replica.following, replica.sysid) == (
        True,
        "pg1",
        pg1.state().sysid,
    )
    assert _values(pgs, "pg2") == {"after the first copy"}


def test_slots_follow_the_members_and_spare_other_slots(pgs: PgCluster) -> None:
    pg1 = _primary(pgs)
    settings = pgs.settings["pg1"]
    query(settings, "SELECT pg_create_physical_replication_slot('operators_own')")

    assert pg1.sync_slots(["pg1", "pg2", "Node-3.b"])
    created = {row[0] for row in query(settings, "SELECT slot_name FROM pg_replication_slots")}
    assert pg1.sync_slots(["pg1", "pg2"])
    kept = {row[0] for row in query(settings, "SELECT slot_name FROM pg_replication_slots")}

    assert created == {"operators_own", "pg2", "node_3_b"}
    assert kept == {"operators_own", "pg2"}


def test_promote_rewind_and_follow_the_new_primary(pgs: PgCluster) -> None:
    pg1, pg2 = _with_replica(pgs)
    lsn = _write(pgs, "pg1", "common")
    wait_for("pg2 to catch up", lambda: _caught_up(pg2, lsn), 15.0)

    pg2.promote()
    promoted = pg2.state()
    assert pgs.pre_promote_calls == 1
    assert (promoted.in_recovery, promoted.timeline, promoted.following) == (False, 2, None)
    assert lsn <= promoted.timeline_start_lsn <= promoted.wal_lsn
    _write(pgs, "pg1", "lost on pg1")  # both are primaries now: the histories diverge
    kill_postmaster(pgs.settings["pg1"])  # and pg1 crashes: crash recovery before pg_rewind
    new_lsn = _write(pgs, "pg2", "kept on pg2")
    assert pg2.sync_slots(["pg1", "pg2"])

    pg1.rewind("pg2")
    rewound = wait_for("pg1 to stream from pg2", lambda: _caught_up(pg1, new_lsn), 15.0)

    assert (rewound.in_recovery, rewound.timeline, rewound.following) == (True, 2, "pg2")
    assert rewound.timeline_start_lsn == promoted.timeline_start_lsn
    assert _values(pgs, "pg1") == {"common", "kept on pg2"}
    standbys = wait_for("pg1 streaming", lambda: pg2.state().standbys, 15.0)
    assert [s.name for s in standbys] == ["pg1"]


def test_follow_repoints_a_running_replica_to_the_new_primary(pgs: PgCluster) -> None:
    pg1, pg2 = _with_replica(pgs)
    assert pg1.sync_slots(["pg1", "pg2", "pg3"])
    pg3 = pgs.add("pg3")
    pg3.create_replica("pg1")
    pg1.stop(immediate=False)
    pg2.promote()
    assert pg2.sync_slots(["pg1", "pg2", "pg3"])

    pg3.follow("pg2")
    lsn = _write(pgs, "pg2", "on timeline 2")
    replica = wait_for("pg3 to stream from pg2", lambda: _caught_up(pg3, lsn), 15.0)
    standbys = wait_for("pg3 on pg2", lambda: pg2.state().standbys, 15.0)
    pg3.follow(None)
    alone = wait_for("pg3 to disconnect", lambda: not pg2.state().standbys, 15.0)

    assert (replica.timeline, replica.following, replica.in_recovery) == (2, "pg2", True)
    assert [s.name for s in standbys] == ["pg3"]
    assert alone
    assert pg3.state().following is None


def test_a_refused_pre_promote_keeps_the_replica(pgs: PgCluster) -> None:
    _, pg2 = _with_replica(pgs)
    pgs.pre_promote_ok = False

    with pytest.raises(ActionFailed) as refused:
        pg2.promote()

    assert refused.value.failure is Failure.PROMOTE
    assert pg2.state().in_recovery


@pytest.mark.parametrize(
    "mode",
    [DemoteMode.GRACEFUL, DemoteMode.OFFLINE, DemoteMode.IMMEDIATE, DemoteMode.IMMEDIATE_NOLOCK],
)
def test_demote_stops_and_the_start_after_it_is_a_replica_of_nobody(
    pgs: PgCluster, mode: DemoteMode
) -> None:
    pg1 = _primary(pgs)
    pg1_sysid = pg1.state().sysid
    lsn = _write(pgs, "pg1", "before demotion")

    pg1.demote(mode)
    assert pg1.state().run is PgRun.STOPPED  # the safepoint: the engine disarms the watchdog
    pg1.start(as_primary=False)
    demoted = pg1.state()

    assert (demoted.run, demoted.in_recovery, demoted.following) == (PgRun.RUNNING, True, None)
    assert (demoted.timeline, demoted.sysid) == (1, pg1_sysid)
    assert demoted.wal_lsn >= lsn
    assert (
        "primary_conninfo" not in Path(pgs.settings["pg1"].data_dir, "postgresql.conf").read_text()
    )


def test_demoted_primary_repromotes_and_its_replica_follows_the_new_timeline(
    pgs: PgCluster,
) -> None:
    pg1, pg2 = _with_replica(pgs)

    pg1.demote(DemoteMode.GRACEFUL)
    pg1.start(as_primary=False)
    pg1.promote()
    lsn = _write(pgs, "pg1", "timeline 2")

    replica = wait_for("pg2 to follow timeline 2", lambda: _caught_up(pg2, lsn), 15.0)
    assert (replica.timeline, replica.following) == (2, "pg1")
    assert pg1.state().timeline == 2


def test_a_replica_waiting_for_wal_it_cannot_get_is_starting(pgs: PgCluster) -> None:
    _primary(pgs)
    pg3 = pgs.add("pg3", pg_ctl_timeout_s=1.0)
    source, target = pgs.settings["pg1"], pgs.settings["pg3"]
    make_data_dir(OsUser.of(OS_USER), Path(target.data_dir))
    argv = [f"{PG_BIN}/pg_basebackup", "-D", target.data_dir, "-X", "none", "-c", "fast"]
    argv += ["-h", "127.0.0.1", "-p", str(source.listen_port), "-U", REPLICATION.username]
    env = {"PGPASSWORD": REPLICATION.password or ""}
    assert run(OsUser.of(OS_USER), argv, timeout_s=60, env=env).ok  # a copy without its WAL

    pg3.start(as_primary=False)  # no upstream: it waits for WAL it never gets
    state = pg3.state()

    assert (state.run, state.in_recovery, state.sysid) == (
        PgRun.STARTING,
        True,
        pgs.ports["pg1"].state().sysid,
    )


# ---------------------------------------------------------------- configuration


def test_sync_standby_names_are_applied_and_visible(pgs: PgCluster) -> None:
    pg1, _ = _with_replica(pgs)
    wait_for("pg2 streaming", lambda: pg1.state().standbys, 15.0)

    first = SyncStandbyNames(count=1, names=frozenset({"pg2", "pg3"}))
    pg1.set_sync_standby_names(first)
    named = pg1.state()
    pg1.set_sync_standby_names(SyncStandbyNames(count=1, names=frozenset({"pg2"}), quorum=True))
    quorum = pg1.state()
    pg1.set_sync_standby_names(SyncStandbyNames(star=True))
    star = pg1.state()
    pg1.set_sync_standby_names(SyncStandbyNames())
    cleared = pg1.state()

    assert named.ssn == first
    assert [(s.name, s.sync_state) for s in named.standbys] == [("pg2", SyncState.SYNC)]
    assert (quorum.ssn.quorum, quorum.ssn.names, quorum.standbys[0].sync_state) == (
        True,
        frozenset({"pg2"}),
        SyncState.QUORUM,
    )
    assert star.ssn == SyncStandbyNames(star=True)
    assert cleared.ssn.empty
    assert cleared.standbys[0].sync_state is SyncState.ASYNC


def test_apply_dynamic_reloads_or_reports_a_pending_restart(pgs: PgCluster) -> None:
    pg = pgs.add("pg1", parameters={"maintenance_work_mem": "16MB", "fsync": "off"})
    pg.bootstrap()
    settings = pgs.settings["pg1"]
    pgs.dynamic = {
        "parameters": {"work_mem": "8MB", "maintenance_work_mem": "32MB", "port": 1},
        "pg_hba": ["host all all 127.0.0.2/32 scram-sha-256"],
    }

    reloaded = pg.apply_dynamic()
    unchanged = pg.apply_dynamic()
    pgs.dynamic = {**pgs.dynamic, "parameters": {"work_mem": "8MB", "max_connections": 40}}
    pending = pg.apply_dynamic()
    pg.restart()
    restarted = pg.apply_dynamic()

    assert (reloaded.changed, reloaded.pending_restart) == (True, False)
    assert (unchanged.changed, unchanged.pending_restart) == (False, False)
    assert (pending.changed, pending.pending_restart) == (True, True)
    assert (restarted.changed, restarted.pending_restart) == (False, False)
    assert scalar(settings, "SHOW work_mem") == "8MB"
    assert scalar(settings, "SHOW maintenance_work_mem") == "16MB"  # the local override wins
    assert scalar(settings, "SHOW max_connections") == "40"
    hba = query(settings, "SELECT address FROM pg_hba_file_rules WHERE address IS NOT NULL")
    assert ("127.0.0.2",) in hba
    assert pg.state().is_primary


# ---------------------------------------------------------------- pgBackRest


def test_pgbackrest_restore_creates_a_replica_without_a_leader(
    pgs: PgCluster, workdir: Path
) -> None:
    backrest = backrest_settings(workdir)
    pg1 = pgs.add("pg1", pgbackrest=backrest, archive_via_pgbackrest=True)
    pg1.bootstrap()
    pg1.stanza_create()
    _write(pgs, "pg1", "in the backup")
    pg1.backup()
    lsn = _write(pgs, "pg1", "archived later")
    query(pgs.settings["pg1"], "SELECT pg_switch_wal()")
    pg2 = pgs.add(
        "pg2",
        pgbackrest=backrest,
        archive_via_pgbackrest=True,
        create_replica_methods=("pgbackrest",),
    )

    pg2.create_replica(None)
    replica = wait_for("pg2 to replay the archive", lambda: _caught_up(pg2, lsn), 30.0)

    assert (replica.in_recovery, replica.following) == (True, None)
    assert replica.sysid == pg1.state().sysid
    assert _values(pgs, "pg2") == {"in the backup", "archived later"}


# ---------------------------------------------------------------- failures


def test_failures_map_to_the_engines_failure(pgs: PgCluster) -> None:
    pgs.add_unreachable("ghost")
    pg1 = _primary(pgs)
    pg3 = pgs.add("pg3")

    Path(pgs.settings["pg3"].data_dir).mkdir()
    Path(pgs.settings["pg3"].data_dir, "operator.txt").write_text("not ours")
    with pytest.raises(ActionFailed) as not_empty:
        pg3.bootstrap()
    assert not_empty.value.failure is Failure.BOOTSTRAP
    assert Path(pgs.settings["pg3"].data_dir, "operator.txt").exists()
    Path(pgs.settings["pg3"].data_dir, "operator.txt").unlink()

    failures = {}
    for label, call in {
        "basebackup from an unreachable source": lambda: pg3.create_replica("ghost"),
        "clone with no source and no method for it": lambda: pg3.create_replica(None),
        "start without data": lambda: pg3.start(as_primary=False),
        "rewind without data": lambda: pg3.rewind("pg1"),
        "rewind from an unknown member": lambda: pg1.rewind("nobody"),
        "rewind from a member that is down": lambda: pg1.rewind("pg3"),
        "promote a stopped server": lambda: pg3.promote(),
        "reinit from an unreachable source": lambda: pg1.reinit("ghost"),
    }.items():
        with pytest.raises(ActionFailed) as failed:
            call()
        failures[label] = failed.value.failure
        assert not any(p in str(failed.value) for p in PASSWORDS if p)

    assert failures == {
        "basebackup from an unreachable source": Failure.CREATE_REPLICA,
        "clone with no source and no method for it": Failure.CREATE_REPLICA,
        "start without data": Failure.START,
        "rewind without data": Failure.REWIND,
        "rewind from an unknown member": Failure.REWIND_SOURCE,  # tried again next cycle
        "rewind from a member that is down": Failure.REWIND_SOURCE,
        "promote a stopped server": Failure.PROMOTE,
        "reinit from an unreachable source": Failure.CREATE_REPLICA,
    }
    assert not pg3.state().data_present
    assert not any(Path(pgs.settings["pg3"].data_dir).iterdir())
    assert pg1.state().run is PgRun.RUNNING  # reinit did not wipe a node it could not re-clone
