"""User callbacks run as real processes: arguments, time limits, exit codes, failures, reports."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgha.agent.callbacks import (
    CANNOT_EXECUTE,
    EXITED,
    KILLED,
    TIMEOUT,
    CallbackResult,
    CallbackRunner,
    redact,
)
from pgha.engine.actions import Callback
from tests.agent.conftest import OS_USER, give_to_os_user
from tests.probes import process_gone, wait_for

pytestmark = pytest.mark.agent

# Records what it was called with (arguments, uid, groups) in the file named by the first
# argument, starts a child of its own (its pid recorded too), sleeps, then exits with a code.
RECORDER = """
import json, os, subprocess, sys, time
out, sleep_s, code = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
child = subprocess.Popen(["sleep", "1000"]) if sleep_s > 0 else None
record = {"argv": sys.argv[4:], "uid": os.getuid(), "groups": os.getgroups(),
          "pid": os.getpid(), "child": child.pid if child else None}
with open(out + ".tmp", "w") as f:
    json.dump(record, f)
os.rename(out + ".tmp", out)
time.sleep(sleep_s)  # a callback that takes this long: the point of the tests that ask for it
if child:
    child.kill()
sys.exit(code)
"""


# The recorder's interpreter: the OS user cannot enter root's virtualenv, so use the system's.
INTERPRETER = "/usr/bin/python3" if OS_USER is not None else sys.executable


class Results:
    """Collects the reports of a runner (from any thread)."""

    def __init__(self) -> None:
        self.items: list[CallbackResult] = []
        self.lock = threading.Lock()

    def __call__(self, result: CallbackResult) -> None:
        with self.lock:
            self.items.append(result)

    def by_name(self, name: str) -> list[CallbackResult]:
        """The reports for callback `name`."""
        with self.lock:
            return [r for r in self.items if r.name == name]


@pytest.fixture
def recorder(workdir: Path) -> Iterator[Path]:
    """An executable script (readable by the OS user) that records its call.

    Afterwards, the process group of every recorder that is still running is killed (a failed
    test must not leave callbacks behind).
    """
    if not os.access(INTERPRETER, os.X_OK):
        pytest.skip(f"{INTERPRETER} is needed to run callbacks as {OS_USER}")
    path = workdir / "recorder.py"
    path.write_text(f"#!{INTERPRETER}\n{RECORDER}")
    path.chmod(0o755)
    give_to_os_user(path)
    yield path
    for out in workdir.glob("*.json"):
        pid = json.loads(out.read_text())["pid"]
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if str(path).encode() in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def command(recorder: Path, out: Path, *, sleep_s: float = 0, code: int = 0) -> list[str]:
    """A callback command line: the recorder with its own arguments."""
    return [str(recorder), str(out), str(sleep_s), str(code)]


def read_record(out: Path, limit_s: float = 5.0) -> dict[str, object]:
    """What the recorder wrote (waiting for it up to `limit_s`)."""
    wait_for(f"the recorder's {out.name}", out.exists, limit_s, every_s=0.01)
    record: dict[str, object] = json.loads(out.read_text())
    return record


def test_callback_gets_its_arguments_then_action_role_scope(recorder: Path, workdir: Path) -> None:
    out = workdir / "out.json"
    results = Results()
    runner = CallbackRunner(
        {"on_role_change": [*command(recorder, out), "--flag", "two words"]},
        scope="batman",
        timeout_s=10,
        on_result=results,
        os_user=OS_USER,
    )
    runner.run(Callback.ON_ROLE_CHANGE, "primary")
    assert runner.wait_idle(10)
    record = read_record(out)
    assert record["argv"] == ["--flag", "two words", "on_role_change", "primary", "batman"]
    if OS_USER is not None:
        entry = pwd.getpwnam(OS_USER)
        assert record["uid"] == entry.pw_uid
        assert 0 not in record["groups"]  # type: ignore[operator]  # root's group is dropped
    [result] = results.by_name("on_role_change")
    assert result.outcome == EXITED
    assert result.exit_code == 0
    assert result.ok
    assert result.argv[-3:] == ("on_role_change", "primary", "batman")
    assert 0 <= result.duration_s < 10


def test_shell_metacharacters_are_plain_arguments(recorder: Path, workdir: Path) -> None:
    out, marker = workdir / "out.json", workdir / "pwned"
    tricky = [f"; touch {marker}", f"$(touch {marker})", f"`touch {marker}`", "$HOME", "*", "|"]
    runner = CallbackRunner(
        {"on_start": [*command(recorder, out), *tricky]}, scope="s", timeout_s=10, os_user=OS_USER
    )
    runner.run(Callback.ON_START, "replica")
    assert runner.wait_idle(10)
    assert read_record(out)["argv"] == [*tricky, "on_start", "replica", "s"]
    assert not marker.exists()


def test_background_callbacks_do_not_block(recorder: Path, workdir: Path) -> None:
    out = workdir / "out.json"
    runner = CallbackRunner(
        {"on_stop": command(recorder, out, sleep_s=1.0)}, scope="s", timeout_s=10, os_user=OS_USER
    )
    started_mono = time.monotonic()
    runner.run(Callback.ON_STOP, "replica")
    assert time.monotonic() - started_mono < 0.5
    assert not runner.wait_idle(0.1)  # still running
    assert runner.wait_idle(10)


def test_time_limit_kills_the_process_group(recorder: Path, workdir: Path) -> None:
    out = workdir / "out.json"
    results = Results()
    runner = CallbackRunner(
        {"on_start": command(recorder, out, sleep_s=60)},
        scope="s",
        timeout_s=0.5,
        on_result=results,
        os_user=OS_USER,
    )
    runner.run(Callback.ON_START, "replica")
    child = read_record(out)["child"]
    assert isinstance(child, int)
    assert runner.wait_idle(5)
    [result] = results.by_name("on_start")
    assert result.outcome == TIMEOUT
    assert result.exit_code is None
    assert not result.ok
    assert 0.5 <= result.duration_s < 2.0
    wait_for(
        "the callback's child gone", lambda: process_gone(child), 2.0, every_s=0.01
    )  # died with it


def test_pre_promote_is_synchronous_and_maps_exit_codes(recorder: Path, workdir: Path) -> None:
    results = Results()

    def runner_for(code: int, sleep_s: float = 0) -> CallbackRunner:
        argv = command(recorder, workdir / f"out{code}.json", sleep_s=sleep_s, code=code)
        return CallbackRunner(
            {"pre_promote": argv}, scope="s", timeout_s=3, on_result=results, os_user=OS_USER
        )

    started_mono = time.monotonic()
    assert runner_for(0, sleep_s=0.3).run_named("pre_promote", "replica")
    assert time.monotonic() - started_mono >= 0.3  # waited for it
    assert not runner_for(1).run_named("pre_promote", "replica")
    assert not runner_for(42).run_named("pre_promote", "replica")
    assert [r.exit_code for r in results.by_name("pre_promote")] == [0, 1, 42]
    assert read_record(workdir / "out1.json")["argv"] == ["pre_promote", "replica", "s"]


def test_pre_promote_over_its_time_limit_fails(recorder: Path, workdir: Path) -> None:
    results = Results()
    runner = CallbackRunner(
        {"pre_promote": command(recorder, workdir / "out.json", sleep_s=60)},
        scope="s",
        timeout_s=0.5,
        on_result=results,
        os_user=OS_USER,
    )
    started_mono = time.monotonic()
    assert not runner.run_named("pre_promote", "replica")
    assert time.monotonic() - started_mono < 2.0
    assert [r.outcome for r in results.items] == [TIMEOUT]


def test_missing_or_unexecutable_program_is_a_reported_failure(workdir: Path) -> None:
    results = Results()
    not_executable = workdir / "plain.txt"
    not_executable.write_text("echo hi\n")
    runner = CallbackRunner(
        {"pre_promote": [str(workdir / "missing")], "on_start": [str(not_executable)]},
        scope="s",
        timeout_s=5,
        on_result=results,
    )
    assert not runner.run_named("pre_promote", "replica")
    runner.run(Callback.ON_START, "replica")  # never raises
    assert not runner.run_named("on_start", "replica")
    assert [r.outcome for r in results.items] == [CANNOT_EXECUTE] * 3
    assert all(r.exit_code is None for r in results.items)


def test_unknown_os_user_is_a_reported_failure(recorder: Path, workdir: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("os_user only applies when running as root")
    results = Results()
    runner = CallbackRunner(
        {"on_reload": command(recorder, workdir / "out.json")},
        scope="s",
        timeout_s=5,
        on_result=results,
        os_user="pgha-no-such-user",
    )
    assert not runner.run_named("on_reload", "replica")
    assert [r.outcome for r in results.items] == [CANNOT_EXECUTE]


def test_next_background_callback_kills_the_running_one(recorder: Path, workdir: Path) -> None:
    results = Results()
    first_out, second_out = workdir / "first.json", workdir / "second.json"
    runner = CallbackRunner(
        {
            "on_start": command(recorder, first_out, sleep_s=60),
            "on_role_change": command(recorder, second_out),
        },
        scope="s",
        timeout_s=10,
        on_result=results,
        os_user=OS_USER,
    )
    runner.run(Callback.ON_START, "replica")
    first_child = read_record(first_out)["child"]
    assert isinstance(first_child, int)
    runner.run(Callback.ON_ROLE_CHANGE, "primary")
    assert runner.wait_idle(5)
    assert [r.outcome for r in results.by_name("on_start")] == [KILLED]
    assert [r.outcome for r in results.by_name("on_role_change")] == [EXITED]
    wait_for(
        "the first callback's child gone", lambda: process_gone(first_child), 2.0, every_s=0.01
    )
    assert read_record(second_out)["argv"] == ["on_role_change", "primary", "s"]


def test_close_kills_the_running_callback(recorder: Path, workdir: Path) -> None:
    results = Results()
    out = workdir / "out.json"
    runner = CallbackRunner(
        {"on_stop": command(recorder, out, sleep_s=60)},
        scope="s",
        timeout_s=30,
        on_result=results,
        os_user=OS_USER,
    )
    assert runner.run_named("on_stop", "replica")
    read_record(out)
    runner.close()
    assert runner.wait_idle(5)
    assert [r.outcome for r in results.items] == [KILLED]


def test_unconfigured_callback_is_a_no_op() -> None:
    results = Results()
    runner = CallbackRunner({}, scope="s", timeout_s=5, on_result=results)
    assert runner.run_named("pre_promote", "replica")
    runner.run(Callback.ON_START, "replica")
    assert runner.wait_idle(1)
    assert results.items == []


@pytest.mark.parametrize(
    "commands",
    [
        {"on_failover": ["/bin/true"]},
        {"post_bootstrap": ["/bin/true"]},
        {"on_start": "/bin/true --flag"},
        {"on_start": []},
    ],
)
def test_invalid_configuration_is_rejected(commands: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="callback"):
        CallbackRunner(commands, scope="s", timeout_s=5)  # type: ignore[arg-type]


def test_unknown_name_is_rejected_at_run() -> None:
    runner = CallbackRunner({}, scope="s", timeout_s=5)
    with pytest.raises(ValueError, match="callback"):
        runner.run_named("on_failover", "primary")


def test_reports_carry_no_secrets(workdir: Path) -> None:
    results = Results()
    argv = [
        "/bin/true",
        "password=hunter2",
        "host=db PASSWORD = s3cret user=x",
        "postgres://admin:topsecret@db:5432/app",
        "--password",
        "swordfish",
        "--token=abc123",
    ]
    runner = CallbackRunner({"on_reload": argv}, scope="s", timeout_s=5, on_result=results)
    assert runner.run_named("on_reload", "replica")
    assert runner.wait_idle(5)
    [result] = results.items
    assert result.ok
    text = repr(result)
    for secret in ("hunter2", "s3cret", "topsecret", "swordfish", "abc123"):
        assert secret not in text
    assert result.argv[3] == "postgres://admin:***@db:5432/app"
    assert result.argv[-3:] == ("on_reload", "replica", "s")


def test_redact_leaves_ordinary_arguments_alone() -> None:
    argv = ["/usr/local/bin/vip", "--interface", "eth0", "passfile=/x", "on_start"]
    assert redact(argv) == tuple(argv)
