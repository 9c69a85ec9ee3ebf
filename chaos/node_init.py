# PID 1 of a chaos node container (`python -m chaos.node_init /etc/pgha/node.json`): a small
# supervisor that boots the node's processes in order (etcd -> softdog -> agent), writes their pid
# files in /run/pgha, reaps every orphan (PostgreSQL's postmaster is reparented here), forwards
# SIGTERM (agent first, then etcd, then the softdog) and exits. When the softdog emulation fires
# (its log says "fired") or dies, the supervisor exits at once with status 137: the kernel kills
# everything left in the container, as a machine reset does. It protects the rule "a node whose
# agent stalls is fenced before its leader key expires" for the containers: the fence is the whole
# node going down, exactly as with a hardware watchdog. It restarts nothing by itself; the nemesis
# asks for restarts with signals to PID 1: SIGUSR1 starts the agent again if it is not running,
# SIGUSR2 etcd.
#
# Clock faults: with "faketime" in node.json the agent (and PostgreSQL, its child) run with
# libfaketime preloaded and FAKETIME_TIMESTAMP_FILE=/run/pgha/faketime.rc, FAKETIME_NO_CACHE=1,
# FAKETIME_DONT_FAKE_MONOTONIC=1: only the wall clock is skewed (CLOCK_MONOTONIC stays the host's,
# so history times line up), and rewriting the rc file changes the clock at run time. The rc
# syntax (libfaketime 0.9.10, checked in the image by tests/chaos): "+12.5 x1.0001" = wall clock
# 12.5 s ahead, running 100 ppm fast from the moment each process started. The file is written
# at boot only when it does not exist yet, so a clock fault survives a reboot (like a skewed
# hardware clock). Plain standard library: it runs in the image's venv before anything else.
"""The PID-1 supervisor of a chaos node container."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

RUN_DIR = Path("/run/pgha")
LOG_DIR = Path("/var/log/pgha")
FAKETIME_RC = RUN_DIR / "faketime.rc"
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
SOFTDOG_SOCKET = RUN_DIR / "watchdog.sock"
SOFTDOG_LOG = LOG_DIR / "softdog.jsonl"
PGHA_BIN = "/opt/pgha/venv/bin/pgha"
PATRONI_BIN = "/opt/patroni/venv/bin/patroni"
DEFAULT_DATA_DIR = "/var/lib/pgha/data"
DEFAULT_ETCD_DATA_DIR = "/var/lib/pgha/etcd"
RESET_EXIT = 137  # 128 + SIGKILL: what `docker inspect` shows for a killed container
STOP_GRACE_S = {"agent": 60.0, "etcd": 10.0, "softdog": 5.0}
TICK_S = 0.2


@dataclass(frozen=True, slots=True, kw_only=True)
class EtcdSpec:
    """The node's etcd member (node.json "etcd")."""

    name: str
    initial_cluster: str
    state: str = "new"
    client_port: int = 2379
    peer_port: int = 2380
    pre_vote: bool = True
    token: str = "pgha-chaos"
    data_dir: str = DEFAULT_ETCD_DATA_DIR
    host: str | None = None  # advertised address; default: this container's IP
    heartbeat_ms: int | None = None
    election_ms: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FaketimeSpec:
    """The agent's wall clock: offset from true time and rate (1.0001 = 100 ppm fast)."""

    offset_s: float = 0.0
    drift: float = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSpec:
    """node.json, parsed."""

    name: str
    agent: str  # "pgha" | "patroni"
    agent_config: str
    etcd: EtcdSpec | None
    faketime: FaketimeSpec | None
    softdog: bool
    data_dir: str = DEFAULT_DATA_DIR


