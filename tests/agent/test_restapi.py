"""The REST API over real HTTP: health codes, HEAD/OPTIONS, documents, metrics, start and stop.

Write endpoints are tested in test_rest_write.py with the fakes defined here. The server is the
real RestApi on a free port. The cluster behind it is `MemoryAdmin`, an
in-memory ClusterAdmin that stands in for etcd only to reach lost compare-and-sets, DCS errors and
leader changes on demand (the integration tests use real etcd); commands go to `RecordingSink`.
"""

from __future__ import annotations

import copy
import http.client
import json
import re
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import pytest

from pgha.agent.admin import Command, CommandResult, FailsafeInbox
from pgha.agent.rest.api import RestApi, RestSettings
from pgha.agent.rest.common import basic_auth_header
from pgha.engine.config import DynamicConfig, SyncMode
from pgha.engine.roles import Role
from pgha.engine.values import (
    ClusterView,
    FailoverKey,
    HistoryEntry,
    LeaderKey,
    Member,
    MemberRole,
    PgRun,
    PostgresState,
    SyncKey,
    Tags,
)
from pgha.ports import DcsError
from pgha.status import AgentStatus

pytestmark = pytest.mark.agent

NOW = 1000.0
AUTH = ("admin", "s3cret-pw")
MB = 1024 * 1024


# ---------------------------------------------------------------- fakes and helpers


def cluster_view(**changes: Any) -> ClusterView:
    """n1 holds the lock; n2 and n3 replicate; n3 has nofailover."""
    members = (
        Member(
            name="n1",
            api_url="http://127.0.0.1:1/patroni",
            conn_url="postgres://h1:5432/x",
            role=MemberRole.PRIMARY,
            timeline=2,
            wal_lsn=50 * MB,
        ),
        Member(
            name="n2",
            api_url="http://127.0.0.1:2/patroni",
            conn_url="postgres://h2:5433/x",
            timeline=2,
            wal_lsn=49 * MB,
        ),
        Member(name="n3", conn_url="postgres://h3/x", tags=Tags(nofailover=True), wal_lsn=None),
    )
    view = ClusterView(
        initialize="7000",
        leader=LeaderKey(holder="n1", version=3),
        members=members,
        history=(HistoryEntry(timeline=1, switch_lsn=12345, new_leader="n1"),),
        status_optime_lsn=50 * MB,
        config_version=1,
    )
    return replace(view, **changes)


def status_of(role: str, *, view: ClusterView | None = None, **changes: Any) -> AgentStatus:
    """A published status at NOW: "primary" (holds the lock), "replica" or "stopped"."""
    primary = role == "primary"
    run = PgRun.STOPPED if role == "stopped" else PgRun.RUNNING
    postgres = PostgresState(
        run=run,
        in_recovery=not primary,
        timeline=2,
        wal_lsn=50 * MB,
        following=None if primary else "n1",
    )
    status = AgentStatus(
        name="n1" if primary else "n2",
        role=Role.PRIMARY if primary else Role.REPLICA,
        holds_lock=primary,
        lock_deadline_mono=NOW + 20 if primary else None,
        postgres=postgres,
        dcs_reachable=True,
        dcs_last_seen_mono=NOW - 1,
        dcs_last_seen_wall=1.7e9,
        last_loop_mono=NOW - 1,
        cluster=view or cluster_view(),
    )
    return replace(status, **changes)


