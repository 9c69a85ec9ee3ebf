# The REST answers peers and load balancers read (docs/patroni-rules.md §1a), as pure functions of
# the agent's published status and the request. `/primary` is 200 only while the local lock deadline
# (set by our own successful acquire or compare-and-set) has not passed and PostgreSQL really runs
# read-write: never from a DCS read (bug zoo 2). The DCS view counts only while fresh (read within
# ttl), as Patroni's cached cluster does. `peer_status_from_patroni` is the other side: how a
# candidate reads a peer's `/patroni` answer in a race (an answer without xlog: PostgreSQL down).
"""Health endpoints and the `/patroni` document, and the parser of a peer's `/patroni` answer."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any

from pgha import __version__
from pgha.engine.config import SyncMode
from pgha.engine.roles import Role
from pgha.engine.values import ClusterView, PeerStatus, PgRun, Tags
from pgha.status import AgentStatus

Answer = tuple[int, dict[str, Any]]
Query = Mapping[str, str]
OK, UNAVAILABLE = 200, 503

_STOPPED_STATES = {
    Role.CLONING: "creating replica",
    Role.BOOTSTRAPPING: "initializing new cluster",
    Role.REWINDING: "running pg_rewind",
}
_UNITS = {"": 1, "B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_LAG = re.compile(r"^\s*(\d+)\s*([A-Za-z]*)\s*$")


# ---------------------------------------------------------------- facts derived from the status


def is_leader(status: AgentStatus, now_mono: float) -> bool:
    """The local lock deadline has not passed (never inferred from a DCS read)."""
    deadline = status.lock_deadline_mono
    return deadline is not None and now_mono < deadline


def fresh_view(status: AgentStatus, now_mono: float) -> ClusterView | None:
    """The last DCS view if it was read within ttl, else None (Patroni's `dcs.cluster`)."""
    seen = status.dcs_last_seen_mono
    if seen is None or now_mono - seen >= status.config.ttl_s:
        return None
    return status.cluster


def _running(status: AgentStatus) -> bool:
    return status.postgres.data_present and status.postgres.run is PgRun.RUNNING


def _writable(status: AgentStatus) -> bool:
    return _running(status) and not status.postgres.in_recovery


def _in_recovery(status: AgentStatus) -> bool:
    return _running(status) and status.postgres.in_recovery


def tag_values(tags: Tags) -> dict[str, Any]:
    """The tags a member publishes: those that differ from the defaults."""
    default = Tags()
    names = (f.name for f in fields(Tags) if getattr(tags, f.name) != getattr(default, f.name))
    return {n: getattr(tags, n) for n in names}


def parse_lag(value: str | None) -> int | None:
    """`lag` as bytes: an integer with an optional unit (B, kB, MB, GB, TB); None if invalid."""
    match = _LAG.match(value or "")
    if match is None or match.group(2) not in _UNITS:
        return None
    return int(match.group(1)) * _UNITS[match.group(2)]


def _lagging(status: AgentStatus, now_mono: float, max_lag: int | None) -> bool:
    view = fresh_view(status, now_mono)
    optime = (view.status_optime_lsn if view is not None else None) or 0
    return max_lag is not None and optime > status.postgres.wal_lsn + max_lag


def _tags_match(status: AgentStatus, query: Query) -> bool:
    # Every `tag_<name>=<value>` must name a published tag with that value (booleans lowercase).
    published = tag_values(status.tags)
    for key, wanted in query.items():
        if not key.startswith("tag_"):
            continue
        value = published.get(key[4:])
        if value is None or str(value).lower() != wanted.lower():
            return False
    return True


def is_sync_standby(status: AgentStatus, view: ClusterView | None) -> bool:
    """Listed as a standby in an active `/sync` key."""
    return view is not None and view.sync.leader is not None and status.name in view.sync.standbys


# ---------------------------------------------------------------- the /patroni document


def _state(status: AgentStatus) -> str:
    pg = status.postgres
    if pg.run is PgRun.RUNNING:
        return "running"
    if pg.run is PgRun.STARTING:
        return "starting"
    if status.role in _STOPPED_STATES:
        return _STOPPED_STATES[status.role]
    return "stopped" if pg.clean_shutdown else "crashed"


def _role(status: AgentStatus) -> str:
    pg = status.postgres
    if not pg.data_present:
        return "uninitialized"
    return "primary" if pg.is_primary else "replica"


def _xlog(status: AgentStatus) -> dict[str, Any]:
    lsn = status.postgres.wal_lsn
    if status.postgres.in_recovery:
        return {"received_location": lsn, "replayed_location": lsn, "paused": False}
    return {"location": lsn}


def _flags(status: AgentStatus, now_mono: float) -> dict[str, Any]:
    view = fresh_view(status, now_mono)
    sync = is_sync_standby(status, view)
    quorum = status.config.synchronous_mode is SyncMode.QUORUM
    flags = {
        "pause": status.paused,
        "cluster_unlocked": view is None or view.leader is None,
        "failsafe_mode_is_active": status.failsafe_active,
        "watchdog_failed": status.watchdog_failed,
        "sync_standby": sync and not quorum,
        "quorum_standby": sync and quorum,
    }
    return {key: True for key, on in flags.items() if on}


def patroni_body(status: AgentStatus, now_mono: float) -> dict[str, Any]:
    """The `GET /patroni` document (also the body of every health answer)."""
    body: dict[str, Any] = {
        "state": _state(status),
        "role": _role(status),
        "patroni": {"name": status.name, "version": __version__},
    }
    if _running(status):
        body["xlog"] = _xlog(status)
        body["timeline"] = status.postgres.timeline
    tags = tag_values(status.tags)
    if tags:
        body["tags"] = tags
    if status.dcs_last_seen_wall is not None:
        body["dcs_last_seen"] = int(status.dcs_last_seen_wall)
    body.update(_flags(status, now_mono))
    return body


# ---------------------------------------------------------------- endpoints


def _answer(ok: bool, status: AgentStatus, now_mono: float) -> Answer:
    return (OK if ok else UNAVAILABLE), patroni_body(status, now_mono)


def _primary_ok(status: AgentStatus, now_mono: float) -> bool:
    if status.paused and fresh_view(status, now_mono) is None:
        return _writable(status)  # paused and no DCS: PostgreSQL's own role (§1a)
    return is_leader(status, now_mono) and _writable(status)


def _replica_ok(status: AgentStatus, now_mono: float, query: Query) -> bool:
    lag = parse_lag(query["lag"]) if "lag" in query else None
    balanced = not status.tags.noloadbalance
    return _in_recovery(status) and balanced and not _lagging(status, now_mono, lag)


def primary(status: AgentStatus, now_mono: float, query: Query) -> Answer:
    """`/primary`: holds the lock by the local deadline and PostgreSQL runs read-write."""
    del query  # tags are ignored for the leader endpoints, as in Patroni
    return _answer(_primary_ok(status, now_mono), status, now_mono)


def leader(status: AgentStatus, now_mono: float, query: Query) -> Answer:
    """`/leader`: holds the lock by the local deadline (primary or, later, standby leader)."""
    del query
    return _answer(is_leader(status, now_mono), status, now_mono)


def replica(status: AgentStatus, now_mono: float, query: Query) -> Answer:
    """`/replica?lag=N&tag_x=y`: a running replica, load-balanced, not lagging, tags match."""
    ok = _replica_ok(status, now_mono, query) and _tags_match(status, query)
    return _answer(ok, status, now_mono)


def read_only(status: AgentStatus, now_mono: float, query: Query) -> Answer:
    """`/read-only`: the primary, or what `/replica` accepts."""
    ok = _primary_ok(status, now_mono) or _replica_ok(status, now_mono, query)
    return _answer(ok and _tags_match(status, query), status, now_mono)


def _sync_answer(status: AgentStatus, now_mono: float, query: Query, listed: bool) -> Answer:
    view = fresh_view(status, now_mono)
    ok = view is not None and is_sync_standby(status, view) is listed
    ok = ok and _replica_ok(status, now_mono, query) and _tags_match(status, query)
    return _answer(ok, status, now_mono)


def sync(status: AgentStatus, now_mono: float, query: Query) -> Answer:
    """`/sync`: a running replica listed in the `/sync` key."""
    return _sync_answer(status, now_mono, query, listed=True)


def asynchronous(status: AgentStatus, now_mono: float, query: Query) -> Answer:
    """`/async`: a running replica not listed in the `/sync` key."""
    return _sync_answer(status, now_mono, query, listed=False)


def health(status: AgentStatus, now_mono: float, query: Query) -> Answer:
    """`/health`: PostgreSQL is running, in any role."""
    return _answer(_running(status) and _tags_match(status, query), status, now_mono)


def liveness(status: AgentStatus, now_mono: float, query: Query) -> Answer:
    """`/liveness`: the loop ran within ttl (primary) or 2 ttl (otherwise); 200 in pause."""
    del query
    threshold = status.config.ttl_s * (1 if _writable(status) else 2)
    last = status.last_loop_mono
    ran = last is not None and now_mono - last <= threshold
    return _answer(status.paused or ran, status, now_mono)


def _ready(status: AgentStatus, now_mono: float, query: Query) -> bool:
    if is_leader(status, now_mono):
        return True
    if not _in_recovery(status) or status.postgres.following is None:
        return False
    view = fresh_view(status, now_mono)
    if view is None:
        return status.failsafe_active
    lag = parse_lag(query.get("lag"))
    limit = status.config.maximum_lag_on_failover_b if lag is None else lag
    return (view.status_optime_lsn or 0) - status.postgres.wal_lsn <= limit


def readiness(status: AgentStatus, now_mono: float, query: Query) -> Answer:
    """`/readiness`: holds the lock, or a running replica that streams, with a fresh DCS view
    (or failsafe active) and lag within `lag` (default maximum_lag_on_failover)."""
    return _answer(_ready(status, now_mono, query), status, now_mono)


def patroni(status: AgentStatus, now_mono: float, query: Query) -> Answer:
    """`/patroni`: always 200 with the status document."""
    del query
    return OK, patroni_body(status, now_mono)


Endpoint = Callable[[AgentStatus, float, Query], Answer]

ENDPOINTS: Mapping[str, Endpoint] = {
    "/": primary,
    "/primary": primary,
    "/read-write": primary,
    "/leader": leader,
    "/replica": replica,
    "/read-only": read_only,
    "/sync": sync,
    "/synchronous": sync,
    "/async": asynchronous,
    "/asynchronous": asynchronous,
    "/health": health,
    "/liveness": liveness,
    "/readiness": readiness,
    "/patroni": patroni,
}


def answer(path: str, status: AgentStatus, now_mono: float, query: Query) -> Answer:
    """Route a GET; an unknown path is 404 with an empty body."""
    endpoint = ENDPOINTS.get(path)
    return (404, {}) if endpoint is None else endpoint(status, now_mono, query)


# ---------------------------------------------------------------- a peer's answer


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _flag(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "on", "1")
    return value is True


def _priority(value: object) -> int:
    priority = _int(value)
    return 1 if priority is None else priority


def _wal(xlog: Mapping[str, Any], primary: bool) -> int:
    if primary:
        return _int(xlog.get("location")) or 0
    received = _int(xlog.get("received_location")) or 0
    return max(received, _int(xlog.get("replayed_location")) or 0)


def peer_status_from_patroni(name: str, body: object) -> PeerStatus:
    """Read a peer's `/patroni` answer; anything that is not a JSON object means unreachable.

    No `xlog` means PostgreSQL is down (running False); missing tags take their defaults.
    """
    if not isinstance(body, Mapping):
        return PeerStatus(name=name, reachable=False, running=False)
    xlog, tags = body.get("xlog"), body.get("tags")
    tags = tags if isinstance(tags, Mapping) else {}
    primary = body.get("role") in ("primary", "master")
    running = isinstance(xlog, Mapping)
    return PeerStatus(
        name=name,
        running=running,
        in_recovery=not primary,
        wal_lsn=_wal(xlog, primary) if isinstance(xlog, Mapping) else 0,
        timeline=_int(body.get("timeline")),
        failover_priority=_priority(tags.get("failover_priority")),
        nofailover=_flag(tags.get("nofailover")),
        watchdog_failed=_flag(body.get("watchdog_failed")),
    )
