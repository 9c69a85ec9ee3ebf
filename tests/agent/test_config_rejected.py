"""A bad `/config` in the DCS never crashes an agent (issue 13, items 1 and 2), without processes.

The agent's etcd client is driven with a fake session: it keeps the last good configuration (or
the bootstrap one), never asks etcd for a lease it cannot grant, and reports the rejection once.
"""

from __future__ import annotations

import json
import logging
import math
from types import SimpleNamespace
from typing import Any

import pytest

from pgha.agent.etcd.dcs import EtcdDcs, lease_ttl_s
from pgha.agent.etcd.session import EtcdSession, EtcdSettings
from pgha.agent.main import Agent
from pgha.engine.config import ETCD_MAX_LEASE_TTL_S
from pgha.engine.values import LockResult, PostgresState
from pgha.ports import DcsError

SETTINGS = EtcdSettings(hosts=(("127.0.0.1", 1),), scope="demo")
PREFIX = SETTINGS.prefix
HUGE = 99999999999999999999999999


class FakeSession:
    """The calls EtcdDcs makes, on a dict of keys; every lease grant is recorded."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}
        self.revision = 1
        self.grants: list[int] = []
        self.retry_timeout_s = 10.0

    def put_config(self, document: object) -> None:
        self.revision += 1
        self.keys["config"] = json.dumps(document).encode()

    def range(self, key: bytes, range_end: bytes = b"", *, what: str) -> Any:
        kvs = [
            SimpleNamespace(key=(PREFIX + k).encode(), value=v, mod_revision=self.revision, lease=0)
            for k, v in self.keys.items()
        ]
        return SimpleNamespace(kvs=kvs, header=SimpleNamespace(revision=self.revision))

    def lease_grant(self, ttl_s: int, *, what: str) -> tuple[int, int]:
        self.grants.append(ttl_s)
        return 7, ttl_s

    def lease_keepalive(self, lease_id: int, *, what: str) -> int:
        return self.grants[-1]

    def txn(self, compare: Any, success: Any, failure: Any = (), *, what: str) -> Any:
        self.revision += 1
        return SimpleNamespace(succeeded=True, header=SimpleNamespace(revision=self.revision))


def etcd_dcs(bootstrap: dict[str, Any]) -> tuple[EtcdDcs, FakeSession]:
    dcs = EtcdDcs(
        SETTINGS,
        name="n1",
        api_url="http://127.0.0.1:8008/patroni",
        conn_url="postgres://127.0.0.1:5432/postgres",
        tags=SimpleNamespace(),  # type: ignore[arg-type]
        bootstrap_config=bootstrap,
        postgres_state=lambda: PostgresState(data_present=False),
    )
    session = FakeSession()
    dcs._session = session  # type: ignore[assignment]
    return dcs, session


@pytest.mark.parametrize(
    ("bad", "key"),
    [
        ({"ttl": HUGE}, "ttl"),  # issue 13, item 1: did not fit etcd's int64
        ({"ttl": 10000000000}, "ttl"),  # issue 13, item 2: above etcd's MaxLeaseTTL
        ({"ttl": 30, "loop_wait": 10**30}, "loop_wait"),
        ({"ttl": 30, "retry_timeout": "soon"}, "retry_timeout"),
        ({"ttl": 30, "watchdog": {"mode": ["x"]}}, "watchdog.mode"),
        (["not", "an", "object"], "config"),
        ("garbage", "config"),
    ],
)
def test_a_bad_config_keeps_the_last_good_one_and_leases_stay_grantable(
    bad: object, key: str
) -> None:
    dcs, session = etcd_dcs({"ttl": 20})
    session.put_config({"ttl": 30, "loop_wait": 5, "retry_timeout": 5})
    dcs.read_cluster()
    assert dcs.config.ttl_s == 30
    if isinstance(bad, str):
        session.keys["config"] = bad.encode()
    else:
        session.put_config(bad)
    view = dcs.read_cluster()
    assert (view.config.ttl_s, dcs.config.ttl_s, dcs.config.loop_wait_s) == (30, 30, 5)
    error = dcs.last_config_error()
    assert error is not None
    assert dcs.last_config_error_key() == key
    assert len(error) < 300
    assert dcs.raw_config_document() == {"ttl": 30, "loop_wait": 5, "retry_timeout": 5}
    assert dcs.acquire_lock() is LockResult.OK
    assert dcs.renew_lock(session.revision) is LockResult.OK
    assert session.grants == [30]
    session.put_config({"ttl": 40})  # fixed: in use at once, the error is gone
    dcs.read_cluster()
    assert (dcs.config.ttl_s, dcs.last_config_error()) == (40, None)


def test_a_restarted_agent_with_a_bad_config_in_etcd_uses_its_bootstrap_config() -> None:
    dcs, session = etcd_dcs({"ttl": 20, "loop_wait": 2, "retry_timeout": 3})
    session.put_config({"ttl": HUGE})
    dcs.read_cluster()
    assert dcs.config.ttl_s == 20
    assert dcs.last_config_error_key() == "ttl"
    assert dcs.acquire_lock() is LockResult.OK
    assert session.grants == [20]


@pytest.mark.parametrize("ttl", [0, -1, ETCD_MAX_LEASE_TTL_S + 1, HUGE, 2**64])
def test_the_lease_grant_refuses_a_ttl_etcd_cannot_take_as_a_dcs_error(ttl: int) -> None:
    session = EtcdSession(SETTINGS, retry_timeout_s=0.1)
    try:
        with pytest.raises(DcsError, match="lease ttl"):
            session.lease_grant(ttl, what="lease_grant")
    finally:
        session.close()


@pytest.mark.parametrize("ttl", [math.inf, -math.inf, math.nan])
def test_a_non_finite_ttl_is_a_dcs_error(ttl: float) -> None:
    with pytest.raises(DcsError):
        lease_ttl_s(ttl)


class FakeEtcd:
    def __init__(self) -> None:
        self.error: str | None = None
        self.key: str | None = None

    def last_config_error(self) -> str | None:
        return self.error

    def last_config_error_key(self) -> str | None:
        return self.key


class History:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def record(self, kind: str, **fields: Any) -> None:
        self.events.append((kind, fields))


def test_the_agent_reports_a_rejected_config_once(caplog: pytest.LogCaptureFixture) -> None:
    etcd, history = FakeEtcd(), History()
    agent = Agent.__new__(Agent)
    agent.parts = SimpleNamespace(  # type: ignore[assignment]
        dcs=SimpleNamespace(etcd=etcd), member_extras={}, history=history
    )
    agent._config_error = None
    caplog.set_level(logging.INFO, logger="pgha.agent.main")
    agent._report_config_error()
    assert (history.events, agent.parts.member_extras) == ([], {})
    etcd.error, etcd.key = "config: ttl: expected a number of seconds from 3 to 3600, got 1", "ttl"
    for _ in range(5):
        agent._report_config_error()
    assert history.events == [("config_rejected", {"key": "ttl", "error": etcd.error})]
    assert agent.parts.member_extras == {"config_error": etcd.error}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "keeping the last good one" in warnings[0].getMessage()
    etcd.error = etcd.key = None
    agent._report_config_error()
    assert agent.parts.member_extras == {}
    assert len(history.events) == 1