class MemoryAdmin:
    """ClusterAdmin in memory. `on_failover`: "promote" (the candidate takes the lock), "drop"
    (the key is cleared, no change) or "ignore" (nothing happens)."""

    def __init__(self, view: ClusterView, config: dict[str, Any] | None = None) -> None:
        self.view = view
        self.config = config
        self.version: int | None = None if config is None else 1
        self.documents: dict[str, dict[str, Any]] = {}
        self.lose_cas = 0
        self.down = False
        self.on_failover = "promote"
        self._lock = threading.Lock()

    def _check(self) -> None:
        if self.down:
            raise DcsError("etcd is not reachable")

    def cluster(self) -> ClusterView:
        self._check()
        return self.view

    def member_documents(self) -> dict[str, dict[str, Any]]:
        self._check()
        return copy.deepcopy(self.documents)

    def raw_config(self) -> tuple[dict[str, Any], int | None]:
        self._check()
        return copy.deepcopy(self.config or {}), self.version

    def replace_config(self, raw: Mapping[str, Any], version: int | None) -> bool:
        self._check()
        with self._lock:
            if self.lose_cas > 0:  # someone else wrote first
                self.lose_cas -= 1
                self.version = (self.version or 0) + 1
                return False
            if version != self.version:
                return False
            self.config, self.version = copy.deepcopy(dict(raw)), (version or 0) + 1
            return True

    def write_failover(
        self, *, leader: str | None, candidate: str | None, scheduled_at_wall: float | None
    ) -> None:
        self._check()
        key = FailoverKey(leader=leader, candidate=candidate, scheduled_at_wall=scheduled_at_wall)
        self.view = replace(self.view, failover=key)
        if scheduled_at_wall is None and self.on_failover == "promote":
            holder = LeaderKey(holder=candidate or "n2", version=9)
            self.view = replace(self.view, leader=holder, failover=None)
        elif scheduled_at_wall is None and self.on_failover == "drop":
            self.view = replace(self.view, failover=None)

    def delete_failover(self) -> None:
        self._check()
        self.view = replace(self.view, failover=None)


@dataclass
class RecordingSink:
    """CommandSink that records what it was sent and answers `result` (or raises `error`)."""

    result: CommandResult = field(
        default_factory=lambda: CommandResult(ok=True, status=200, message="done")
    )
    error: Exception | None = None
    calls: list[tuple[Command, dict[str, Any], float]] = field(default_factory=list)

    def submit(
        self, command: Command, options: Mapping[str, Any], timeout_s: float
    ) -> CommandResult:
        self.calls.append((command, dict(options), timeout_s))
        if self.error is not None:
            raise self.error
        return self.result


@dataclass
class Node:
    """One running RestApi with everything behind it."""

    api: RestApi
    admin: MemoryAdmin
    sink: RecordingSink
    inbox: FailsafeInbox
    box: dict[str, Any]  # "status" and "now": what the API reads per request

    def call(self, method: str, path: str, body: object = None, **kwargs: Any) -> Answer:
        return call(self.api.url, method, path, body, **kwargs)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def holder(node: Node) -> str | None:
    """Who holds the lock in the node's (fake) cluster now."""
    leader = node.admin.view.leader
    return leader.holder if leader is not None else None


