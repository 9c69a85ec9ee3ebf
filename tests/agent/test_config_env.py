"""The agent configuration against the machine (`check_environment`) and `validate_main`.

Temporary directories with stand-in programs; no process is started.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import stat
from pathlib import Path
from typing import Any

import pytest

from pgha.agent.config.env import PG_PROGRAMS
from pgha.agent.config.file import (
    AgentConfig,
    check_environment,
    parse_agent_config,
    validate_main,
)
from pgha.engine.config import WatchdogMode
from tests.agent.conftest import OS_USER
from tests.agent.test_config import MINIMAL

# ---------------------------------------------------------------- the machine


def _fake_bin(directory: Path, programs: tuple[str, ...] = PG_PROGRAMS) -> Path:
    directory.mkdir()
    for program in programs:
        path = directory / program
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(0o755)
    return directory


def _machine_text(workdir: Path) -> str:
    """MINIMAL with stand-in programs and directories under `workdir`, watchdog off."""
    text = MINIMAL.replace("/srv/pg/n1", str(workdir / "data"))
    text += f"  bin_dir: {_fake_bin(workdir / 'bin')}\n  socket_dir: {workdir}\n"
    if OS_USER is not None:
        text += f"  os_user: {OS_USER}\n"
    return text + "watchdog: {mode: off}\n"


def _machine_config(workdir: Path) -> AgentConfig:
    text = _machine_text(workdir) + f"pid_file: {workdir}/agent.pid\n"
    text += f"log: {{history: {workdir}/history.jsonl, dir: {workdir}/logs}}\n"
    return parse_agent_config(text)


def _fields(problems: list[str]) -> list[str]:
    return [problem.split(":")[0] for problem in problems]


def _with_pg(cfg: AgentConfig, **changes: Any) -> AgentConfig:
    return dataclasses.replace(cfg, postgresql=dataclasses.replace(cfg.postgresql, **changes))


def test_environment_without_problems(workdir: Path) -> None:
    assert check_environment(_machine_config(workdir)) == []


def test_missing_programs_and_bin_dir(workdir: Path) -> None:
    cfg = _machine_config(workdir)
    (workdir / "bin" / "pg_ctl").unlink()
    problems = check_environment(cfg)
    assert len(problems) == 1
    assert problems[0].startswith("postgresql.bin_dir:")
    assert "pg_ctl" in problems[0]
    problems = check_environment(_with_pg(cfg, bin_dir=str(workdir / "nowhere")))
    assert _fields(problems) == ["postgresql.bin_dir"]


def test_root_needs_an_os_user(workdir: Path) -> None:
    cfg = _with_pg(_machine_config(workdir), os_user=None)
    assert _fields(check_environment(cfg, euid=0)) == ["postgresql.os_user"]


def test_unknown_or_unreachable_os_user(workdir: Path) -> None:
    cfg = _machine_config(workdir)
    unknown = check_environment(_with_pg(cfg, os_user="pgha-no-such-user"))
    assert _fields(unknown) == ["postgresql.os_user"]
    nobody = pwd.getpwnam("nobody").pw_uid
    other_uid = nobody + 1 if nobody + 1 != 0 else nobody + 2
    switch = check_environment(_with_pg(cfg, os_user="nobody"), euid=other_uid)
    assert "postgresql.os_user" in _fields(switch)


def test_data_dir_parent_not_writable_or_not_reachable(workdir: Path) -> None:
    cfg = _machine_config(workdir)
    locked = workdir / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.geteuid() == 0:
        os.chown(locked, 0, 0)
    problems = check_environment(_with_pg(cfg, data_dir=str(locked / "data")))
    assert _fields(problems) == ["postgresql.data_dir"]
    hidden = workdir / "hidden"
    (hidden / "inner").mkdir(parents=True)
    hidden.chmod(0o600 if os.geteuid() != 0 else 0o700)
    problems = check_environment(_with_pg(cfg, data_dir=str(hidden / "inner" / "data")))
    hidden.chmod(0o700)
    assert _fields(problems) == ["postgresql.data_dir"]


def test_required_watchdog_device_and_callbacks(workdir: Path) -> None:
    cfg = _machine_config(workdir)
    watchdog = dataclasses.replace(cfg.watchdog, mode=WatchdogMode.REQUIRED, device="/nonexistent")
    problems = check_environment(dataclasses.replace(cfg, watchdog=watchdog))
    assert _fields(problems) == ["watchdog.device"]
    script = workdir / "cb"
    script.write_text("#!/bin/sh\n")
    callbacks = dataclasses.replace(
        cfg.postgresql.callbacks, on_start=(str(script),), on_stop=("pgha-no-such-program",)
    )
    problems = check_environment(_with_pg(cfg, callbacks=callbacks))
    assert _fields(problems) == [
        "postgresql.callbacks.on_start",
        "postgresql.callbacks.on_stop",
    ]
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    problems = check_environment(_with_pg(cfg, callbacks=callbacks))
    assert _fields(problems) == ["postgresql.callbacks.on_stop"]


def test_agent_files_need_existing_directories(workdir: Path) -> None:
    cfg = dataclasses.replace(_machine_config(workdir), pid_file=str(workdir / "no" / "pid"))
    assert _fields(check_environment(cfg)) == ["pid_file"]


# ---------------------------------------------------------------- validate_main


def _write(workdir: Path, text: str) -> Path:
    path = workdir / "agent.yaml"
    path.write_text(text)
    return path


def test_validate_main_ok(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(workdir, _machine_text(workdir))
    assert validate_main(path) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == f"{path}: OK"
    assert "ttl 30 s" in out
    assert err == ""
    assert "warning" not in out


def test_validate_main_warns_about_adjusted_timeouts(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = _machine_text(workdir) + "bootstrap:\n  dcs: {ttl: 20}\n"
    assert validate_main(_write(workdir, text)) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("warning: bootstrap.dcs")]


@pytest.mark.parametrize(
    "text",
    ["scope: [\n", "scope: s\n", "secret: x\npostgresql: {password: rest-secret-1\n"],
    ids=["syntax", "incomplete", "secret"],
)
def test_validate_main_bad_file(
    workdir: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    path = _write(workdir, text)
    assert validate_main(path) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"{path}:")
    assert "Traceback" not in err
    assert "rest-secret-1" not in err


def test_validate_main_missing_file_and_machine_problem(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert validate_main(workdir / "absent.yaml") == 2
    assert "Traceback" not in capsys.readouterr().err
    text = _machine_text(workdir).replace(str(workdir / "bin"), str(workdir / "nowhere"))
    assert validate_main(_write(workdir, text)) == 2
    err = capsys.readouterr().err
    assert "postgresql.bin_dir" in err
    assert "Traceback" not in err
