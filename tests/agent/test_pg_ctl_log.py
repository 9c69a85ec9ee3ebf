"""The server's log: where it goes by default, and what a failed start reports from it.

A real failed start (PostgreSQL's own complaint in the agent's log) is in test_pg_params_rest.py;
these check the bounds of the tail on plain files.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pgha.agent.pg import ctl as pg_ctl
from pgha.agent.pg.exec import OsUser
from pgha.agent.pg.settings import PgSettings

ME = OsUser(None, None, None, None)


def test_the_tail_is_what_this_start_wrote(tmp_path: Path) -> None:
    log = tmp_path / "postgresql.log"
    log.write_text("an older start\n" * 3)
    offset = log.stat().st_size
    with log.open("a") as handle:
        handle.write("FATAL:  configuration file contains errors\n")
    tail = pg_ctl.log_tail(str(log), offset)
    assert tail == f"; PostgreSQL's log ({log}):\nFATAL:  configuration file contains errors"


def test_nothing_written_gives_no_tail(tmp_path: Path) -> None:
    log = tmp_path / "postgresql.log"
    log.write_text("an older start\n")
    assert pg_ctl.log_tail(str(log), log.stat().st_size) == ""
    assert pg_ctl.log_tail(str(tmp_path / "missing.log"), 0) == ""
    assert pg_ctl.log_tail(os.devnull, 0) == ""


def test_a_file_replaced_meanwhile_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "postgresql.log"
    log.write_text("new\n")
    assert pg_ctl.log_tail(str(log), 10_000).endswith(":\nnew")


@pytest.mark.parametrize(
    ("lines", "kept_lines"),
    [([f"line {i}" for i in range(100)], 20), (["x" * 1000] * 10, None)],
)
def test_the_tail_is_bounded_in_lines_and_bytes(
    tmp_path: Path, lines: list[str], kept_lines: int | None
) -> None:
    log = tmp_path / "postgresql.log"
    log.write_text("\n".join(lines) + "\n")
    tail = pg_ctl.log_tail(str(log), 0).split(":\n", 1)[1]
    assert len(tail) <= pg_ctl.TAIL_MAX_B
    assert tail.endswith(lines[-1])
    if kept_lines is not None:
        assert tail.splitlines() == lines[-kept_lines:]


def test_the_default_log_is_under_the_data_directory_once_it_holds_a_cluster(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    settings = PgSettings(name="n1", data_dir=str(data), socket_dir=str(tmp_path))
    assert settings.server_log == f"{data}/log/postgresql.log"
    assert pg_ctl._prepare_paths(settings, ME) == os.devnull  # initdb needs it empty
    assert list(data.iterdir()) == []
    (data / "PG_VERSION").write_text("15\n")
    assert pg_ctl._prepare_paths(settings, ME) == settings.server_log
    assert (data / "log").stat().st_mode & 0o777 == 0o700
    assert (data / "log" / "postgresql.log").stat().st_mode & 0o777 == 0o600
    custom = PgSettings(name="n1", data_dir=str(data), log_file=str(tmp_path / "x" / "pg.log"))
    assert custom.server_log == str(tmp_path / "x" / "pg.log")
