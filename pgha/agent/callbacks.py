# User callbacks (Patroni's convention): each configured command is an argument list, never a
# shell string, run as `argv + [action, role, scope]` in its own process group with a time limit.
# on_start, on_stop, on_restart, on_reload and on_role_change run in the background, one at a
# time: one still running when the next starts is killed. pre_promote runs synchronously: it is a
# fencing hook, and only exit 0 within the limit lets the promotion go on. The safety rules here:
# no shell interprets configured text, no callback outlives its limit, a callback that cannot run
# is a reported failure (never an exception into the loop), and no password reaches a report.
"""`CallbackRunner`: run user callbacks with a time limit and report each run."""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pgha.engine.actions import Callback

CALLBACK_NAMES = frozenset(
    {"on_start", "on_stop", "on_restart", "on_reload", "on_role_change", "pre_promote"}
)
SYNCHRONOUS = frozenset({"pre_promote"})

EXITED = "exited"
TIMEOUT = "timeout"
KILLED = "killed"  # superseded by the next background callback, or by close()
CANNOT_EXECUTE = "error: cannot execute"

_LOG = logging.getLogger(__name__)
_SECRET_KEY = re.compile(r"(?i)\b(password|passwd|secret|token)(\s*[=:]\s*)([^\s&]+)")
_URI_PASSWORD = re.compile(r"(\w+://[^:/@\s]*:)([^@\s]+)(@)")
_SECRET_FLAGS = frozenset({"--password", "--passwd", "--secret", "--token"})


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackResult:
    """One callback run: `outcome` is EXITED (see `exit_code`), TIMEOUT, KILLED, CANNOT_EXECUTE."""

    name: str
    argv: tuple[str, ...]  # as run, with secrets replaced by "***"
    outcome: str
    exit_code: int | None
    duration_s: float

    @property
    def ok(self) -> bool:
        """True when the callback exited 0 on its own within the time limit."""
        return self.outcome == EXITED and self.exit_code == 0


