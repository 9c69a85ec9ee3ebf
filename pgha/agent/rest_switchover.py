# Switchover and manual failover through the REST API: validate the request against one fresh read
# of the cluster, write the `/failover` key through the ClusterAdmin, and for an immediate one wait
# until the leader key names someone else (Patroni's `poll_failover_result`). Safety rules: a
# switchover names the current lock holder (a stale request cannot demote a newer leader); a named
# candidate must be a running member allowed to fail over and, in synchronous mode (not quorum),
# a synchronous standby, so a request can never steer the lock to a node that may lack commits;
# scheduling needs an explicit time zone, because the leader compares it with its wall clock.
"""Handlers for POST /switchover, POST /failover and DELETE /switchover."""

from __future__ import annotations

from datetime import datetime

from pgha.agent.rest_common import (
    Field,
    HttpError,
    Reply,
    Request,
    RestContext,
    check_fields,
    error_reply,
    is_name,
    optional,
    parse_json_object,
    text_reply,
)
from pgha.engine.config import SyncMode
from pgha.engine.values import ClusterView, Member
from pgha.ports import DcsError

_NAME = "a member name"
_TIME = "an ISO 8601 time with a time zone"

_SWITCHOVER_FIELDS = {
    "leader": Field(check=is_name, expected=_NAME, required=True),
    "candidate": Field(check=optional(is_name), expected=_NAME),
    "scheduled_at": Field(check=optional(lambda v: isinstance(v, str)), expected=_TIME),
}
_FAILOVER_FIELDS = {
    "candidate": Field(check=is_name, expected=_NAME, required=True),
    "leader": Field(check=optional(is_name), expected=_NAME),
    "scheduled_at": Field(
        check=lambda v: v is None, expected="null: a failover cannot be scheduled"
    ),
}


def parse_scheduled_at(text: str) -> float:
    """`scheduled_at` as epoch seconds.

    Raises:
        HttpError: 400 when it is not ISO 8601 or has no time zone.
    """
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise HttpError(400, f"scheduled_at: expected {_TIME}") from None
    if when.utcoffset() is None:
        raise HttpError(400, "scheduled_at: a time zone is required")
    return when.timestamp()


# ---------------------------------------------------------------- checks on the cluster


def _holder(view: ClusterView) -> str | None:
    return view.leader.holder if view.leader is not None else None


def _strict_sync(view: ClusterView) -> bool:
    """Synchronous mode `on` is active: only `/sync` standbys may take over."""
    return view.config.synchronous_mode is SyncMode.ON and view.sync.leader is not None


def _eligible(view: ClusterView, member: Member, *, switchover: bool) -> bool:
    sync_ok = not (switchover and _strict_sync(view)) or member.name in view.sync.standbys
    return member.running and member.tags.can_failover and sync_ok


def check_leader(view: ClusterView, leader: str | None) -> None:
    """A named leader must hold the lock (412 otherwise)."""
    if leader is not None and _holder(view) != leader:
        raise HttpError(412, "leader name does not match the current lock holder")


def check_candidate(view: ClusterView, candidate: str, *, switchover: bool) -> None:
    """The candidate must be a running member, not the leader, allowed to take over (412)."""
    member = view.member(candidate)
    if member is None:
        raise HttpError(412, "candidate is not a member of the cluster")
    if _holder(view) == candidate:
        raise HttpError(412, "candidate is already the leader")
    if not member.running:
        raise HttpError(412, "candidate is not running")
    if not member.tags.can_failover:
        raise HttpError(412, "candidate may not fail over (nofailover or failover_priority <= 0)")
    if not _eligible(view, member, switchover=switchover):
        raise HttpError(412, "candidate is not a synchronous standby")


def check_any_candidate(view: ClusterView) -> None:
    """Without a named candidate, some other member must be able to take over (412)."""
    holder = _holder(view)
    others = [m for m in view.members if m.name != holder]
    if not any(_eligible(view, m, switchover=True) for m in others):
        raise HttpError(412, "failover is not possible: no good candidates have been found")


def _check_not_scheduled(view: ClusterView) -> None:
    if view.failover is not None and view.failover.scheduled_at_wall is not None:
        raise HttpError(409, "a switchover is already scheduled; DELETE /switchover cancels it")


