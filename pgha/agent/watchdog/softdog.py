# A softdog EMULATION for machines without a watchdog device (this kernel has no softdog module):
# a separate daemon with the kernel watchdog's contract (timeout, keepalive, magic close) that
# "resets the node" by SIGKILLing its processes when nobody kicks it in time. It protects the rule
# "a primary whose agent stalls (SIGSTOP, crash, overload) is stopped before its leader key
# expires". Being its own process, it keeps running when the agent is frozen or killed.
#
# Protocol (Unix stream socket at --socket; ASCII lines ending in "\n"; one reply line each):
#   PING           -> "OK <timeout>" (0 when disarmed). Probes only: never opens or arms.
#   TIMEOUT <n>    -> open if needed, set the timeout to n whole seconds (1..65535) and keep alive;
#                     "OK <n>", or "ERR invalid timeout" (nothing changes, nothing is opened).
#   KEEPALIVE      -> open if needed (with --default-timeout), restart the countdown;
#                     "OK <timeout>".
#   V              -> magic close: keep alive and expect a close; "OK <timeout>". When the
#                     connection then closes, the watchdog is disarmed. Any other command after V
#                     cancels the expectation.
#   anything else  -> "ERR unknown command".
# Opening: like /dev/watchdog, the device has a single opener. The first TIMEOUT/KEEPALIVE/V of a
# connection opens (arms) it; while another connection holds it, the reply is "ERR busy" and the
# connection is closed. A connection that closes without the magic close leaves the watchdog armed
# ("unexpected close, not stopping watchdog"), so killing or freezing the agent does not stop it.
# Firing (deadline passed, checked with time.monotonic within ~0.2 s, usually at once): the
# targets and all their descendants are stopped (SIGSTOP, so they cannot fork away) and then
# SIGKILLed; the holder's connection is closed and the watchdog is disarmed; a later open arms it
# again. Targets: the pid on the first line of each --kill-pidfile (read at fire time, e.g. the
# agent's pid file and PostgreSQL's postmaster.pid), or with --kill-all every process in /proc
# that shares this daemon's pid namespace except the daemon itself (kill(-1) semantics: meant for
# a container whose init then exits or is restarted; a namespace's init ignores the SIGKILL).
# Socket permissions: mode --socket-mode (default 0660), owner --socket-owner USER (its uid and
# primary group), so an agent running as `postgres` can use a daemon running as root.
# --log FILE appends JSON lines: {"event", "t_wall", "t_mono", ...} for started, armed (timeout),
# kicked, magic_close, unexpected_close, refused, fired (killed pids, late_s) and stopped.
# SIGTERM/SIGINT stop the daemon cleanly (the socket file is removed).
"""The softdog emulation daemon (`python -m pgha.agent.watchdog.softdog --socket PATH ...`)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import selectors
import signal
import socket
import stat
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

MAX_TIMEOUT_S = 65535
MAX_LINE_BYTES = 256
SELECT_CAP_S = 0.2


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """The daemon's command line, parsed."""

    socket_path: Path
    kill_pidfiles: tuple[Path, ...]
    kill_all: bool
    log_path: Path | None
    default_timeout_s: int
    socket_owner: str | None
    socket_mode: int


# ---------------------------------------------------------------- killing the node


def read_pidfile(path: Path) -> int | None:
    """The pid on the first line of `path`; None when missing or not a number."""
    try:
        first = path.read_text(encoding="ascii", errors="replace").splitlines()[0]
        return int(first.strip())
    except (OSError, IndexError, ValueError):
        return None


