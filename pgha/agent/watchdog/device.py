# The watchdog port: the Linux watchdog device API (/dev/watchdog) where a device exists, the
# softdog emulation (pgha.agent.watchdog.softdog) over its Unix socket elsewhere, or nothing. It
# protects the rule "a primary whose agent stops kicking is reset before its leader key can
# expire": the timeout is never set longer than asked (whole seconds rounded DOWN, then verified),
# a failed arm leaves no device armed behind the engine's back, and the port methods never raise:
# a failure to arm is `arm() -> False`, a failed kick is remembered in `last_error` (the device
# then fires).
"""Watchdog ports: `DeviceWatchdog`, `EmulatedWatchdog`, `NullWatchdog` and `open_watchdog`."""

from __future__ import annotations

import array
import contextlib
import fcntl
import math
import os
import socket
import stat
import threading
from pathlib import Path

from pgha.ports import Watchdog

# <linux/watchdog.h>, with the generic _IOC encoding (x86, arm, arm64, riscv; not mips/ppc/sparc).
_IOC_WRITE, _IOC_READ = 1, 2
_INT_BYTES = 4
_WATCHDOG_INFO_BYTES = 40  # u32 options, u32 firmware_version, u8 identity[32]


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (ord("W") << 8) | nr


WDIOC_GETSUPPORT = _ioc(_IOC_READ, 0, _WATCHDOG_INFO_BYTES)
WDIOC_KEEPALIVE = _ioc(_IOC_READ, 5, _INT_BYTES)
WDIOC_SETTIMEOUT = _ioc(_IOC_READ | _IOC_WRITE, 6, _INT_BYTES)
WDIOC_GETTIMEOUT = _ioc(_IOC_READ, 7, _INT_BYTES)

EMULATION_PREFIX = "softdog:"  # `watchdog.device: softdog:/run/pgha/softdog.sock`


def whole_seconds(timeout_s: float) -> int | None:
    """The device timeout for `timeout_s`: whole seconds rounded down (never longer than asked).

    None when that is below one second (the API's minimum), i.e. the timeout cannot be honoured.
    """
    whole = math.floor(timeout_s + 1e-9)
    return whole if whole >= 1 else None


class NullWatchdog:
    """No watchdog configured: never available, never armed."""

    last_error: str | None = None

    def available(self) -> bool:
        """Always False."""
        return False

    def arm(self, timeout_s: float) -> bool:
        """Always False: there is nothing to arm."""
        return False

    def kick(self) -> None:
        """Nothing to kick."""

    def disable(self) -> None:
        """Nothing to disable."""


class DeviceWatchdog:
    """A Linux watchdog character device driven through its ioctl API.

    Opening a watchdog device starts it, so the device is only opened by `arm()`; `available()`
    looks at the path without opening it.
    """

    def __init__(self, path: str = "/dev/watchdog") -> None:
        self.path = path
        self.last_error: str | None = None
        self.identity: str | None = None
        self._fd: int | None = None
        self._lock = threading.Lock()

    def available(self) -> bool:
        """The path is a character device this process may open for writing (not opened)."""
        if self._fd is not None:
            return True
        try:
            mode = os.stat(self.path).st_mode
        except OSError:
            return False
        return stat.S_ISCHR(mode) and os.access(self.path, os.W_OK)

    def arm(self, timeout_s: float) -> bool:
        """Open (if needed), set the timeout, check what the device took, kick; False on failure.

        On failure a device this call armed is closed with the magic close, so that it does not
        reset the machine while the engine believes it is unarmed.
        """
        whole = whole_seconds(timeout_s)
        with self._lock:
            if whole is None:
                self.last_error = f"timeout {timeout_s} s is below one second"
                return False
            try:
                self._open()
                actual_s = self._set_timeout(whole)
                if actual_s > timeout_s + 1e-9:
                    raise OSError(f"device took timeout {actual_s} s, asked {timeout_s} s")
                fcntl.ioctl(self._fd_or_raise(), WDIOC_KEEPALIVE, 0)
            except OSError as exc:
                self.last_error = f"arm: {exc}"
                self._close(magic=True)
                return False
            self.last_error = None
            return True

    def kick(self) -> None:
        """Keepalive; a failure is remembered in `last_error` (the device will then fire)."""
        with self._lock:
            if self._fd is None:
                return
            try:
                fcntl.ioctl(self._fd, WDIOC_KEEPALIVE, 0)
            except OSError as exc:
                self.last_error = f"kick: {exc}"

    def disable(self) -> None:
        """Magic close: write "V" and close, which stops the device (unless built nowayout)."""
        with self._lock:
            self._close(magic=True)

    def _open(self) -> None:
        if self._fd is not None:
            return
        if not stat.S_ISCHR(os.stat(self.path).st_mode):
            raise OSError(f"{self.path} is not a character device")
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
        info = bytearray(_WATCHDOG_INFO_BYTES)
        try:
            fcntl.ioctl(self._fd, WDIOC_GETSUPPORT, info, True)
            self.identity = bytes(info[8:]).split(b"\0", 1)[0].decode("ascii", "replace")
        except OSError:
            self.identity = None  # identity is informative only

    def _fd_or_raise(self) -> int:
        if self._fd is None:
            raise OSError("watchdog device is not open")
        return self._fd

    def _set_timeout(self, whole_s: int) -> int:
        fd = self._fd_or_raise()
        with contextlib.suppress(OSError):  # a fixed-timeout device: GETTIMEOUT below decides
            fcntl.ioctl(fd, WDIOC_SETTIMEOUT, array.array("i", [whole_s]), True)
        actual = array.array("i", [0])
        fcntl.ioctl(fd, WDIOC_GETTIMEOUT, actual, True)
        return int(actual[0])

    def _close(self, *, magic: bool) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if magic:
                os.write(fd, b"V")
        except OSError as exc:
            self.last_error = f"magic close: {exc}"
        finally:
            os.close(fd)


