# Creating a data directory: initdb for a new cluster, and a replica's copy with the configured
# methods in order (pg_basebackup from a running member, pgBackRest restore from the repository).
# Safety rules: a method that fails leaves an empty data directory behind (never a half copy that
# could be started), and a replica's copy never starts as a primary (the caller writes
# standby.signal before any start); passwords go through the environment or a removed 0600 file.
"""initdb, and replica creation by pg_basebackup or pgBackRest restore."""

from __future__ import annotations

import logging
from pathlib import Path

from pgha.agent import pg_backrest
from pgha.agent.pg_exec import OsUser, make_data_dir, run, secret_file, wipe_data_dir
from pgha.agent.pg_settings import KNOWN_REPLICA_METHODS, ConnTarget, PgSettings

log = logging.getLogger(__name__)

INITDB_TIMEOUT_S = 300.0


class CloneError(Exception):
    """Creating the data directory failed (message: what failed, without passwords)."""


def data_present(settings: PgSettings) -> bool:
    """The data directory holds a cluster (PG_VERSION exists)."""
    return (Path(settings.data_dir) / "PG_VERSION").exists()


def initdb(settings: PgSettings, user: OsUser) -> None:
    """initdb into an empty data directory, with the superuser's name and password.

    Raises:
        CloneError: initdb failed (the data directory is emptied again).
    """
    data = Path(settings.data_dir)
    make_data_dir(user, data)
    if any(data.iterdir()):
        raise CloneError("the data directory is not empty")
    su = settings.superuser
    method = "scram-sha-256" if su.password else "trust"
    argv = [settings.program("initdb"), "-D", settings.data_dir, "-U", su.username]
    argv += [f"--auth-local={method}", f"--auth-host={method}", *settings.initdb_options]
    with secret_file(user, (su.password or "") + "\n") as pwfile:
        if su.password is not None:
            argv.append(f"--pwfile={pwfile}")
        done = run(user, argv, timeout_s=INITDB_TIMEOUT_S)
    if not done.ok:
        wipe_data_dir(data)
        raise CloneError(done.detail())


def basebackup(settings: PgSettings, user: OsUser, source: ConnTarget) -> None:
    """pg_basebackup -X stream -c fast from `source` as the replication role.

    Raises:
        CloneError: pg_basebackup failed.
    """
    argv = [settings.program("pg_basebackup"), "-D", settings.data_dir, "-X", "stream"]
    argv += ["-c", "fast", "-h", source.host, "-p", str(source.port)]
    argv += ["-U", settings.replication.username, "--no-password", *settings.basebackup_options]
    password = settings.replication.password
    env = {"PGPASSWORD": password} if password is not None else {}
    env["PGCONNECT_TIMEOUT"] = str(max(2, round(settings.connect_timeout_s)))
    done = run(user, argv, timeout_s=settings.clone_timeout_s, env=env)
    if not done.ok:
        raise CloneError(done.detail())


def backrest_restore(settings: PgSettings, user: OsUser) -> None:
    """pgbackrest restore --type=standby into the data directory.

    Raises:
        CloneError: the restore failed.
    """
    done = pg_backrest.restore(settings, user, timeout_s=settings.clone_timeout_s)
    if not done.ok:
        raise CloneError(done.detail())


def _usable(settings: PgSettings, method: str, source: ConnTarget | None) -> str | None:
    # Why `method` cannot run now (None: it can).
    if method not in KNOWN_REPLICA_METHODS:
        return f"{method}: unknown method"
    if method == "basebackup" and source is None:
        return "basebackup: no source member"
    if method == "pgbackrest":
        conf = settings.pgbackrest
        if conf is None:
            return "pgbackrest: not configured"
        if source is None and not conf.no_leader:
            return "pgbackrest: needs a leader (no_leader is off)"
    return None


def create_replica(settings: PgSettings, user: OsUser, source: ConnTarget | None) -> str:
    """Try the configured methods in order; the name of the one that worked.

    Raises:
        CloneError: every method failed or none could run (the data directory is left empty).
    """
    data = Path(settings.data_dir)
    errors: list[str] = []
    for method in settings.create_replica_methods:
        reason = _usable(settings, method, source)
        if reason is not None:
            errors.append(reason)
            continue
        make_data_dir(user, data)
        try:
            if method == "basebackup" and source is not None:
                basebackup(settings, user, source)
            else:
                backrest_restore(settings, user)
        except CloneError as error:
            log.warning("replica creation with %s failed: %s", method, error)
            errors.append(f"{method}: {error}")
            wipe_data_dir(data)
            continue
        return method
    raise CloneError("; ".join(errors) or "no replica creation method configured")