def _proc_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _stat_fields(pid: int) -> tuple[str, int] | None:
    """(state, ppid) from /proc/<pid>/stat; None when the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    rest = raw[raw.rfind(")") + 2 :].split()
    return rest[0], int(rest[1])


def _children_map() -> dict[int, list[int]]:
    """Live (non-zombie) processes by parent pid."""
    children: dict[int, list[int]] = {}
    for pid in _proc_pids():
        fields = _stat_fields(pid)
        if fields is not None and fields[0] != "Z":
            children.setdefault(fields[1], []).append(pid)
    return children


def _with_descendants(roots: Iterable[int], children: dict[int, list[int]]) -> set[int]:
    alive = {pid for kids in children.values() for pid in kids}
    found: set[int] = set()
    todo = [pid for pid in roots if pid in alive]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def _signal(pid: int, signum: int) -> bool:
    try:
        os.kill(pid, signum)
    except OSError:
        return False
    return True


def kill_trees(roots: Iterable[int]) -> list[int]:
    """SIGKILL `roots` and all their descendants (stopped first so none can fork away).

    Never signals this process or pid 0. Returns the pids that were killed, sorted.
    """
    roots = set(roots)
    protected = {0, os.getpid()}
    victims: set[int] = set()
    for _ in range(5):  # re-walk: a process may have forked before it was stopped
        new = _with_descendants(roots | victims, _children_map()) - victims - protected
        if not new:
            break
        for pid in new:
            _signal(pid, signal.SIGSTOP)
        victims |= new
    return sorted(pid for pid in victims if _signal(pid, signal.SIGKILL))


def _same_pid_namespace(pid: int) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid") == os.readlink("/proc/self/ns/pid")
    except OSError:
        return False


def kill_targets(opts: Options) -> list[int]:
    """Reset the node: kill the configured targets; the pids killed."""
    if opts.kill_all:
        me = os.getpid()
        roots = [pid for pid in _proc_pids() if pid != me and _same_pid_namespace(pid)]
    else:
        pids = (read_pidfile(path) for path in opts.kill_pidfiles)
        roots = [pid for pid in pids if pid is not None and pid > 1]
    return kill_trees(roots)


# ---------------------------------------------------------------- the event log


class EventLog:
    """JSON lines of what the watchdog did (optional; flushed at once for observers)."""

    def __init__(self, path: Path | None) -> None:
        self._file: TextIO | None = None
        if path is not None:
            self._file = path.open("a", encoding="utf-8")

    def write(self, event: str, **fields: Any) -> None:
        """Append one event with wall and monotonic time."""
        if self._file is None:
            return
        line = {"event": event, "t_wall": time.time(), "t_mono": time.monotonic(), **fields}
        self._file.write(json.dumps(line) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()


# ---------------------------------------------------------------- the device


class Softdog:
    """The emulated device: one holder, a countdown, magic close, and the reset."""

    def __init__(self, opts: Options, log: EventLog, listener: socket.socket) -> None:
        self.opts = opts
        self.log = log
        self.listener = listener
        self.sel = selectors.DefaultSelector()
        self.sel.register(listener, selectors.EVENT_READ)
        self.buffers: dict[socket.socket, bytes] = {}
        self.holder: socket.socket | None = None
        self.timeout_s = opts.default_timeout_s
        self.deadline_mono: float | None = None
        self.expect_close = False
        self.stopping = False

    def run(self) -> None:
        """Serve until `stopping` is set (by SIGTERM/SIGINT)."""
        while not self.stopping:
            wait_s = SELECT_CAP_S
            if self.deadline_mono is not None:
                wait_s = min(wait_s, max(0.0, self.deadline_mono - time.monotonic()))
            for key, _ in self.sel.select(wait_s):
                if key.fileobj is self.listener:
                    self._accept()
                else:
                    self._receive(key.fileobj)  # type: ignore[arg-type]
            if self.deadline_mono is not None and time.monotonic() >= self.deadline_mono:
                self.fire()
        for conn in list(self.buffers):
            self._drop(conn)

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        conn.setblocking(False)
        self.buffers[conn] = b""
        self.sel.register(conn, selectors.EVENT_READ)

    def _receive(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._closed_by_peer(conn)
            return
        buf = self.buffers[conn] + data
        while b"\n" in buf and conn in self.buffers:
            line, buf = buf.split(b"\n", 1)
            self._command(conn, line.decode("ascii", errors="replace").strip())
        if conn in self.buffers:
            self.buffers[conn] = buf
            if len(buf) > MAX_LINE_BYTES:
                self._reply(conn, "ERR line too long")
                self._closed_by_peer(conn)

    def _closed_by_peer(self, conn: socket.socket) -> None:
        if conn is self.holder:
            if self.expect_close:
                self.deadline_mono = None
                self.log.write("magic_close")
            else:
                self.log.write("unexpected_close", timeout=self.timeout_s)
            self.holder = None
            self.expect_close = False
        self._drop(conn)

    def _drop(self, conn: socket.socket) -> None:
        if conn in self.buffers:
            self.sel.unregister(conn)
            del self.buffers[conn]
        conn.close()

    def _reply(self, conn: socket.socket, text: str) -> None:
        with contextlib.suppress(OSError):  # the peer is gone; the next recv sees its close
            conn.sendall(text.encode("ascii") + b"\n")

    def _command(self, conn: socket.socket, line: str) -> None:
        verb, _, arg = line.partition(" ")
        if verb == "PING":
            self._reply(conn, f"OK {self.timeout_s if self.deadline_mono is not None else 0}")
            return
        if verb not in ("TIMEOUT", "KEEPALIVE", "V"):
            self._reply(conn, "ERR unknown command")
            return
        timeout_s = _parse_timeout(arg) if verb == "TIMEOUT" else self.timeout_s
        if timeout_s is None:
            self._reply(conn, "ERR invalid timeout")
        elif self._open(conn):
            self._holder_command(conn, verb, timeout_s)

    def _open(self, conn: socket.socket) -> bool:
        if self.holder is conn:
            return True
        if self.holder is not None:
            self.log.write("refused")
            self._reply(conn, "ERR busy")
            self._drop(conn)
            return False
        self.holder = conn
        if self.deadline_mono is None:  # an unexpected close leaves the old countdown running
            self.timeout_s = self.opts.default_timeout_s
            self.log.write("armed", timeout=self.timeout_s)
        return True

    def _holder_command(self, conn: socket.socket, verb: str, timeout_s: int) -> None:
        self.expect_close = verb == "V"
        if verb == "TIMEOUT":
            self.timeout_s = timeout_s
            self.log.write("armed", timeout=timeout_s)
        elif verb == "V":
            self.log.write("magic_expected")
        else:
            self.log.write("kicked")
        self.deadline_mono = time.monotonic() + self.timeout_s
        self._reply(conn, f"OK {self.timeout_s}")

    def fire(self) -> None:
        """The countdown ran out: reset the node, then wait disarmed for the next open."""
        late_s = time.monotonic() - (self.deadline_mono or 0.0)
        self.deadline_mono = None
        self.expect_close = False
        if self.holder is not None:
            self._drop(self.holder)
            self.holder = None
        killed = kill_targets(self.opts)
        self.log.write("fired", timeout=self.timeout_s, late_s=round(late_s, 4), killed=killed)


def _parse_timeout(text: str) -> int | None:
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if 1 <= value <= MAX_TIMEOUT_S else None


# ---------------------------------------------------------------- the socket and main()


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
            probe.sendall(b"PING\n")
            return probe.recv(64).startswith(b"OK")
        except OSError:
            return False


def bind_socket(opts: Options) -> socket.socket:
    """Listen at the socket path (replacing a stale socket file), with its mode and owner."""
    path = opts.socket_path
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise SystemExit(f"softdog: {path} exists and is not a socket")
        if _answers(path):
            raise SystemExit(f"softdog: another emulation already answers at {path}")
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, opts.socket_mode)
    if opts.socket_owner:
        entry = pwd.getpwnam(opts.socket_owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    listener.listen(8)
    listener.setblocking(False)
    return listener


def parse_args(argv: list[str] | None) -> Options:
    """Parse the command line (see the module comment)."""
    parser = argparse.ArgumentParser(prog="pgha softdog", description=__doc__)
    parser.add_argument("--socket", required=True, type=Path, help="the emulated device")
    parser.add_argument("--kill-pidfile", action="append", type=Path, default=[])
    parser.add_argument("--kill-all", action="store_true", help="container mode: kill all")
    parser.add_argument("--log", type=Path, help="JSON lines of events")
    parser.add_argument("--default-timeout", type=int, default=60, help="seconds (softdog: 60)")
    parser.add_argument("--socket-owner", help="user that may connect (chown)")
    parser.add_argument("--socket-mode", default="0660", help="octal permission bits")
    ns = parser.parse_args(argv)
    if not ns.kill_pidfile and not ns.kill_all:
        parser.error("give --kill-pidfile FILE (repeatable) or --kill-all")
    if not 1 <= ns.default_timeout <= MAX_TIMEOUT_S:
        parser.error("--default-timeout must be 1..65535")
    return Options(
        socket_path=ns.socket,
        kill_pidfiles=tuple(ns.kill_pidfile),
        kill_all=ns.kill_all,
        log_path=ns.log,
        default_timeout_s=ns.default_timeout,
        socket_owner=ns.socket_owner,
        socket_mode=int(ns.socket_mode, 8),
    )


def main(argv: list[str] | None = None) -> int:
    """Run the emulation until SIGTERM/SIGINT; 0 on a clean stop."""
    opts = parse_args(argv)
    listener = bind_socket(opts)
    log = EventLog(opts.log_path)
    dog = Softdog(opts, log, listener)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        dog.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.write("started", pid=os.getpid(), socket=str(opts.socket_path))
    try:
        dog.run()
    finally:
        listener.close()
        opts.socket_path.unlink(missing_ok=True)
        log.write("stopped", armed=dog.deadline_mono is not None)
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