class _Connection:
    """One connection to the emulation: a socket and its unread reply bytes."""

    def __init__(self, path: str, io_timeout_s: float) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(io_timeout_s)
        self.buffer = b""
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise

    def request(self, line: str) -> str | None:
        """Send one command and read its reply line; None on an "ERR" reply."""
        self.sock.sendall(line.encode("ascii") + b"\n")
        while b"\n" not in self.buffer:
            data = self.sock.recv(256)
            if not data:
                raise OSError("the emulation closed the connection")
            self.buffer += data
        reply, self.buffer = self.buffer.split(b"\n", 1)
        text = reply.decode("ascii", "replace").strip()
        return text if text.startswith("OK") else None

    def expect_ok(self, line: str) -> int:
        """Send a command that must succeed; the timeout in its reply."""
        verb = line.split()[0]
        reply = self.request(line)
        if reply is None:
            raise OSError(f"the emulation refused {verb}")
        try:
            return int(reply.split()[1])
        except (IndexError, ValueError) as exc:
            raise OSError(f"bad reply to {verb}") from exc

    def close(self) -> None:
        """Close the socket (without the magic close: the emulation stays armed)."""
        self.sock.close()


class EmulatedWatchdog:
    """A client of the softdog emulation daemon (protocol: see pgha.agent.watchdog.softdog).

    The connection plays the open file: `arm` connects and sets the timeout, `kick` sends a
    keepalive, `disable` sends the magic "V" and closes. A lost connection does not stop the
    emulation; a kick after a lost connection reconnects and re-arms with the last timeout.
    """

    def __init__(self, path: str, *, io_timeout_s: float = 1.0) -> None:
        self.path = path
        self.io_timeout_s = io_timeout_s
        self.last_error: str | None = None
        self._conn: _Connection | None = None
        self._armed_s: int | None = None
        self._lock = threading.Lock()

    def available(self) -> bool:
        """The socket exists and the daemon answers a PING (which never arms it)."""
        with self._lock:
            if self._conn is not None:
                return True
            try:
                probe = _Connection(self.path, self.io_timeout_s)
            except OSError:
                return False
            try:
                return probe.request("PING") is not None
            except OSError:
                return False
            finally:
                probe.close()

    def arm(self, timeout_s: float) -> bool:
        """Connect (if needed), set the timeout in whole seconds and keep alive; False on failure.

        On failure the emulation is closed with the magic close when still possible, so it does
        not reset the node while the engine believes it is unarmed.
        """
        whole = whole_seconds(timeout_s)
        with self._lock:
            if whole is None:
                self.last_error = f"timeout {timeout_s} s is below one second"
                return False
            armed = self._arm(whole)
            self._armed_s = whole if armed else None
            return armed

    def kick(self) -> None:
        """Keepalive (reconnecting and re-arming if the connection was lost)."""
        with self._lock:
            if self._armed_s is None:
                return
            if self._conn is None:
                self._arm(self._armed_s)
                return
            try:
                self._conn.expect_ok("KEEPALIVE")
            except OSError as exc:
                self._drop()  # e.g. the emulation fired or restarted: open it again at once
                if not self._arm(self._armed_s):
                    self.last_error = f"kick: {exc}; {self.last_error}"

    def disable(self) -> None:
        """Magic close: "V" then close; the emulation is disarmed."""
        with self._lock:
            self._armed_s = None
            self._magic_close()

    def _arm(self, whole_s: int) -> bool:
        reused = self._conn is not None
        if self._try_arm(whole_s):
            return True
        return reused and self._try_arm(whole_s)  # the old connection may be dead: afresh

    def _try_arm(self, whole_s: int) -> bool:
        try:
            if self._conn is None:
                self._conn = _Connection(self.path, self.io_timeout_s)
            actual_s = self._conn.expect_ok(f"TIMEOUT {whole_s}")
            if actual_s > whole_s:
                raise OSError(f"emulation took timeout {actual_s} s, asked {whole_s} s")
        except OSError as exc:
            error = f"arm: {exc}"
            self._magic_close()
            self.last_error = error
            return False
        self.last_error = None
        return True

    def _magic_close(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.expect_ok("V")
        except OSError as exc:
            self.last_error = f"magic close: {exc}"
        self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None


def open_watchdog(device: str | None) -> Watchdog:
    """The port for the configured `watchdog.device`.

    None or "" -> NullWatchdog; "softdog:PATH" or an existing socket -> EmulatedWatchdog;
    a character device, or a missing path under /dev -> DeviceWatchdog; any other missing path
    -> EmulatedWatchdog (the emulation may start after the agent); anything else (a regular file,
    a directory) -> DeviceWatchdog, which reports itself unavailable.
    """
    if not device:
        return NullWatchdog()
    if device.startswith(EMULATION_PREFIX):
        return EmulatedWatchdog(device[len(EMULATION_PREFIX) :])
    try:
        mode: int | None = os.stat(device).st_mode
    except OSError:
        mode = None
    if mode is not None and stat.S_ISSOCK(mode):
        return EmulatedWatchdog(device)
    if mode is None and not Path(device).is_relative_to("/dev"):
        return EmulatedWatchdog(device)
    return DeviceWatchdog(device)
