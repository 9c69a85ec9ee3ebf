"""The chaos workload's recording semantics against a real PostgreSQL 15 on loopback: what is
`ok` (committed and confirmed), `fail` (cannot have committed) and `info` (outcome unknown), the
observations the harness polls, and the final read; and the leader lock as a real etcd has it."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from chaos.history import EventLog, LeaderWatch
from chaos.workload import (
    ClientSpec,
    Session,
    Workload,
    create_table,
    final_read,
    observe,
)
from tests.agent.conftest import OS_USER, PG_BIN, free_port, give_to_os_user
from tests.agent.etcd_cluster import EtcdCluster
from tests.probes import process_gone, wait_for

pytestmark = pytest.mark.agent

NODES = {"127.0.0.1": "n1"}


@dataclass
class Server:
    data_dir: Path
    port: int

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(statement)
            return cur.fetchall() if cur.description else []

    def pg_ctl(self, *args: str) -> None:
        _as_postgres([f"{PG_BIN}/pg_ctl", "-D", str(self.data_dir), "-w", *args])

    def postmaster_pid(self) -> int:
        return int((self.data_dir / "postmaster.pid").read_text().split()[0])

    def backend_pid(self, client: str) -> int:
        rows = self.sql(f"SELECT pid FROM pg_stat_activity WHERE application_name = '{client}'")
        assert len(rows) == 1, rows
        return int(rows[0][0])

    def sync_standbys(self, names: str) -> None:
        self.sql(f"ALTER SYSTEM SET synchronous_standby_names = '{names}'")
        self.sql("SELECT pg_reload_conf()")
        wait_for(  # a new backend sees the postmaster's reloaded value
            f"synchronous_standby_names = '{names}'",
            lambda: self.sql("SHOW synchronous_standby_names") == [(names,)],
            5.0,
            every_s=0.02,
        )


def _as_postgres(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True, user=OS_USER, timeout=60)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A fresh directory PostgreSQL's OS user owns (outside pytest's private tmp)."""
    path = Path(tempfile.mkdtemp(prefix="pgha-chaos-test-"))
    path.chmod(0o755)
    give_to_os_user(path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def server(workdir: Path) -> Iterator[Server]:
    data = workdir / "data"
    _as_postgres([f"{PG_BIN}/initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "-N"])
    logs = workdir / "log"
    logs.mkdir()
    give_to_os_user(logs)
    port = free_port()
    srv = Server(data, port)
    options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={workdir} "
    options += "-c fsync=off -c shared_buffers=16MB"
    srv.pg_ctl("start", "-o", options, "-l", str(logs / "pg.log"))
    try:
        create_table(srv.dsn, timeout_s=10.0)
        yield srv
    finally:
        with_pid = data / "postmaster.pid"
        if with_pid.exists():
            os.kill(srv.postmaster_pid(), signal.SIGCONT)
            subprocess.run(
                [f"{PG_BIN}/pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop"],
                user=OS_USER,
                capture_output=True,
                check=False,
            )


def _session(server: Server, **kwargs: Any) -> Session:
    spec = ClientSpec(name="c1", target="n1", dsn=server.dsn)
    return Session(spec, node_of_host=NODES, **{"timeout_s": 2.0, **kwargs})


def _ids(server: Server) -> list[int]:
    read = final_read(server.dsn)
    ids: list[int] = read["ids"]
    return ids


def test_ok_names_the_serving_node_timeline_and_lsn(server: Server) -> None:
    session = _session(server)
    first, second = session.write(1), session.write(2)
    session.close()
    assert (first.kind, first.served_by, first.timeline) == ("ok", "n1", 1)
    assert second.kind == "ok"
    assert first.lsn is not None
    assert second.lsn is not None
    assert second.lsn > first.lsn > 0
    read = final_read(server.dsn)
    assert read["ids"] == [1, 2]
    assert (read["role"], read["timeline"]) == ("primary", 1)
    assert read["lsn"] >= second.lsn


def test_nothing_listening_is_fail_refused() -> None:
    spec = ClientSpec(name="c1", target="n1", dsn=f"host=127.0.0.1 port={free_port()} user=x")
    outcome = Session(spec, timeout_s=2.0, node_of_host=NODES).write(1)
    assert (outcome.kind, outcome.error) == ("fail", "refused")


def test_error_before_commit_is_fail_and_the_session_recovers(server: Server) -> None:
    server.sql("CREATE ROLE reader LOGIN SUPERUSER")
    server.sql("ALTER ROLE reader SET default_transaction_read_only = on")
    spec = ClientSpec(
        name="c1", target="n1", dsn=server.dsn.replace("user=postgres", "user=reader")
    )
    session = Session(spec, timeout_s=2.0, node_of_host=NODES)
    outcomes = [session.write(1), session.write(2)]
    session.close()
    assert [(o.kind, o.error, o.served_by) for o in outcomes] == [("fail", "read_only", "n1")] * 2
    assert _ids(server) == []


def _cancel_later(server: Server, delay_s: float, function: str) -> threading.Timer:
    statement = f"SELECT {function}(pid) FROM pg_stat_activity WHERE application_name = 'c1'"
    timer = threading.Timer(delay_s, lambda: server.sql(statement))
    timer.start()
    return timer


def test_commit_cancelled_waiting_for_a_sync_standby_is_info(server: Server) -> None:
    session = _session(server, timeout_s=5.0)
    assert session.write(6).kind == "ok"
    server.sync_standbys("nobody")
    canceller = _cancel_later(server, 0.5, "pg_cancel_backend")
    began = time.monotonic()
    outcome = session.write(7)
    took_s = time.monotonic() - began
    canceller.join()
    assert (outcome.kind, outcome.error, outcome.served_by) == ("info", "sync_cancelled", "n1")
    assert took_s < 2.0
    server.sync_standbys("")
    assert session.write(8).kind == "ok"  # the connection is still usable
    session.close()
    assert _ids(server) == [6, 7, 8]  # committed locally: its outcome was unknown, not failed


def test_deadline_after_commit_sent_is_info_timeout(server: Server) -> None:
    server.sync_standbys("nobody")
    session = _session(server, timeout_s=1.0)
    began = time.monotonic()
    outcome = session.write(3)
    took_s = time.monotonic() - began
    session.close()
    assert (outcome.kind, outcome.error) == ("info", "timeout")
    assert 0.9 < took_s < 2.5


def test_connection_lost_after_commit_sent_is_info(server: Server) -> None:
    server.sync_standbys("nobody")
    session = _session(server, timeout_s=5.0)
    killer = _cancel_later(server, 1.0, "pg_terminate_backend")
    outcome = session.write(2)
    killer.join()
    session.close()
    assert outcome.kind == "info"
    assert outcome.error in ("terminated", "connection_lost")


def test_a_connection_closed_while_idle_is_replaced_before_writing(server: Server) -> None:
    session = _session(server)
    assert session.write(1).kind == "ok"
    backend = server.backend_pid("c1")
    server.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'c1'"
    )
    wait_for("the terminated backend to exit", lambda: process_gone(backend), 5.0, every_s=0.02)
    assert session.write(2).kind == "ok"  # not a fail: nothing was sent on the dead connection
    session.close()
    assert _ids(server) == [1, 2]


def test_paused_server_before_commit_is_fail_timeout(server: Server) -> None:
    session = _session(server, timeout_s=1.0)
    assert session.write(1).kind == "ok"
    backend = server.backend_pid("c1")
    os.kill(backend, signal.SIGSTOP)
    try:
        began = time.monotonic()
        outcome = session.write(2)
        took_s = time.monotonic() - began
    finally:
        os.kill(backend, signal.SIGCONT)
    session.close()
    assert (outcome.kind, outcome.error) == ("fail", "timeout")
    assert took_s < 2.5
    # the resumed backend sees its client gone and aborts
    wait_for("the resumed backend to exit", lambda: process_gone(backend), 5.0, every_s=0.02)
    assert _ids(server) == [1]


def test_observe_primary_stopped_and_paused(server: Server) -> None:
    seen = observe(server.dsn, NODES)
    assert seen is not None
    assert (seen.role, seen.timeline, seen.writable) == ("primary", 1, True)
    postmaster = server.postmaster_pid()
    os.kill(postmaster, signal.SIGSTOP)
    try:
        began = time.monotonic()
        paused = observe(server.dsn, NODES, timeout_s=1.0)
        took_s = time.monotonic() - began
    finally:
        os.kill(postmaster, signal.SIGCONT)
    assert paused is None
    assert took_s < 5.0
    server.pg_ctl("stop", "-m", "fast")
    stopped = observe(server.dsn, NODES)
    assert stopped is not None
    assert (stopped.role, stopped.writable) == ("stopped", False)
    assert final_read(server.dsn, down_role="crashed") == {
        "ids": [],
        "timeline": None,
        "lsn": None,
        "role": "crashed",
    }


def test_workload_records_invoke_then_outcome_for_every_write(server: Server) -> None:
    log = EventLog()
    clients = [ClientSpec(name=f"c{i}", target="n1", dsn=server.dsn) for i in (1, 2)]
    workload = Workload(log, clients, rate_per_s=20.0, timeout_s=2.0, node_of_host=NODES)
    workload.start(time.monotonic() + 1.0)
    workload.join()
    events = log.events()
    invokes = [e for e in events if e.kind == "invoke"]
    oks = [e for e in events if e.kind == "ok"]
    assert 15 <= len(invokes) <= 25
    assert workload.counts == {"invoke": len(invokes), "ok": len(oks), "fail": 0, "info": 0}
    assert sorted(e.fields["id"] for e in invokes) == list(range(1, len(invokes) + 1))
    invoked_at = {e.fields["id"]: e.t_mono for e in invokes}
    for ok in oks:
        assert ok.t_mono >= invoked_at[ok.fields["id"]]
        assert (ok.fields["served_by"], ok.fields["timeline"]) == ("n1", 1)
    assert {e.node for e in invokes} == {"c1", "c2"}
    assert _ids(server) == sorted(e.fields["id"] for e in oks)


def _etcd(url: str, op: str, **fields: str) -> None:
    body = {k: base64.b64encode(v.encode()).decode() for k, v in fields.items()}
    request = urllib.request.Request(f"{url}/v3/kv/{op}", data=json.dumps(body).encode())
    with urllib.request.urlopen(request, timeout=5.0) as response:
        response.read()


def test_leader_watch_records_the_lock_as_etcd_has_it(workdir: Path) -> None:
    key = "/service/pgha-chaos/leader"
    with EtcdCluster.running(workdir, size=1) as etcd:
        url = etcd.member("etcd1").client_url
        dead = f"http://127.0.0.1:{free_port()}"  # a member that does not answer is skipped
        log = EventLog()
        watch = LeaderWatch(log, [dead, url], key, acquired=True)
        _etcd(url, "put", key=key, value="n1")
        watch.poll_once()
        watch.poll_once()  # no change: nothing recorded
        _etcd(url, "deleterange", key=key)
        watch.poll_once()
        _etcd(url, "put", key=key, value="n2")
        watch.poll_once()
        _etcd(url, "put", key=key, value="n3")
        watch.poll_once()
    seen = [(e.node, e.fields["event"]) for e in log.events()]
    assert seen == [
        ("n1", "acquired"),
        ("n1", "expired"),
        ("n2", "acquired"),
        ("n2", "expired"),
        ("n3", "acquired"),
    ]
