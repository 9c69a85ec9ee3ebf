"""REST health answers and the `/patroni` document, table-driven, and the peer answer parser."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from pgha import __version__, health
from pgha.engine.config import DynamicConfig, SyncMode
from pgha.engine.roles import Role
from pgha.engine.values import (
    ClusterView,
    LeaderKey,
    PeerStatus,
    PgRun,
    PostgresState,
    SyncKey,
    Tags,
)
from pgha.status import AgentStatus

NOW = 105.0
REPLICA = PostgresState(
    run=PgRun.RUNNING, in_recovery=True, timeline=2, wal_lsn=1000, following="n2"
)
PRIMARY = PostgresState(run=PgRun.RUNNING, in_recovery=False, timeline=2, wal_lsn=1000)
STOPPED = PostgresState(run=PgRun.STOPPED, timeline=2, wal_lsn=1000)
VIEW = ClusterView(leader=LeaderKey(holder="n2", version=4), status_optime_lsn=1000)
SYNC_VIEW = replace(VIEW, sync=SyncKey(leader="n2", standbys=frozenset({"n1"}), version=1))


def status(**kw: Any) -> AgentStatus:
    """n1 as a healthy replica that looked at the DCS 5 s ago (ttl 30)."""
    kw.setdefault("postgres", REPLICA)
    kw.setdefault("cluster", VIEW)
    kw.setdefault("dcs_last_seen_mono", 100.0)
    kw.setdefault("dcs_last_seen_wall", 1_700_000_100.7)
    kw.setdefault("last_loop_mono", 100.0)
    kw.setdefault("role", Role.REPLICA)
    return AgentStatus(name="n1", **kw)


def optime(lsn: int | None, **kw: Any) -> AgentStatus:
    """n1 with `/status` at `lsn` (its own WAL is at 1000)."""
    return status(cluster=replace(kw.pop("view", VIEW), status_optime_lsn=lsn), **kw)


LEADER = status(postgres=PRIMARY, role=Role.PRIMARY, lock_deadline_mono=120.0, holds_lock=True)
STALE = {"dcs_last_seen_mono": 75.0}  # exactly ttl ago: the view no longer counts

CASES: list[tuple[str, str, AgentStatus, dict[str, str], int]] = [
    # /primary: the local lock deadline and a read-write PostgreSQL, never the DCS view
    ("leader", "/primary", LEADER, {}, 200),
    ("root is primary", "/", LEADER, {}, 200),
    ("read-write", "/read-write", LEADER, {"tag_x": "y"}, 200),
    ("deadline reached", "/primary", replace(LEADER, lock_deadline_mono=NOW), {}, 503),
    ("lock, in recovery", "/primary", replace(LEADER, postgres=REPLICA), {}, 503),
    ("lock, stopped", "/primary", replace(LEADER, postgres=STOPPED), {}, 503),
    (
        "view names me, no lock (bug zoo 2)",
        "/primary",
        status(postgres=PRIMARY, cluster=ClusterView(leader=LeaderKey(holder="n1", version=1))),
        {},
        503,
    ),
    (
        "paused, no DCS: PG role",
        "/primary",
        status(postgres=PRIMARY, paused=True, **STALE),
        {},
        200,
    ),
    ("paused, no DCS, replica", "/primary", status(paused=True, **STALE), {}, 503),
    ("paused, DCS fresh", "/primary", status(postgres=PRIMARY, paused=True), {}, 503),
    ("/leader with the lock", "/leader", replace(LEADER, postgres=STOPPED), {}, 200),
    ("/leader without", "/leader", status(), {}, 503),
    # /replica
    ("replica", "/replica", status(), {}, 200),
    ("replica: primary", "/replica", LEADER, {}, 503),
    ("replica: stopped", "/replica", status(postgres=STOPPED), {}, 503),
    (
        "replica: starting",
        "/replica",
        status(postgres=replace(REPLICA, run=PgRun.STARTING)),
        {},
        503,
    ),
    (
        "replica: no data",
        "/replica",
        status(postgres=replace(REPLICA, data_present=False)),
        {},
        503,
    ),
    ("noloadbalance", "/replica", status(tags=Tags(noloadbalance=True)), {}, 503),
    ("lag within", "/replica", optime(1100), {"lag": "100"}, 200),
    ("lag beyond", "/replica", optime(1100), {"lag": "99"}, 503),
    ("lag unit", "/replica", optime(2000), {"lag": "1kB"}, 200),
    ("lag invalid", "/replica", optime(9999), {"lag": "x"}, 200),
    ("no lag param", "/replica", optime(9999), {}, 200),
    (
        "lag, stale view: no optime",
        "/replica",
        optime(9999, **STALE),
        {"lag": "0"},
        200,
    ),
    ("lag, no optime", "/replica", optime(None), {"lag": "0"}, 200),
    ("tag match", "/replica", status(tags=Tags(nofailover=True)), {"tag_nofailover": "true"}, 200),
    ("tag case", "/replica", status(tags=Tags(nofailover=True)), {"tag_nofailover": "TRUE"}, 200),
    (
        "tag mismatch",
        "/replica",
        status(tags=Tags(nofailover=True)),
        {"tag_nofailover": "false"},
        503,
    ),
    ("tag not published", "/replica", status(), {"tag_nofailover": "false"}, 503),
    (
        "tag str",
        "/replica",
        status(tags=Tags(replicatefrom="n3")),
        {"tag_replicatefrom": "n3"},
        200,
    ),
    (
        "tag int",
        "/replica",
        status(tags=Tags(failover_priority=3)),
        {"tag_failover_priority": "3"},
        200,
    ),
    ("other params ignored", "/replica", status(), {"foo": "bar"}, 200),
    # /read-only
    ("read-only: leader", "/read-only", LEADER, {}, 200),
    ("read-only: replica", "/read-only", status(), {}, 200),
    ("read-only: stopped", "/read-only", status(postgres=STOPPED), {}, 503),
    ("read-only: tags", "/read-only", LEADER, {"tag_nosync": "true"}, 503),
    # /sync and /async
    ("sync: listed", "/sync", status(cluster=SYNC_VIEW), {}, 200),
    ("synchronous: listed", "/synchronous", status(cluster=SYNC_VIEW), {}, 200),
    ("sync: not listed", "/sync", status(), {}, 503),
    ("sync: stale view", "/sync", status(cluster=SYNC_VIEW, **STALE), {}, 503),
    ("sync: listed, primary", "/sync", replace(LEADER, cluster=SYNC_VIEW), {}, 503),
    (
        "sync: inactive key",
        "/sync",
        status(cluster=replace(VIEW, sync=SyncKey(standbys=frozenset({"n1"})))),
        {},
        503,
    ),
    ("sync: lagging", "/sync", optime(1200, view=SYNC_VIEW), {"lag": "1"}, 503),
    ("async: not listed", "/async", status(), {}, 200),
    ("asynchronous", "/asynchronous", status(), {}, 200),
    ("async: listed", "/async", status(cluster=SYNC_VIEW), {}, 503),
    ("async: stale view", "/async", status(**STALE), {}, 503),
    ("async: tags", "/async", status(), {"tag_clonefrom": "true"}, 503),
    # /health
    ("health: replica", "/health", status(), {}, 200),
    ("health: primary", "/health", LEADER, {}, 200),
    ("health: stopped", "/health", status(postgres=STOPPED), {}, 503),
    ("health: tags", "/health", status(), {"tag_nosync": "true"}, 503),
    # /liveness: ttl for a primary, 2 ttl otherwise, always in pause
    ("liveness: replica", "/liveness", status(last_loop_mono=NOW - 60), {}, 200),
    ("liveness: replica late", "/liveness", status(last_loop_mono=NOW - 60.5), {}, 503),
    ("liveness: primary", "/liveness", replace(LEADER, last_loop_mono=NOW - 30), {}, 200),
    ("liveness: primary late", "/liveness", replace(LEADER, last_loop_mono=NOW - 30.5), {}, 503),
    ("liveness: never ran", "/liveness", status(last_loop_mono=None), {}, 503),
    ("liveness: paused", "/liveness", status(last_loop_mono=None, paused=True), {}, 200),
    # /readiness
    ("ready: leader", "/readiness", replace(LEADER, postgres=STOPPED), {}, 200),
    ("ready: replica", "/readiness", status(), {}, 200),
    ("ready: stopped", "/readiness", status(postgres=STOPPED), {}, 503),
    (
        "ready: not streaming",
        "/readiness",
        status(postgres=replace(REPLICA, following=None)),
        {},
        503,
    ),
    ("ready: primary without lock", "/readiness", status(postgres=PRIMARY), {}, 503),
    ("ready: stale view", "/readiness", status(**STALE), {}, 503),
    ("ready: stale, failsafe", "/readiness", status(failsafe_active=True, **STALE), {}, 200),
    (
        "ready: within maximum_lag_on_failover",
        "/readiness",
        optime(1000 + 1048576),
        {},
        200,
    ),
    (
        "ready: beyond maximum_lag_on_failover",
        "/readiness",
        optime(1001 + 1048576),
        {},
        503,
    ),
    ("ready: lag param", "/readiness", optime(1010), {"lag": "5"}, 503),
    ("ready: no optime", "/readiness", optime(None), {}, 200),
    # /patroni is always 200
    ("patroni", "/patroni", status(postgres=STOPPED), {}, 200),
]


@pytest.mark.parametrize(
    ("path", "st", "query", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_endpoint(path: str, st: AgentStatus, query: dict[str, str], code: int) -> None:
    got, body = health.answer(path, st, NOW, query)
    assert got == code
    assert body == health.patroni_body(st, NOW)


def test_an_unknown_path_is_404() -> None:
    assert health.answer("/nope", status(), NOW, {}) == (404, {})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0),
        ("1048576", 1048576),
        (" 16MB ", 16 * 1024**2),
        ("16 kB", 16 * 1024),
        ("1B", 1),
        ("2GB", 2 * 1024**3),
        ("1TB", 1024**4),
        ("16mb", None),
        ("-1", None),
        ("1.5MB", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_lag(value: str | None, expected: int | None) -> None:
    assert health.parse_lag(value) == expected


# ---------------------------------------------------------------- the /patroni document

BODIES: list[tuple[str, AgentStatus, dict[str, Any]]] = [
    (
        "replica",
        status(),
        {
            "state": "running",
            "role": "replica",
            "xlog": {"received_location": 1000, "replayed_location": 1000, "paused": False},
            "timeline": 2,
            "dcs_last_seen": 1_700_000_100,
        },
    ),
    (
        "leader",
        LEADER,
        {
            "state": "running",
            "role": "primary",
            "xlog": {"location": 1000},
            "timeline": 2,
            "dcs_last_seen": 1_700_000_100,
        },
    ),
    (
        "crashed, DCS never seen",
        status(
            postgres=replace(STOPPED, clean_shutdown=False),
            dcs_last_seen_mono=None,
            dcs_last_seen_wall=None,
            cluster=None,
        ),
        {"state": "crashed", "role": "replica", "cluster_unlocked": True},
    ),
    ("stopped", status(postgres=STOPPED), {"state": "stopped", "role": "replica"}),
    (
        "starting",
        status(postgres=replace(PRIMARY, run=PgRun.STARTING)),
        {"state": "starting", "role": "primary"},
    ),
    (
        "cloning",
        status(role=Role.CLONING, postgres=PostgresState(data_present=False)),
        {"state": "creating replica", "role": "uninitialized"},
    ),
    (
        "bootstrapping",
        status(role=Role.BOOTSTRAPPING, postgres=PostgresState(data_present=False)),
        {"state": "initializing new cluster", "role": "uninitialized"},
    ),
    (
        "rewinding",
        status(role=Role.REWINDING, postgres=STOPPED),
        {"state": "running pg_rewind", "role": "replica"},
    ),
    (
        "flags",
        status(
            postgres=STOPPED,
            paused=True,
            failsafe_active=True,
            watchdog_failed=True,
            cluster=replace(SYNC_VIEW, leader=None),
            tags=Tags(nofailover=True, failover_priority=0, replicatefrom="n3"),
        ),
        {
            "state": "stopped",
            "role": "replica",
            "tags": {"nofailover": True, "failover_priority": 0, "replicatefrom": "n3"},
            "pause": True,
            "cluster_unlocked": True,
            "failsafe_mode_is_active": True,
            "watchdog_failed": True,
            "sync_standby": True,
        },
    ),
    (
        "quorum standby",
        status(
            postgres=STOPPED,
            cluster=SYNC_VIEW,
            config=DynamicConfig(synchronous_mode=SyncMode.QUORUM),
        ),
        {"state": "stopped", "role": "replica", "quorum_standby": True},
    ),
]


@pytest.mark.parametrize(("st", "expected"), [b[1:] for b in BODIES], ids=[b[0] for b in BODIES])
def test_patroni_body(st: AgentStatus, expected: dict[str, Any]) -> None:
    expected = {"patroni": {"name": "n1", "version": __version__}, **expected}
    if st.dcs_last_seen_wall is not None:
        expected.setdefault("dcs_last_seen", 1_700_000_100)
    assert health.patroni_body(st, NOW) == expected
    assert json.loads(json.dumps(health.patroni_body(st, NOW))) == expected


def test_tag_values_are_the_non_default_tags() -> None:
    assert health.tag_values(Tags()) == {}
    assert health.tag_values(Tags(nosync=True, nostream=True)) == {"nosync": True, "nostream": True}


# ---------------------------------------------------------------- a peer's answer


PEERS: list[tuple[str, object, PeerStatus]] = [
    ("no answer", None, PeerStatus(name="p", reachable=False, running=False)),
    ("not an object", "<html>", PeerStatus(name="p", reachable=False, running=False)),
    ("a list", [1], PeerStatus(name="p", reachable=False, running=False)),
    ("empty object", {}, PeerStatus(name="p", running=False)),
    (
        "primary",
        {"role": "primary", "xlog": {"location": 500}, "timeline": 3},
        PeerStatus(name="p", in_recovery=False, wal_lsn=500, timeline=3),
    ),
    (
        "legacy master",
        {"role": "master", "xlog": {"location": 500}},
        PeerStatus(name="p", in_recovery=False, wal_lsn=500),
    ),
    (
        "replica: most of received and replayed",
        {"role": "replica", "xlog": {"received_location": 700, "replayed_location": 600}},
        PeerStatus(name="p", wal_lsn=700),
    ),
    (
        "replica: replayed only",
        {"role": "replica", "xlog": {"replayed_location": 600}},
        PeerStatus(name="p", wal_lsn=600),
    ),
    ("xlog not an object", {"role": "replica", "xlog": 5}, PeerStatus(name="p", running=False)),
    (
        "garbage fields",
        {
            "role": "replica",
            "xlog": {"received_location": "7", "replayed_location": True},
            "timeline": "2",
        },
        PeerStatus(name="p", wal_lsn=0),
    ),
    (
        "tags",
        {
            "xlog": {},
            "tags": {"nofailover": "true", "failover_priority": 0},
            "watchdog_failed": True,
        },
        PeerStatus(name="p", failover_priority=0, nofailover=True, watchdog_failed=True),
    ),
    (
        "bad tags",
        {
            "xlog": {},
            "tags": {"nofailover": 1, "failover_priority": "high"},
            "watchdog_failed": "no",
        },
        PeerStatus(name="p"),
    ),
    ("tags not an object", {"xlog": {}, "tags": ["nofailover"]}, PeerStatus(name="p")),
    ("postgres down", {"state": "stopped", "role": "replica"}, PeerStatus(name="p", running=False)),
]


@pytest.mark.parametrize(("body", "expected"), [p[1:] for p in PEERS], ids=[p[0] for p in PEERS])
def test_peer_status_from_patroni(body: object, expected: PeerStatus) -> None:
    assert health.peer_status_from_patroni("p", body) == expected


@pytest.mark.parametrize(
    ("st", "expected"),
    [
        (status(), PeerStatus(name="n1", wal_lsn=1000, timeline=2)),
        (LEADER, PeerStatus(name="n1", in_recovery=False, wal_lsn=1000, timeline=2)),
        (status(postgres=STOPPED), PeerStatus(name="n1", running=False)),
        (
            status(tags=Tags(nofailover=True, failover_priority=5), watchdog_failed=True),
            PeerStatus(
                name="n1",
                wal_lsn=1000,
                timeline=2,
                failover_priority=5,
                nofailover=True,
                watchdog_failed=True,
            ),
        ),
    ],
)
def test_our_document_reads_back_as_the_peer_status(st: AgentStatus, expected: PeerStatus) -> None:
    body = json.loads(json.dumps(health.patroni_body(st, NOW)))
    assert health.peer_status_from_patroni("n1", body) == expected
