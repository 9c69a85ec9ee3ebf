# The REST API's connection handling: no thread ever waits for a client.
#
# Design. One event-loop thread accepts every connection and reads each request (head and body)
# with non-blocking sockets; a connection costs a file descriptor and a buffer while its request
# arrives, never a thread, so slow clients (slowloris) cannot take the threads that answer. Limits:
#  * Deadline: a request must arrive whole (head and body) within `request_deadline_s` (10 s) of
#    its accept, however slowly it trickles in; past it the client gets 408 and the connection is
#    closed. A LAN client sends its few KiB in milliseconds; 10 s forgives a congested WAN.
#  * Connections still arriving are bounded by `max_pending` (256, far below the usual 1024 file
#    descriptors). At the bound, a new connection evicts the oldest one still arriving (503 with
#    Retry-After, closed): the oldest is the likeliest slowloris, and a health check, which sends
#    its request the moment it connects, is the newest. 100 slow clients evict nothing; to starve
#    a check, an attacker would have to open 256 connections during the check's millisecond.
#  * Handlers run in two bounded lanes of worker threads, chosen from the request line:
#    - the fast lane answers from the agent's memory only: the health endpoints HAProxy and peers
#      poll (/primary, /replica, /health, /leader, /read-only, /patroni, ...), /metrics and a
#      failsafe heartbeat (POST /failsafe). Each answer takes microseconds, so 4 threads
#      (`fast_workers`) with a queue of 64 (FAST_BACKLOG) keep up with any real load; a fast
#      request is refused only if 68 are in flight at once. They never wait behind the others.
#    - the general lane runs everything that may wait: DCS reads (/cluster, /config, /history),
#      writes, switchovers and commands (up to command_timeout_s). At most `max_workers` (16) run
#      at once: a few operators and tools at a time plus DCS reads stalled by a slow etcd, with a
#      bounded number of threads. A request beyond the bound gets 503 with Retry-After at once,
#      without waiting for a thread.
# Every refusal (4xx/503) is written by the loop without blocking, then the connection is
# half-closed and drained for up to LINGER_S, so that the client reads the answer instead of a
# reset. A worker writes its answer with a socket timeout of `request_timeout_s`, then closes.
"""The event loop that reads requests without threads, and the bounded lanes that answer them."""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from pgha.agent.rest.common import HttpError, Reply, Request, RestSettings, error_reply
from pgha.agent.rest.wire import (
    MAX_HEAD_B,
    Head,
    body_length,
    check_request_line,
    head_end,
    parse_head,
    render,
)

__all__ = ["FAST_BACKLOG", "LINGER_S", "RestServer", "WorkerLane"]

log = logging.getLogger("pgha.restapi")

FAST_BACKLOG = 64  # fast requests that may wait for one of the fast lane's threads
LINGER_S = 1.0  # after a refusal: how long the client's remaining bytes are read and dropped
DRAIN_LIMIT_B = 1024 * 1024  # ... and at most this many
TICK_S = 0.1  # the loop looks at deadlines (and at stop()) at least this often
ACCEPT_BATCH = 64  # connections accepted per wake-up, so reading is not starved
RETRY_AFTER = (("Retry-After", "1"),)

Serve = Callable[[Request, str | None], Reply]
IsFast = Callable[[str, str], bool]
Job = Callable[[Callable[[], None]], None]


