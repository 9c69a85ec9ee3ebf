"""Replica creation methods of the user's (Patroni's custom `create_replica_methods`) and keep_data,
against real PostgreSQL 15 servers: the program is a small python3 script written into the workdir
that records how it was called and then copies data (pg_basebackup, or a copy of a backup)."""

from __future__ import annotations

import json
import logging
import pwd
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from pgha.agent.compose import pg_settings
from pgha.agent.config.file import parse_agent_config
from pgha.agent.pg.exec import OsUser, run
from pgha.agent.pg.port import PgPort
from pgha.agent.pg.settings import CustomMethod, PgBackRestSettings
from pgha.engine.values import Failure, PgRun, PostgresState
from pgha.ports import ActionFailed
from tests.agent.conftest import OS_USER, PG_BIN
from tests.agent.pg_helpers import (
    PASSWORDS,
    REPLICATION,
    PgCluster,
    backrest_settings,
    cluster,
    node_dir,
    query,
    scalar,
)
from tests.probes import wait_for

pytestmark = pytest.mark.agent

SCRIPT = """\
#!/usr/bin/python3
import json, os, shutil, subprocess, sys, time

RECORD = {record!r}
PG_BASEBACKUP = {pg_basebackup!r}
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
datadir = args.get("datadir") or args.get("target")
listing = sorted(os.listdir(datadir)) if datadir and os.path.isdir(datadir) else None
entry = {{"argv": sys.argv, "uid": os.getuid(), "listing": listing,
          "pgpassword_set": "PGPASSWORD" in os.environ}}
with open(RECORD, "a") as record:
    record.write(json.dumps(entry) + "\\n")


def basebackup(target):
    argv = [PG_BASEBACKUP, "-D", target, "-X", "stream", "-c", "fast", "--no-password"]
    return subprocess.run(argv + ["-d", args["connstring"]]).returncode


mode = args["mode"]
if mode == "basebackup":
    sys.exit(basebackup(datadir))
if mode == "refresh":  # like a delta copy: nothing to do over a complete data directory
    if os.path.exists(os.path.join(datadir, "PG_VERSION")):
        sys.exit(0)
    new = datadir.rstrip("/") + ".new"
    code = basebackup(new)
    for name in os.listdir(new) if code == 0 else ():
        os.rename(os.path.join(new, name), os.path.join(datadir, name))
    sys.exit(code)
if mode == "restore":
    shutil.copytree(args["backup"], datadir, dirs_exist_ok=True)
    sys.exit(0)
if mode == "fail":  # a half copy, and a careless message with the password in it
    with open(os.path.join(datadir, "PG_VERSION"), "w") as version:
        version.write("15\\n")
    os.makedirs(os.path.join(datadir, "base", "partial"))
    sys.stderr.write("copy failed, PGPASSWORD=" + os.environ.get("PGPASSWORD", "") + "\\n")
    sys.exit(3)
if mode == "sleep":  # a helper of its own that must not outlive the time limit
    child = subprocess.Popen(["sleep", "60"])
    with open(RECORD + ".child", "w") as pid_file:
        pid_file.write(str(child.pid))
    time.sleep(60)  # slower than its time limit: the point of this mode
sys.exit(0 if mode == "nothing" else 64)
"""


class Methods:
    """The recording script and the calls it recorded."""

    def __init__(self, workdir: Path) -> None:
        home = node_dir(workdir, "methods")
        self.record = home / "calls.jsonl"
        self.script = home / "method.py"
        self.script.write_text(
            SCRIPT.format(record=str(self.record), pg_basebackup=f"{PG_BIN}/pg_basebackup")
        )
        self.script.chmod(0o755)

    def method(self, name: str, mode: str, *options: str, **flags: bool) -> CustomMethod:
        """A custom method running the script in `mode`."""
        return CustomMethod(
            name=name, command=(str(self.script),), options=(f"--mode={mode}", *options), **flags
        )

    def calls(self) -> list[dict[str, Any]]:
        """Every recorded call, oldest first."""
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]


