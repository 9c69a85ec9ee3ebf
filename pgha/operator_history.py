# An operator's switchover or failover ends in one `operator` history event, written the same way
# by both worlds (docs/history.md, "Operator requests"), so that a request the cluster refused or
# could not carry out is on the record instead of silently not happening. `refused` means the
# cluster said no (a 4xx, or the engine's rule on a direct write); `failed` means it could not be
# done (a 5xx, no agent answered, etcd unreachable, a timeout). A `config` change (PATCH /config)
# and the change that restores the document it replaced end in one such event each too, with
# `restore` and the API's message as `detail` when it was not accepted.
"""The fields of the `operator` history event, shared by the simulator and the chaos harness."""

from __future__ import annotations

from typing import Any

ACCEPTED, REFUSED, FAILED = "accepted", "refused", "failed"
INVALID_CONFIG = "invalid_config"  # a `config` change's 400: the engine's parser refused it
CONFLICT = "conflict"  # a `config` change's 409: every compare-and-set lost a race


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


def config_fields(
    *,
    fault_id: int,
    outcome: str,
    status: int | None,
    error: str | None,
    via: str | None,
    restore: bool,
    detail: str | None,
) -> dict[str, Any]:
    """The fields of a `config` change's event (PATCH /config; `restore`: the change that puts
    back the document it replaced): no leader, candidate or schedule; `detail` only when the
    change was not accepted."""
    fields = operator_fields(
        request="config",
        fault_id=fault_id,
        leader=None,
        candidate=None,
        scheduled=False,
        outcome=outcome,
        status=status,
        error=error,
        via=via,
    )
    return {**fields, "restore": restore, "detail": None if outcome == ACCEPTED else detail}
