# The `pgha ctl` commands a member carries out through its REST API: switchover, failover,
# restart, reinit and reload. Safety rules: a switchover is sent to the current lock holder and
# names it (the member re-checks it against its own read, so a stale request cannot demote a
# newer leader); candidates and members are checked against one fresh read of the cluster before
# anything is sent (an unknown name is a usage error, exit 2); nothing is done without --force
# unless a person at a terminal confirmed it; any non-2xx answer or unreachable member is exit 1.
"""switchover, failover, restart, reinit and reload through the members' REST APIs."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pgha.ctl.cluster import Ctl
from pgha.ctl.common import CtlError, usage_error
from pgha.ctl.render import members_table, render
from pgha.ctl.rest import RestAnswer
from pgha.engine.values import ClusterView, Member


def member_of(ctl: Ctl, view: ClusterView, name: str) -> Member:
    """The member called `name`.

    Raises:
        CtlError: exit 2 naming it when the cluster has no such member.
    """
    member = view.member(name)
    if member is None:
        known = ", ".join(m.name for m in view.members) or "none"
        raise usage_error(f"{name} is not a member of cluster {ctl.scope} (members: {known})")
    return member


def parse_scheduled(text: str | None) -> datetime | None:
    """`--scheduled`: None or "now" for now, else ISO 8601 (no time zone: the local one).

    Raises:
        CtlError: exit 2 when it is not ISO 8601.
    """
    if text is None or text.strip().lower() in ("", "now"):
        return None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise usage_error(f"--scheduled: expected ISO 8601 or 'now', got {text!r}") from None
    return when if when.utcoffset() is not None else when.astimezone()


def _holder(view: ClusterView) -> str | None:
    return view.leader.holder if view.leader is not None else None


def _show_cluster(ctl: Ctl, view: ClusterView, force: bool) -> None:
    """Before prompting, show the members (as patronictl does)."""
    if not force and ctl.console.interactive:
        documents = ctl.admin.member_documents()
        ctl.console.echo(render(members_table(ctl.scope, view, documents), "pretty"))


def _finish(ctl: Ctl, answer: RestAnswer) -> int:
    if answer.ok:
        ctl.console.echo(answer.message)
        return 0
    ctl.console.warn(f"Failed (status {answer.status}): {answer.message}")
    return 1


# ---------------------------------------------------------------- switchover and failover


def cmd_switchover(ctl: Ctl, args: argparse.Namespace) -> int:
    """`switchover`: POST /switchover to the current leader."""
    view = ctl.admin.cluster()
    holder = _holder(view)
    if holder is None:
        raise CtlError(f"cluster {ctl.scope} has no leader: use failover")
    _show_cluster(ctl, view, args.force)
    leader, candidate, scheduled = _switchover_choices(ctl, args, holder)
    when = parse_scheduled(scheduled)
    leader_member = member_of(ctl, view, leader)
    if leader != holder:
        raise CtlError(
            f"{leader} is not the leader of cluster {ctl.scope} (the leader is {holder})"
        )
    if candidate is not None:
        member_of(ctl, view, candidate)
        if candidate == leader:
            raise CtlError(f"{candidate} is already the leader")
    moment = "now" if when is None else f"at {when.isoformat()}"
    ctl.console.confirm(
        f"Are you sure you want to switch over cluster {ctl.scope} {moment}, "
        f"demoting current leader {leader}?",
        force=args.force,
    )
    body: dict[str, Any] = {"leader": leader}
    if candidate is not None:
        body["candidate"] = candidate
    if when is not None:
        body["scheduled_at"] = when.isoformat()
    return _finish(ctl, ctl.rest.call(leader, leader_member.api_url, "POST", "/switchover", body))


def _switchover_choices(
    ctl: Ctl, args: argparse.Namespace, holder: str
) -> tuple[str, str | None, str | None]:
    """(leader, candidate, --scheduled) as given; without --force, asked for what is missing."""
    ask = not args.force
    leader = args.leader or (
        ctl.console.ask("Primary", holder, option="--leader") if ask else holder
    )
    candidate = args.candidate
    if candidate is None and ask:
        candidate = ctl.console.ask("Candidate (empty: any)", option="--candidate") or None
    scheduled = args.scheduled
    if scheduled is None and ask:
        scheduled = ctl.console.ask(
            "When should the switchover take place", "now", option="--scheduled"
        )
    return leader, candidate, scheduled


def cmd_failover(ctl: Ctl, args: argparse.Namespace) -> int:
    """`failover`: POST /failover to the candidate (or, when unreachable, any other member)."""
    view = ctl.admin.cluster()
    _show_cluster(ctl, view, args.force)
    candidate = args.candidate
    if candidate is None:
        if args.force:
            raise usage_error("--candidate is required")
        candidate = ctl.console.ask("Candidate", option="--candidate")
    member_of(ctl, view, candidate)
    holder = _holder(view)
    if candidate == holder:
        raise CtlError(f"{candidate} is already the leader")
    demoting = f", demoting current leader {holder}" if holder is not None else ""
    ctl.console.confirm(
        f"Are you sure you want to fail over cluster {ctl.scope} to {candidate}{demoting}?",
        force=args.force,
    )
    body = {"candidate": candidate}
    others = sorted((m for m in view.members if m.name != candidate), key=lambda m: m.name)
    order = [member_of(ctl, view, candidate), *others]
    unreachable: CtlError | None = None
    for member in order:
        try:
            answer = ctl.rest.call(member.name, member.api_url, "POST", "/failover", body)
        except CtlError as exc:
            ctl.console.warn(exc.message)
            unreachable = unreachable or exc
            continue
        return _finish(ctl, answer)
    raise CtlError("no member's REST API could be reached") from unreachable


# ---------------------------------------------------------------- restart, reinit, reload


def _targets(ctl: Ctl, view: ClusterView, names: Sequence[str]) -> list[Member]:
    if not names:
        return sorted(view.members, key=lambda m: m.name)
    unique = list(dict.fromkeys(names))
    return [member_of(ctl, view, name) for name in unique]


def _each(ctl: Ctl, members: Sequence[Member], path: str, body: Mapping[str, Any] | None) -> int:
    """POST `path` to every member, report each answer; 1 when any failed."""
    failed = False
    for member in members:
        try:
            answer = ctl.rest.call(member.name, member.api_url, "POST", path, body)
        except CtlError as exc:
            ctl.console.warn(f"{member.name}: {exc.message}")
            failed = True
            continue
        if answer.ok:
            ctl.console.echo(f"{member.name}: {answer.message}")
        else:
            ctl.console.warn(f"{member.name}: failed (status {answer.status}): {answer.message}")
            failed = True
    return 1 if failed else 0


def _names(members: Sequence[Member]) -> str:
    return ", ".join(m.name for m in members)


def cmd_restart(ctl: Ctl, args: argparse.Namespace) -> int:
    """`restart [MEMBER...]`: POST /restart (no names: every member)."""
    view = ctl.admin.cluster()
    members = _targets(ctl, view, args.members)
    if not members:
        raise CtlError(f"cluster {ctl.scope} has no members")
    body: dict[str, Any] = {}
    if args.pending:
        body["restart_pending"] = True
    if args.role is not None:
        body["role"] = args.role
    if args.timeout is not None:
        body["timeout"] = args.timeout
    _show_cluster(ctl, view, args.force)
    ctl.console.confirm(f"Are you sure you want to restart {_names(members)}?", force=args.force)
    return _each(ctl, members, "/restart", body or None)


def cmd_reinit(ctl: Ctl, args: argparse.Namespace) -> int:
    """`reinit MEMBER...`: POST /reinitialize to replicas (--force also cancels a running task)."""
    view = ctl.admin.cluster()
    members = _targets(ctl, view, args.members)
    holder = _holder(view)
    if any(m.name == holder for m in members):
        raise CtlError(f"{holder} is the leader: only a replica can be reinitialized")
    _show_cluster(ctl, view, args.force)
    ctl.console.confirm(
        f"Are you sure you want to reinitialize {_names(members)}?", force=args.force
    )
    return _each(ctl, members, "/reinitialize", {"force": True} if args.force else None)


def cmd_reload(ctl: Ctl, args: argparse.Namespace) -> int:
    """`reload [MEMBER...]`: POST /reload (no names: every member)."""
    view = ctl.admin.cluster()
    members = _targets(ctl, view, args.members)
    if not members:
        raise CtlError(f"cluster {ctl.scope} has no members")
    _show_cluster(ctl, view, args.force)
    ctl.console.confirm(f"Are you sure you want to reload {_names(members)}?", force=args.force)
    return _each(ctl, members, "/reload", None)
