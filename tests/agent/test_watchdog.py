"""The watchdog ports and the softdog emulation, with real daemon, client and target processes."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pgha.agent.watchdog.device import (
    DeviceWatchdog,
    EmulatedWatchdog,
    NullWatchdog,
    open_watchdog,
    whole_seconds,
)
from tests.probes import holds_for, wait_for

pytestmark = pytest.mark.agent

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
SLACK_S = 0.5  # the emulation must have killed its targets within timeout + this

# A node's process: it forks a child of its own (to show that descendants die too) and prints
# the child's pid.
TARGET = """
import subprocess, time
child = subprocess.Popen(["sleep", "1000"])
print(child.pid, flush=True)
time.sleep(1000)  # lives until the emulation kills it
"""

# An agent stand-in: arms the emulation and kicks it every 0.2 s until frozen or killed.
CLIENT = """
import sys, time
from pgha.agent.watchdog.device import EmulatedWatchdog
wd = EmulatedWatchdog(sys.argv[1])
if not wd.arm(1.0):
    sys.exit(3)
print("armed", flush=True)
while True:
    wd.kick()
    time.sleep(0.2)  # the kick pace
"""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Node:
    """What the tests start: each process is stopped at the end, even when the test fails."""

    workdir: Path
    daemons: list[subprocess.Popen[bytes]]
    groups: list[subprocess.Popen[bytes]]  # started in their own session: killpg at the end

    def target(self, pidfile: Path) -> tuple[subprocess.Popen[bytes], int]:
        """Start a target process; write its pid to `pidfile`; (process, its child's pid)."""
        proc = self._spawn([sys.executable, "-c", TARGET])
        assert proc.stdout is not None
        child_pid = int(proc.stdout.readline())
        pidfile.write_text(f"{proc.pid}\n{self.workdir}\n")  # shaped like postmaster.pid
        return proc, child_pid

    def client(self, sock: Path, pidfile: Path) -> subprocess.Popen[bytes]:
        """Start an agent stand-in that arms (1 s) and kicks; its pid goes to `pidfile`."""
        proc = self._spawn([sys.executable, "-c", CLIENT, str(sock)])
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"armed\n"
        pidfile.write_text(f"{proc.pid}\n")
        return proc

    def _spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, env=ENV, start_new_session=True)
        self.groups.append(proc)
        return proc


@pytest.fixture
def node(workdir: Path) -> Iterator[Node]:
    """Processes of one test, cleaned up afterwards."""
    started = Node(workdir=workdir, daemons=[], groups=[])
    yield started
    for proc in started.groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    for proc in started.daemons:
        _stop(proc)


@dataclass
class Daemon:
    """A running softdog emulation, with the agent's and PostgreSQL's pid files next to it."""

    proc: subprocess.Popen[bytes]
    work: Path
    sock: Path = field(init=False)
    log: Path = field(init=False)
    agent_pid: Path = field(init=False)
    postmaster_pid: Path = field(init=False)

    def __post_init__(self) -> None:
        self.sock, self.log = self.work / "softdog.sock", self.work / "softdog.jsonl"
        self.agent_pid, self.postmaster_pid = self.work / "agent.pid", self.work / "postmaster.pid"

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The logged events (all, or those called `name`)."""
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        events = [json.loads(line) for line in lines]
        return [e for e in events if name is None or e["event"] == name]


def start_daemon(node: Node, *extra: str) -> Daemon:
    """Start `python -m pgha.agent.watchdog.softdog ... *extra` and wait until it answers."""
    work = node.workdir
    files = ["--socket", str(work / "softdog.sock"), "--log", str(work / "softdog.jsonl")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgha.agent.watchdog.softdog", *files, *extra], env=ENV
    )
    node.daemons.append(proc)
    daemon = Daemon(proc=proc, work=work)
    available = EmulatedWatchdog(str(daemon.sock)).available
    wait_for("the emulation to answer", available, 10.0, every_s=0.01)
    return daemon


@pytest.fixture
def daemon(node: Node) -> Daemon:
    """The emulation, killing the trees of the agent's and PostgreSQL's pid files."""
    work = node.workdir
    pidfiles = ["--kill-pidfile", str(work / "agent.pid"), "--kill-pidfile"]
    return start_daemon(node, *pidfiles, str(work / "postmaster.pid"))


def proc_stat(pid: int) -> tuple[str, int]:
    """(state, ppid) of a process; ("gone", 0) when there is none."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "gone", 0
    state, ppid = raw[raw.rfind(")") + 2 :].split()[:2]
    return state, int(ppid)