def redact(argv: Sequence[str]) -> tuple[str, ...]:
    """`argv` with passwords, secrets and tokens (key=value, URIs, --password X) replaced."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("***")
        else:
            text = _SECRET_KEY.sub(r"\1\2***", arg)
            out.append(_URI_PASSWORD.sub(r"\1***\3", text))
        hide_next = arg in _SECRET_FLAGS
    return tuple(out)


def validate_commands(commands: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """The commands as tuples; ValueError for an unknown name or a command that is not a list."""
    valid: dict[str, tuple[str, ...]] = {}
    for name, argv in commands.items():
        if name not in CALLBACK_NAMES:
            raise ValueError(f"unknown callback {name!r}; allowed: {sorted(CALLBACK_NAMES)}")
        if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
            raise ValueError(f"callback {name!r} must be a non-empty list of arguments")
        valid[name] = tuple(argv)
    return valid


@dataclass(slots=True, kw_only=True)
class _Running:
    """The background callback in flight."""

    name: str
    proc: subprocess.Popen[bytes]
    argv: tuple[str, ...]
    started_mono: float
    killed: bool = False


class CallbackRunner:
    """Runs the configured callbacks (implements pgha.ports.Callbacks)."""

    def __init__(
        self,
        commands: Mapping[str, Sequence[str]],
        *,
        scope: str,
        timeout_s: float,
        on_result: Callable[[CallbackResult], None] | None = None,
        os_user: str | None = None,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("callback timeout_s must be positive")
        self.commands = validate_commands(commands)
        self.scope = scope
        self.timeout_s = timeout_s
        self.on_result = on_result
        self.os_user = os_user
        self._lock = threading.Lock()
        self._running: _Running | None = None
        self._threads: list[threading.Thread] = []

    def run(self, event: Callback, role: str) -> None:
        """Start the callback for an engine event in the background (port method)."""
        self.run_named(event.value, role)

    def run_named(self, name: str, role: str) -> bool:
        """Run callback `name` with `role`; not configured -> True.

        pre_promote: synchronous, True only on exit 0 within the limit. The others: started in
        the background (killing one still running), True when it could be started.
        """
        if name not in CALLBACK_NAMES:
            raise ValueError(f"unknown callback {name!r}")
        command = self.commands.get(name)
        if command is None:
            return True
        argv = (*command, name, role, self.scope)
        if name in SYNCHRONOUS:
            return self._run_sync(name, argv)
        return self._start_async(name, argv)

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait for the background callbacks to finish; False if one still runs after timeout_s."""
        deadline_mono = time.monotonic() + timeout_s
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline_mono - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)

    def close(self) -> None:
        """Kill the background callback still running, if any (agent shutdown)."""
        with self._lock:
            self._kill_running()

    # ------------------------------------------------------------ running

    def _run_sync(self, name: str, argv: tuple[str, ...]) -> bool:
        started_mono = time.monotonic()
        proc = self._spawn(argv)
        if proc is None:
            self._report(name, argv, CANNOT_EXECUTE, None, started_mono)
            return False
        exit_code = self._wait(proc)
        outcome = TIMEOUT if exit_code is None else EXITED
        result = self._report(name, argv, outcome, exit_code, started_mono)
        return result.ok

    def _start_async(self, name: str, argv: tuple[str, ...]) -> bool:
        with self._lock:  # the previous one is killed and this one started as one step
            self._kill_running()
            started_mono = time.monotonic()
            proc = self._spawn(argv)
            if proc is not None:
                running = _Running(name=name, proc=proc, argv=argv, started_mono=started_mono)
                thread = threading.Thread(
                    target=self._watch, args=(running,), name=f"callback-{name}", daemon=True
                )
                self._running = running
                self._threads = [t for t in self._threads if t.is_alive()] + [thread]
                thread.start()
        if proc is None:  # reported outside the lock: the reporter may call back in
            self._report(name, argv, CANNOT_EXECUTE, None, started_mono)
            return False
        return True

    def _watch(self, running: _Running) -> None:
        exit_code = self._wait(running.proc)
        with self._lock:
            if self._running is running:
                self._running = None
            killed = running.killed
        outcome = KILLED if killed else (TIMEOUT if exit_code is None else EXITED)
        code = exit_code if outcome == EXITED else None
        self._report(running.name, running.argv, outcome, code, running.started_mono)

    def _kill_running(self) -> None:
        """Kill the background callback's process group (caller holds the lock)."""
        running, self._running = self._running, None
        if running is not None and running.proc.poll() is None:
            running.killed = True
            _kill_group(running.proc.pid)

    def _wait(self, proc: subprocess.Popen[bytes]) -> int | None:
        """The exit code; None when the time limit ran out (the process group is then killed)."""
        try:
            return proc.wait(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.wait()
            return None

    def _spawn(self, argv: tuple[str, ...]) -> subprocess.Popen[bytes] | None:
        """Start `argv` in a new session (its own process group); None when it cannot run."""
        try:
            return subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, start_new_session=True, **self._identity()
            )
        except (OSError, KeyError, ValueError, subprocess.SubprocessError):
            return None

    def _identity(self) -> dict[str, Any]:
        """Popen arguments that drop to os_user (only when running as root)."""
        if self.os_user is None or os.geteuid() != 0:
            return {}
        entry = pwd.getpwnam(self.os_user)
        groups = os.getgrouplist(self.os_user, entry.pw_gid)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": groups}

    def _report(
        self,
        name: str,
        argv: tuple[str, ...],
        outcome: str,
        exit_code: int | None,
        started_mono: float,
    ) -> CallbackResult:
        result = CallbackResult(
            name=name,
            argv=redact(argv),
            outcome=outcome,
            exit_code=exit_code,
            duration_s=time.monotonic() - started_mono,
        )
        if self.on_result is None:
            _LOG.info("callback %s: %s %s", name, outcome, exit_code)
            return result
        try:
            self.on_result(result)
        except Exception:  # a broken reporter must not break the loop or leak the thread
            _LOG.exception("callback result reporter failed")
        return result


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(OSError):  # already gone
        os.killpg(pgid, signal.SIGKILL)
