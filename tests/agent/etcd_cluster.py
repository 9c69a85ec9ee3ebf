"""A real N-member etcd cluster on 127.0.0.1 for the agent tests.

`EtcdCluster` starts `etcd` processes (etcd 3.4 flags) on free client and peer ports with short
raft timings (heartbeat 100 ms, election 1000 ms, pre-vote on), waits until each member answers
`/health`, and offers the faults the tests need: stop, SIGKILL, SIGSTOP/SIGCONT and restart of one
member, plus the current raft leader. Every process it starts is stopped by its pid at `stop()`
(also on the way out of the context manager, whatever happened); nothing else is touched. Each
member writes its log to `<base_dir>/<name>.log`; `logs()` returns their tails for failure output.

Typical use::

    with EtcdCluster.running(tmp_dir, size=3) as etcd:
        hosts = etcd.endpoints            # [("127.0.0.1", 40123), ...]
        etcd.pause("etcd1"); ...; etcd.resume("etcd1")
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.agent.conftest import free_port
from tests.probes import wait_for

ETCD_BIN = shutil.which("etcd") or "/usr/bin/etcd"
HOST = "127.0.0.1"
START_ATTEMPTS = 3  # a free port can be taken by someone else before etcd binds it


@dataclass(kw_only=True)
class EtcdMember:
    """One member: its name, ports, data directory and (while started) its process."""

    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    paused: bool = False

    @property
    def client_url(self) -> str:
        return f"http://{HOST}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{HOST}:{self.peer_port}"

    @property
    def running(self) -> bool:
        """Started and not exited (a paused member is still running)."""
        return self.process is not None and self.process.poll() is None


class EtcdCluster:
    """N etcd members on loopback; see the module docstring."""

    def __init__(
        self,
        base_dir: Path | None = None,
        *,
        size: int = 3,
        heartbeat_ms: int = 100,
        election_ms: int = 1000,
        pre_vote: bool = True,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        """Prepare (not start) `size` members named etcd1..etcdN under `base_dir` (a temp dir
        removed at stop() when None)."""
        self._own_dir = base_dir is None
        self.base_dir = (
            Path(tempfile.mkdtemp(prefix="pgha-etcd-")) if base_dir is None else base_dir
        )
        self.size = size
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.pre_vote = pre_vote
        self.extra_args = extra_args
        self.members: list[EtcdMember] = []

    # ------------------------------------------------------------------ life cycle

    @classmethod
    @contextlib.contextmanager
    def running(
        cls,
        base_dir: Path | None = None,
        *,
        size: int = 3,
        heartbeat_ms: int = 100,
        election_ms: int = 1000,
        pre_vote: bool = True,
        extra_args: tuple[str, ...] = (),
    ) -> Iterator[EtcdCluster]:
        """Context manager: a started, healthy cluster, stopped (by pid) on the way out."""
        cluster = cls(
            base_dir,
            size=size,
            heartbeat_ms=heartbeat_ms,
            election_ms=election_ms,
            pre_vote=pre_vote,
            extra_args=extra_args,
        )
        try:
            yield cluster.start()
        finally:
            cluster.stop()

    def __enter__(self) -> EtcdCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout_s: float = 20.0) -> EtcdCluster:
        """Start every member on fresh ports and wait until all are healthy."""
        for attempt in range(START_ATTEMPTS):
            self._prepare_members(attempt)
            for member in self.members:
                self._spawn(member, state="new")
            try:
                self.wait_healthy(timeout_s)
                return self
            except AssertionError:
                exited = any(
                    m.process is not None and m.process.poll() is not None for m in self.members
                )
                self._stop_processes()
                if not exited or attempt == START_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop every member this object started, by pid: SIGCONT, SIGTERM, SIGKILL after 1 s."""
        self._stop_processes()
        if self._own_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    # ------------------------------------------------------------------ faults

    def kill(self, name: str) -> None:
        """SIGKILL one member (its data directory stays for restart())."""
        member = self.member(name)
        if member.process is not None and member.process.poll() is None:
            member.process.kill()
            member.process.wait(timeout=10)
        member.paused = False

    def terminate(self, name: str) -> None:
        """Stop one member gracefully (SIGTERM, SIGKILL after 10 s; a leader hands over first)."""
        _stop_process(self.member(name))

    def pause(self, name: str) -> None:
        """SIGSTOP one member: it keeps its sockets but answers nothing."""
        member = self.member(name)
        if member.process is None or member.process.poll() is not None:
            raise AssertionError(f"etcd member {name} is not running")
        os.kill(member.process.pid, signal.SIGSTOP)
        member.paused = True

    def resume(self, name: str) -> None:
        """SIGCONT a paused member."""
        member = self.member(name)
        if member.process is not None and member.process.poll() is None:
            os.kill(member.process.pid, signal.SIGCONT)
        member.paused = False

    def restart(self, name: str, *, wait: bool = True, timeout_s: float = 20.0) -> None:
        """Start a member again with its data directory (SIGKILL first if it runs)."""
        self.kill(name)
        member = self.member(name)
        self._spawn(member, state="existing")
        if wait:
            self.wait_member_healthy(name, timeout_s)

    # ------------------------------------------------------------------ queries

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        """Client endpoints (host, port) of every member, in member order (running or not)."""
        return [(HOST, m.client_port) for m in self.members]

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.members]

    def member(self, name: str) -> EtcdMember:
        for member in self.members:
            if member.name == name:
                return member
        raise KeyError(name)

    def endpoint(self, name: str) -> tuple[str, int]:
        return (HOST, self.member(name).client_port)

    def leader(self, timeout_s: float = 10.0) -> str:
        """Name of the member that is raft leader now (waits for one up to `timeout_s`)."""

        def leader() -> str | None:
            for member in self.members:
                if member.running and not member.paused and _is_leader(member):
                    return member.name
            return None

        return wait_for("an etcd leader", leader, timeout_s, every_s=0.05, details=self.logs)

    def healthy(self, name: str) -> bool:
        """The member answers `/health` with health true (it has a leader and a quorum)."""
        member = self.member(name)
        if not member.running or member.paused:
            return False
        body = _http_get(f"{member.client_url}/health", timeout_s=1.0)
        return body is not None and '"health":"true"' in body.replace(" ", "")

    def wait_member_healthy(self, name: str, timeout_s: float = 20.0) -> None:
        def healthy() -> bool:
            if self.healthy(name):
                return True
            if not self.member(name).running:
                raise AssertionError(f"etcd member {name} exited\n{self.logs()}")
            return False

        wait_for(f"etcd member {name} healthy", healthy, timeout_s, every_s=0.05, details=self.logs)

    def wait_healthy(self, timeout_s: float = 20.0) -> None:
        """Wait until every running, unpaused member is healthy."""
        deadline = time.monotonic() + timeout_s
        for member in self.members:
            if member.running and not member.paused:
                self.wait_member_healthy(member.name, max(0.1, deadline - time.monotonic()))

    def logs(self, lines: int = 30) -> str:
        """The last `lines` lines of every member's log, for failure messages."""
        out = []
        for member in self.members:
            text = member.log_path.read_text(errors="replace") if member.log_path.exists() else ""
            tail = "\n".join(text.splitlines()[-lines:])
            out.append(f"--- {member.name} ({member.client_url}) ---\n{tail}")
        return "\n".join(out)

    # ------------------------------------------------------------------ internals

    def _prepare_members(self, attempt: int) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.members = []
        for index in range(1, self.size + 1):
            name = f"etcd{index}"
            data_dir = self.base_dir / f"{name}.{attempt}.data"
            shutil.rmtree(data_dir, ignore_errors=True)
            self.members.append(
                EtcdMember(
                    name=name,
                    client_port=free_port(),
                    peer_port=free_port(),
                    data_dir=data_dir,
                    log_path=self.base_dir / f"{name}.log",
                )
            )
        self._token = f"pgha-test-{uuid.uuid4().hex[:12]}"

    def _command(self, member: EtcdMember, state: str) -> list[str]:
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        return [
            ETCD_BIN,
            f"--name={member.name}",
            f"--data-dir={member.data_dir}",
            f"--listen-client-urls={member.client_url}",
            f"--advertise-client-urls={member.client_url}",
            f"--listen-peer-urls={member.peer_url}",
            f"--initial-advertise-peer-urls={member.peer_url}",
            f"--initial-cluster={initial}",
            f"--initial-cluster-state={state}",
            f"--initial-cluster-token={self._token}",
            f"--heartbeat-interval={self.heartbeat_ms}",
            f"--election-timeout={self.election_ms}",
            f"--pre-vote={'true' if self.pre_vote else 'false'}",
            "--enable-v2=false",
            "--logger=zap",
            "--log-level=warn",
            *self.extra_args,
        ]

    def _spawn(self, member: EtcdMember, state: str) -> None:
        with member.log_path.open("ab") as log:
            member.process = subprocess.Popen(
                self._command(member, state),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        member.paused = False

    def _stop_processes(self) -> None:
        # SIGTERM to all first, so no member waits for a leader transfer to an already gone peer.
        for member in self.members:
            _signal_stop(member)
        # A terminated raft leader tries to hand over leadership for up to ~7 s first; teardown
        # does not need that grace, so the SIGKILL comes after a short wait.
        for member in self.members:
            _stop_process(member, grace_s=1.0)


def _signal_stop(member: EtcdMember) -> None:
    """Continue a paused member and send it SIGTERM (by pid), if it still runs."""
    process = member.process
    if process is not None and process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)
            process.terminate()


def _stop_process(member: EtcdMember, grace_s: float = 10.0) -> None:
    """Stop one member's process by pid: SIGCONT, SIGTERM, SIGKILL after `grace_s`."""
    process = member.process
    if process is None:
        return
    _signal_stop(member)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    member.paused = False


def _http_get(url: str, timeout_s: float) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            body: bytes = answer.read()
            return body.decode(errors="replace")
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _is_leader(member: EtcdMember) -> bool:
    body = _http_get(f"{member.client_url}/metrics", timeout_s=1.0)
    return body is not None and "\netcd_server_is_leader 1" in body
