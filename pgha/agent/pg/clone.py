# Creating a data directory: initdb for a new cluster, and a replica's copy with the configured
# methods in order (pg_basebackup from a running member, pgBackRest restore from the repository, or
# a program of the user's, called as Patroni calls it).
# Safety rules: the data directory is emptied before each method (unless that method keeps data)
# and a method that fails leaves an empty data directory behind (never a half copy that could be
# started); the caller stops the server first (nothing is ever wiped under a running
# server); a replica's copy never starts as a primary (the caller writes standby.signal before any
# start); passwords go through the environment or a removed 0600 file, and every error message is
# scrubbed of them.
"""initdb, and replica creation by pg_basebackup, pgBackRest restore or a custom method."""

from __future__ import annotations

import logging
from pathlib import Path

from psycopg.conninfo import make_conninfo

from pgha.agent.pg import backrest
from pgha.agent.pg.exec import OsUser, make_data_dir, run, secret_file, wipe_data_dir
from pgha.agent.pg.settings import KNOWN_REPLICA_METHODS, ConnTarget, CustomMethod, PgSettings

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
        raise CloneError(settings.scrub(done.detail()))


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
        raise CloneError(settings.scrub(done.detail()))


def backrest_restore(settings: PgSettings, user: OsUser) -> None:
    """pgbackrest restore --type=standby into the data directory (--delta when it is not empty).

    Raises:
        CloneError: the restore failed.
    """
    done = backrest.restore(settings, user, timeout_s=settings.clone_timeout_s)
    if not done.ok:
        raise CloneError(settings.scrub(done.detail()))


def source_conninfo(settings: PgSettings, source: ConnTarget | None) -> str:
    """The libpq conninfo of `source` as the replication user, without the password ("": none)."""
    if source is None:
        return ""
    return make_conninfo(
        dbname=source.dbname,
        user=settings.replication.username,
        host=source.host,
        port=str(source.port),
    )


def custom_argv(settings: PgSettings, method: CustomMethod, source: ConnTarget | None) -> list[str]:
    """Patroni's call of a custom method: the command, its four parameters, then the options."""
    if method.no_params:
        return [*method.command, *method.options]
    params = [
        f"--scope={settings.cluster_name}",
        "--role=replica",
        f"--datadir={settings.data_dir}",
        f"--connstring={source_conninfo(settings, source)}",
    ]
    return [*method.command, *params, *method.options]


def custom_method(
    settings: PgSettings, user: OsUser, method: CustomMethod, source: ConnTarget | None
) -> None:
    """Run a custom method (no shell, as the OS user, bounded by clone_timeout_s).

    Success: exit 0 and a data directory holding PG_VERSION afterwards.

    Raises:
        CloneError: the program failed, timed out, or left no cluster behind.
    """
    password = settings.replication.password
    env = {"PGPASSWORD": password} if password is not None and source is not None else {}
    argv = custom_argv(settings, method, source)
    done = run(user, argv, timeout_s=settings.clone_timeout_s, env=env, kill_group=True)
    if not done.ok:
        raise CloneError(settings.scrub(done.detail()))
    if not data_present(settings):
        raise CloneError(f"{Path(argv[0]).name} exit 0 but the data directory has no PG_VERSION")


def keeps_data(settings: PgSettings, method: str) -> bool:
    """`method` is given the data directory as it is (keep_data) rather than emptied first."""
    if method == "pgbackrest":
        return settings.pgbackrest is not None and settings.pgbackrest.keep_data
    custom = settings.custom_methods.get(method)
    return method not in KNOWN_REPLICA_METHODS and custom is not None and custom.keep_data


def works_without_source(settings: PgSettings) -> bool:
    """Some configured method can create a replica without a source member (no_leader)."""
    return any(_usable(settings, m, None) is None for m in settings.create_replica_methods)


def _usable(settings: PgSettings, method: str, source: ConnTarget | None) -> str | None:
    # Why `method` cannot run now (None: it can).
    if method == "basebackup":
        return "basebackup: no source member" if source is None else None
    if method == "pgbackrest":
        conf = settings.pgbackrest
        if conf is None:
            return "pgbackrest: not configured"
        if source is None and not conf.no_leader:
            return "pgbackrest: needs a leader (no_leader is off)"
        return None
    custom = settings.custom_methods.get(method)
    if custom is None:
        return f"{method}: unknown method"
    if source is None and not custom.no_leader:
        return f"{method}: needs a source member (no_leader is off)"
    return None


def _run_method(settings: PgSettings, user: OsUser, method: str, source: ConnTarget | None) -> None:
    # One method into the prepared data directory; raises CloneError.
    if method == "basebackup" and source is not None:
        basebackup(settings, user, source)
    elif method == "pgbackrest":
        backrest_restore(settings, user)
    else:
        custom_method(settings, user, settings.custom_methods[method], source)
    if not data_present(settings):
        raise CloneError(f"{method} left no PG_VERSION in the data directory")


def create_replica(settings: PgSettings, user: OsUser, source: ConnTarget | None) -> str:
    """Try the configured methods in order; the name of the one that worked.

    The caller must have stopped the server: before each method the data directory is emptied
    unless that method has keep_data, and it is emptied after each failed method.

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
        if not keeps_data(settings, method):
            wipe_data_dir(data)
        try:
            _run_method(settings, user, method, source)
        except CloneError as error:
            log.warning("replica creation with %s failed: %s", method, error)
            errors.append(f"{method}: {error}")
            wipe_data_dir(data)
            continue
        return method
    raise CloneError("; ".join(errors) or "no replica creation method configured")