def parse_node(raw: dict[str, Any]) -> NodeSpec:
    """Check and convert node.json's content (ValueError on a bad value)."""
    if raw.get("agent") not in ("pgha", "patroni"):
        raise ValueError(f"node.json: agent must be 'pgha' or 'patroni', got {raw.get('agent')!r}")
    etcd = EtcdSpec(**raw["etcd"]) if raw.get("etcd") else None
    clock = FaketimeSpec(**raw["faketime"]) if raw.get("faketime") else None
    if clock is not None and clock.drift <= 0:
        raise ValueError(f"node.json: faketime.drift is a rate (1.0 = exact), got {clock.drift}")
    return NodeSpec(
        name=str(raw["name"]),
        agent=raw["agent"],
        agent_config=str(raw.get("agent_config", "/etc/pgha/agent.yaml")),
        etcd=etcd,
        faketime=clock,
        softdog=bool(raw.get("softdog", True)),
        data_dir=str(raw.get("data_dir", DEFAULT_DATA_DIR)),
    )


# ---------------------------------------------------------------- commands and environments


def faketime_rc(offset_s: float, drift: float = 1.0) -> str:
    """The rc file's content for libfaketime 0.9.10: "+12.5 x1.0001" (offset, then rate).

    Debian's libfaketime reads a relative offset in seconds (fractions allowed, or with a unit
    suffix m/h/d/y) and a rate after "x" (1.0001 = 100 ppm fast).
    """
    offset = f"{offset_s:+.6f}".rstrip("0").rstrip(".")
    rate = f"{drift:.9f}".rstrip("0").rstrip(".")
    return f"{offset} x{rate}\n"  # the rate always: a file without "x" keeps the last rate