def call(
    url: str,
    method: str,
    path: str,
    body: object = None,
    *,
    auth: tuple[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """One HTTP request; a dict/list body is sent as JSON, bytes as they are."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    sent = dict(headers or {})
    if auth is not None:
        sent["Authorization"] = basic_auth_header(*auth)
    try:
        connection.request(method, path, body=data, headers=sent)
        response = connection.getresponse()
        return Answer(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()


def raw_exchange(url: str, data: bytes) -> bytes:
    """Send raw bytes, return everything the server answers before closing."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


class Nodes:
    """Starts RestApis on free ports (each with its own fakes) and stops them all at the end."""

    def __init__(self) -> None:
        self.started: list[RestApi] = []

    def start(
        self,
        status: AgentStatus | None = None,
        *,
        config: dict[str, Any] | None = None,
        auth: tuple[str, str] | None = AUTH,
        sink: RecordingSink | None = None,
        **overrides: Any,
    ) -> Node:
        status = status or status_of("primary")
        box: dict[str, Any] = {"status": status, "now": NOW}
        admin = MemoryAdmin(status.cluster or cluster_view(), config)
        sink, inbox = sink or RecordingSink(), FailsafeInbox(lambda: box["now"])
        user, password = auth if auth is not None else (None, None)
        options = {"switchover_timeout_s": 1.0, "poll_interval_s": 0.05, **overrides}
        rest = RestSettings(listen_port=0, username=user, password=password, **options)
        api = RestApi(
            rest,
            status=lambda: box["status"],
            now_mono=lambda: box["now"],
            config_error=lambda: box.get("config_error"),
            admin=admin,
            commands=sink,
            inbox=inbox,
            name=status.name,
            scope='demo "scope"\\',
        )
        api.start()
        self.started.append(api)
        return Node(api=api, admin=admin, sink=sink, inbox=inbox, box=box)

    def stop_all(self) -> None:
        for api in self.started:
            api.stop()


MakeNode = Callable[..., Node]
CONFIG = {"ttl": 30, "loop_wait": 10, "postgresql": {"parameters": {"max_connections": 100}}}


@pytest.fixture
def make_node() -> Iterator[MakeNode]:
    """Start RestApis on free ports; all are stopped at teardown."""
    nodes = Nodes()
    yield nodes.start
    nodes.stop_all()


@pytest.fixture
def node(make_node: MakeNode) -> Node:
    return make_node(config=CONFIG)


# ---------------------------------------------------------------- health endpoints


@pytest.mark.parametrize(
    ("role", "path", "expected"),
    [
        ("primary", "/primary", 200),
        ("primary", "/", 200),
        ("primary", "/replica", 503),
        ("primary", "/read-only", 200),
        ("primary", "/health", 200),
        ("replica", "/primary", 503),
        ("replica", "/replica", 200),
        ("replica", "/replica?lag=1MB", 200),
        ("replica", "/replica?tag_nofailover=true", 503),
        ("replica", "/health", 200),
        ("stopped", "/health", 503),
        ("stopped", "/replica", 503),
        ("stopped", "/patroni", 200),
    ],
)
def test_health_codes_over_http(make_node: MakeNode, role: str, path: str, expected: int) -> None:
    node = make_node(status_of(role))
    answer = node.call("GET", path)
    assert answer.status == expected
    assert answer.json()["patroni"]["name"] == node.box["status"].name


def test_query_lag_and_expired_lock_change_the_answer(make_node: MakeNode) -> None:
    lagging = status_of("replica", postgres=PostgresState(run=PgRun.RUNNING, wal_lsn=40 * MB))
    assert make_node(lagging).call("GET", "/replica?lag=1MB").status == 503
    node = make_node(status_of("primary"))
    node.box["now"] = NOW + 21  # past the local lock deadline
    assert node.call("GET", "/primary").status == 503


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS"])
def test_head_and_options_give_the_code_without_a_body(make_node: MakeNode, method: str) -> None:
    primary, replica = make_node(status_of("primary")), make_node(status_of("replica"))
    assert (primary.call(method, "/primary").status, replica.call(method, "/primary").status) == (
        200,
        503,
    )
    assert primary.call(method, "/primary").body == b""


# ---------------------------------------------------------------- documents


def test_cluster_document(make_node: MakeNode) -> None:
    view = cluster_view(config=DynamicConfig(pause=True))
    node = make_node(status_of("primary", view=view))
    node.admin.documents = {"n1": {"state": "running"}, "n2": {"state": "streaming"}}
    node.admin.view = replace(view, failover=FailoverKey(leader="n1", scheduled_at_wall=2e9))
    document = node.call("GET", "/cluster").json()
    by_name = {m["name"]: m for m in document["members"]}
    assert (by_name["n1"]["role"], by_name["n2"]["role"]) == ("leader", "replica")
    assert (by_name["n1"]["host"], by_name["n1"]["port"], by_name["n3"]["host"]) == (
        "h1",
        5432,
        "h3",
    )
    assert "lag" not in by_name["n1"]
    assert (by_name["n2"]["lag"], by_name["n3"]["lag"]) == (MB, "unknown")
    assert (by_name["n2"]["state"], by_name["n3"]["tags"]) == ("streaming", {"nofailover": True})
    assert document["pause"] is True
    assert document["scheduled_switchover"]["from"] == "n1"
    assert "leader_not_a_member" not in document


@pytest.mark.parametrize("leased", [True, False])
def test_cluster_names_a_leader_key_holder_that_is_no_member(
    make_node: MakeNode, leased: bool
) -> None:
    view = cluster_view()
    node = make_node(status_of("replica", view=view))
    node.admin.view = replace(view, leader=LeaderKey(holder="garbage", version=9, leased=leased))
    document = node.call("GET", "/cluster").json()
    assert document["leader_not_a_member"] == {"name": "garbage", "leased": leased}
    assert "leader" not in [m["role"] for m in document["members"]]


def test_cluster_roles_in_sync_mode(make_node: MakeNode) -> None:
    view = cluster_view(
        sync=SyncKey(leader="n1", standbys=frozenset({"n2"}), version=1),
        config=DynamicConfig(synchronous_mode=SyncMode.ON),
    )
    members = make_node(status_of("primary", view=view)).call("GET", "/cluster").json()["members"]
    assert [m["role"] for m in members] == ["leader", "sync_standby", "replica"]


def test_history_config_and_failsafe_documents(node: Node) -> None:
    assert node.call("GET", "/history").json() == [[1, 12345, None, None, "n1"]]
    assert node.call("GET", "/config").json()["ttl"] == 30
    assert node.call("GET", "/failsafe").status == 502  # failsafe_mode is off
    node.admin.view = replace(
        node.admin.view, failsafe=("n1", "n2"), config=DynamicConfig(failsafe_mode=True)
    )
    assert node.call("GET", "/failsafe").json() == {
        "n1": "http://127.0.0.1:1/patroni",
        "n2": "http://127.0.0.1:2/patroni",
    }
    node.admin.config, node.admin.version = None, None
    assert node.call("GET", "/config").status == 502


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str) -> dict[str, tuple[dict[str, str], float]]:
    """A tiny parser of the text format: samples by name; HELP and TYPE must precede each."""
    described: set[str] = set()
    samples: dict[str, tuple[dict[str, str], float]] = {}
    for line in text.splitlines():
        if line.startswith(("# HELP ", "# TYPE ")):
            described.add(f"{line.split()[1]} {line.split()[2]}")
            continue
        match = SAMPLE.match(line)
        assert match is not None, line
        name, labels_text, value = match.groups()
        assert {f"HELP {name}", f"TYPE {name}"} <= described, line
        pairs = LABEL.findall(labels_text)
        assert ",".join(f'{k}="{v}"' for k, v in pairs) == labels_text, line
        samples[name] = ({k: unescape(v) for k, v in pairs}, float(value))
    return samples


def unescape(raw: str) -> str:
    """A label value as written, unescaped (backslash, quote, newline)."""
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], raw)


