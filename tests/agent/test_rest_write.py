"""The REST API's write endpoints over real HTTP: auth, bad input, /config, switchover, commands.

The fakes (MemoryAdmin for etcd, RecordingSink for the loop) and the server factory are shared
with test_restapi.py; see there.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgha.agent.admin import Command, CommandResult
from pgha.agent.rest.api import WRITE_ROUTES
from pgha.agent.rest.common import basic_auth_header
from pgha.engine.config import DynamicConfig, SyncMode
from pgha.engine.values import SyncKey
from tests.agent.test_restapi import (
    AUTH,
    CONFIG,
    NOW,
    MakeNode,
    Node,
    Nodes,
    cluster_view,
    holder,
    raw_exchange,
    status_of,
)

pytestmark = pytest.mark.agent


@pytest.fixture
def make_node() -> Iterator[MakeNode]:
    """Start RestApis on free ports; all are stopped at teardown."""
    nodes = Nodes()
    yield nodes.start
    nodes.stop_all()


@pytest.fixture
def node(make_node: MakeNode) -> Node:
    return make_node(config=CONFIG)


# ---------------------------------------------------------------- authentication


VALID_BODIES: dict[tuple[str, str], object] = {
    ("PATCH", "/config"): {"loop_wait": 5},
    ("PUT", "/config"): {"ttl": 30},
    ("POST", "/switchover"): {"leader": "n1", "candidate": "n2"},
    ("DELETE", "/switchover"): None,
    ("POST", "/failover"): {"candidate": "n2"},
    ("POST", "/restart"): None,
    ("POST", "/reinitialize"): {"force": True},
    ("POST", "/reload"): None,
    ("POST", "/failsafe"): {"name": "n1"},
}
BAD_CREDENTIALS = [
    None,
    ("admin", "wrong"),
    ("someone", AUTH[1]),
    ("admin", AUTH[1] + "x"),
]


@pytest.mark.parametrize("route", sorted(WRITE_ROUTES))
def test_every_write_endpoint_requires_auth(make_node: MakeNode, route: tuple[str, str]) -> None:
    node = make_node(status_of("replica"))
    method, path = route
    for credentials in BAD_CREDENTIALS:
        denied = node.call(method, path, VALID_BODIES[route], auth=credentials)
        assert denied.status == 401, credentials
        assert denied.headers["WWW-Authenticate"].startswith("Basic")
    garbled = node.call(method, path, VALID_BODIES[route], headers={"Authorization": "Basic !!"})
    assert garbled.status == 401
    assert node.sink.calls == []
    assert node.inbox.latest() is None
    accepted = node.call(method, path, VALID_BODIES[route], auth=AUTH)
    assert accepted.status not in (401, 500)


def test_without_a_username_writes_are_open(make_node: MakeNode) -> None:
    node = make_node(status_of("replica"), auth=None)
    assert node.call("POST", "/reload").status == 200
    assert [c[0] for c in node.sink.calls] == [Command.RELOAD]


def test_logs_hold_no_body_and_no_credentials(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pgha")
    node.call("PATCH", "/config", {"postgresql": {"parameters": {"x": "body-secret"}}}, auth=AUTH)
    node.call("POST", "/reload", auth=("admin", "another-secret"))
    assert any(r.name == "pgha.restapi" for r in caplog.records)
    for secret in ("body-secret", AUTH[1], "another-secret", basic_auth_header(*AUTH)):
        assert secret not in caplog.text


# ---------------------------------------------------------------- bad input is a 4xx, never a 500


@pytest.mark.parametrize(
    ("route", "body"),
    [
        (("PATCH", "/config"), b"{"),
        (("PATCH", "/config"), b"[1, 2]"),
        (("PATCH", "/config"), b'{"ttl": NaN}'),
        (("PATCH", "/config"), b'{"ttl": 1e999}'),
        (("PATCH", "/config"), b"\xff\xfe"),
        (("PATCH", "/config"), b"[" * 5000 + b"]" * 5000),
        (("PATCH", "/config"), b'{"a":' * 40 + b"1" + b"}" * 40),
        (("PATCH", "/config"), b""),
        (("PUT", "/config"), b'"text"'),
        (("POST", "/switchover"), b"{}"),
        (("POST", "/switchover"), b'{"leader": 1}'),
        (("POST", "/switchover"), b'{"leader": "n1", "member": "n2"}'),
        (("POST", "/switchover"), b'{"leader": "n1", "scheduled_at": 5}'),
        (("POST", "/failover"), b'{"leader": "n1"}'),
        (("POST", "/failover"), b'{"candidate": ["n2"]}'),
        (("POST", "/restart"), b'{"timeout": -1}'),
        (("POST", "/restart"), b'{"timeout": true}'),
        (("POST", "/restart"), b'{"role": "leader"}'),
        (("POST", "/restart"), b'{"schedule": "2030-01-01T00:00:00Z"}'),
        (("POST", "/reinitialize"), b'{"force": "yes"}'),
        (("POST", "/reload"), b'{"now": true}'),
        (("POST", "/failsafe"), b'{"leader": "n1"}'),
        (("POST", "/failsafe"), b'{"name": ""}'),
        (("DELETE", "/switchover"), b"[]"),
    ],
)
def test_malformed_bodies_are_400(node: Node, route: tuple[str, str], body: bytes) -> None:
    answer = node.call(*route, body, auth=AUTH)
    assert answer.status == 400
    assert "error" in answer.json()
    assert node.sink.calls == []
    assert node.admin.version == 1


def test_limits_paths_and_methods(node: Node) -> None:
    big = b'{"x": "' + b"a" * 70_000 + b'"}'
    assert node.call("PATCH", "/config", big, auth=AUTH).status == 413
    claimed = b"POST /reload HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n{}"
    assert raw_exchange(node.api.url, claimed).startswith(b"HTTP/1.0 413")
    for length in [b"-5", b"abc", b"\xb2", b"1e3", b"9" * 40]:
        request = b"POST /reload HTTP/1.1\r\nContent-Length: " + length + b"\r\n\r\n"
        assert raw_exchange(node.api.url, request).startswith(b"HTTP/1.0 400"), length
    chunked = b"POST /reload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    assert raw_exchange(node.api.url, chunked).startswith(b"HTTP/1.0 411")
    assert raw_exchange(node.api.url, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.0 400")
    assert raw_exchange(node.api.url, b"GET / HTTP/2.0\r\n\r\n").startswith(b"HTTP/1.0 400")
    assert node.call("GET", "/nowhere").status == 404
    assert node.call("POST", "/nowhere", {}, auth=AUTH).status == 404
    wrong = node.call("GET", "/switchover")
    assert wrong.status == 405
    assert "POST" in wrong.headers["Allow"]
    assert node.call("DELETE", "/cluster", auth=AUTH).status == 405
    assert node.call("BREW", "/primary").status == 405
    assert node.sink.calls == []


FIELD_NAMES = [
    "leader",
    "candidate",
    "name",
    "ttl",
    "force",
    "role",
    "timeout",
    "scheduled_at",
    "postgresql",
    "parameters",
    "x",
]
SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
)
JSON_VALUES = st.recursive(
    SCALARS | st.sampled_from(["n1", "n2", "n3", "master", "2100-01-01T00:00:00Z"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(FIELD_NAMES), inner, max_size=4)
    ),
    max_leaves=8,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(route=st.sampled_from(sorted(WRITE_ROUTES)), body=JSON_VALUES)
def test_any_json_body_gets_a_non_5xx_answer(
    node: Node, route: tuple[str, str], body: object
) -> None:
    answer = node.call(*route, json.dumps(body).encode(), auth=AUTH)
    assert answer.status < 500 or answer.status == 503  # 503: a switchover that did not finish


def test_dcs_error_is_503_and_unexpected_error_is_a_generic_500(node: Node) -> None:
    node.admin.down = True
    for method, path in [("GET", "/cluster"), ("GET", "/config"), ("PATCH", "/config")]:
        assert node.call(method, path, {"ttl": 30}, auth=AUTH).status == 503
    assert node.call("GET", "/primary").status == 200  # health never reads the DCS
    node.sink.error = RuntimeError("internal-detail")
    answer = node.call("POST", "/reload", auth=AUTH)
    assert answer.status == 500
    assert b"internal-detail" not in answer.body


# ---------------------------------------------------------------- /config


def test_patch_config_merges_and_null_deletes(node: Node) -> None:
    patch = {
        "loop_wait": 5,
        "postgresql": {"parameters": {"max_connections": None, "work_mem": "4MB"}},
    }
    answer = node.call("PATCH", "/config", patch, auth=AUTH)
    expected = {"ttl": 30, "loop_wait": 5, "postgresql": {"parameters": {"work_mem": "4MB"}}}
    assert (answer.status, answer.json(), node.admin.config) == (200, expected, expected)
    assert node.admin.version == 2


@pytest.mark.parametrize(
    "patch",
    [
        {"ttl": "thirty"},
        {"loop_wait": 0},
        {"no_such_key": 1},
        {"watchdog": {"mode": "sometimes"}},
        {"postgresql": []},
        {"postgresql": {"parameters": {"work_mem": ["4MB"]}}},
        {"postgresql": {"parameters": "max_connections=5"}},
        {"postgresql": {"pg_hba": "host all all 0.0.0.0/0 trust"}},
        {"postgresql": {"pg_hba": ["host all all 0.0.0.0/0 md5", 5]}},
    ],
)
def test_patch_config_validates_the_merged_result(node: Node, patch: dict[str, Any]) -> None:
    before = copy.deepcopy(node.admin.config)
    assert node.call("PATCH", "/config", patch, auth=AUTH).status == 400
    assert (node.admin.config, node.admin.version) == (before, 1)


def test_put_config_replaces_and_lost_cas_is_retried_then_409(node: Node) -> None:
    replacement = {"ttl": 20, "loop_wait": 5, "retry_timeout": 5}
    node.admin.lose_cas = 1
    assert node.call("PUT", "/config", replacement, auth=AUTH).status == 200
    assert node.admin.config == replacement
    node.admin.lose_cas = 100
    assert node.call("PATCH", "/config", {"ttl": 40}, auth=AUTH).status == 409
    assert node.admin.config == replacement
    assert node.call("PUT", "/config", {"ttl": None}, auth=AUTH).status == 400


@pytest.mark.parametrize(
    ("method", "body", "key", "allowed"),
    [
        ("PATCH", {"ttl": 99999999999999999999999999}, "ttl", "from 3 to 3600"),  # issue 13, 1
        ("PATCH", {"ttl": 10000000000}, "ttl", "from 3 to 3600"),  # issue 13, 2: > MaxLeaseTTL
        ("PATCH", {"ttl": 3601}, "ttl", "from 3 to 3600"),
        ("PATCH", {"loop_wait": 10**30}, "loop_wait", "from 1 to 3600"),
        ("PATCH", {"retry_timeout": 1e300}, "retry_timeout", "from 1 to 3600"),
        ("PATCH", {"primary_start_timeout": 86401}, "primary_start_timeout", "from 0 to 86400"),
        ("PATCH", {"maximum_lag_on_failover": 2**64}, "maximum_lag_on_failover", "an integer"),
        ("PATCH", {"synchronous_node_count": True}, "synchronous_node_count", "an integer"),
        ("PATCH", {"watchdog": {"safety_margin": -5}}, "watchdog.safety_margin", "-1, or"),
        ("PUT", {"ttl": 99999999999999999999999999}, "ttl", "from 3 to 3600"),
        ("PUT", {"ttl": 30, "loop_wait": 0.5}, "loop_wait", "from 1 to 3600"),
    ],
)
def test_out_of_bounds_config_is_400_naming_the_key_and_nothing_is_written(
    node: Node, method: str, body: dict[str, Any], key: str, allowed: str
) -> None:
    before = copy.deepcopy(node.admin.config)
    answer = node.call(method, "/config", body, auth=AUTH)
    assert answer.status == 400
    message = answer.body.decode()
    assert f"{key}: expected" in message
    assert allowed in message
    assert len(message) < 300  # a huge value is described by its size, not echoed
    assert (node.admin.config, node.admin.version) == (before, 1)


def test_patch_config_with_out_of_range_json_numbers_is_400(node: Node) -> None:
    for body in (
        b'{"ttl": 1e999}',
        b'{"ttl": NaN}',
        b'{"ttl": -Infinity}',
        b'{"ttl": 9' + b"9" * 5000 + b"}",
    ):
        assert node.call("PATCH", "/config", body, auth=AUTH).status == 400
    assert (node.admin.config, node.admin.version) == (CONFIG, 1)


def test_put_config_with_an_empty_object_is_refused(node: Node) -> None:
    answer = node.call("PUT", "/config", {}, auth=AUTH)
    assert answer.status == 400
    assert b"PATCH" in answer.body
    assert (node.admin.config, node.admin.version) == (CONFIG, 1)
    whole = {"ttl": 25, "loop_wait": 5, "retry_timeout": 5}
    assert node.call("PUT", "/config", whole, auth=AUTH).status == 200
    assert node.admin.config == whole


def test_a_rejected_dcs_config_is_shown_in_patroni_and_health_answers(node: Node) -> None:
    assert "config_error" not in node.call("GET", "/patroni").json()
    node.box["config_error"] = "config: ttl: expected a number of seconds from 3 to 3600, got 1e+20"
    for path in ("/patroni", "/health", "/primary", "/replica"):
        assert "from 3 to 3600" in node.call("GET", path).json()["config_error"]
    assert node.call("GET", "/no-such-path").status == 404


def test_patch_config_creates_an_absent_key(make_node: MakeNode) -> None:
    node = make_node(config=None)
    assert node.call("PATCH", "/config", {"ttl": 25}, auth=AUTH).status == 200
    assert (node.admin.config, node.admin.version) == ({"ttl": 25}, 1)


# ---------------------------------------------------------------- switchover and failover


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"leader": "n2"}, 412),  # not the lock holder
        ({"leader": "n1", "candidate": "n9"}, 412),  # not a member
        ({"leader": "n1", "candidate": "n3"}, 412),  # nofailover
        ({"leader": "n1", "candidate": "n1"}, 412),  # already the leader
        ({"leader": "n1", "scheduled_at": "tomorrow"}, 400),
        ({"leader": "n1", "scheduled_at": "2030-01-01T00:00:00"}, 400),  # no time zone
        ({"leader": "n1", "scheduled_at": "2000-01-01T00:00:00+00:00"}, 422),  # in the past
    ],
)
def test_switchover_is_refused(node: Node, body: dict[str, Any], expected: int) -> None:
    assert node.call("POST", "/switchover", body, auth=AUTH).status == expected
    assert node.admin.view.failover is None
    assert holder(node) == "n1"


def test_scheduled_switchover_can_be_listed_and_cancelled(node: Node) -> None:
    body = {"leader": "n1", "candidate": "n2", "scheduled_at": "2100-01-01T12:00:00+02:00"}
    assert node.call("POST", "/switchover", body, auth=AUTH).status == 202
    key = node.admin.view.failover
    assert key is not None
    assert (key.leader, key.candidate) == ("n1", "n2")
    assert key.scheduled_at_wall == 4102480800.0
    assert node.call("GET", "/cluster").json()["scheduled_switchover"]["to"] == "n2"
    assert node.call("POST", "/switchover", body, auth=AUTH).status == 409  # one at a time
    assert node.call("DELETE", "/switchover", auth=AUTH).status == 200
    assert node.admin.view.failover is None
    assert node.call("DELETE", "/switchover", auth=AUTH).status == 404


def test_in_pause_no_scheduling_and_a_candidate_is_needed(make_node: MakeNode) -> None:
    node = make_node(status_of("primary", view=cluster_view(config=DynamicConfig(pause=True))))
    body = {"leader": "n1", "candidate": "n2", "scheduled_at": "2100-01-01T00:00:00Z"}
    assert node.call("POST", "/switchover", body, auth=AUTH).status == 400
    assert node.call("POST", "/switchover", {"leader": "n1"}, auth=AUTH).status == 400
    assert node.admin.view.failover is None
    assert (
        node.call("POST", "/switchover", {"leader": "n1", "candidate": "n2"}, auth=AUTH).status
        == 200
    )


def test_immediate_switchover_waits_for_the_new_leader(node: Node) -> None:
    answer = node.call("POST", "/switchover", {"leader": "n1"}, auth=AUTH)
    assert answer.status == 200
    assert b'"n2"' in answer.body
    assert holder(node) == "n2"


@pytest.mark.parametrize(("mode", "expected"), [("ignore", 503), ("drop", 503)])
def test_switchover_that_does_not_happen_is_503(node: Node, mode: str, expected: int) -> None:
    node.admin.on_failover = mode
    started = time.monotonic()
    answer = node.call("POST", "/switchover", {"leader": "n1", "candidate": "n2"}, auth=AUTH)
    assert answer.status == expected
    assert time.monotonic() - started < 2.0  # switchover_timeout_s is 1 s


def test_switchover_in_sync_mode_needs_a_sync_standby(make_node: MakeNode) -> None:
    view = cluster_view(
        sync=SyncKey(leader="n1", standbys=frozenset({"n4"}), version=1),
        config=DynamicConfig(synchronous_mode=SyncMode.ON),
    )
    node = make_node(status_of("primary", view=view))
    answer = node.call("POST", "/switchover", {"leader": "n1", "candidate": "n2"}, auth=AUTH)
    assert answer.status == 412
    assert answer.json() == {  # the engine's refusal, named for clients and the chaos harness
        "error": "candidate is not a synchronous standby",
        "refusal": "candidate_not_sync",
    }
    assert node.call("POST", "/switchover", {"leader": "n1"}, auth=AUTH).status == 412


def test_failover_works_without_a_leader(make_node: MakeNode) -> None:
    node = make_node(status_of("replica", view=cluster_view(leader=None)))
    assert node.call("POST", "/failover", {"candidate": "n3"}, auth=AUTH).status == 412
    body = {"candidate": "n2", "scheduled_at": "2100-01-01T00:00:00Z"}
    assert node.call("POST", "/failover", body, auth=AUTH).status == 400
    answer = node.call("POST", "/failover", {"candidate": "n2"}, auth=AUTH)
    assert answer.status == 200
    assert holder(node) == "n2"


# ---------------------------------------------------------------- commands and failsafe


def test_commands_reach_the_sink_with_their_options(node: Node) -> None:
    body = {"restart_pending": True, "role": "master", "timeout": 30}
    assert node.call("POST", "/restart", body, auth=AUTH).status == 200
    assert node.call("POST", "/restart", auth=AUTH).status == 200
    assert node.call("POST", "/reinitialize", {"force": True}, auth=AUTH).status == 200
    assert node.call("POST", "/reload", b"{}", auth=AUTH).status == 200
    sent = [(command, options) for command, options, _ in node.sink.calls]
    assert sent == [
        (Command.RESTART, {"restart_pending": True, "role": "primary", "timeout": 30}),
        (Command.RESTART, {}),
        (Command.REINITIALIZE, {"force": True}),
        (Command.RELOAD, {}),
    ]
    assert node.sink.calls[0][2] > 30  # the wait covers the restart's own timeout


def test_command_result_becomes_the_answer(node: Node) -> None:
    node.sink.result = CommandResult(
        ok=False, status=503, message="I am the leader, can not reinitialize"
    )
    answer = node.call("POST", "/reinitialize", auth=AUTH)
    assert (answer.status, answer.body) == (503, b"I am the leader, can not reinitialize")
    node.sink.result = CommandResult(ok=True, status=0, message="odd status")
    assert node.call("POST", "/reload", auth=AUTH).status == 200


def test_failsafe_heartbeat_is_accepted_by_a_replica_only(make_node: MakeNode) -> None:
    replica = make_node(status_of("replica"))
    replica.box["now"] = NOW + 5
    body = {"name": "n1", "api_url": "http://127.0.0.1:1/patroni", "slots": {}}
    answer = replica.call("POST", "/failsafe", body, auth=AUTH)
    assert (answer.status, answer.body) == (200, b"Accepted")
    heartbeat = replica.inbox.latest()
    assert heartbeat is not None
    assert (heartbeat.leader, heartbeat.received_mono) == ("n1", NOW + 5)
    primary = make_node(status_of("primary"))
    assert primary.call("POST", "/failsafe", {"name": "n9"}, auth=AUTH).status == 409
    assert primary.inbox.latest() is None
    # The lock expired (DCS down) but PostgreSQL still runs as primary: refused too (Patroni 500).
    unlocked = make_node(status_of("primary", holds_lock=False, lock_deadline_mono=None))
    refused = unlocked.call("POST", "/failsafe", {"name": "n9"}, auth=AUTH)
    assert (refused.status, unlocked.inbox.latest()) == (409, None)
    # Promoting: the lock is held, PostgreSQL not yet primary.
    promoting = make_node(status_of("replica", lock_deadline_mono=NOW + 20))
    assert promoting.call("POST", "/failsafe", {"name": "n9"}, auth=AUTH).status == 409
