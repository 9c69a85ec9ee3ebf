"""Helpers for tests that run real PostgreSQL servers through PgPort: settings, a small cluster of
ports sharing one member registry, SQL shortcuts, pgBackRest configuration and polling."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from pgha.agent.pg.port import PgPort
from pgha.agent.pg.settings import Credentials, PgBackRestSettings, PgSettings
from pgha.agent.pg.state import PmStatus, postmaster
from pgha.ports import ActionFailed
from tests.agent.conftest import OS_USER, PG_BIN, free_port, give_to_os_user
from tests.probes import wait_for

SUPERUSER = Credentials(username="postgres", password="su-secret-1")
REPLICATION = Credentials(username="replicator", password="repl-secret-2")
REWIND = Credentials(username="rewinder", password="rewind-secret-3")
PASSWORDS = (SUPERUSER.password, REPLICATION.password, REWIND.password)
STANZA = "pgha"

# Fast and small: no fsync (no machine crash is simulated), small buffers, quick WAL retries.
TEST_PARAMETERS: Mapping[str, str | int] = {
    "fsync": "off",
    "shared_buffers": "16MB",
    "max_connections": 30,
    "wal_retrieve_retry_interval": "200ms",
    "checkpoint_timeout": "30min",
}

T = TypeVar("T")


def node_dir(workdir: Path, name: str) -> Path:
    """`workdir/name`, owned by PostgreSQL's OS user."""
    path = workdir / name
    path.mkdir(exist_ok=True)
    give_to_os_user(path)
    return path


def socket_dir(workdir: Path) -> Path:
    """One Unix socket directory for every node of a test (socket files are named by port)."""
    path = workdir / "sock"
    path.mkdir(exist_ok=True)
    give_to_os_user(path)
    return path


def make_settings(workdir: Path, name: str, port: int, **overrides: Any) -> PgSettings:
    """Settings of node `name` listening on 127.0.0.1:`port`, everything under `workdir`."""
    home = node_dir(workdir, name)
    settings = PgSettings(
        name=name,
        data_dir=str(home / "data"),
        bin_dir=PG_BIN,
        listen_host="127.0.0.1",
        listen_port=port,
        superuser=SUPERUSER,
        replication=REPLICATION,
        rewind=REWIND,
        parameters=dict(TEST_PARAMETERS),
        pg_ctl_timeout_s=20.0,
        os_user=OS_USER,
        socket_dir=str(socket_dir(workdir)),
        log_file=str(home / "postgres.log"),
        cluster_name="pgha-test",
        clone_timeout_s=120.0,
    )
    return replace(settings, **overrides)


def backrest_settings(workdir: Path, *, no_leader: bool = True) -> PgBackRestSettings:
    """A pgBackRest repository, lock and log directory in `workdir`, and its config file."""
    base = node_dir(workdir, "backrest")
    for sub in ("repo", "lock", "log"):
        node_dir(base, sub)
    config = base / "pgbackrest.conf"
    config.write_text(
        "[global]\n"
        f"repo1-path={base / 'repo'}\nlock-path={base / 'lock'}\nlog-path={base / 'log'}\n"
        "log-level-console=warn\nlog-level-file=off\nrepo1-retention-full=2\n"
        "archive-timeout=30\ncompress-type=none\n"
    )
    config.chmod(0o644)
    return PgBackRestSettings(stanza=STANZA, config_path=str(config), no_leader=no_leader)


class PgCluster:
    """Ports of several nodes in one workdir, sharing a member -> conn_url registry."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.urls: dict[str, str] = {}
        self.dynamic: dict[str, Any] = {}
        self.pre_promote_ok = True
        self.pre_promote_calls = 0
        self.ports: dict[str, PgPort] = {}
        self.settings: dict[str, PgSettings] = {}

    def add(self, name: str, **overrides: Any) -> PgPort:
        """A new node `name` on a free port."""
        port = free_port()
        settings = make_settings(self.workdir, name, port, **overrides)
        self.urls[name] = f"postgres://127.0.0.1:{port}/postgres"
        pg = PgPort(
            settings,
            conn_url_of=self.urls.get,
            pre_promote=self._pre_promote,
            dynamic=lambda: self.dynamic,
        )
        self.ports[name], self.settings[name] = pg, settings
        return pg

    def _pre_promote(self) -> bool:
        self.pre_promote_calls += 1
        return self.pre_promote_ok

    def add_unreachable(self, name: str) -> None:
        """A member whose conn_url points at a port nothing listens on."""
        self.urls[name] = f"postgres://127.0.0.1:{free_port()}/postgres"

    def close(self) -> None:
        """Stop every server this cluster started (immediate), killing it if that fails."""
        for name, pg in self.ports.items():
            with contextlib.suppress(ActionFailed):
                pg.stop(immediate=True)
            status, pid = postmaster(self.settings[name])
            if status is not PmStatus.DOWN and pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def cluster(workdir: Path) -> Iterator[PgCluster]:
    """A PgCluster that is closed afterwards, whatever happened."""
    pgs = PgCluster(workdir)
    try:
        yield pgs
    finally:
        pgs.close()


def connect(settings: PgSettings, dbname: str = "postgres") -> psycopg.Connection[Any]:
    """A superuser autocommit connection to the node over its Unix socket."""
    return psycopg.connect(
        host=settings.socket_dir,
        port=settings.listen_port,
        user=SUPERUSER.username,
        password=SUPERUSER.password,
        dbname=dbname,
        autocommit=True,
        connect_timeout=5,
    )


def query(settings: PgSettings, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every row of `sql` on the node."""
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute(sql, args)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def scalar(settings: PgSettings, sql: str, args: tuple[Any, ...] = ()) -> Any:
    """The first column of the first row of `sql`."""
    return query(settings, sql, args)[0][0]


def kill_postmaster(settings: PgSettings) -> None:
    """SIGKILL the node's postmaster and its children (a crash), and wait until it is gone.

    pg_ctl starts the postmaster in its own session, so its process group is exactly it and its
    children (backends, checkpointer ...).
    """
    _, pid = postmaster(settings)
    assert pid is not None
    assert os.getpgid(pid) == pid
    os.killpg(pid, signal.SIGKILL)
    wait_for("the postmaster to die", lambda: postmaster(settings)[0] is PmStatus.DOWN, 10.0)