@pytest.fixture
def pgs(workdir: Path) -> Iterator[PgCluster]:
    with cluster(workdir) as pgs:
        yield pgs


@pytest.fixture
def methods(workdir: Path) -> Methods:
    return Methods(workdir)


def _primary(pgs: PgCluster) -> PgPort:
    pg = pgs.add("pg1")
    pg.bootstrap()
    assert pg.sync_slots(["pg1", "pg2"])  # pg2 streams through its slot
    query(pgs.settings["pg1"], "CREATE TABLE t (v text)")
    query(pgs.settings["pg1"], "INSERT INTO t VALUES ('before')")
    return pg


def _streaming(pgs: PgCluster, name: str) -> PostgresState:
    # `name` runs in recovery and has replayed a row written on pg1 just now.
    query(pgs.settings["pg1"], "INSERT INTO t VALUES (%s)", (f"for {name}",))
    lsn = scalar(pgs.settings["pg1"], "SELECT pg_current_wal_lsn()::text")

    def caught_up() -> PostgresState | None:
        state = pgs.ports[name].state()
        replayed = scalar(
            pgs.settings[name], "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)
        )
        return state if state.run is PgRun.RUNNING and replayed else None

    return wait_for(f"{name} to stream from pg1", caught_up, 30.0, ignoring=(psycopg.Error,))


def _os_uid() -> int:
    return pwd.getpwnam(OS_USER).pw_uid if OS_USER is not None else -1


def _no_password_in(text: str) -> bool:
    return not any(p in text for p in PASSWORDS if p)


# ---------------------------------------------------------------- a working custom method


def test_custom_method_is_called_like_patroni_and_makes_a_streaming_replica(
    pgs: PgCluster, methods: Methods
) -> None:
    _primary(pgs)
    mine = methods.method("mycopy", "basebackup")
    pg2 = pgs.add("pg2", create_replica_methods=("mycopy",), custom_methods={"mycopy": mine})
    data_dir = pgs.settings["pg2"].data_dir

    pg2.create_replica("pg1")
    replica = _streaming(pgs, "pg2")

    assert pg2.clones == ["mycopy"]
    assert (replica.in_recovery, replica.following) == (True, "pg1")
    assert query(
        pgs.settings["pg1"], "SELECT application_name, state FROM pg_stat_replication"
    ) == [("pg2", "streaming")]
    [call] = methods.calls()
    argv = call["argv"]
    script = str(methods.script)
    assert argv[:4] == [script, "--scope=pgha-test", "--role=replica", f"--datadir={data_dir}"]
    assert argv[4].startswith("--connstring=")
    assert argv[5:] == ["--mode=basebackup"]
    assert conninfo_to_dict(argv[4].removeprefix("--connstring=")) == {
        "dbname": "postgres",
        "user": REPLICATION.username,
        "host": "127.0.0.1",
        "port": str(pgs.settings["pg1"].listen_port),
    }
    assert call["pgpassword_set"] is True
    assert all(_no_password_in(arg) for arg in argv)
    if OS_USER is not None:
        assert call["uid"] == _os_uid()


# ---------------------------------------------------------------- failures fall back


