# The REST API's read-only endpoints: the health answers (delegated to pgha.health, the single
# source of their logic), and the cluster-wide documents operators read (`/cluster`, `/history`,
# `/config`, `/failsafe`, `/metrics`). Safety rule: health answers come only from the agent's
# published status and the local lock deadline (pgha.health), never from a DCS read made for the
# request; the cluster documents, which do read the DCS, never decide who is primary.
"""GET handlers: health, /cluster, /history, /config, /failsafe and /metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from pgha import health
from pgha.agent.metrics import render_metrics
from pgha.agent.rest.common import Reply, Request, RestContext, error_reply, json_reply
from pgha.engine.config import SyncMode
from pgha.engine.values import ClusterView, Member
from pgha.health import tag_values

METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def health_get(ctx: RestContext, request: Request) -> Reply:
    """Any path of `pgha.health.ENDPOINTS`, answered from the published status (and
    `config_error` when the `/config` last read from the DCS was rejected)."""
    code, body = health.answer(request.path, ctx.status(), ctx.now_mono(), request.query)
    config_error = ctx.config_error()
    if config_error and code != 404:  # a bad /config in the DCS: the last good one is in use
        body["config_error"] = config_error
    return json_reply(code, body)


def metrics_get(ctx: RestContext, request: Request) -> Reply:
    """`/metrics`: Prometheus text format 0.0.4."""
    del request
    text = render_metrics(ctx.status(), ctx.now_mono(), ctx.scope)
    return Reply(status=200, body=text.encode(), content_type=METRICS_TYPE)


def config_get(ctx: RestContext, request: Request) -> Reply:
    """`/config`: the dynamic configuration as stored; 502 when the key is absent (as Patroni)."""
    del request
    raw, version = ctx.admin.raw_config()
    if version is None:
        return error_reply(502, "no configuration in the DCS")
    return json_reply(200, raw)


def history_get(ctx: RestContext, request: Request) -> Reply:
    """`/history`: `[timeline, lsn, reason, timestamp, new_leader]` per line.

    The cluster view keeps no reason or timestamp, so those are null.
    """
    del request
    view = ctx.admin.cluster()
    lines = [[h.timeline, h.switch_lsn, None, None, h.new_leader] for h in view.history]
    return json_reply(200, lines)


def failsafe_get(ctx: RestContext, request: Request) -> Reply:
    """`/failsafe`: the members listed in the `/failsafe` key with their api_url; 502 if off."""
    del request
    view = ctx.admin.cluster()
    if not view.config.failsafe_mode or view.failsafe is None:
        return error_reply(502, "failsafe mode is not active")
    urls = {name: _api_url(view, name) for name in view.failsafe}
    return json_reply(200, urls)


def _api_url(view: ClusterView, name: str) -> str | None:
    member = view.member(name)
    return member.api_url if member is not None and member.api_url else None


# ---------------------------------------------------------------- /cluster


def _host_port(conn_url: str) -> dict[str, Any]:
    try:
        parts = urlsplit(conn_url)
        host, port = parts.hostname, parts.port
    except ValueError:  # a malformed URL or port: leave them out
        return {}
    found: dict[str, Any] = {}
    if host:
        found["host"] = host
    if port is not None:
        found["port"] = port
    return found


def _member_role(view: ClusterView, name: str) -> str:
    if view.leader is not None and view.leader.holder == name:
        return "leader"
    if view.sync.leader is not None and name in view.sync.standbys:
        quorum = view.config.synchronous_mode is SyncMode.QUORUM
        return "quorum_standby" if quorum else "sync_standby"
    return "replica"


def _member_state(member: Member, document: dict[str, Any]) -> str:
    state = document.get("state")
    if isinstance(state, str):
        return state
    return "running" if member.running else "stopped"


def _lag(view: ClusterView, member: Member) -> int | str:
    if member.wal_lsn is None:
        return "unknown"
    return max(0, (view.status_optime_lsn or 0) - member.wal_lsn)


_PASSED_THROUGH = ("pending_restart", "pending_restart_reason", "scheduled_restart")


def member_summary(view: ClusterView, member: Member, document: dict[str, Any]) -> dict[str, Any]:
    """One entry of `/cluster`'s `members`, in Patroni's shape."""
    role = _member_role(view, member.name)
    summary: dict[str, Any] = {
        "name": member.name,
        "role": role,
        "state": _member_state(member, document),
        "api_url": member.api_url,
        **_host_port(member.conn_url),
    }
    if member.timeline is not None:
        summary["timeline"] = member.timeline
    summary.update({key: document[key] for key in _PASSED_THROUGH if key in document})
    tags = document.get("tags")
    summary["tags"] = tags if isinstance(tags, dict) else tag_values(member.tags)
    if role != "leader":
        summary["lag"] = _lag(view, member)
    return summary


def _iso(wall_s: float) -> str | float:
    """Epoch seconds as ISO 8601 (UTC); the number itself when no datetime can hold it."""
    try:
        return datetime.fromtimestamp(wall_s, tz=UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return wall_s


def cluster_document(view: ClusterView, documents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The `/cluster` document: members, then `pause` and `scheduled_switchover` when set."""
    members = [member_summary(view, m, documents.get(m.name, {})) for m in view.members]
    document: dict[str, Any] = {"members": members}
    if view.config.pause:
        document["pause"] = True
    leader = view.leader
    if leader is not None and view.member(leader.holder) is None:
        # Garbage written into the key, or a member whose key expired: say who holds it.
        document["leader_not_a_member"] = {"name": leader.holder, "leased": leader.leased}
    failover = view.failover
    if failover is not None and failover.scheduled_at_wall is not None:
        scheduled: dict[str, Any] = {
            "at": _iso(failover.scheduled_at_wall),
            "from": failover.leader,
        }
        if failover.candidate is not None:
            scheduled["to"] = failover.candidate
        document["scheduled_switchover"] = scheduled
    return document


def cluster_get(ctx: RestContext, request: Request) -> Reply:
    """`/cluster`: the members as published, with roles, lag and scheduled switchover."""
    del request
    view = ctx.admin.cluster()
    documents = ctx.admin.member_documents()
    return json_reply(200, cluster_document(view, documents))
