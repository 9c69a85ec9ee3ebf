"""A replica starts with the larger of the configured and the control file's hot-standby values
(issue 13, item 6), as Patroni's effective_configuration does.

Lowering `max_connections` from 100 to 50 and restarting a replica before the primary: its control
file still says 100 (the primary's value), and PostgreSQL refuses to start a standby below it
("recovery aborted because of insufficient parameter settings"), so the replica would never start
and never replay the change. With the floors it starts with 100 and reports a pending restart;
once the primary restarted with 50 and the replica replayed that, it restarts with 50.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pgha.agent.pg import conf as pg_conf
from pgha.agent.pg.port import PgPort
from pgha.agent.pg.settings import PgSettings
from pgha.engine.values import Failure, PgRun
from pgha.ports import ActionFailed
from tests.agent.pg_helpers import TEST_PARAMETERS, PgCluster, cluster, scalar
from tests.probes import wait_for

# ---------------------------------------------------------------- pure: the floors


CONTROLDATA = {
    "max_connections setting": "100",
    "max_worker_processes setting": "8",
    "max_wal_senders setting": "10",
    "max_prepared_xacts setting": "0",
    "max_locks_per_xact setting": "64",
    "wal_level setting": "replica",
}


def test_recovery_floors_read_every_hot_standby_field() -> None:
    assert pg_conf.recovery_floors(CONTROLDATA) == {
        "max_connections": 100,
        "max_worker_processes": 8,
        "max_wal_senders": 10,
        "max_prepared_transactions": 0,
        "max_locks_per_transaction": 64,
    }
    assert pg_conf.recovery_floors({"max_connections setting": "lots"}) == {}
    assert pg_conf.recovery_floors({}) == {}


@pytest.mark.parametrize(
    ("configured", "floors", "raised"),
    [
        ({"max_connections": 50}, {"max_connections": 100}, {"max_connections": 100}),
        ({"max_connections": "50"}, {"max_connections": 100}, {"max_connections": 100}),
        ({"max_connections": 200}, {"max_connections": 100}, {}),
        ({"max_connections": 100}, {"max_connections": 100}, {}),
        # unset: PostgreSQL's default (8) is in effect, below the control file's 16
        ({}, {"max_worker_processes": 16}, {"max_worker_processes": 16}),
        ({}, {"max_worker_processes": 8}, {}),
        # an unreadable value is left for PostgreSQL to refuse with its own message
        ({"max_connections": "many"}, {"max_connections": 100}, {}),
        ({"max_connections": True}, {"max_connections": 100}, {}),
    ],
)
def test_raised_to_floors(
    configured: dict[str, object], floors: dict[str, int], raised: dict[str, int]
) -> None:
    assert pg_conf.raised_to_floors(configured, floors) == raised  # type: ignore[arg-type]


def test_the_floors_are_written_but_the_agents_own_settings_still_win(tmp_path: Path) -> None:
    settings = PgSettings(name="n1", data_dir=str(tmp_path), bin_dir="/bin", listen_port=5433)
    inputs = pg_conf.ConfInputs(
        dynamic={"parameters": {"max_connections": 50}}, floors={"max_connections": 100}
    )
    params = pg_conf.parameters(settings, inputs)
    assert params["max_connections"] == 100
    assert params["hot_standby"] is True
    assert pg_conf.configured_parameters(settings, inputs)["max_connections"] == 50


# ---------------------------------------------------------------- real servers


@pytest.fixture
def pgs(workdir: Path) -> Iterator[PgCluster]:
    with cluster(workdir) as pgs:
        yield pgs


def _running_replica(pg: PgPort) -> bool:
    state = pg.state()
    return state.run is PgRun.RUNNING and state.in_recovery


def _max_connections(settings: PgSettings) -> int:
    return int(scalar(settings, "SHOW max_connections"))


@pytest.mark.agent
def test_a_replica_restarted_before_the_primary_starts_with_the_control_files_value(
    pgs: PgCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = {k: v for k, v in TEST_PARAMETERS.items() if k != "max_connections"}
    pgs.dynamic = {"parameters": {"max_connections": 100}}
    pg1 = pgs.add("pg1", parameters=local)
    pg1.bootstrap()
    assert pg1.sync_slots(["pg1", "pg2"])
    pg2 = pgs.add("pg2", parameters=local)
    pg2.create_replica("pg1")
    s1, s2 = pgs.settings["pg1"], pgs.settings["pg2"]
    wait_for("the replica", lambda: _running_replica(pg2), 30.0)
    assert _max_connections(s2) == 100

    # The operator lowers max_connections; the replica is restarted first.
    pgs.dynamic = {"parameters": {"max_connections": 50}}
    applied = pg2.apply_dynamic()
    assert applied.pending_restart  # the control file's 100 stays in use on this replica

    # Without the floors PostgreSQL refuses to start it: the stranded replica of the issue.
    pg2.stop(immediate=False)
    with monkeypatch.context() as patched:
        patched.setattr(pg_conf, "recovery_floors", lambda fields: {})
        with pytest.raises(ActionFailed) as refused:
            pg2.start(as_primary=False)
    assert refused.value.failure is Failure.START
    assert s2.log_file is not None
    assert "insufficient parameter settings" in Path(s2.log_file).read_text()
    wait_for("the refused start to end", lambda: pg2.state().run is PgRun.STOPPED, 30.0)

    pg2.start(as_primary=False)
    wait_for("the replica with the control file's value", lambda: _running_replica(pg2), 30.0)
    assert _max_connections(s2) == 100
    assert pg_conf.read_parameter(s2, "max_connections") == "100"
    assert pg2.apply_dynamic().pending_restart

    # The primary restarts with 50 and the replica replays the change; its next start uses 50.
    pg1.restart()
    assert _max_connections(s1) == 50
    lsn = scalar(s1, "SELECT pg_current_wal_lsn()::text")
    wait_for(
        "the replica to replay the parameter change",
        lambda: scalar(s2, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)),
        30.0,
        ignoring=(psycopg.Error,),
    )
    pg2.restart()
    wait_for("the replica with the new value", lambda: _running_replica(pg2), 30.0)
    assert _max_connections(s2) == 50
    assert not pg2.apply_dynamic().pending_restart