def gone(pid: int) -> bool:
    """The process no longer runs (missing, or a zombie not yet reaped)."""
    return proc_stat(pid)[0] in ("gone", "Z")


def all_gone(pids: list[int]) -> bool:
    """Every one of `pids` is gone."""
    return all(gone(pid) for pid in pids)


def raw_connect(sock: Path) -> socket.socket:
    """A plain protocol connection to the emulation."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(2.0)
    conn.connect(str(sock))
    return conn


def ask(conn: socket.socket, line: str) -> str:
    """Send one command and read the reply line ('' when the emulation closed the connection)."""
    conn.sendall(line.encode() + b"\n")
    reply = b""
    while not reply.endswith(b"\n"):
        data = conn.recv(256)
        if not data:
            break
        reply += data
    return reply.decode().strip()


# ---------------------------------------------------------------- the emulation


def test_kicked_node_survives_and_starved_node_is_killed_in_time(
    node: Node, daemon: Daemon
) -> None:
    agent, agent_child = node.target(daemon.agent_pid)
    postmaster, postmaster_child = node.target(daemon.postmaster_pid)
    victims = [agent.pid, agent_child, postmaster.pid, postmaster_child]
    wd = EmulatedWatchdog(str(daemon.sock))
    assert wd.arm(1.0)
    for _ in range(8):  # 1.6 s of kicks: longer than the timeout
        time.sleep(0.2)  # the pace of an agent's kicks: the point of the test
        wd.kick()
        assert not any(gone(pid) for pid in victims)
    last_kick_mono = time.monotonic()
    wait_for("the victims killed", lambda: all_gone(victims), 1.0 + SLACK_S + 0.5, every_s=0.01)
    elapsed_s = time.monotonic() - last_kick_mono
    assert 1.0 - 0.1 <= elapsed_s <= 1.0 + SLACK_S
    fired = daemon.events("fired")
    assert len(fired) == 1
    assert set(victims) <= set(fired[0]["killed"])
    assert fired[0]["late_s"] < 0.1
    assert fired[0]["timeout"] == 1
    assert {"armed", "kicked"} <= {e["event"] for e in daemon.events()}
    # after firing the emulation is disarmed, and a later open arms it again
    assert ask(raw_connect(daemon.sock), "PING") == "OK 0"
    assert wd.arm(2.0)
    assert ask(raw_connect(daemon.sock), "PING") == "OK 2"
    wd.disable()
    assert ask(raw_connect(daemon.sock), "PING") == "OK 0"


def test_magic_close_disarms(node: Node, daemon: Daemon) -> None:
    target, child = node.target(daemon.postmaster_pid)
    wd = EmulatedWatchdog(str(daemon.sock))
    assert wd.arm(1.0)
    wd.kick()
    wd.disable()
    holds_for(
        "the target alive after the magic close",
        lambda: not gone(target.pid) and not gone(child),
        1.0 + SLACK_S + 0.1,
    )
    events = [e["event"] for e in daemon.events()]
    assert "magic_close" in events
    assert "fired" not in events


def test_close_without_magic_still_fires(node: Node, daemon: Daemon) -> None:
    target, child = node.target(daemon.postmaster_pid)
    conn = raw_connect(daemon.sock)
    assert ask(conn, "TIMEOUT 1") == "OK 1"
    conn.close()
    closed_mono = time.monotonic()
    wait_for(
        "the target killed", lambda: all_gone([target.pid, child]), 1.0 + SLACK_S, every_s=0.01
    )
    assert time.monotonic() - closed_mono >= 0.9
    events = [e["event"] for e in daemon.events()]
    assert events.index("unexpected_close") < events.index("fired")


def test_frozen_agent_is_killed_with_its_node(node: Node, daemon: Daemon) -> None:
    """SIGSTOP of the process holding the emulation: it still fires and kills the stopped one."""
    client = node.client(daemon.sock, daemon.agent_pid)
    postmaster, postmaster_child = node.target(daemon.postmaster_pid)
    holds_for(  # the client keeps it alive past its 1 s timeout
        "the kicking client and the postmaster alive",
        lambda: client.poll() is None and not gone(postmaster.pid),
        1.4,
    )
    os.kill(client.pid, signal.SIGSTOP)
    frozen_mono = time.monotonic()
    victims = [client.pid, postmaster.pid, postmaster_child]
    wait_for("the node killed", lambda: all_gone(victims), 1.0 + SLACK_S, every_s=0.01)
    assert time.monotonic() - frozen_mono <= 1.0 + SLACK_S
    assert client.wait(timeout=2) == -signal.SIGKILL
    assert postmaster.wait(timeout=2) == -signal.SIGKILL
    assert set(victims) <= set(daemon.events("fired")[0]["killed"])


def test_killed_agent_does_not_stop_the_emulation(node: Node, daemon: Daemon) -> None:
    client = node.client(daemon.sock, daemon.agent_pid)
    postmaster, postmaster_child = node.target(daemon.postmaster_pid)
    os.kill(client.pid, signal.SIGKILL)
    wait_for(
        "the postmaster killed",
        lambda: all_gone([postmaster.pid, postmaster_child]),
        1.0 + SLACK_S,
        every_s=0.01,
    )
    assert "unexpected_close" in [e["event"] for e in daemon.events()]


def test_second_open_is_refused_while_one_is_open(node: Node, daemon: Daemon) -> None:
    first = EmulatedWatchdog(str(daemon.sock))
    assert first.arm(5.0)
    probe = raw_connect(daemon.sock)
    assert ask(probe, "PING") == "OK 5"  # probing never opens
    assert ask(probe, "TIMEOUT 3") == "ERR busy"
    assert probe.recv(16) == b""  # refused and closed
    second = EmulatedWatchdog(str(daemon.sock))
    assert second.available()
    assert not second.arm(3.0)
    assert second.last_error is not None
    first.kick()  # the holder is not disturbed
    assert first.last_error is None
    assert ask(raw_connect(daemon.sock), "PING") == "OK 5"
    assert len(daemon.events("refused")) == 2
    first.disable()
    assert second.arm(3.0)  # free again
    second.disable()


def test_invalid_commands_change_nothing(node: Node, daemon: Daemon) -> None:
    conn = raw_connect(daemon.sock)
    assert ask(conn, "TIMEOUT 0").startswith("ERR")
    assert ask(conn, "TIMEOUT soon").startswith("ERR")
    assert ask(conn, "TIMEOUT 65536").startswith("ERR")
    assert ask(conn, "REBOOT").startswith("ERR")
    assert ask(conn, "PING") == "OK 0"
    assert "armed" not in [e["event"] for e in daemon.events()]


def test_keepalive_first_opens_with_the_default_timeout(node: Node) -> None:
    work = node.workdir
    daemon = start_daemon(node, "--kill-pidfile", str(work / "none.pid"))
    conn = raw_connect(daemon.sock)
    assert ask(conn, "KEEPALIVE") == "OK 60"
    assert ask(conn, "V") == "OK 60"
    conn.close()
    wait_for("the magic close logged", lambda: daemon.events("magic_close"), 2.0, every_s=0.01)


def test_socket_is_given_to_the_agent_user(node: Node) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    work = node.workdir
    owner = ("--socket-owner", "postgres", "--socket-mode", "0660")
    daemon = start_daemon(node, "--kill-pidfile", str(work / "none.pid"), *owner)
    info = daemon.sock.stat()
    assert info.st_uid == pwd.getpwnam("postgres").pw_uid
    assert stat.S_IMODE(info.st_mode) == 0o660


def test_sigterm_stops_the_daemon_cleanly(node: Node, daemon: Daemon) -> None:
    daemon.proc.terminate()
    assert daemon.proc.wait(timeout=3) == 0
    assert not daemon.sock.exists()
    assert daemon.events()[-1]["event"] == "stopped"


def test_a_second_daemon_on_the_same_socket_refuses_to_start(node: Node, daemon: Daemon) -> None:
    argv = [sys.executable, "-m", "pgha.agent.watchdog.softdog", "--socket", str(daemon.sock)]
    second = subprocess.run(
        [*argv, "--kill-all"], env=ENV, capture_output=True, timeout=10, check=False
    )
    assert second.returncode != 0
    assert EmulatedWatchdog(str(daemon.sock)).available()


def test_kill_all_kills_everything_in_its_pid_namespace_but_itself(node: Node) -> None:
    """Container mode, in a private pid namespace (so nothing outside it can be hit)."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs unshare(1) and root for a private pid namespace")
    work = node.workdir
    # pid 1 of the namespace (a shell) guards that this really is a fresh namespace, starts two
    # sleepers and the daemon; a namespace's init ignores SIGKILL from inside, so it stays.
    script = (
        '[ "$$" = 1 ] || exit 99; sleep 1000 & sleep 1000 & '
        f"{sys.executable} -m pgha.agent.watchdog.softdog "
        '--socket "$1" --log "$2" --kill-all & wait'
    )
    sock, log = work / "softdog.sock", work / "softdog.jsonl"
    argv = ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", script, "sh"]
    unshare = subprocess.Popen([*argv, str(sock), str(log)], env=ENV)
    try:
        try:
            wait_for("the emulation", EmulatedWatchdog(str(sock)).available, 10.0, every_s=0.01)
        except AssertionError:
            pytest.skip(f"no private pid namespace here (unshare exited {unshare.poll()})")
        wd = EmulatedWatchdog(str(sock))
        assert wd.arm(1.0)
        wait_for(
            "the emulation to fire",
            lambda: "fired" in log.read_text(),
            1.0 + SLACK_S + 0.5,
            every_s=0.01,
        )
        events = [json.loads(line) for line in log.read_text().splitlines()]
        daemon_pid = next(e["pid"] for e in events if e["event"] == "started")
        killed = next(e["killed"] for e in events if e["event"] == "fired")
        assert len(killed) >= 2  # the two sleepers (pids as seen inside the namespace)
        assert daemon_pid not in killed
        assert wd.available()  # the daemon survived its own reset
    finally:
        _kill_namespace(unshare)


