"""The REST API's defences over real sockets: body framing, the request deadline, the lanes.

Every test runs the real RestApi (see test_restapi.py for the fakes behind it) and talks to it
with raw sockets: ambiguous Content-Length / Transfer-Encoding framing is refused with 400, a
client that trickles its request is cut at the deadline with 408, slow clients hold no worker, the
general lane answers 503 with Retry-After beyond its bound while health checks keep their normal
answers, and a flood of connections evicts the oldest, never the fresh health check.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

from pgha.agent.admin import Command, CommandResult
from pgha.agent.rest.common import HttpError, basic_auth_header
from pgha.agent.rest.server import FAST_BACKLOG, WorkerLane
from pgha.agent.rest.wire import body_length, head_end, parse_head
from tests.agent.test_restapi import (
    AUTH,
    MakeNode,
    Node,
    Nodes,
    RecordingSink,
    raw_exchange,
)
from tests.probes import wait_for

pytestmark = pytest.mark.agent

AUTH_LINE = f"Authorization: {basic_auth_header(*AUTH)}\r\n".encode()
QUICK_S = 1.0  # what "at once" means for an answer here


@pytest.fixture
def make_node() -> Any:
    nodes = Nodes()
    yield nodes.start
    nodes.stop_all()


def status_of_answer(answer: bytes) -> int:
    """The status code of a raw HTTP answer."""
    assert answer.startswith(b"HTTP/1.0 "), answer[:60]
    return int(answer.split(b" ", 2)[1])


def json_error(answer: bytes) -> str:
    """The `error` of a raw JSON error answer."""
    _, _, body = answer.partition(b"\r\n\r\n")
    return str(json.loads(body)["error"])


# ---------------------------------------------------------------- framing: Content-Length


def post(headers: bytes, body: bytes = b"{}") -> bytes:
    return b"POST /reload HTTP/1.1\r\nHost: x\r\n" + AUTH_LINE + headers + b"\r\n" + body


@pytest.mark.parametrize(
    ("request_bytes", "status", "says"),
    [
        (post(b"Content-Length: 2\r\nContent-Length: 2\r\n"), 400, "2 Content-Length"),
        (post(b"Content-Length: 2\r\nContent-Length: 7\r\n"), 400, "2 Content-Length"),
        (post(b"content-length: 2\r\nCONTENT-LENGTH: 2\r\n"), 400, "2 Content-Length"),
        (post(b"Content-Length: 2, 2\r\n"), 400, "malformed Content-Length"),
        (post(b"Content-Length: +2\r\n"), 400, "malformed Content-Length"),
        (post(b"Content-Length: 0x2\r\n"), 400, "malformed Content-Length"),
        (
            post(b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
            400,
            "Transfer-Encoding and Content-Length",
        ),
        (
            post(b"Transfer-Encoding: chunked\r\nContent-Length: 2\r\n", b"0\r\n\r\n"),
            400,
            "Transfer-Encoding and Content-Length",
        ),
        (post(b"Transfer-Encoding: chunked\r\n", b"2\r\n{}\r\n0\r\n\r\n"), 411, "Content-Length"),
        (post(b"Content-Length : 2\r\n"), 400, "malformed header line"),
        (post(b"Content-Length: 2\r\n  x\r\n"), 400, "malformed header line"),
        (post(b"Content-Length: 2\r\nX-Evil: a\rb\r\n"), 400, "control character"),
    ],
)
def test_ambiguous_framing_is_400_and_the_connection_closed(
    make_node: MakeNode, request_bytes: bytes, status: int, says: str
) -> None:
    node = make_node()
    answer = raw_exchange(node.api.url, request_bytes)  # reads until the server closes
    assert status_of_answer(answer) == status
    assert says in json_error(answer)
    assert node.sink.calls == []


def test_one_plain_content_length_is_accepted(make_node: MakeNode) -> None:
    node = make_node()
    answer = raw_exchange(node.api.url, post(b"Content-Length:  2 \r\n"))
    assert status_of_answer(answer) == 200
    assert [command for command, _, _ in node.sink.calls] == [Command.RELOAD]


def test_framing_rules_as_functions() -> None:
    head = parse_head(b"PUT /config/?a=1 HTTP/1.1\r\nContent-Length: 10\r\n\r\n")
    assert (head.method, head.path, dict(head.query), body_length(head, 64)) == (
        "PUT",
        "/config",
        {"a": "1"},
        10,
    )
    with pytest.raises(HttpError, match="larger than 9 bytes"):
        body_length(head, 9)
    assert body_length(parse_head(b"GET / HTTP/1.0\n\n"), 0) == 0
    assert head_end(b"GET / HTTP/1.0\r\nA: b\r\n\r\nbody") == 24
    assert head_end(b"GET / HTTP/1.0\r\nA: b\r\n") is None


# ---------------------------------------------------------------- the deadline


class SlowClient:
    """A client that sends `start`, then one more byte each time `trickle()` is called."""

    def __init__(self, url: str, start: bytes) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
        self.started = time.monotonic()
        self.sock.sendall(start)

    def trickle(self) -> None:
        with contextlib.suppress(OSError):  # the server closed: its answer is waiting
            self.sock.sendall(b"a")

    def answered(self, wait_s: float = 0.0) -> bool:
        return bool(select.select([self.sock], [], [], wait_s)[0])

    def answer(self) -> bytes:
        """Everything the server sends until it closes."""
        chunks = []
        while chunk := self.sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        self.sock.close()


def test_a_client_trickling_its_request_is_cut_at_the_deadline(make_node: MakeNode) -> None:
    deadline_s = 1.0
    node = make_node(request_deadline_s=deadline_s)
    url = node.api.url
    in_head = SlowClient(url, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    in_body = SlowClient(url, post(b"Content-Length: 500\r\n", b'{"x": "'))
    cut: dict[SlowClient, tuple[bytes, float]] = {}

    def trickle_until_cut() -> bool:  # a byte every 50 ms (the answered() waits): never idle long
        for client in (in_head, in_body):
            if client in cut:
                continue
            if client.answered(0.025):
                cut[client] = (client.answer(), time.monotonic() - client.started)
            else:
                client.trickle()
        return len(cut) == 2

    wait_for("both trickling clients cut", trickle_until_cut, deadline_s + 3, every_s=0)
    for client in (in_head, in_body):
        answer, elapsed_s = cut[client]
        assert status_of_answer(answer) == 408
        assert deadline_s - 0.05 <= elapsed_s < deadline_s + 0.5
        client.close()
    assert node.sink.calls == []
    assert node.call("GET", "/health").status == 200


# ---------------------------------------------------------------- the lanes


@dataclass
class GatedSink(RecordingSink):
    """A CommandSink whose commands run until `gate` is set: an operation holding its worker."""

    gate: threading.Event = field(default_factory=threading.Event)

    def submit(
        self, command: Command, options: Mapping[str, Any], timeout_s: float
    ) -> CommandResult:
        self.calls.append((command, dict(options), timeout_s))
        self.gate.wait(10)
        return self.result


def timed(node: Node, method: str, path: str, body: object = None) -> tuple[int, Any, float]:
    start = time.monotonic()
    answer = node.call(method, path, body, auth=AUTH)
    return answer.status, answer.headers, time.monotonic() - start


def test_a_full_general_lane_answers_503_at_once_and_health_checks_are_unaffected(
    make_node: MakeNode,
) -> None:
    sink = GatedSink()
    node = make_node(sink=sink, max_workers=2, fast_workers=1)
    holders = [
        threading.Thread(target=node.call, args=("POST", "/reload", {}), kwargs={"auth": AUTH})
        for _ in range(2)
    ]
    for thread in holders:
        thread.start()
    try:
        wait_for("both workers busy", lambda: len(sink.calls) == 2, 5.0, every_s=0.01)
        for method, path in [("POST", "/reload"), ("GET", "/cluster"), ("GET", "/config")]:
            status, headers, elapsed_s = timed(node, method, path, {} if method == "POST" else None)
            assert (status, headers["Retry-After"]) == (503, "1"), path
            assert elapsed_s < QUICK_S
        for path, expected in [("/primary", 200), ("/health", 200), ("/replica", 503)]:
            status, headers, elapsed_s = timed(node, "GET", path)
            assert (status, "Retry-After" in headers) == (expected, False), path
            assert elapsed_s < QUICK_S
        assert node.call("GET", "/patroni").json()["role"] == "primary"
        assert node.call("GET", "/metrics").status == 200
    finally:
        sink.gate.set()
        for thread in holders:
            thread.join(10)
    wait_for(
        "the workers back", lambda: node.call("GET", "/cluster").status == 200, 5.0, every_s=0.01
    )
    assert len(sink.calls) == 2


def test_slow_clients_hold_no_worker_and_a_hundred_cannot_fail_a_check(
    make_node: MakeNode,
) -> None:
    node = make_node(max_workers=1, fast_workers=1)
    slow = [SlowClient(node.api.url, b"GET /primary HTTP/1.1\r\nX-Slow: ") for _ in range(100)]
    try:
        for method, path, expected in [
            ("GET", "/primary", 200),
            ("GET", "/replica", 503),
            ("GET", "/cluster", 200),
            ("POST", "/reload", 200),
        ]:
            status, _, elapsed_s = timed(node, method, path, {} if method == "POST" else None)
            assert (status, elapsed_s < QUICK_S) == (expected, True), path
        assert not any(client.answered() for client in slow)  # nobody was evicted
    finally:
        for client in slow:
            client.close()


def test_a_flood_of_connections_evicts_the_oldest_not_the_health_check(
    make_node: MakeNode,
) -> None:
    node = make_node(max_pending=8)

    def slow_client() -> SlowClient:
        return SlowClient(node.api.url, b"GET /health HTTP/1.1\r\nX-Slow: ")

    slow = [slow_client() for _ in range(8)]
    try:
        for round_ in range(3):  # each check evicts the oldest connection still arriving
            status, _, elapsed_s = timed(node, "GET", "/primary")
            assert (status, elapsed_s < QUICK_S) == (200, True)
            assert slow[round_].answered(QUICK_S)
            evicted = slow[round_].answer()
            assert status_of_answer(evicted) == 503
            assert b"\r\nRetry-After: 1\r\n" in evicted
            slow.append(slow_client())  # the flood goes on: 8 arriving again
        assert not any(client.answered() for client in slow[3:])
    finally:
        for client in slow:
            client.close()


def test_a_burst_of_health_checks_waits_for_the_fast_lane_instead_of_503(
    make_node: MakeNode,
) -> None:
    node = make_node(fast_workers=1)
    statuses: list[int] = []
    burst = 40
    assert burst < FAST_BACKLOG
    barrier = threading.Barrier(burst)

    def check() -> None:
        barrier.wait(5)
        statuses.append(node.call("GET", "/primary").status)

    threads = [threading.Thread(target=check) for _ in range(burst)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert statuses == [200] * burst


def test_a_worker_lane_holds_workers_plus_backlog_jobs() -> None:
    lane = WorkerLane("test-lane", workers=2, backlog=1)
    gate, done = threading.Event(), threading.Semaphore(0)

    def job(release: Callable[[], None]) -> None:
        del release
        gate.wait(5)
        done.release()

    assert [lane.submit(job) for _ in range(4)] == [True, True, True, False]
    gate.set()
    for _ in range(3):
        assert done.acquire(timeout=5)
    wait_for("room again", lambda: lane.submit(lambda release: done.release()), 5.0, every_s=0.01)
    assert done.acquire(timeout=5)
    lane.close()
    assert not lane.submit(job)
