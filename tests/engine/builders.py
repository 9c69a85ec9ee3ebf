"""Builders for engine tests: short, explicit observations and states, no mocks."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pgha.engine.config import DynamicConfig
from pgha.engine.decision import Decision
from pgha.engine.roles import Role
from pgha.engine.rules import decide
from pgha.engine.state import CycleMemo, NodeState, Pending
from pgha.engine.values import (
    ClusterView,
    LeaderKey,
    LocalConfig,
    Member,
    MemberRole,
    Observation,
    PeerStatus,
    PgRun,
    PostgresState,
    Tags,
)

ME = "n1"
SYSID = "7000000000000000001"


def cfg(**kw: Any) -> DynamicConfig:
    return DynamicConfig(**kw)


def local(name: str = ME, **kw: Any) -> LocalConfig:
    return LocalConfig(name=name, api_url=f"http://{name}:8008", **kw)


def member(name: str, **kw: Any) -> Member:
    kw.setdefault("api_url", f"http://{name}:8008")
    kw.setdefault("timeline", 1)
    return Member(name=name, **kw)


def view(
    leader: str | None = None,
    *,
    version: int = 10,
    members: tuple[str, ...] = ("n1", "n2", "n3"),
    config: DynamicConfig | None = None,
    initialize: str | None = SYSID,
    **kw: Any,
) -> ClusterView:
    kw.setdefault("config_version", 1)
    return ClusterView(
        initialize=initialize,
        leader=LeaderKey(holder=leader, version=version) if leader else None,
        members=kw.pop("member_values", tuple(member(m) for m in members)),
        config=config or DynamicConfig(),
        **kw,
    )


def primary(**kw: Any) -> PostgresState:
    kw.setdefault("timeline", 1)
    kw.setdefault("wal_lsn", 1000)
    kw.setdefault("sysid", SYSID)
    return PostgresState(run=PgRun.RUNNING, in_recovery=False, **kw)


def replica(**kw: Any) -> PostgresState:
    kw.setdefault("timeline", 1)
    kw.setdefault("wal_lsn", 1000)
    kw.setdefault("sysid", SYSID)
    return PostgresState(run=PgRun.RUNNING, in_recovery=True, **kw)


def stopped(**kw: Any) -> PostgresState:
    kw.setdefault("timeline", 1)
    kw.setdefault("wal_lsn", 1000)
    kw.setdefault("in_recovery", True)
    kw.setdefault("sysid", SYSID)
    return PostgresState(run=PgRun.STOPPED, **kw)


def empty() -> PostgresState:
    return PostgresState(data_present=False, sysid=None, run=PgRun.STOPPED, timeline=None)


def peer(name: str, **kw: Any) -> PeerStatus:
    kw.setdefault("wal_lsn", 1000)
    kw.setdefault("timeline", 1)
    return PeerStatus(name=name, **kw)


def state(role: Role = Role.REPLICA, name: str = ME, **kw: Any) -> NodeState:
    return NodeState(name=name, role=role, **kw)


def leader_state(now: float = 100.0, **kw: Any) -> NodeState:
    """A primary that renewed its lock 5 s ago (deadline now + 25 s at ttl 30)."""
    kw.setdefault("lock_deadline_mono", now + 25.0)
    kw.setdefault("watchdog_timeout_s", 25.0)
    return state(Role.PRIMARY, **kw)


def obs(now: float = 100.0, **kw: Any) -> Observation:
    kw.setdefault("postgres", replica())
    return Observation(now_mono=now, **kw)


def continuing(st: NodeState, pending: Pending, sent: float, **memo: Any) -> NodeState:
    """A state in the middle of a cycle that started at `sent`, waiting for `pending`'s result."""
    return replace(
        st,
        continuing=True,
        pending=pending,
        pending_sent_mono=sent,
        memo=CycleMemo(start_mono=sent, **memo),
    )


def run(st: NodeState, observation: Observation, loc: LocalConfig | None = None) -> Decision:
    return decide(st, observation, loc or local())


def kinds(decision: Decision) -> list[str]:
    """Action type names in order, without the member-key update that ends every cycle."""
    return [type(a).__name__ for a in decision.actions if type(a).__name__ != "UpdateMember"]


def renewed(st: NodeState, now: float = 100.0, **memo: Any) -> NodeState:
    """The holder's state right after its RenewLock was sent at `now` (result comes next)."""
    return continuing(st, Pending.RENEW, now, **memo)


__all__ = ["ME", "SYSID", "MemberRole", "Tags"]
