# The clients of a chaos run, Jepsen style: each client writes unique ids, one write at a time, at
# the scenario's rate, through HAProxy or straight to its own node, and records `invoke` and then
# `ok`, `fail` or `info` (docs/history.md). Safety rule protected: the lost-write and split-brain
# checks trust these records, so a write is `ok` only when COMMIT returned cleanly (a COMMIT whose
# wait for a synchronous standby was cancelled returns success with a warning: that is `info`), and
# `fail` only when PostgreSQL cannot have committed it (nothing sent, or an error before COMMIT).
# Every operation has a deadline: when it passes, the connection's socket is shut from another
# thread, so a paused or cut-off server never stalls a client.
"""Client writes recorded as invoke/ok/fail/info, node observations and final reads over SQL."""

from __future__ import annotations

import itertools
import os
import random
import select
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import psycopg

from chaos.history import EventLog, PgReading

CONNECT_TIMEOUT_S = 2  # libpq's connect_timeout (whole seconds; libpq treats < 2 as 2)
# Of the write timeout: a statement stuck before COMMIT (a lock, a full disk) ends with a clean
# error and the connection stays usable. (PostgreSQL disarms statement_timeout before it commits:
# a COMMIT waiting for synchronous standbys ends at the client's deadline, as `info`.)
STATEMENT_TIMEOUT_FRACTION = 0.8
OBSERVE_TIMEOUT_S = 2.0
JITTER = 0.2  # each pause between writes is the interval times uniform(1 - JITTER, 1 + JITTER)

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS writes (
    id bigint PRIMARY KEY,
    client text NOT NULL,
    served text DEFAULT host(inet_server_addr()),
    at timestamptz DEFAULT clock_timestamp()
)"""
# The write, with the timeline and WAL position of its transaction (read inside it).
INSERT = """
INSERT INTO writes (id, client) VALUES (%s, %s)
RETURNING ('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::int,
          (pg_current_wal_insert_lsn() - '0/0')::bigint"""
SERVER = "SELECT host(inet_server_addr())"
STATE = """
SELECT pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,
       (CASE WHEN pg_is_in_recovery()
             THEN greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())
             ELSE pg_current_wal_lsn() END - '0/0')::bigint,
       (SELECT received_tli FROM pg_stat_wal_receiver),
       (SELECT timeline_id FROM pg_control_checkpoint()),
       (SELECT min_recovery_end_timeline FROM pg_control_recovery()),
       (SELECT sender_host FROM pg_stat_wal_receiver WHERE status = 'streaming')"""
READ_IDS = "SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM writes"


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteResult:
    """How one write ended, as the client records it."""

    kind: Literal["ok", "fail", "info"]
    error: str | None = None
    served_by: str | None = None
    timeline: int | None = None
    lsn: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientSpec:
    """One client: its name (`c1`..), its target (`haproxy` or a node) and where to connect."""

    name: str
    target: str
    dsn: str


def plan_clients(
    *, via: str, clients: int, nodes: Sequence[str], dsn_of: Callable[[str], str]
) -> list[ClientSpec]:
    """Clients c1..cN: all through HAProxy (`dsn_of("haproxy")`), or client i to node i (direct)."""
    targets = ["haproxy" if via == "haproxy" else nodes[i % len(nodes)] for i in range(clients)]
    return [ClientSpec(name=f"c{i}", target=t, dsn=dsn_of(t)) for i, t in enumerate(targets, 1)]


# ---------------------------------------------------------------- deadlines


class _Deadline:
    """Shuts a connection's socket when the deadline passes, so a blocked call returns at once."""

    def __init__(self, conn: psycopg.Connection[Any], deadline_mono: float) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._done = False
        self.fired = False
        self._timer = threading.Timer(max(0.0, deadline_mono - time.monotonic()), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            cut(self._conn)

    def finish(self) -> bool:
        """Disarm; True when the deadline had already cut the connection."""
        self._timer.cancel()
        with self._lock:
            self._done = True
            return self.fired


def cut(conn: psycopg.Connection[Any]) -> None:
    """Shut the connection's socket (both ways) without closing libpq's descriptor."""
    try:
        fd = conn.pgconn.socket
        with socket.socket(fileno=os.dup(fd)) as dup:
            dup.shutdown(socket.SHUT_RDWR)
    except (OSError, psycopg.Error):
        pass


# ---------------------------------------------------------------- error identifiers

_CONNECT_ERRORS = (
    ("refused", "connection refused"),
    ("timeout", "timeout expired"),
    ("unreachable", "no route to host"),
    ("unreachable", "network is unreachable"),
    ("starting", "starting up"),
    ("starting", "not yet accepting connections"),
    ("shutting_down", "shutting down"),
    ("too_many_connections", "too many clients"),
    ("no_backend", "server closed the connection unexpectedly"),
)
_SQLSTATES = {
    "25006": "read_only",
    "53100": "disk_full",
    "57014": "timeout",  # statement_timeout, before COMMIT
    "42P01": "no_table",
    "57P01": "terminated",
    "57P03": "starting",
    "23505": "duplicate",
}


def connect_error(error: psycopg.Error) -> str:
    """A short identifier for a failed connection attempt."""
    text = str(error).lower()
    return next((ident for ident, words in _CONNECT_ERRORS if words in text), "connect_error")


def statement_error(error: psycopg.Error, conn: psycopg.Connection[Any]) -> str:
    """A short identifier for an error on an open connection."""
    state = error.sqlstate or ""
    if state in _SQLSTATES:
        return _SQLSTATES[state]
    if conn.broken or conn.closed:
        return "connection_lost"
    return f"sql_{state}" if state else "error"


def _notice_text(notice: psycopg.errors.Diagnostic) -> str:
    # Read in the handler: the notice's fields are gone once it returns.
    return f"{notice.message_primary or ''} {notice.message_detail or ''}".lower()


def _sync_cancelled(notices: Sequence[str]) -> bool:
    # PostgreSQL: WARNING "canceling wait for synchronous replication ...", DETAIL "The
    # transaction has already committed locally, but might not have been replicated ...".
    return any("synchronous replication" in n or "committed locally" in n for n in notices)


def _dropped(conn: psycopg.Connection[Any]) -> bool:
    """True when an idle connection has something to read: the server's goodbye, or EOF."""
    try:
        readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return True
    return bool(readable)


# ---------------------------------------------------------------- one client's session


class Session:
    """One client's connection: writes one id at a time, reconnecting after any failure."""

    def __init__(
        self,
        spec: ClientSpec,
        *,
        timeout_s: float,
        node_of_host: Mapping[str, str],
        statement_timeout_s: float | None = None,
    ) -> None:
        """`statement_timeout_s`: the server's statement_timeout (default 80 % of `timeout_s`; 0:
        off). It ends statements before COMMIT; the deadline `timeout_s` ends everything."""
        self.spec = spec
        self.timeout_s = timeout_s
        if statement_timeout_s is None:
            statement_timeout_s = timeout_s * STATEMENT_TIMEOUT_FRACTION
        self.statement_timeout_ms = int(statement_timeout_s * 1000)
        self.node_of_host = dict(node_of_host)
        self._conn: psycopg.Connection[Any] | None = None
        self._server: str | None = None
        self._notices: list[str] = []

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn, self._server = None, None

    def write(self, write_id: int) -> WriteResult:
        """Insert `write_id` and commit it, within the write timeout; classify the outcome."""
        deadline = time.monotonic() + self.timeout_s
        if self._conn is not None and _dropped(self._conn):
            self.close()  # closed by the server (or HAProxy) while idle: nothing was sent yet
        if self._conn is None or self._conn.closed or self._conn.broken:
            failed = self._connect(deadline)
            if failed is not None:
                return failed
        assert self._conn is not None
        return self._transaction(self._conn, write_id, deadline)

    def _connect(self, deadline: float) -> WriteResult | None:
        self.close()
        try:
            conn = psycopg.connect(
                self.spec.dsn,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name=self.spec.name,
                options=f"-c statement_timeout={self.statement_timeout_ms}",
            )
        except psycopg.Error as error:
            return WriteResult(kind="fail", error=connect_error(error))
        conn.add_notice_handler(lambda notice: self._notices.append(_notice_text(notice)))
        guard = _Deadline(conn, deadline)
        try:
            row = conn.execute(SERVER).fetchone()
            conn.commit()
        except psycopg.Error as error:
            guard.finish()
            conn.close()
            return WriteResult(
                kind="fail", error="timeout" if guard.fired else connect_error(error)
            )
        if guard.finish():
            conn.close()
            return WriteResult(kind="fail", error="timeout")
        host = row[0] if row else None
        self._conn = conn
        self._server = self.node_of_host.get(host, host) if host else None
        return None

    def _transaction(
        self, conn: psycopg.Connection[Any], write_id: int, deadline: float
    ) -> WriteResult:
        served_by = self._server
        guard = _Deadline(conn, deadline)
        committing = False
        try:
            row = conn.execute(INSERT, (write_id, self.spec.name)).fetchone()
            self._notices.clear()
            committing = True
            conn.commit()
        except psycopg.Error as error:
            fired = guard.finish()
            return self._failed(conn, error, fired=fired, committing=committing)
        if guard.finish():  # committed, but the socket was cut just after: start afresh
            self.close()
        if _sync_cancelled(self._notices):
            return WriteResult(kind="info", error="sync_cancelled", served_by=served_by)
        timeline, lsn = (row[0], row[1]) if row else (None, None)
        return WriteResult(kind="ok", served_by=served_by, timeline=timeline, lsn=lsn)

    def _failed(
        self, conn: psycopg.Connection[Any], error: psycopg.Error, *, fired: bool, committing: bool
    ) -> WriteResult:
        served_by = self._server
        ident = "timeout" if fired else statement_error(error, conn)
        lost = fired or conn.broken or conn.closed
        if committing and lost:
            self.close()
            return WriteResult(kind="info", error=ident, served_by=served_by)
        # Before COMMIT (or COMMIT answered with an error): the transaction cannot have committed.
        if lost:
            self.close()
        else:
            self._rollback(conn)
        return WriteResult(kind="fail", error=ident, served_by=served_by)

    def _rollback(self, conn: psycopg.Connection[Any]) -> None:
        guard = _Deadline(conn, time.monotonic() + min(self.timeout_s, 2.0))
        try:
            conn.rollback()
        except psycopg.Error:
            self.close()
        if guard.finish():
            self.close()


# ---------------------------------------------------------------- the workload


class Workload:
    """Clients writing ids 1, 2, 3 ... (one counter) at `rate_per_s` in all, as `sim.workload`.

    Each client is a thread doing one write at a time; a write that takes longer than the pause
    delays the next one (no pile-up of concurrent writes per client).
    """

    def __init__(
        self,
        sink: EventLog,
        clients: Sequence[ClientSpec],
        *,
        rate_per_s: float,
        timeout_s: float,
        node_of_host: Mapping[str, str],
        seed: int = 0,
    ) -> None:
        self.sink = sink
        self.clients = tuple(clients)
        self.rate_per_s = rate_per_s
        self.timeout_s = timeout_s
        self.node_of_host = dict(node_of_host)
        self._ids = itertools.count(1)
        self._ids_lock = threading.Lock()
        self._rng = random.Random(f"chaos-workload/{seed}")
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.counts: dict[str, int] = {"invoke": 0, "ok": 0, "fail": 0, "info": 0}

    def start(self, until_mono: float) -> None:
        """Start the clients; no write is invoked at or after `until_mono` (host monotonic)."""
        interval_s = len(self.clients) / self.rate_per_s
        first = time.monotonic()
        for index, spec in enumerate(self.clients):
            due = first + interval_s * index / len(self.clients)
            seed = self._rng.random()
            thread = threading.Thread(
                target=self._client, args=(spec, due, until_mono, interval_s, seed), daemon=True
            )
            thread.name = f"workload-{spec.name}"
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop invoking; wait for the writes in flight (each ends by its deadline)."""
        self._stop.set()
        self.join()

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=self.timeout_s + 30.0)
        self._threads.clear()

    def _client(
        self, spec: ClientSpec, due: float, until_mono: float, interval_s: float, seed: float
    ) -> None:
        rng = random.Random(seed)
        session = Session(spec, timeout_s=self.timeout_s, node_of_host=self.node_of_host)
        try:
            while due < until_mono and not self._stop.is_set():
                self._stop.wait(max(0.0, due - time.monotonic()))
                if self._stop.is_set():
                    break
                began = time.monotonic()
                self.write_one(session)
                spread = rng.uniform(1.0 - JITTER, 1.0 + JITTER)
                due = max(began + interval_s * spread, time.monotonic())
        finally:
            session.close()

    def write_one(self, session: Session) -> WriteResult:
        """One write: `invoke`, then its outcome, recorded around the real operation."""
        with self._ids_lock:
            write_id = next(self._ids)
        client = session.spec.name
        self.sink.record("invoke", client, op="write", id=write_id, target=session.spec.target)
        outcome = session.write(write_id)
        fields: dict[str, Any] = {"op": "write", "id": write_id}
        if outcome.kind == "ok":
            fields.update(served_by=outcome.served_by, timeline=outcome.timeline, lsn=outcome.lsn)
        else:
            fields["error"] = outcome.error
            if outcome.served_by is not None:
                fields["served_by"] = outcome.served_by
        self.sink.record(outcome.kind, client, **fields)
        with self._ids_lock:
            self.counts["invoke"] += 1
            self.counts[outcome.kind] += 1
        return outcome


# ---------------------------------------------------------------- setup, observation, final reads


def _connect(dsn: str, timeout_s: float) -> psycopg.Connection[Any]:
    return psycopg.connect(
        dsn,
        connect_timeout=max(CONNECT_TIMEOUT_S, int(timeout_s)),
        autocommit=True,
        options=f"-c statement_timeout={int(timeout_s * 1000)}",
    )


def create_table(dsn: str, *, timeout_s: float = 60.0) -> None:
    """Create the `writes` table through `dsn` (the primary), retrying until `timeout_s`.

    Raises:
        psycopg.Error: the last error when it never succeeded.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with _connect(dsn, 5.0) as conn:
                conn.execute(CREATE_TABLE)
                return
        except psycopg.Error:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def _observation(row: Sequence[Any], node_of_host: Mapping[str, str]) -> PgReading:
    """A row of STATE as an PgReading (a replica's timeline: the newest it shows)."""
    in_recovery, sender = bool(row[0]), row[6]
    seen = [int(t) for t in (row[3:6] if in_recovery else row[1:2]) if t]
    return PgReading(
        role="replica" if in_recovery else "primary",
        timeline=max(seen) if seen else None,
        lsn=int(row[2]) if row[2] is not None else None,
        upstream=node_of_host.get(sender, sender) if in_recovery and sender else None,
    )


def observe(
    dsn: str, node_of_host: Mapping[str, str], *, timeout_s: float = OBSERVE_TIMEOUT_S
) -> PgReading | None:
    """A node's PostgreSQL as it is now; None when it gave no answer in time (paused, cut off)."""
    try:
        conn = _connect(dsn, timeout_s)
    except psycopg.Error as error:
        return _unreachable(connect_error(error))
    guard = _Deadline(conn, time.monotonic() + timeout_s)
    try:
        row = conn.execute(STATE).fetchone()
    except psycopg.Error:
        row = None
    finally:
        guard.finish()
        conn.close()
    return None if row is None else _observation(row, node_of_host)


def _unreachable(error: str) -> PgReading | None:
    if error in ("refused", "shutting_down"):
        return PgReading(role="stopped")
    if error == "starting":
        return PgReading(role="starting")
    return None  # timeout, unreachable, ...: no answer, the role is unknown


def final_read(dsn: str, *, timeout_s: float = 10.0, down_role: str = "stopped") -> dict[str, Any]:
    """The fields of a `final_read` event: the ids in the node's table, its role and position.

    A node that cannot be read reports `down_role`, no ids and no position.
    """
    try:
        with _connect(dsn, timeout_s) as conn:
            row = conn.execute(STATE).fetchone()
            try:
                ids_row = conn.execute(READ_IDS).fetchone()
            except psycopg.errors.UndefinedTable:
                ids_row = None
    except psycopg.Error:
        return {"ids": [], "timeline": None, "lsn": None, "role": down_role}
    assert row is not None
    seen = _observation(row, {})
    ids = [int(i) for i in ids_row[0]] if ids_row else []
    return {"ids": ids, "timeline": seen.timeline, "lsn": seen.lsn, "role": seen.role}
