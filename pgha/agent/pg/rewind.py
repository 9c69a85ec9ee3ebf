# Reconciling a diverged former primary with the new one (pg_rewind), Patroni style: a server that
# was not shut down cleanly first runs crash recovery in single-user mode, the source is
# checkpointed so its control file shows its new timeline, then pg_rewind copies what differs.
# Safety rules: pg_rewind only runs on a stopped, cleanly shut down data directory; the source
# role's password reaches pg_rewind through the environment, never argv; a failure is reported, and
# the engine decides whether to reinitialise (the data directory is never wiped here).
"""pg_rewind of the local data directory from a running member."""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from pgha.agent.pg import backrest, ctl, sql
from pgha.agent.pg.conf import RECOVERY_SIGNAL, STANDBY_SIGNAL
from pgha.agent.pg.exec import OsUser, run
from pgha.agent.pg.settings import ConnTarget, Credentials, PgSettings
from pgha.agent.pg.state import CLEAN_STATES, controldata

log = logging.getLogger(__name__)

REWIND_TIMEOUT_S = 3600.0


class RewindError(Exception):
    """pg_rewind (or the crash recovery before it) failed."""


def source_credentials(settings: PgSettings) -> Credentials:
    """The role pg_rewind connects with: the rewind role, else the superuser."""
    return settings.rewind or settings.superuser


def ensure_clean_shutdown(settings: PgSettings, user: OsUser) -> None:
    """Run single-user crash recovery when pg_controldata shows an unclean shutdown.

    Raises:
        RewindError: pg_controldata or the crash recovery failed.
    """
    fields = controldata(settings, user)
    if fields is None:
        raise RewindError("pg_controldata failed")
    if fields.get("Database cluster state") in CLEAN_STATES:
        return
    log.info("unclean shutdown: crash recovery in single-user mode before pg_rewind")
    data = Path(settings.data_dir)
    for name in (STANDBY_SIGNAL, RECOVERY_SIGNAL):
        (data / name).unlink(missing_ok=True)
    try:
        ctl.crash_recovery(settings, user)
    except ctl.ControlError as error:
        raise RewindError(f"crash recovery failed: {error}") from error


def checkpoint_source(settings: PgSettings, source: ConnTarget) -> None:
    """CHECKPOINT on the source so its control file has its current timeline (best effort)."""
    try:
        with sql.remote(settings, source, source_credentials(settings)) as conn:
            sql.execute(conn, "SET statement_timeout = 0")
            sql.execute(conn, "CHECKPOINT")
    except psycopg.Error as error:
        log.warning("CHECKPOINT on the rewind source failed: %s", sql.error_detail(error))


def rewind(settings: PgSettings, user: OsUser, source: ConnTarget) -> None:
    """pg_rewind --target-pgdata from `source` (the server must be stopped).

    Raises:
        RewindError: pg_rewind failed.
    """
    ensure_clean_shutdown(settings, user)
    checkpoint_source(settings, source)
    creds = source_credentials(settings)
    conninfo = make_conninfo(
        host=source.host,
        port=str(source.port),
        user=creds.username,
        dbname=source.dbname,
        connect_timeout=str(max(2, round(settings.connect_timeout_s))),
    )
    argv = [settings.program("pg_rewind"), f"--target-pgdata={settings.data_dir}"]
    argv += [f"--source-server={conninfo}", "--no-ensure-shutdown"]
    if backrest.restore_command(settings) is not None:
        argv.append("--restore-target-wal")
    env = {"PGPASSWORD": creds.password} if creds.password is not None else {}
    done = run(user, argv, timeout_s=REWIND_TIMEOUT_S, env=env)
    if not done.ok:
        raise RewindError(done.detail())
