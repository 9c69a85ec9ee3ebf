# Switchover and manual failover through the REST API: validate the request against one fresh read
# of the cluster, write the `/failover` key through the ClusterAdmin, and for an immediate one wait
# until the leader key names someone else (Patroni's `poll_failover_result`). Safety rules: whether
# the cluster accepts a request is the engine's rule (`pgha.engine.operator.refusal`: the switchover
# names the lock holder; a candidate is a running member allowed to fail over and, in synchronous
# mode `on`, a synchronous standby), the same in the simulator; a refusal is answered with its
# status, message and identifier (`refusal`); scheduling needs an explicit time zone, because the
# leader compares it with its wall clock.
"""Handlers for POST /switchover, POST /failover and DELETE /switchover."""

from __future__ import annotations

import json
from datetime import datetime

from pgha.agent.rest.common import (
    JSON_TYPE,
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
from pgha.engine.operator import STATUS, Refusal, refusal
from pgha.engine.values import ClusterView, FailoverKey
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


# ---------------------------------------------------------------- refusals (pgha.engine.operator)


_MESSAGES: dict[Refusal, str] = {
    Refusal.PAUSED_NEEDS_CANDIDATE: "in pause a switchover needs a candidate",
    Refusal.LEADER_MISMATCH: "leader name does not match the current lock holder",
    Refusal.CANDIDATE_NOT_MEMBER: "candidate is not a member of the cluster",
    Refusal.CANDIDATE_IS_LEADER: "candidate is already the leader",
    Refusal.CANDIDATE_NOT_RUNNING: "candidate is not running",
    Refusal.CANDIDATE_NOFAILOVER: (
        "candidate may not fail over (nofailover or failover_priority <= 0)"
    ),
    Refusal.CANDIDATE_NOT_SYNC: "candidate is not a synchronous standby",
    Refusal.NO_CANDIDATE: "failover is not possible: no good candidates have been found",
    Refusal.ALREADY_SCHEDULED: "a switchover is already scheduled; DELETE /switchover cancels it",
    Refusal.PAUSED_NO_SCHEDULE: "a switchover cannot be scheduled while the cluster is paused",
    Refusal.SCHEDULED_IN_PAST: "scheduled_at is in the past",
}


def refused_reply(why: Refusal) -> Reply:
    """`{"error": message, "refusal": identifier}` with the refusal's status (STATUS)."""
    body = json.dumps({"error": _MESSAGES[why], "refusal": why.value}).encode()
    return Reply(status=STATUS[why], body=body, content_type=JSON_TYPE)


def _holder(view: ClusterView) -> str | None:
    return view.leader.holder if view.leader is not None else None


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
    key = FailoverKey(leader=leader, candidate=candidate, scheduled_at_wall=at_wall)
    view = ctx.admin.cluster()
    why = refusal(view, key, now_wall=ctx.now_wall())
    if why is not None:
        return refused_reply(why)
    if at_wall is None:
        return _run(ctx, view, leader, candidate)
    ctx.admin.write_failover(leader=leader, candidate=candidate, scheduled_at_wall=at_wall)
    return text_reply(202, "Switchover scheduled")


def failover_post(ctx: RestContext, request: Request) -> Reply:
    """`POST /failover {candidate, leader?}`: allowed without a leader; never scheduled."""
    body = check_fields(parse_json_object(request.body), _FAILOVER_FIELDS)
    leader, candidate = body.get("leader"), body["candidate"]
    view = ctx.admin.cluster()
    why = refusal(view, FailoverKey(leader=leader, candidate=candidate), now_wall=ctx.now_wall())
    if why is not None:
        return refused_reply(why)
    return _run(ctx, view, leader, candidate)


def switchover_delete(ctx: RestContext, request: Request) -> Reply:
    """`DELETE /switchover`: cancel a scheduled switchover (404 when none is scheduled)."""
    check_fields(parse_json_object(request.body, optional=True), {})
    view = ctx.admin.cluster()
    if view.failover is None or view.failover.scheduled_at_wall is None:
        return error_reply(404, "no scheduled switchover")
    ctx.admin.delete_failover()
    return text_reply(200, "Scheduled switchover deleted")