def _kill_namespace(unshare: subprocess.Popen[bytes]) -> None:
    """Kill the namespace's init (its death kills the namespace), then unshare itself."""
    for pid in (int(name) for name in os.listdir("/proc") if name.isdigit()):
        if proc_stat(pid)[1] == unshare.pid:
            os.kill(pid, signal.SIGKILL)
    _stop(unshare)


# ---------------------------------------------------------------- the port classes


def test_emulated_watchdog_without_a_daemon(workdir: Path) -> None:
    wd = EmulatedWatchdog(str(workdir / "missing.sock"))
    assert not wd.available()
    assert not wd.arm(5.0)
    assert wd.last_error is not None
    wd.kick()
    wd.disable()


def test_emulated_timeout_is_whole_seconds_rounded_down(node: Node, daemon: Daemon) -> None:
    wd = EmulatedWatchdog(str(daemon.sock))
    assert not wd.arm(0.5)  # below the API's one second: refused, nothing opened
    assert ask(raw_connect(daemon.sock), "PING") == "OK 0"
    assert wd.arm(2.7)
    assert ask(raw_connect(daemon.sock), "PING") == "OK 2"
    wd.disable()


def test_emulated_watchdog_rearms_after_the_emulation_restarts(node: Node, daemon: Daemon) -> None:
    wd = EmulatedWatchdog(str(daemon.sock))
    assert wd.arm(5.0)
    daemon.proc.terminate()
    assert daemon.proc.wait(timeout=3) == 0
    work = node.workdir
    again = start_daemon(node, "--kill-pidfile", str(work / "postmaster.pid"))
    wd.kick()  # the old connection is dead: the kick opens the new emulation
    assert wd.last_error is None
    assert ask(raw_connect(again.sock), "PING") == "OK 5"
    wd.disable()


