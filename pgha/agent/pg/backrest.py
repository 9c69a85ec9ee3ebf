# pgBackRest: the archive commands PostgreSQL runs, and the stanza-create, backup and restore the
# agent runs. Safety rules: the commands name this node's data directory explicitly (a shared
# configuration file cannot point one node at another's cluster); the superuser password reaches
# pgBackRest through the environment, never argv or a log.
"""pgBackRest commands: archive-push/archive-get strings, stanza-create, backup and restore."""

from __future__ import annotations

import shlex
from pathlib import Path

from pgha.agent.pg.exec import Completed, OsUser, run
from pgha.agent.pg.settings import PgBackRestSettings, PgSettings


def _common(conf: PgBackRestSettings, data_dir: str) -> list[str]:
    argv = [*conf.command, f"--stanza={conf.stanza}"]
    if conf.config_path is not None:
        argv.append(f"--config={conf.config_path}")
    if conf.repo_path is not None:
        argv.append(f"--repo1-path={conf.repo_path}")
    argv.append(f"--pg1-path={data_dir}")
    return argv


def _db_options(settings: PgSettings) -> list[str]:
    # How pgBackRest reaches the local server (stanza-create and backup connect to it).
    return [
        f"--pg1-port={settings.listen_port}",
        f"--pg1-socket-path={settings.socket_dir}",
        f"--pg1-user={settings.superuser.username}",
    ]


def archive_command(settings: PgSettings) -> str | None:
    """`archive_command` for postgresql.conf (run by PostgreSQL through a shell)."""
    conf = settings.pgbackrest
    if conf is None or not settings.archive_via_pgbackrest:
        return None
    return shlex.join(_common(conf, settings.data_dir)) + " archive-push %p"


def restore_command(settings: PgSettings) -> str | None:
    """`restore_command` for postgresql.conf when WAL is archived with pgBackRest."""
    conf = settings.pgbackrest
    if conf is None or not settings.archive_via_pgbackrest:
        return None
    return shlex.join(_common(conf, settings.data_dir)) + ' archive-get %f "%p"'


def _env(settings: PgSettings) -> dict[str, str]:
    password = settings.superuser.password
    return {} if password is None else {"PGPASSWORD": password}


def _require(settings: PgSettings) -> PgBackRestSettings:
    if settings.pgbackrest is None:
        raise ValueError("pgbackrest is not configured")
    return settings.pgbackrest


def stanza_create(settings: PgSettings, user: OsUser, timeout_s: float = 120.0) -> Completed:
    """`pgbackrest stanza-create` against the running local primary."""
    argv = [*_common(_require(settings), settings.data_dir), *_db_options(settings)]
    return run(user, [*argv, "stanza-create"], timeout_s=timeout_s, env=_env(settings))


def backup(
    settings: PgSettings, user: OsUser, kind: str = "full", timeout_s: float = 600.0
) -> Completed:
    """`pgbackrest backup --type=<kind>` of the running local primary (fast start checkpoint)."""
    argv = [*_common(_require(settings), settings.data_dir), *_db_options(settings)]
    argv += [f"--type={kind}", "--start-fast", "backup"]
    return run(user, argv, timeout_s=timeout_s, env=_env(settings))


def restore(settings: PgSettings, user: OsUser, timeout_s: float) -> Completed:
    """`pgbackrest restore --type=standby` into the (empty) data directory."""
    conf = _require(settings)
    argv = [*_common(conf, settings.data_dir), "--type=standby", *conf.restore_options]
    if any(Path(settings.data_dir).iterdir()):
        argv.append("--delta")
    return run(user, [*argv, "restore"], timeout_s=timeout_s, env=_env(settings))
