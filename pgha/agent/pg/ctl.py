# Starting, stopping, reloading and promoting the postmaster with pg_ctl, and single-user crash
# recovery before pg_rewind. Safety rules: every wait is bounded by pg_ctl_timeout_s; a stop is
# confirmed by postmaster.pid (a fast stop that does not finish in time escalates to an immediate
# one, so a demotion cannot leave a writable primary behind); a start that times out while the
# postmaster lives is "starting", not a failure (the engine times primary starts itself); the
# server's stderr always goes to a file (by default <data_dir>/log/postgresql.log, see
# pg_settings.SERVER_LOG), and a failed start's error carries the last lines written during that
# start (PostgreSQL's own complaint), passwords scrubbed.
"""Process control of the local PostgreSQL: start, stop, reload, promote, crash recovery."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import psycopg

from pgha.agent.pg import sql
from pgha.agent.pg.exec import Completed, OsUser, run
from pgha.agent.pg.settings import PgSettings
from pgha.agent.pg.state import PmStatus, postgres_alive, postmaster

log = logging.getLogger(__name__)

POLL_S = 0.1
TAIL_LINES = 20  # of the server's log in a failed start's error
TAIL_MAX_B = 4000
TAIL_READ_B = 64 * 1024


class ControlError(Exception):
    """A pg_ctl operation failed; the message has the program's output, never a password."""


def _pg_ctl(settings: PgSettings, user: OsUser, *args: str, slack_s: float = 5.0) -> Completed:
    argv = [settings.program("pg_ctl"), "-D", settings.data_dir, *args]
    return run(user, argv, timeout_s=settings.pg_ctl_timeout_s + slack_s)


def is_up(settings: PgSettings) -> bool:
    """The postmaster is alive (starting, accepting connections or stopping)."""
    return postmaster(settings)[0] is not PmStatus.DOWN


def start(settings: PgSettings, user: OsUser) -> None:
    """pg_ctl start, waiting up to pg_ctl_timeout_s for connections (no-op when up).

    Raises:
        ControlError: the postmaster is not alive afterwards; the message ends with the last
            lines the server wrote to its log during this start (its own complaint).
    """
    if is_up(settings):
        return
    remove_stale_lock_files(settings)
    log_file = _prepare_paths(settings, user)
    offset_b = _size_b(log_file)
    args = ["start", "-w", "-t", str(max(1, round(settings.pg_ctl_timeout_s)))]
    # Always -l: without it the postmaster would inherit (and hold open) our output pipes.
    args += ["-l", log_file]
    done = _pg_ctl(settings, user, *args)
    if done.ok:
        return
    if is_up(settings):
        log.warning("PostgreSQL is still starting after %.0f s", settings.pg_ctl_timeout_s)
        return
    raise ControlError(settings.scrub(done.detail() + log_tail(log_file, offset_b)))


def remove_stale_lock_files(settings: PgSettings) -> None:
    """Remove postmaster.pid and the socket lock of a postmaster that is gone.

    Gone includes an unreaped zombie and a reused pid: PostgreSQL would refuse to start while that
    pid exists. Its shared memory check still protects against live children of the dead one.
    """
    socket_lock = Path(settings.socket_dir) / f".s.PGSQL.{settings.listen_port}.lock"
    for lock in (Path(settings.data_dir) / "postmaster.pid", socket_lock):
        try:
            pid = abs(int(lock.read_text().splitlines()[0]))
        except (OSError, ValueError, IndexError):
            continue
        if not postgres_alive(pid):
            log.warning("removing %s of a postmaster that is gone", lock.name)
            lock.unlink(missing_ok=True)


def _prepare_paths(settings: PgSettings, user: OsUser) -> str:
    """Create the socket directory and the log file as the OS user; the file for `pg_ctl -l`.

    The default log (under the data directory) is created only in a data directory that holds a
    cluster: an empty one must stay empty for initdb and pg_basebackup.
    """
    log_file = Path(settings.server_log)
    try:
        socket_dir = Path(settings.socket_dir)
        if not socket_dir.exists():
            socket_dir.mkdir(mode=0o755, parents=True)
            user.chown(socket_dir)
        if settings.log_file is None and not (Path(settings.data_dir) / "PG_VERSION").exists():
            return os.devnull
        if not log_file.parent.exists():
            log_file.parent.mkdir(mode=0o700, parents=True)
            user.chown(log_file.parent)
        if not log_file.exists():
            log_file.touch(mode=0o600 if settings.log_file is None else 0o640)
            user.chown(log_file)
    except OSError as error:
        log.warning("cannot prepare the socket directory or log file: %s", error)
    return str(log_file)