def test_metrics_parse_as_prometheus_text(make_node: MakeNode) -> None:
    answer = make_node(status_of("primary")).call("GET", "/metrics")
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = parse_prometheus(answer.body.decode())
    assert samples["pgha_primary"] == ({"scope": 'demo "scope"\\', "name": "n1"}, 1.0)
    assert samples["pgha_role"][0]["role"] == "primary"
    values = {name: value for name, (_, value) in samples.items()}
    assert (values["patroni_primary"], values["patroni_replica"]) == (1.0, 0.0)
    assert values["patroni_xlog_location"] == values["pgha_xlog_location"] == 50 * MB
    assert (values["pgha_lock_held"], values["pgha_cluster_unlocked"]) == (1.0, 0.0)
    replica = make_node(status_of("replica")).call("GET", "/metrics").body.decode()
    values = {name: value for name, (_, value) in parse_prometheus(replica).items()}
    assert (values["patroni_primary"], values["patroni_replica"]) == (0.0, 1.0)
    assert values["patroni_xlog_received_location"] == 50 * MB


# ---------------------------------------------------------------- server lifecycle


def test_start_on_a_taken_port_names_it_and_stop_closes(make_node: MakeNode) -> None:
    node = make_node()
    port = urlsplit(node.api.url).port
    clash = RestApi(
        RestSettings(listen_host="127.0.0.1", listen_port=port or 0),
        status=lambda: node.box["status"],
        now_mono=lambda: NOW,
        admin=node.admin,
        commands=node.sink,
        inbox=node.inbox,
        name="n9",
    )
    with pytest.raises(OSError, match=str(port)):
        clash.start()
    url = node.api.url
    node.api.stop()
    node.api.stop()  # idempotent
    with pytest.raises(ConnectionRefusedError):
        call(url, "GET", "/primary")
