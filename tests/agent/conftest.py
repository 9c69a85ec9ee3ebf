"""Fixtures shared by the agent tests: work directories PostgreSQL's user can own, free ports."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# PostgreSQL refuses to run as root. When the tests run as root (CI does), PostgreSQL's programs
# run as this operating-system user (the agent's `postgresql.os_user`), and the work directories
# are given to it.
OS_USER: str | None = "postgres" if os.geteuid() == 0 else None
PG_BIN = "/usr/lib/postgresql/15/bin"


def give_to_os_user(path: Path) -> None:
    """Make `path` owned by OS_USER (when running as root)."""
    if OS_USER is not None:
        entry = pwd.getpwnam(OS_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A fresh directory outside pytest's private tmp (which other users cannot enter)."""
    path = Path(tempfile.mkdtemp(prefix="pgha-test-"))
    path.chmod(0o755)
    give_to_os_user(path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