def _size_b(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def log_tail(path: str, offset_b: int) -> str:
    """`; PostgreSQL's log (<path>): <last lines>` of what was written after `offset_b` ("" if
    nothing): at most TAIL_LINES lines and TAIL_MAX_B bytes, the newest kept."""
    try:
        with open(path, "rb") as handle:
            size_b = os.fstat(handle.fileno()).st_size
            start_b = offset_b if offset_b <= size_b else 0  # truncated or replaced meanwhile
            handle.seek(max(start_b, size_b - TAIL_READ_B))
            data = handle.read(TAIL_READ_B)
    except OSError:
        return ""
    lines = data.decode(errors="replace").strip().splitlines()[-TAIL_LINES:]
    text = "\n".join(lines)[-TAIL_MAX_B:]
    return f"; PostgreSQL's log ({path}):\n{text}" if text else ""


def stop(settings: PgSettings, user: OsUser, *, immediate: bool) -> None:
    """pg_ctl stop -m fast (escalating to immediate) or -m immediate; no-op when down.

    Raises:
        ControlError: the postmaster is still alive afterwards.
    """
    if not is_up(settings):
        return
    modes = ["immediate"] if immediate else ["fast", "immediate"]
    detail = ""
    for mode in modes:
        timeout = str(max(1, round(settings.pg_ctl_timeout_s)))
        done = _pg_ctl(settings, user, "stop", "-m", mode, "-w", "-t", timeout)
        if not is_up(settings):
            return
        detail = done.detail()
        log.warning("pg_ctl stop -m %s did not stop PostgreSQL: %s", mode, detail)
    raise ControlError(detail)


def reload(settings: PgSettings, user: OsUser) -> None:
    """pg_ctl reload (SIGHUP); raises ControlError when it fails."""
    done = _pg_ctl(settings, user, "reload")
    if not done.ok:
        raise ControlError(done.detail())


def conf_load_time(settings: PgSettings) -> object | None:
    """pg_conf_load_time() of a new session (None when it cannot be read)."""
    try:
        with sql.local(settings) as conn:
            row = sql.one(conn, "SELECT pg_conf_load_time()")
    except psycopg.Error:
        return None
    return row[0] if row else None


def reload_and_wait(settings: PgSettings, user: OsUser, timeout_s: float = 5.0) -> bool:
    """Reload and wait until a new session has loaded the files; False when not seen in time."""
    before = conf_load_time(settings)
    reload(settings, user)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        after = conf_load_time(settings)
        if after is not None and after != before:
            return True
        time.sleep(POLL_S)
    return False


def promote(settings: PgSettings) -> None:
    """SELECT pg_promote(wait => true): returns once the server left recovery.

    Raises:
        ControlError: the server did not promote in time or could not be reached.
    """
    wait_s = max(1, round(settings.pg_ctl_timeout_s))
    try:
        with sql.local(settings) as conn:
            sql.execute(conn, "SET statement_timeout = 0")
            row = sql.one(conn, "SELECT pg_promote(true, %s)", (wait_s,))
            still = sql.one(conn, "SELECT pg_is_in_recovery()")
    except psycopg.Error as error:
        raise ControlError(
            f"pg_promote failed: {error.sqlstate or type(error).__name__}"
        ) from error
    if not (row and row[0]) or (still and still[0]):
        raise ControlError(f"the server did not leave recovery within {wait_s} s")


def crash_recovery(settings: PgSettings, user: OsUser) -> None:
    """Single-user mode: replay WAL after an unclean shutdown and stop with a checkpoint.

    Archiving stays on with a failing command, so no WAL that waits for the archive is removed.
    Signal files must be gone (single-user mode cannot run a standby).

    Raises:
        ControlError: the single-user server failed.
    """
    remove_stale_lock_files(settings)
    argv = [settings.program("postgres"), "--single", "-D", settings.data_dir]
    argv += ["-c", "archive_mode=on", "-c", "archive_command=false", "template1"]
    done = run(user, argv, timeout_s=settings.pg_ctl_timeout_s * 5)
    if not done.ok:
        raise ControlError(done.detail())


def wait_ready(settings: PgSettings, timeout_s: float) -> bool:
    """Wait until the postmaster accepts connections; False at the timeout or when it died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, _ = postmaster(settings)
        if status is PmStatus.READY:
            return True
        if status is PmStatus.DOWN:
            return False
        time.sleep(POLL_S)
    return False
