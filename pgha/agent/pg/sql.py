# SQL connections to PostgreSQL: the local server over its Unix socket as the superuser, and a
# member's server over TCP. Safety rules: every connection has a connect timeout and a statement
# timeout, so a hung server cannot stall the loop for longer than a bounded time; passwords are
# passed as connection parameters, never logged; statements that carry a password turn statement
# logging off for their session first.
"""Bounded psycopg connections and the queries the port runs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql

from pgha.agent.pg.settings import ConnTarget, Credentials, PgSettings

Row = tuple[Any, ...]


def _params(
    settings: PgSettings, creds: Credentials, host: str, port: int, db: str
) -> dict[str, Any]:
    timeout_ms = int(settings.statement_timeout_s * 1000)
    params: dict[str, Any] = {
        "host": host,
        "port": port,
        "user": creds.username,
        "dbname": db,
        "connect_timeout": max(2, round(settings.connect_timeout_s)),
        "options": f"-c statement_timeout={timeout_ms}",
        "application_name": "pgha",
        "autocommit": True,
    }
    if creds.password is not None:
        params["password"] = creds.password
    return params


@contextlib.contextmanager
def local(settings: PgSettings) -> Iterator[psycopg.Connection[Row]]:
    """A superuser connection to this node's server over its Unix socket."""
    params = _params(
        settings, settings.superuser, settings.socket_dir, settings.listen_port, "postgres"
    )
    with psycopg.connect(**params) as conn:
        yield conn


@contextlib.contextmanager
def remote(
    settings: PgSettings, target: ConnTarget, creds: Credentials
) -> Iterator[psycopg.Connection[Row]]:
    """A connection to another member's server with `creds`."""
    with psycopg.connect(
        **_params(settings, creds, target.host, target.port, target.dbname)
    ) as conn:
        yield conn


def one(conn: psycopg.Connection[Row], query: str, args: Sequence[Any] = ()) -> Row | None:
    """The first row of `query` (None: no rows)."""
    with conn.cursor() as cur:
        cur.execute(query, args)
        return cur.fetchone()


def rows(conn: psycopg.Connection[Row], query: str, args: Sequence[Any] = ()) -> list[Row]:
    """Every row of `query`."""
    with conn.cursor() as cur:
        cur.execute(query, args)
        return cur.fetchall()


def execute(conn: psycopg.Connection[Row], statement: sql.Composable | str) -> None:
    """Run one statement (no result)."""
    with conn.cursor() as cur:
        cur.execute(statement)  # type: ignore[arg-type]


def hide_statements(conn: psycopg.Connection[Row]) -> None:
    """Keep this session's statements (which carry passwords) out of the server log."""
    for setting in ("log_statement TO 'none'", "log_min_duration_statement TO -1"):
        execute(conn, f"SET {setting}")
    execute(conn, "SET log_min_error_statement TO 'panic'")


def ensure_role(conn: psycopg.Connection[Row], creds: Credentials, attributes: str) -> None:
    """Create or alter a login role with `attributes` (e.g. REPLICATION) and its password."""
    exists = one(conn, "SELECT 1 FROM pg_roles WHERE rolname = %s", (creds.username,))
    verb = sql.SQL("ALTER ROLE" if exists else "CREATE ROLE")
    password = sql.Literal(creds.password) if creds.password is not None else sql.SQL("NULL")
    statement = sql.SQL("{} {} WITH LOGIN {} PASSWORD {}").format(
        verb, sql.Identifier(creds.username), sql.SQL(attributes), password
    )
    execute(conn, statement)


REWIND_GRANTS = (
    "pg_catalog.pg_ls_dir(text, boolean, boolean)",
    "pg_catalog.pg_stat_file(text, boolean)",
    "pg_catalog.pg_read_binary_file(text)",
    "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
)


def grant_rewind(conn: psycopg.Connection[Row], username: str) -> None:
    """What pg_rewind needs as a non-superuser source role, and CHECKPOINT (pg_checkpoint)."""
    who = sql.Identifier(username)
    for function in REWIND_GRANTS:
        grant = sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(sql.SQL(function), who)
        execute(conn, grant)
    execute(conn, sql.SQL("GRANT pg_checkpoint TO {}").format(who))


def create_roles(settings: PgSettings) -> None:
    """On a new primary: the replication role, and the rewind role with its grants."""
    with local(settings) as conn:
        hide_statements(conn)
        if settings.replication.username != settings.superuser.username:
            ensure_role(conn, settings.replication, "REPLICATION")
        rewind = settings.rewind
        if rewind is not None and rewind.username != settings.superuser.username:
            ensure_role(conn, rewind, "")
            grant_rewind(conn, rewind.username)


def error_detail(error: psycopg.Error) -> str:
    """An error's class, SQLSTATE and first message line (never the statement text, which a
    syntax error would quote and which may hold a password)."""
    message = error.diag.message_primary or str(error)
    first_line = message.splitlines()[0] if message else ""
    return f"{type(error).__name__} {error.sqlstate or ''}: {first_line}"
