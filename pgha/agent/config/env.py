# Checks of a parsed configuration against this machine: programs, users, directories, the
# watchdog device. They are separate from parsing so that parsing tests never depend on the machine
# and `--validate-config` can run both. Safety rule: PostgreSQL never runs as root (it refuses to),
# so an agent running as root must name the `os_user` that runs PostgreSQL, and the directories
# PostgreSQL writes must be reachable and writable by that user, not merely by the agent.
"""`check_environment`: problems of a valid configuration on this machine, as messages."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from pgha.agent.config.model import AgentConfig, PostgresqlConfig
from pgha.engine.config import WatchdogMode

PG_PROGRAMS = ("postgres", "pg_ctl", "initdb", "pg_controldata", "pg_basebackup", "pg_rewind")
_WRITE = (stat.S_IWUSR, stat.S_IWGRP, stat.S_IWOTH)
_SEARCH = (stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH)


@dataclass(frozen=True, slots=True, kw_only=True)
class _User:
    name: str
    uid: int
    gids: frozenset[int]


def check_environment(cfg: AgentConfig, *, euid: int | None = None) -> list[str]:
    """Problems that depend on this machine, each a message starting with the field it concerns.

    Args:
        cfg: a parsed configuration.
        euid: the effective user id the agent runs as (default: this process's).

    Returns:
        An empty list when the agent can run here with `cfg`.
    """
    agent_uid = os.geteuid() if euid is None else euid
    problems: list[str] = []
    user = _postgres_user(cfg.postgresql, agent_uid, problems)
    problems += _bin_dir(cfg.postgresql)
    problems += _commands(cfg.postgresql)
    if user is not None:
        problems += _data_dir(Path(cfg.postgresql.data_dir), user)
        problems += _socket_dir(Path(cfg.postgresql.socket_dir), user)
    problems += _agent_files(cfg)
    if cfg.watchdog.mode is WatchdogMode.REQUIRED and not os.path.exists(cfg.watchdog.device):
        problems.append(
            f"watchdog.device: {cfg.watchdog.device} does not exist, and watchdog.mode is required"
        )
    return problems


def _postgres_user(pg: PostgresqlConfig, agent_uid: int, problems: list[str]) -> _User | None:
    if pg.os_user is None:
        if agent_uid == 0:
            problems.append(
                "postgresql.os_user: required when the agent runs as root "
                "(PostgreSQL refuses to run as root)"
            )
            return None
        return _user_by_uid(agent_uid)
    try:
        entry = pwd.getpwnam(pg.os_user)
    except KeyError:
        problems.append(f"postgresql.os_user: there is no user {pg.os_user!r} on this machine")
        return None
    if entry.pw_uid == 0:
        problems.append(f"postgresql.os_user: {pg.os_user!r} is root; PostgreSQL refuses root")
        return None
    if agent_uid not in (0, entry.pw_uid):
        problems.append(
            f"postgresql.os_user: the agent runs as uid {agent_uid} and cannot run PostgreSQL "
            f"as {pg.os_user!r}; run the agent as root or as {pg.os_user!r}"
        )
    gids = frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid))
    return _User(name=entry.pw_name, uid=entry.pw_uid, gids=gids)


def _user_by_uid(uid: int) -> _User:
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return _User(name=f"uid {uid}", uid=uid, gids=frozenset({os.getegid()}))
    gids = frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid))
    return _User(name=entry.pw_name, uid=uid, gids=gids)


def _allows(path: Path, user: _User, bits: tuple[int, int, int]) -> bool:
    if user.uid == 0:
        return True
    info = path.stat()
    if info.st_uid == user.uid:
        return bool(info.st_mode & bits[0])
    if info.st_gid in user.gids:
        return bool(info.st_mode & bits[1])
    return bool(info.st_mode & bits[2])


def _blocked_ancestor(path: Path, user: _User) -> Path | None:
    # The first directory on the way to `path` (inclusive) that `user` may not enter.
    for directory in (*reversed(path.parents), path):
        if directory.is_dir() and not _allows(directory, user, _SEARCH):
            return directory
    return None


def _existing_ancestor(path: Path) -> Path:
    for directory in path.parents:
        if directory.exists():
            return directory
    return Path("/")


def _data_dir(data_dir: Path, user: _User) -> list[str]:
    field = "postgresql.data_dir"
    if data_dir.exists() and not data_dir.is_dir():
        return [f"{field}: {data_dir} exists and is not a directory"]
    if data_dir.exists():
        owner = data_dir.stat().st_uid
        if user.uid not in (0, owner):
            return [f"{field}: {data_dir} is owned by uid {owner}, not by {user.name}"]
        place = data_dir
    else:
        place = _existing_ancestor(data_dir)
        if not place.is_dir() or not _allows(place, user, _WRITE):
            return [f"{field}: {user.name} cannot create {data_dir}: {place} is not writable"]
    blocked = _blocked_ancestor(place, user)
    if blocked is not None:
        return [f"{field}: {user.name} cannot enter {blocked} on the way to {data_dir}"]
    return []


def _socket_dir(socket_dir: Path, user: _User) -> list[str]:
    field = "postgresql.socket_dir"
    if not socket_dir.is_dir():
        return [f"{field}: {socket_dir} is not an existing directory"]
    blocked = _blocked_ancestor(socket_dir, user)
    if blocked is not None:
        return [f"{field}: {user.name} cannot enter {blocked}"]
    if not _allows(socket_dir, user, _WRITE):
        return [f"{field}: {socket_dir} is not writable by {user.name}"]
    return []


def _bin_dir(pg: PostgresqlConfig) -> list[str]:
    bin_dir = Path(pg.bin_dir)
    if not bin_dir.is_dir():
        return [f"postgresql.bin_dir: {bin_dir} is not an existing directory"]
    missing = [p for p in PG_PROGRAMS if not _executable(bin_dir / p)]
    if missing:
        return [f"postgresql.bin_dir: {bin_dir} has no executable {', '.join(missing)}"]
    return []


def _commands(pg: PostgresqlConfig) -> list[str]:
    commands: list[tuple[str, str]] = []
    if pg.pgbackrest is not None:
        commands.append(("postgresql.pgbackrest.command", pg.pgbackrest.command[0]))
    for method in pg.replica_methods.values():
        commands.append((f"postgresql.{method.name}.command", method.command[0]))
    for event in (
        "on_start",
        "on_stop",
        "on_restart",
        "on_reload",
        "on_role_change",
        "pre_promote",
    ):
        command = pg.callbacks.command(event)
        if command is not None:
            commands.append((f"postgresql.callbacks.{event}", command[0]))
    return [problem for field, program in commands if (problem := _program(field, program))]


def _program(field: str, program: str) -> str:
    if "/" in program:
        return "" if _executable(Path(program)) else f"{field}: {program} is not an executable file"
    return "" if shutil.which(program) else f"{field}: {program!r} is not found on PATH"


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _agent_files(cfg: AgentConfig) -> list[str]:
    problems: list[str] = []
    for field, file_path in (("pid_file", cfg.pid_file), ("log.history", cfg.log.history)):
        if file_path is not None:
            parent = Path(file_path).parent
            if not parent.is_dir() or not os.access(parent, os.W_OK):
                problems.append(f"{field}: the directory {parent} is missing or not writable")
    if cfg.log.dir is not None:
        log_dir = Path(cfg.log.dir)
        target = log_dir if log_dir.exists() else _existing_ancestor(log_dir)
        if not target.is_dir() or not os.access(target, os.W_OK):
            problems.append(f"log.dir: {target} is not a writable directory")
    return problems
