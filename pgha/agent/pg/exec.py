# The one way the agent runs a PostgreSQL program (initdb, pg_ctl, pg_basebackup, pgbackrest ...)
# and writes a file PostgreSQL reads. Safety rules: never a shell (argv lists only); every program
# has a time limit; when the agent runs as root the program runs as the configured OS user (and its
# group, without root's supplementary groups), because PostgreSQL refuses to run as root and must
# own its files; passwords go to programs through the environment or 0600 files, never through argv.
"""Run PostgreSQL programs as the OS user with a timeout, and write files owned by it."""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

OUTPUT_TAIL_CHARS = 2000


@dataclass(frozen=True, slots=True, kw_only=True)
class Completed:
    """A finished program: exit code (None: killed at its timeout) and its output."""

    argv: tuple[str, ...]
    returncode: int | None
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def detail(self) -> str:
        """A short description for an error message: program, exit code, last output."""
        code = "timed out" if self.returncode is None else f"exit {self.returncode}"
        tail = (self.stderr.strip() or self.stdout.strip())[-OUTPUT_TAIL_CHARS:]
        return f"{Path(self.argv[0]).name} {code}: {tail}"


@dataclass(frozen=True, slots=True)
class OsUser:
    """Who PostgreSQL's programs run as (None fields: as the agent itself)."""

    name: str | None
    uid: int | None
    gid: int | None
    home: str | None

    @classmethod
    def of(cls, os_user: str | None) -> OsUser:
        """The user to switch to: `os_user` only when set and the agent runs as root."""
        if os_user is None or os.geteuid() != 0:
            return cls(None, None, None, None)
        entry = pwd.getpwnam(os_user)
        return cls(os_user, entry.pw_uid, entry.pw_gid, entry.pw_dir)

    @property
    def switches(self) -> bool:
        return self.uid is not None

    def env(self, extra: Mapping[str, str]) -> dict[str, str]:
        """The agent's environment without PG* variables, as this user, plus `extra`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        if self.name is not None and self.home is not None:
            env.update(HOME=self.home, USER=self.name, LOGNAME=self.name)
        env.update(extra)
        return env

    def chown(self, path: Path) -> None:
        """Give `path` to this user (no-op when not switching)."""
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)


def run(
    user: OsUser,
    argv: list[str],
    *,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    stdin_text: str | None = None,
    kill_group: bool = False,
) -> Completed:
    """Run `argv` (no shell) as `user` with a time limit; output captured, never raises for it.

    `kill_group`: run it in a session of its own and, at the time limit, kill the whole process
    group (a user's program may have started others, e.g. a pg_basebackup still writing into the
    data directory). Without it only the program itself is killed: pg_ctl's postmaster must
    survive a pg_ctl that timed out.
    """
    log.debug("running %s", argv[0])
    try:
        proc = _start(user, argv, env, kill_group)
    except OSError as error:
        return Completed(argv=tuple(argv), returncode=127, stdout="", stderr=str(error))
    return _communicate(proc, argv, stdin_text, timeout_s, kill_group)


def _start(
    user: OsUser, argv: list[str], env: Mapping[str, str] | None, kill_group: bool
) -> subprocess.Popen[str]:
    """Start `argv` as `user` with pipes, in a session of its own when `kill_group`."""
    kwargs: dict[str, object] = {"start_new_session": kill_group}
    if user.switches:
        kwargs.update(user=user.uid, group=user.gid, extra_groups=[])
    proc: subprocess.Popen[str] = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=user.env(env or {}),
        cwd="/",  # PostgreSQL's programs must be able to stat their working directory
        **kwargs,  # type: ignore[call-overload]
    )
    return proc


def _communicate(
    proc: subprocess.Popen[str],
    argv: list[str],
    stdin_text: str | None,
    timeout_s: float,
    kill_group: bool,
) -> Completed:
    """Feed `stdin_text`, collect the output; at `timeout_s` kill it (or its group)."""
    try:
        stdout, stderr = proc.communicate(stdin_text or "", timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill(proc, kill_group)
        try:  # a process it started may still hold the pipes open: do not wait for it
            stdout, stderr = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired as expired:
            stdout, stderr = _text(expired.stdout), _text(expired.stderr)
        return Completed(argv=tuple(argv), returncode=None, stdout=stdout, stderr=stderr)
    return Completed(argv=tuple(argv), returncode=proc.returncode, stdout=stdout, stderr=stderr)


def _kill(proc: subprocess.Popen[str], group: bool) -> None:
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")


def write_file(user: OsUser, path: Path, text: str, mode: int = 0o600) -> bool:
    """Atomically write `text` to `path` (owned by `user`, `mode`); True when it changed."""
    try:
        changed = path.read_text() != text
    except OSError:
        changed = True
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        user.chown(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return changed


@contextlib.contextmanager
def secret_file(user: OsUser, text: str) -> Iterator[Path]:
    """A 0600 temporary file holding `text`, readable by `user`, removed afterwards."""
    fd, name = tempfile.mkstemp(prefix="pgha-secret-")
    path = Path(name)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        user.chown(path)
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


def make_data_dir(user: OsUser, data_dir: Path) -> None:
    """Create the data directory (0700, owned by `user`) if absent."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    user.chown(data_dir)


def wipe_data_dir(data_dir: Path) -> None:
    """Remove everything inside the data directory (the directory itself stays)."""
    if not data_dir.is_dir():
        return
    for child in data_dir.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                child.unlink()