class WorkerLane:
    """At most `workers` threads run jobs and `backlog` more jobs may wait; `submit` is False
    beyond that (the caller refuses the request). Threads start on demand and stay.

    A job is called with `release`, which gives its place back (called for it when it returns):
    a job calls it once its answer is computed, before the client can have it and send again.
    """

    def __init__(self, name: str, workers: int, backlog: int = 0) -> None:
        self._name, self._workers, self._capacity = name, workers, workers + backlog
        self._cond = threading.Condition()
        self._jobs: deque[Job] = deque()
        self._inflight = self._threads = self._idle = 0
        self._closed = False

    def submit(self, job: Job) -> bool:
        """Queue `job` if the lane has room; False when full or closed."""
        with self._cond:
            if self._closed or self._inflight >= self._capacity:
                return False
            self._inflight += 1
            self._jobs.append(job)
            if len(self._jobs) <= self._idle or self._threads >= self._workers:
                self._cond.notify()
                return True
            try:
                name = f"{self._name}-{self._threads + 1}"
                threading.Thread(target=self._work, name=name, daemon=True).start()
            except RuntimeError:  # the process cannot start another thread
                self._jobs.pop()
                self._inflight -= 1
                return False
            self._threads += 1
            return True

    def close(self) -> None:
        """Let the threads end once the queued jobs are done; later submits are refused."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _work(self) -> None:
        while (job := self._next()) is not None:
            released = False

            def release() -> None:
                nonlocal released
                with self._cond:
                    if not released:
                        released = True
                        self._inflight -= 1

            try:
                job(release)
            except Exception:
                log.exception("REST worker %s failed", self._name)
            finally:
                release()

    def _next(self) -> Job | None:
        with self._cond:
            self._idle += 1
            while not self._jobs and not self._closed:
                self._cond.wait()
            self._idle -= 1
            if not self._jobs:
                self._threads -= 1
                return None
            return self._jobs.popleft()


@dataclass(slots=True, eq=False)
class _Conn:
    """One accepted connection while its request arrives (or while it lingers after a refusal)."""

    sock: socket.socket
    peer: str
    deadline: float
    data: bytearray
    scanned: int = 0  # where the search for the end of the head resumes
    line_checked: bool = False
    head: Head | None = None
    need: int = 0  # body bytes announced by the head
    lingering: bool = False
    drain_left: int = DRAIN_LIMIT_B


class RestServer:
    """Listens on `address`, reads requests in one loop thread and answers through the lanes.

    Args:
        address: (host, port) to bind; port 0 picks a free one. Bound in the constructor.
        settings: the limits (deadline, lanes, pending connections, body size, write timeout).
        serve: answers a complete request, given its Authorization header (never raises).
        is_fast: (method, path) answered from memory only, in the fast lane.

    Raises:
        OSError: the address cannot be bound.
    """

    def __init__(
        self,
        address: tuple[str, int],
        settings: RestSettings,
        *,
        serve: Serve,
        is_fast: IsFast,
        name: str = "rest",
    ) -> None:
        self._settings, self._serve, self._is_fast, self._name = settings, serve, is_fast, name
        self._listener = _listen(address)
        self._wake_r, self._wake_w = socket.socketpair()  # stop() wakes the loop at once
        self._selector = selectors.DefaultSelector()
        self._conns: dict[socket.socket, _Conn] = {}
        self._fast = WorkerLane(f"pgha-rest-{name}-fast", settings.fast_workers, FAST_BACKLOG)
        self._general = WorkerLane(f"pgha-rest-{name}-worker", settings.max_workers)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, self._wake_r)
        self._thread = threading.Thread(target=self._run, name=f"pgha-rest-{self._name}")
        self._thread.daemon = True
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop accepting and reading, close every connection not yet answered and the socket.
        Answers being computed are abandoned (their threads end when they are done)."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
        else:
            self._listener.close()
            self._wake_r.close()
        self._wake_w.close()
        self._fast.close()
        self._general.close()

    # ------------------------------------------------------------ the loop

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                wait_s = self._sweep(time.monotonic())
                for key, _ in self._selector.select(wait_s):
                    self._event(key.data)
        finally:
            for conn in list(self._conns.values()):
                self._close(conn)
            self._selector.close()
            self._listener.close()
            self._wake_r.close()

    def _event(self, what: object) -> None:
        """One readiness event; a failure costs at most its own connection, never the loop."""
        try:
            if what is None:
                self._accept()
            elif isinstance(what, _Conn):
                self._readable(what)
        except Exception:
            log.exception("REST API: unexpected error on a connection")
            if isinstance(what, _Conn):
                self._close(what)

    def _sweep(self, now: float) -> float:
        """Refuse (408) or close the connections past their deadline; the time to the next one."""
        next_s = TICK_S
        for conn in list(self._conns.values()):
            left_s = conn.deadline - now
            if left_s > 0:
                next_s = min(next_s, left_s)
            elif conn.lingering:
                self._close(conn)
            else:
                log.debug("%s: request not complete within the deadline", conn.peer)
                self._refuse(conn, error_reply(408, "the request did not arrive in time"))
        return max(next_s, 0.0)

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of file descriptors: free one, try again
                log.warning("REST API cannot accept a connection: %s", exc)
                if self._conns:
                    self._evict_oldest()
                else:
                    time.sleep(TICK_S)  # not ours to free: do not spin
                return
            if len(self._conns) >= self._settings.max_pending:
                self._evict_oldest()
            sock.setblocking(False)
            deadline = time.monotonic() + self._settings.request_deadline_s
            conn = _Conn(sock=sock, peer=str(address[0]), deadline=deadline, data=bytearray())
            self._conns[sock] = conn
            self._selector.register(sock, selectors.EVENT_READ, conn)

    def _evict_oldest(self) -> None:
        oldest = next(iter(self._conns.values()))
        if not oldest.lingering:
            log.debug("%s: evicted (too many connections still arriving)", oldest.peer)
            busy = error_reply(503, "too many connections; retry", RETRY_AFTER)
            _drain_now(oldest.sock)  # unread bytes would turn the close into a reset
            _send_now(oldest.sock, render(busy))
        self._close(oldest)

    def _readable(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if conn.lingering:
            conn.drain_left -= len(data)
            if not data or conn.drain_left <= 0:
                self._close(conn)
        elif not data:  # the client went away before its request was complete
            self._close(conn)
        else:
            conn.data += data
            try:
                self._advance(conn)
            except HttpError as exc:
                with_body = conn.head is None or conn.head.method not in ("HEAD", "OPTIONS")
                self._refuse(conn, exc.reply(), with_body=with_body)

    def _advance(self, conn: _Conn) -> None:
        """Parse what has arrived; hand a complete request to its lane."""
        if conn.head is None and not self._read_head(conn):
            return
        head = conn.head
        if head is None or len(conn.data) < conn.need:
            return
        body = bytes(conn.data[: conn.need])
        request = Request(method=head.method, path=head.path, query=head.query, body=body)
        self._dispatch(conn, request, head.first("Authorization"))

    def _read_head(self, conn: _Conn) -> bool:
        """True once the head is parsed (its bytes leave `conn.data`, the body's remain)."""
        if not conn.line_checked:
            line_end = conn.data.find(b"\n")
            if line_end >= 0:  # refuse a bad request line before its headers arrive
                check_request_line(bytes(conn.data[:line_end]))
                conn.line_checked = True
        end = head_end(conn.data, conn.scanned)
        if end is None:
            if len(conn.data) > MAX_HEAD_B:
                raise HttpError(431, f"the request head is larger than {MAX_HEAD_B} bytes")
            conn.scanned = max(0, len(conn.data) - 3)
            return False
        conn.head = parse_head(bytes(conn.data[:end]))
        del conn.data[:end]
        conn.need = body_length(conn.head, self._settings.max_body_b)
        return True

    def _dispatch(self, conn: _Conn, request: Request, authorization: str | None) -> None:
        fast = self._is_fast(request.method, request.path)
        lane = self._fast if fast else self._general
        self._selector.unregister(conn.sock)
        del self._conns[conn.sock]
        conn.sock.setblocking(True)

        def job(release: Callable[[], None]) -> None:
            self._answer(conn, request, authorization, release)

        if not lane.submit(job):
            log.warning("REST API busy: %s %s refused with 503", request.method, request.path)
            self._conns[conn.sock] = conn
            conn.sock.setblocking(False)
            self._selector.register(conn.sock, selectors.EVENT_READ, conn)
            busy = error_reply(503, "the REST API is busy; retry", RETRY_AFTER)
            self._refuse(conn, busy, with_body=request.method not in ("HEAD", "OPTIONS"))

    def _answer(
        self,
        conn: _Conn,
        request: Request,
        authorization: str | None,
        release: Callable[[], None],
    ) -> None:
        """In a worker: run the handler, give the lane's place back (the client's next request
        finds it free), write the answer (bounded by request_timeout_s) and close."""
        try:
            reply = self._serve(request, authorization)
            release()
            data = render(reply, with_body=request.method not in ("HEAD", "OPTIONS"))
            log.debug('%s "%s %s" %s', conn.peer, request.method, request.path, reply.status)
            conn.sock.settimeout(self._settings.request_timeout_s)
            conn.sock.sendall(data)
        except OSError as exc:
            log.debug("%s: the answer could not be sent: %s", conn.peer, exc)
        finally:
            conn.sock.close()

    def _refuse(self, conn: _Conn, reply: Reply, *, with_body: bool = True) -> None:
        """Answer from the loop without blocking, half-close, then drop what the client sends."""
        log.debug("%s: refused with %s", conn.peer, reply.status)
        if not _send_now(conn.sock, render(reply, with_body=with_body)):
            self._close(conn)
            return
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.lingering, conn.data = True, bytearray()
        conn.deadline = time.monotonic() + LINGER_S

    def _close(self, conn: _Conn) -> None:
        if self._conns.pop(conn.sock, None) is not None:
            self._selector.unregister(conn.sock)
        conn.sock.close()


def _send_now(sock: socket.socket, data: bytes) -> bool:
    """Write a short answer on a non-blocking socket; True if all of it went (a fresh
    connection's send buffer always takes a refusal whole)."""
    try:
        return sock.send(data) == len(data)
    except OSError:
        return False


def _drain_now(sock: socket.socket) -> None:
    """Read and drop what has already arrived on a non-blocking socket (up to DRAIN_LIMIT_B)."""
    left_b = DRAIN_LIMIT_B
    try:
        while left_b > 0 and (chunk := sock.recv(65536)):
            left_b -= len(chunk)
    except OSError:  # BlockingIOError: nothing more for now
        pass


def _listen(address: tuple[str, int]) -> socket.socket:
    """A non-blocking listening socket (address reuse on, IPv6 for an address with a colon)."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
