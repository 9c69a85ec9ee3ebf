# An operator's switchover or failover ends in one `operator` history event, written the same way
# by both worlds (docs/history.md, "Operator requests"), so that a request the cluster refused or
# could not carry out is on the record instead of silently not happening. `refused` means the
# cluster said no (a 4xx, or the engine's rule on a direct write); `failed` means it could not be
# done (a 5xx, no agent answered, etcd unreachable, a timeout).
"""The fields of the `operator` history event, shared by the simulator and the chaos harness."""

from __future__ import annotations

from typing import Any

ACCEPTED, REFUSED, FAILED = "accepted", "refused", "failed"


def outcome_of_status(status: int | None) -> str:
    """`accepted` for a 2xx answer, `refused` for a 4xx, `failed` otherwise (5xx, no answer)."""
    if status is not None and 200 <= status < 300:
        return ACCEPTED
    if status is not None and 400 <= status < 500:
        return REFUSED
    return FAILED


def operator_fields(
    *,
    request: str,
    fault_id: int,
    leader: str | None,
    candidate: str | None,
    scheduled: bool,
    outcome: str,
    status: int | None,
    error: str | None,
    via: str | None,
) -> dict[str, Any]:
    """The event's fields but `t`, `kind` and `node` (always `ctl`, the operator)."""
    return {
        "request": request,
        "fault_id": fault_id,
        "leader": leader,
        "candidate": candidate,
        "scheduled": scheduled,
        "outcome": outcome,
        "status": status,
        "error": None if outcome == ACCEPTED else error,
        "via": via,
    }