# ---------------------------------------------------------------- waiting for the outcome


def _outcome(
    view: ClusterView, old: str | None, candidate: str | None, action: str
) -> Reply | None:
    new = _holder(view)
    if new is not None and new != old:
        if candidate is None or candidate == new:
            return text_reply(200, f'Successfully {action[:-4]}ed over to "{new}"')
        return text_reply(200, f'{action[:-4].title()}ed over to "{new}" instead of "{candidate}"')
    if view.failover is None:
        return text_reply(503, f"{action.title()} failed")
    return None


def wait_for_leader_change(
    ctx: RestContext, *, old: str | None, candidate: str | None, action: str, timeout_s: float
) -> Reply:
    """Poll the cluster until the lock holder is not `old`, the request is dropped, or timeout.

    `action` is "switchover" or "failover" (it words the answer, as Patroni does).
    """
    deadline_mono = ctx.timer_mono() + timeout_s
    while True:
        remaining_s = deadline_mono - ctx.timer_mono()
        if remaining_s <= 0:
            return text_reply(503, f"{action.title()} status unknown")
        ctx.sleep(min(ctx.settings.poll_interval_s, remaining_s))
        try:
            view = ctx.admin.cluster()
        except DcsError:
            continue  # keep waiting: the DCS may answer again before the deadline
        reply = _outcome(view, old, candidate, action)
        if reply is not None:
            return reply


def _timeout_s(ctx: RestContext, view: ClusterView) -> float:
    configured = ctx.settings.switchover_timeout_s
    return configured if configured is not None else view.config.ttl_s + view.config.loop_wait_s


def _run(ctx: RestContext, view: ClusterView, leader: str | None, candidate: str | None) -> Reply:
    action = "switchover" if leader is not None else "failover"
    ctx.admin.write_failover(leader=leader, candidate=candidate, scheduled_at_wall=None)
    return wait_for_leader_change(
        ctx, old=_holder(view), candidate=candidate, action=action, timeout_s=_timeout_s(ctx, view)
    )


# ---------------------------------------------------------------- handlers


def switchover_post(ctx: RestContext, request: Request) -> Reply:
    """`POST /switchover {leader, candidate?, scheduled_at?}`: 200 done, 202 scheduled, 412."""
    body = check_fields(parse_json_object(request.body), _SWITCHOVER_FIELDS)
    leader, candidate, when = body["leader"], body.get("candidate"), body.get("scheduled_at")
    at_wall = parse_scheduled_at(when) if when is not None else None
    view = ctx.admin.cluster()
    if view.config.pause and candidate is None:
        return error_reply(400, "in pause a switchover needs a candidate")
    check_leader(view, leader)
    if candidate is not None:
        check_candidate(view, candidate, switchover=True)
    else:
        check_any_candidate(view)
    _check_not_scheduled(view)
    if at_wall is None:
        return _run(ctx, view, leader, candidate)
    if view.config.pause:
        return error_reply(400, "a switchover cannot be scheduled while the cluster is paused")
    if at_wall <= ctx.now_wall():
        return error_reply(422, "scheduled_at is in the past")
    ctx.admin.write_failover(leader=leader, candidate=candidate, scheduled_at_wall=at_wall)
    return text_reply(202, "Switchover scheduled")


def failover_post(ctx: RestContext, request: Request) -> Reply:
    """`POST /failover {candidate, leader?}`: allowed without a leader; never scheduled."""
    body = check_fields(parse_json_object(request.body), _FAILOVER_FIELDS)
    leader, candidate = body.get("leader"), body["candidate"]
    view = ctx.admin.cluster()
    check_leader(view, leader)
    check_candidate(view, candidate, switchover=leader is not None)
    _check_not_scheduled(view)
    return _run(ctx, view, leader, candidate)


def switchover_delete(ctx: RestContext, request: Request) -> Reply:
    """`DELETE /switchover`: cancel a scheduled switchover (404 when none is scheduled)."""
    check_fields(parse_json_object(request.body, optional=True), {})
    view = ctx.admin.cluster()
    if view.failover is None or view.failover.scheduled_at_wall is None:
        return error_reply(404, "no scheduled switchover")
    ctx.admin.delete_failover()
    return text_reply(200, "Scheduled switchover deleted")