def test_device_watchdog_missing_device(workdir: Path) -> None:
    wd = DeviceWatchdog(str(workdir / "watchdog"))
    assert not wd.available()
    assert not wd.arm(10.0)
    assert wd.last_error is not None
    wd.kick()
    wd.disable()


def test_device_watchdog_refuses_a_regular_file(workdir: Path) -> None:
    path = workdir / "watchdog"
    path.write_bytes(b"")
    wd = DeviceWatchdog(str(path))
    assert not wd.available()
    assert not wd.arm(10.0)
    assert path.read_bytes() == b""  # not opened, nothing written


def test_device_watchdog_on_a_char_device_that_is_no_watchdog() -> None:
    """/dev/null is a character device without the watchdog ioctls: arming must fail."""

    def open_dev_null() -> int:
        fds = os.listdir("/proc/self/fd")
        return sum(1 for fd in fds if os.path.realpath(f"/proc/self/fd/{fd}") == "/dev/null")

    before = open_dev_null()
    wd = DeviceWatchdog("/dev/null")
    assert wd.available()
    assert not wd.arm(10.0)
    assert wd.last_error is not None
    assert open_dev_null() == before  # the failed arm left nothing open
    wd.kick()
    wd.disable()


@pytest.mark.skipif(
    not Path("/dev/watchdog").exists() or os.environ.get("PGHA_TEST_REAL_WATCHDOG") != "1",
    reason="needs a real /dev/watchdog (absent on this kernel: no softdog module) and "
    "PGHA_TEST_REAL_WATCHDOG=1, because a test failure could reset the machine",
)
def test_device_watchdog_real_device() -> None:
    wd = DeviceWatchdog("/dev/watchdog")
    assert wd.available()
    assert wd.arm(30.0)
    wd.kick()
    assert wd.last_error is None
    wd.disable()
    assert wd.last_error is None


def test_open_watchdog_picks_the_port(node: Node, daemon: Daemon) -> None:
    null = open_watchdog(None)
    assert isinstance(null, NullWatchdog)
    assert not null.available()
    assert not null.arm(10.0)
    assert isinstance(open_watchdog(""), NullWatchdog)
    emulated = open_watchdog(f"softdog:{daemon.sock}")
    assert isinstance(emulated, EmulatedWatchdog)
    assert emulated.path == str(daemon.sock)
    assert isinstance(open_watchdog(str(daemon.sock)), EmulatedWatchdog)
    assert isinstance(open_watchdog(str(node.workdir / "later.sock")), EmulatedWatchdog)
    assert isinstance(open_watchdog("/dev/null"), DeviceWatchdog)
    assert isinstance(open_watchdog("/dev/watchdog-pgha-absent"), DeviceWatchdog)


@pytest.mark.parametrize(
    ("timeout_s", "whole"), [(25.0, 25), (2.7, 2), (1.0, 1), (0.99, None), (24.9999999999, 25)]
)
def test_whole_seconds_never_longer_than_asked(timeout_s: float, whole: int | None) -> None:
    assert whole_seconds(timeout_s) == whole