def faketime_env(rc_path: Path = FAKETIME_RC) -> dict[str, str]:
    """Environment that makes a process (and its children) read its wall clock from rc_path."""
    return {
        "LD_PRELOAD": FAKETIME_LIB,
        "FAKETIME_TIMESTAMP_FILE": str(rc_path),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


def own_address() -> str:
    """This container's IP (docker writes hostname -> IP into /etc/hosts)."""
    return socket.gethostbyname(socket.gethostname())


def etcd_argv(spec: EtcdSpec, host: str) -> list[str]:
    """The etcd 3.4 command line for one member advertising `host`."""
    argv = [
        "/usr/bin/etcd",
        f"--name={spec.name}",
        f"--data-dir={spec.data_dir}",
        f"--listen-client-urls=http://0.0.0.0:{spec.client_port}",
        f"--advertise-client-urls=http://{host}:{spec.client_port}",
        f"--listen-peer-urls=http://0.0.0.0:{spec.peer_port}",
        f"--initial-advertise-peer-urls=http://{host}:{spec.peer_port}",
        f"--initial-cluster={spec.initial_cluster}",
        f"--initial-cluster-state={spec.state}",
        f"--initial-cluster-token={spec.token}",
        f"--pre-vote={'true' if spec.pre_vote else 'false'}",
    ]
    if spec.heartbeat_ms is not None:
        argv.append(f"--heartbeat-interval={spec.heartbeat_ms}")
    if spec.election_ms is not None:
        argv.append(f"--election-timeout={spec.election_ms}")
    return argv


def softdog_argv(node: NodeSpec) -> list[str]:
    """The softdog emulation, killing the agent and PostgreSQL trees when it fires."""
    return [
        PGHA_BIN,
        "softdog",
        f"--socket={SOFTDOG_SOCKET}",
        f"--kill-pidfile={RUN_DIR / 'agent.pid'}",
        f"--kill-pidfile={Path(node.data_dir) / 'postmaster.pid'}",
        f"--log={SOFTDOG_LOG}",
        "--socket-owner=postgres",
    ]


def agent_argv(node: NodeSpec) -> list[str]:
    """`pgha agent --config FILE` or `patroni FILE`."""
    if node.agent == "patroni":
        return [PATRONI_BIN, node.agent_config]
    return [PGHA_BIN, "agent", "--config", node.agent_config]


def agent_env(node: NodeSpec) -> dict[str, str]:
    """The agent's environment: the supervisor's, plus libfaketime when configured."""
    env = dict(os.environ)
    if node.agent == "patroni":
        env.update(HOME="/var/lib/postgresql", USER="postgres", LOGNAME="postgres")
    if node.faketime is not None:
        env.update(faketime_env())
    return env


# ---------------------------------------------------------------- boot


def _say(text: str) -> None:
    print(f"node_init {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def prepare_boot(node: NodeSpec) -> None:
    """Clean what a reset leaves behind: no process of the last boot can still be running.

    Pid files (ours and PostgreSQL's postmaster.pid, whose pid may belong to another process
    after a reboot: container pids restart at 1) and PostgreSQL's socket lock files go.
    """
    for path in (RUN_DIR, LOG_DIR):
        path.mkdir(parents=True, exist_ok=True)
    stale = [RUN_DIR / f"{role}.pid" for role in ("etcd", "softdog", "agent")]
    stale.append(Path(node.data_dir) / "postmaster.pid")
    for sock_dir in (Path("/tmp"), Path("/var/run/postgresql")):
        stale.extend(sock_dir.glob(".s.PGSQL.*"))
    for path in stale:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    if node.faketime is not None and not FAKETIME_RC.exists():
        FAKETIME_RC.write_text(faketime_rc(node.faketime.offset_s, node.faketime.drift))
        FAKETIME_RC.chmod(0o644)


def _write_pid(role: str, pid: int) -> None:
    tmp = RUN_DIR / f".{role}.pid.tmp"
    tmp.write_text(f"{pid}\n", encoding="ascii")
    tmp.rename(RUN_DIR / f"{role}.pid")


# ---------------------------------------------------------------- the supervisor


class Supervisor:
    """Starts the node's processes, reaps, watches the softdog, stops on SIGTERM."""

    def __init__(self, node: NodeSpec) -> None:
        self.node = node
        self.pids: dict[str, int] = {}  # role -> pid, while running
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.signals: list[int] = []
        self.stopping = False
        self.softdog_log: IO[str] | None = None
        self.softdog_partial = ""  # a line the softdog is still writing

    # -- processes

    def start(self, role: str) -> None:
        """Start etcd, softdog or agent (if not running) and write its pid file."""
        if role in self.pids:
            return
        kwargs: dict[str, Any] = {}
        if role == "etcd":
            assert self.node.etcd is not None
            argv = etcd_argv(self.node.etcd, self.node.etcd.host or own_address())
        elif role == "softdog":
            argv = softdog_argv(self.node)
        else:
            argv, kwargs["env"] = agent_argv(self.node), agent_env(self.node)
            if self.node.agent == "patroni":
                kwargs.update(user="postgres", group="postgres", extra_groups=[])
        name = {"agent": "agent.log", "etcd": "etcd.log", "softdog": "softdog.out"}[role]
        with (LOG_DIR / name).open("ab") as out:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd="/", start_new_session=True, **kwargs,
            )  # fmt: skip
        self.pids[role] = proc.pid
        self.procs[proc.pid] = proc
        _write_pid(role, proc.pid)
        _say(f"started {role} pid {proc.pid}: {' '.join(argv)}")

    def reap(self) -> None:
        """Collect every exited child (PID 1 duty: orphans are reparented here)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            proc = self.procs.pop(pid, None)
            if proc is None:
                continue
            proc.returncode = os.waitstatus_to_exitcode(status)
            role = next(r for r, p in self.pids.items() if p == pid)
            del self.pids[role]
            with contextlib.suppress(FileNotFoundError):
                (RUN_DIR / f"{role}.pid").unlink()
            _say(f"{role} pid {pid} exited with {proc.returncode}")

    # -- the softdog

    def open_softdog_log(self) -> None:
        """Follow the softdog's event log from its current end (earlier boots' lines ignored)."""
        SOFTDOG_LOG.touch()
        self.softdog_log = SOFTDOG_LOG.open(encoding="utf-8")
        self.softdog_log.seek(0, os.SEEK_END)

    def softdog_fired(self) -> bool:
        """A new "fired" event in the softdog's log."""
        if self.softdog_log is None:
            return False
        text = self.softdog_partial + self.softdog_log.read()
        *lines, self.softdog_partial = text.split("\n")
        for line in lines:
            with contextlib.suppress(ValueError, AttributeError):
                if json.loads(line).get("event") == "fired":
                    return True
        return False

    def wait_softdog_socket(self, timeout_s: float = 10.0) -> None:
        """The agent's watchdog device must exist before it starts (mode required)."""
        deadline = time.monotonic() + timeout_s
        while not SOFTDOG_SOCKET.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
            self.reap()

    # -- signals and the loop

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.signals.append(signum)

    def install_signals(self) -> int:
        """Handlers that queue the signal; returns the wakeup pipe to select on."""
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        signal.set_wakeup_fd(write_fd)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGUSR1,
                       signal.SIGUSR2):  # fmt: skip
            signal.signal(signum, self._on_signal)
        return read_fd

    def reset(self, why: str) -> None:
        """The machine resets: exit at once; the kernel kills the rest of the container."""
        _say(f"reset: {why}; exiting {RESET_EXIT}")
        os._exit(RESET_EXIT)

    def check_reset(self) -> None:
        """Exit 137 when the softdog fired or died (while it should be running)."""
        if not self.node.softdog:
            return
        if self.softdog_fired():
            self.reset("softdog fired")
        if "softdog" not in self.pids and not self.stopping:
            self.reset("softdog exited")

    def handle_signals(self) -> None:
        """Act on queued signals: TERM/INT stop the node, USR1/USR2 start agent/etcd again."""
        while self.signals:
            signum = self.signals.pop(0)
            if signum in (signal.SIGTERM, signal.SIGINT):
                self.stopping = True
            elif signum == signal.SIGUSR1 and not self.stopping:
                self.start("agent")
            elif signum == signal.SIGUSR2 and self.node.etcd is not None and not self.stopping:
                self.start("etcd")

    def tick(self, wake_fd: int, wait_s: float = TICK_S) -> None:
        """Sleep until a signal or `wait_s`, then reap, check the softdog and act on signals."""
        select.select([wake_fd], [], [], wait_s)
        with contextlib.suppress(BlockingIOError):
            os.read(wake_fd, 512)
        self.reap()
        self.check_reset()
        self.handle_signals()

    def stop_role(self, role: str, wake_fd: int) -> None:
        """SIGTERM (then SIGCONT, so a paused process can act on it); SIGKILL after its grace."""
        pid = self.pids.get(role)
        if pid is None:
            return
        for signum in (signal.SIGTERM, signal.SIGCONT):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        deadline = time.monotonic() + STOP_GRACE_S[role]
        while role in self.pids and time.monotonic() < deadline:
            self.tick(wake_fd, 0.1)
        if role in self.pids:
            _say(f"{role} pid {pid} ignored SIGTERM; SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def run(self) -> int:
        """Boot the node and supervise it until SIGTERM; the exit status."""
        wake_fd = self.install_signals()
        if self.node.etcd is not None:
            self.start("etcd")
        if self.node.softdog:
            self.open_softdog_log()
            self.start("softdog")
            self.wait_softdog_socket()
        self.start("agent")
        while not self.stopping:
            self.tick(wake_fd)
        _say("SIGTERM: stopping agent, etcd, softdog")
        for role in ("agent", "etcd", "softdog"):
            self.stop_role(role, wake_fd)
        self.reap()
        return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: `python -m chaos.node_init /etc/pgha/node.json`."""
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0] if args else "/etc/pgha/node.json")
    node = parse_node(json.loads(path.read_text(encoding="utf-8")))
    prepare_boot(node)
    _say(f"node {node.name}: agent {node.agent}, etcd {'yes' if node.etcd else 'no'}")
    return Supervisor(node).run()


if __name__ == "__main__":
    sys.exit(main())
