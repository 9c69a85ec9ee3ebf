# The loop's events and their history encoding, shared by every world: a decision before its
# actions run, the actions' results after, and the `decision`, `lock` and `dropped` records both the
# agent and the simulator write from them (docs/history.md). Pure values and functions.
"""History events of the agent loop and their JSON encoding."""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from enum import Enum
from typing import Any

from pgha.engine.actions import AcquireLock, Action, ReleaseLock, RenewLock
from pgha.engine.decision import Decision, Reason
from pgha.engine.roles import Role
from pgha.engine.values import Failure, LockResult, Observation
from pgha.executor import StepResults


def jsonable(value: object) -> Any:
    """A JSON-ready copy of an engine value: enums by value, sets sorted, dataclasses as dicts."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, frozenset | set):
        return sorted(jsonable(v) for v in value)
    if isinstance(value, tuple | list):
        return [jsonable(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in fields(value)}
    return value


def describe(action: Action) -> dict[str, Any]:
    """One action for the history: its type name and its fields."""
    described: dict[str, Any] = jsonable(action)
    return {"action": type(action).__name__, **described}


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionEvent:
    """History: one decision, with its reason, before its actions run."""

    node: str
    now_mono: float
    reason: Reason
    role: Role
    actions: tuple[Action, ...]
    wake_at_mono: float
    immediate: bool
    wake_on_watch: bool
    dcs_ok: bool

    def record(self) -> dict[str, Any]:
        return {"kind": "decision", **jsonable(self)}


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionsEvent:
    """History: what one decision's actions did (ran, failed, dropped for lateness, skipped)."""

    node: str
    ran: tuple[Action, ...]
    failed: Action | None
    dropped: Action | None
    skipped: tuple[Action, ...]
    lock_result: LockResult | None
    failure: Failure | None

    def record(self) -> dict[str, Any]:
        one = [self.failed, self.dropped]
        failed, dropped = (None if a is None else describe(a) for a in one)
        return {
            "kind": "actions",
            "node": self.node,
            "ran": [describe(a) for a in self.ran],
            "failed": failed,
            "dropped": dropped,
            "skipped": [describe(a) for a in self.skipped],
            "lock_result": jsonable(self.lock_result),
            "failure": jsonable(self.failure),
        }


Event = DecisionEvent | ActionsEvent


def decision_event(node: str, obs: Observation, decision: Decision) -> DecisionEvent:
    return DecisionEvent(
        node=node,
        now_mono=obs.now_mono,
        reason=decision.reason,
        role=decision.next_state.role,
        actions=decision.actions,
        wake_at_mono=decision.wake_at_mono,
        immediate=decision.immediate,
        wake_on_watch=decision.wake_on_watch,
        dcs_ok=obs.cluster is not None,
    )


def actions_event(node: str, results: StepResults) -> ActionsEvent:
    return ActionsEvent(
        node=node,
        ran=results.ran,
        failed=results.failed,
        dropped=results.dropped,
        skipped=results.skipped,
        lock_result=results.lock_result,
        failure=results.failure,
    )


def lock_events(event: ActionsEvent) -> list[dict[str, Any]]:
    """The `lock` history events of one step, from what ran (docs/history.md)."""
    out: list[dict[str, Any]] = []
    for action in event.ran:
        ok = action is not event.failed
        if isinstance(action, AcquireLock) and ok:
            out.append({"event": "acquired"})
        elif isinstance(action, RenewLock):
            lost = event.lock_result is LockResult.CAS_FAILED
            out.append({"event": "renewed" if ok else ("lost" if lost else "error")})
        elif isinstance(action, ReleaseLock) and ok:
            out.append({"event": "released"})
    return out


def history_records(event: Event) -> list[tuple[str, dict[str, Any]]]:
    """The history events (kind, fields) of one loop event, as both worlds write them."""
    if isinstance(event, DecisionEvent):
        decided = {
            "reason": event.reason.value,
            "role": event.role.value,
            "actions": [type(a).__name__ for a in event.actions],
            "immediate": event.immediate,
        }
        return [("decision", decided)]
    records = [("lock", record) for record in lock_events(event)]
    if event.dropped is not None:
        records.append(("dropped", {"action": type(event.dropped).__name__}))
    return records
