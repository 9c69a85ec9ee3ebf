"""HttpPeers against real REST APIs, a dead port, a peer that never answers and a broken one."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pgha.agent.admin import FailsafeInbox
from pgha.agent.peers import HttpPeers
from pgha.agent.rest.api import RestApi, RestSettings
from pgha.engine.values import PeerStatus
from pgha.status import AgentStatus
from tests.agent.conftest import free_port
from tests.agent.test_restapi import (
    AUTH,
    MB,
    NOW,
    MemoryAdmin,
    RecordingSink,
    cluster_view,
    status_of,
)

pytestmark = pytest.mark.agent

TIMEOUT_S = 1.0


class _Garbage(BaseHTTPRequestHandler):
    """A peer that answers 200 with a body that is not JSON, and 500 to every POST."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "9")
        self.end_headers()
        self.wfile.write(b"not json!")

    def do_POST(self) -> None:
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        del format, args


Serve = Callable[[AgentStatus], tuple[RestApi, FailsafeInbox]]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start a real RestApi (Basic auth AUTH) answering from `status`; stopped at teardown."""
    started: list[RestApi] = []

    def start(status: AgentStatus) -> tuple[RestApi, FailsafeInbox]:
        inbox = FailsafeInbox(lambda: NOW)
        settings = RestSettings(listen_port=0, username=AUTH[0], password=AUTH[1])
        api = RestApi(
            settings,
            status=lambda: status,
            now_mono=lambda: NOW,
            admin=MemoryAdmin(status.cluster or cluster_view()),
            commands=RecordingSink(),
            inbox=inbox,
            name=status.name,
        )
        api.start()
        started.append(api)
        return api, inbox

    yield start
    for api in started:
        api.stop()


@pytest.fixture
def odd_peers() -> Iterator[dict[str, str | None]]:
    """URLs of peers that cannot be read: dead, silent (accepts, never answers), garbage, none."""
    silent = socket.create_server(("127.0.0.1", 0))  # listens; nobody ever accepts
    garbage = ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
    thread = threading.Thread(target=garbage.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield {
        "dead": f"http://127.0.0.1:{free_port()}",
        "silent": f"http://127.0.0.1:{silent.getsockname()[1]}",
        "garbage": f"http://127.0.0.1:{garbage.server_address[1]}/patroni",
        "nourl": None,
        "badurl": "ftp://127.0.0.1/",
    }
    garbage.shutdown()
    garbage.server_close()
    thread.join()
    silent.close()


def test_fetch_status_in_parallel_within_the_timeout(
    serve: Serve, odd_peers: dict[str, str | None]
) -> None:
    replica, _ = serve(status_of("replica"))
    primary, _ = serve(status_of("primary"))
    urls = {"n2": replica.url + "/patroni", "n3": primary.url, **odd_peers}
    peers = HttpPeers(
        name="n1",
        api_url_of=urls.get,
        auth=None,
        inbox=FailsafeInbox(time.monotonic),
        timeout_s=TIMEOUT_S,
    )
    started = time.monotonic()
    answers = peers.fetch_status(tuple(urls))
    assert time.monotonic() - started < TIMEOUT_S + 0.5
    assert [a.name for a in answers] == list(urls)
    by_name = {a.name: a for a in answers}
    assert by_name["n2"] == PeerStatus(name="n2", in_recovery=True, wal_lsn=50 * MB, timeline=2)
    assert by_name["n3"] == PeerStatus(name="n3", in_recovery=False, wal_lsn=50 * MB, timeline=2)
    assert [n for n, a in by_name.items() if not a.reachable] == list(odd_peers)
    assert peers.fetch_status(()) == ()


def test_post_failsafe_with_auth_reaches_replicas_only(
    serve: Serve, odd_peers: dict[str, str | None]
) -> None:
    replica, replica_inbox = serve(status_of("replica"))
    primary, primary_inbox = serve(status_of("primary"))  # holds the lock: answers 409
    urls = {"n2": replica.url, "n3": primary.url, **odd_peers}
    own_inbox = FailsafeInbox(lambda: NOW)
    peers = HttpPeers(
        name="n1", api_url_of=urls.get, auth=AUTH, inbox=own_inbox, timeout_s=TIMEOUT_S
    )
    started = time.monotonic()
    assert peers.post_failsafe(tuple(urls)) == ("n2",)
    assert time.monotonic() - started < TIMEOUT_S + 0.5
    heartbeat = replica_inbox.latest()
    assert heartbeat is not None
    assert heartbeat.leader == "n1"
    assert primary_inbox.latest() is None
    assert peers.last_failsafe_heartbeat() is None
    own_inbox.accept("n7")
    assert peers.last_failsafe_heartbeat() == own_inbox.latest()


def test_post_failsafe_with_wrong_auth_is_not_acknowledged(serve: Serve) -> None:
    replica, inbox = serve(status_of("replica"))
    peers = HttpPeers(
        name="n1",
        api_url_of=lambda name: replica.url,
        auth=("admin", "wrong"),
        inbox=FailsafeInbox(time.monotonic),
        timeout_s=TIMEOUT_S,
    )
    assert peers.post_failsafe(("n2",)) == ()
    assert inbox.latest() is None