def test_failed_custom_methods_fall_back_and_leave_no_partial_data(
    pgs: PgCluster, methods: Methods, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _primary(pgs)
    custom = {
        "broken": methods.method("broken", "fail"),
        "hollow": methods.method("hollow", "nothing"),  # exit 0 without a cluster
    }
    pg2 = pgs.add(
        "pg2", create_replica_methods=("broken", "hollow", "basebackup"), custom_methods=custom
    )
    pg3 = pgs.add("pg3", create_replica_methods=("broken",), custom_methods=custom)
    data3 = Path(pgs.settings["pg3"].data_dir)

    pg2.create_replica("pg1")
    replica = _streaming(pgs, "pg2")
    with pytest.raises(ActionFailed) as failed:
        pg3.create_replica("pg1")

    assert pg2.clones == ["basebackup"]
    assert replica.following == "pg1"
    assert not Path(pgs.settings["pg2"].data_dir, "base", "partial").exists()
    assert [Path(c["argv"][0]).name for c in methods.calls()] == ["method.py"] * 3
    assert failed.value.failure is Failure.CREATE_REPLICA
    assert _no_password_in(str(failed.value))
    assert data3.is_dir()
    assert not any(data3.iterdir())
    assert pg3.state().data_present is False
    assert all(_no_password_in(record.getMessage()) for record in caplog.records)


# ---------------------------------------------------------------- no_leader, no_params, timeout


def _backup(pgs: PgCluster, target: Path) -> None:
    argv = [f"{PG_BIN}/pg_basebackup", "-D", str(target), "-X", "stream", "-c", "fast"]
    argv += ["-h", "127.0.0.1", "-p", str(pgs.settings["pg1"].listen_port)]
    argv += ["-U", REPLICATION.username, "--no-password"]
    env = {"PGPASSWORD": REPLICATION.password or ""}
    assert run(OsUser.of(OS_USER), argv, timeout_s=120, env=env).ok


def test_no_leader_method_restores_without_a_source(
    pgs: PgCluster, methods: Methods, workdir: Path
) -> None:
    pg1 = _primary(pgs)
    backup = workdir / "backup"
    _backup(pgs, backup)
    pg1.stop(immediate=False)  # no leader anywhere
    restore = methods.method("restore", "restore", f"--backup={backup}", no_leader=True)
    pg2 = pgs.add("pg2", create_replica_methods=("restore",), custom_methods={"restore": restore})
    plain_dir = Path(workdir, "pg3", "data")
    plain = methods.method(
        "plain", "restore", f"--target={plain_dir}", f"--backup={backup}", no_params=True
    )
    pg3 = pgs.add("pg3", create_replica_methods=("plain",), custom_methods={"plain": plain})

    pg2.create_replica(None)
    restored = wait_for("pg2 to open", lambda: pg2.state().run is PgRun.RUNNING, 30.0)
    with pytest.raises(ActionFailed) as needs_source:
        pg3.create_replica(None)  # no_leader is off
    pg3.create_replica("pg1")  # a source is known (though down): no_params gets no parameters

    assert restored
    state = pg2.state()
    assert (state.in_recovery, state.following) == (True, None)
    assert {row[0] for row in query(pgs.settings["pg2"], "SELECT v FROM t")} == {"before"}
    assert needs_source.value.failure is Failure.CREATE_REPLICA
    first, second = methods.calls()
    data_dir = pgs.settings["pg2"].data_dir
    script = str(methods.script)
    params = ["--scope=pgha-test", "--role=replica", f"--datadir={data_dir}", "--connstring="]
    assert first["argv"] == [script, *params, "--mode=restore", f"--backup={backup}"]
    assert first["pgpassword_set"] is False
    options = ["--mode=restore", f"--target={plain_dir}", f"--backup={backup}"]
    assert second["argv"] == [script, *options]
    assert pg3.clones == ["plain"]


def test_a_method_past_its_time_limit_fails(pgs: PgCluster, methods: Methods) -> None:
    slow = methods.method("slow", "sleep", no_leader=True)
    pg2 = pgs.add(
        "pg2",
        create_replica_methods=("slow",),
        custom_methods={"slow": slow},
        clone_timeout_s=1.0,
    )

    with pytest.raises(ActionFailed) as failed:
        pg2.create_replica(None)

    assert failed.value.failure is Failure.CREATE_REPLICA
    assert len(methods.calls()) == 1
    assert not any(Path(pgs.settings["pg2"].data_dir).iterdir())
    child = int(Path(f"{methods.record}.child").read_text())
    assert not Path(f"/proc/{child}").exists() or "Z" in _proc_state(child)  # killed with it


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


# ---------------------------------------------------------------- keep_data


@pytest.mark.parametrize("keep_data", [True, False])
def test_keep_data_hands_the_data_directory_over_as_it_is(
    pgs: PgCluster, methods: Methods, keep_data: bool
) -> None:
    _primary(pgs)
    refresh = methods.method("refresh", "refresh", keep_data=keep_data)
    pg2 = pgs.add("pg2", create_replica_methods=("refresh",), custom_methods={"refresh": refresh})
    pg2.create_replica("pg1")
    marker = Path(pgs.settings["pg2"].data_dir, "operator-marker")
    marker.write_text("left by the operator")

    pg2.reinit("pg1")
    replica = _streaming(pgs, "pg2")

    first, second = methods.calls()
    assert first["listing"] == []
    assert ("operator-marker" in second["listing"]) is keep_data
    assert ("PG_VERSION" in second["listing"]) is keep_data
    assert marker.exists() is keep_data
    assert pg2.clones == ["refresh", "refresh"]
    assert (replica.in_recovery, replica.following) == (True, "pg1")


WRAPPER = """\
#!/usr/bin/python3
import json, os, sys

args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
datadir = args.get("pg1-path")
listing = sorted(os.listdir(datadir)) if datadir and os.path.isdir(datadir) else None
with open({record!r}, "a") as record:
    record.write(json.dumps({{"argv": sys.argv[1:], "listing": listing}}) + "\\n")
os.execv("/usr/bin/pgbackrest", ["pgbackrest", *sys.argv[1:]])
"""


def test_pgbackrest_keep_data_restores_with_delta_over_the_old_copy(
    pgs: PgCluster, workdir: Path
) -> None:
    backrest = backrest_settings(workdir)
    pg1 = pgs.add("pg1", pgbackrest=backrest, archive_via_pgbackrest=True)
    pg1.bootstrap()
    assert pg1.sync_slots(["pg1", "pg2"])
    pg1.stanza_create()
    query(pgs.settings["pg1"], "CREATE TABLE t (v text)")
    pg1.backup()
    home = node_dir(workdir, "wrapper")
    wrapper = home / "pgbackrest.py"
    wrapper.write_text(WRAPPER.format(record=str(home / "calls.jsonl")))
    wrapper.chmod(0o755)
    kept = replace(backrest, keep_data=True, command=(str(wrapper),))
    pg2 = pgs.add("pg2", pgbackrest=kept, create_replica_methods=("pgbackrest",))

    pg2.create_replica("pg1")
    pg2.reinit("pg1")
    replica = _streaming(pgs, "pg2")

    calls = [json.loads(line) for line in (home / "calls.jsonl").read_text().splitlines()]
    restores = [call for call in calls if call["argv"][-1] == "restore"]
    assert [("--delta" in call["argv"]) for call in restores] == [False, True]
    assert restores[0]["listing"] == []
    assert "PG_VERSION" in restores[1]["listing"]
    assert pg2.clones == ["pgbackrest", "pgbackrest"]
    assert (replica.in_recovery, replica.following) == (True, "pg1")


# ---------------------------------------------------------------- the configuration file


CONFIG = """\
scope: demo
name: node1
restapi:
  listen: 127.0.0.1:8008
etcd3:
  hosts: [127.0.0.1:2379]
postgresql:
  listen: 127.0.0.1:5432
  data_dir: /srv/pg/node1
  authentication:
    superuser: {username: postgres, password: su}
    replication: {username: replicator, password: repl}
  create_replica_methods: [mycopy, pgbackrest, basebackup]
  mycopy:
    command: [/usr/local/bin/mycopy, --fast]
    options: [compress, {threads: 4}]
    keep_data: true
    no_leader: true
  pgbackrest:
    stanza: demo
    keep_data: true
    no_params: true
"""


def test_config_file_methods_reach_the_port_settings() -> None:
    settings = pg_settings(parse_agent_config(CONFIG))

    assert settings.create_replica_methods == ("mycopy", "pgbackrest", "basebackup")
    assert dict(settings.custom_methods) == {
        "mycopy": CustomMethod(
            name="mycopy",
            command=("/usr/local/bin/mycopy", "--fast"),
            options=("--compress", "--threads=4"),
            keep_data=True,
            no_leader=True,
            no_params=False,
        )
    }
    assert settings.pgbackrest == PgBackRestSettings(stanza="demo", keep_data=True, no_params=True)
