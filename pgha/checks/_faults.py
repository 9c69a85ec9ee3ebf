# Faults as really applied, the failover each primary-hitting fault led to, and the outcome of
# every operator request (switchover, failover, config). A fault id starts (or is skipped) once and
# ends at most once; anything else is a history that contradicts itself. Written data (`config`,
# `etcd_put`) is no failure of a machine: it starts no failover measurement.
"""Faults, failovers measured from them, and operator requests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pgha.checks._fields import (
    HistoryIntegrityError,
    get_int,
    get_str,
    mapping,
    names,
    opt_int,
    opt_str,
)
from pgha.checks._results import _r
from pgha.history import Event

FAILOVER_FAULT_KINDS = frozenset(
    {"kill", "partition", "pause", "kill_agent", "kill_postgres", "etcd"}
)
# A one-off fault the old primary may recover from in place (its agent restarts PostgreSQL as
# primary within primary_start_timeout): its next acknowledgement answers the fault.
RECOVERED_IN_PLACE_KINDS = frozenset({"kill_postgres"})


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """One fault as applied, with the primaries (by `pg_role`, else `agent_role`) at its start."""

    id: int
    kind: str
    targets: tuple[str, ...]
    label: str
    t_start: float
    t_end: float | None
    primaries_at_start: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)
    skipped: bool = False
    error: str | None = None

    @property
    def t_over(self) -> float:
        """When the fault stopped acting: its end, or its start for one without an end."""
        return self.t_start if self.t_end is None else self.t_end


@dataclass(frozen=True, slots=True)
class Failover:
    """How the cluster answered a fault that hit the primary.

    `outcome`: `failover` (another node acknowledged a write `failover_s` after the fault started),
    `kept_serving` (the fault ended, or a crash of PostgreSQL was recovered in place, and the old
    primary acknowledged again first) or `none`.
    """

    fault_id: int
    fault: str
    label: str
    t_fault: float
    old_primaries: tuple[str, ...]
    outcome: str
    new_primary: str | None = None
    t_first_ok: float | None = None

    @property
    def failover_s(self) -> float | None:
        return None if self.t_first_ok is None else self.t_first_ok - self.t_fault

    def to_dict(self) -> dict[str, Any]:
        return {
            "fault_id": self.fault_id,
            "fault": self.fault,
            "label": self.label,
            "t_fault": _r(self.t_fault),
            "old_primaries": list(self.old_primaries),
            "outcome": self.outcome,
            "new_primary": self.new_primary,
            "t_first_ok": _r(self.t_first_ok),
            "failover_s": _r(self.failover_s),
        }


@dataclass(frozen=True, slots=True)
class OperatorRequest:
    """An `operator` event: a switchover, failover or config request and how the cluster
    answered."""

    t: float
    request: str
    outcome: str  # accepted, refused, failed
    fault_id: int | None
    leader: str | None
    candidate: str | None
    status: int | None
    error: str | None

    @property
    def succeeded(self) -> bool:
        """Accepted; or, for a `config` change, answered: a change the REST API checked and
        refused (an operator's mistake, a lost race) is the cluster doing its job."""
        return self.outcome == "accepted" or (
            self.request == "config" and self.outcome == "refused"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "t": _r(self.t),
            "request": self.request,
            "outcome": self.outcome,
            "fault_id": self.fault_id,
            "leader": self.leader,
            "candidate": self.candidate,
            "status": self.status,
            "error": self.error,
        }


def operator_request(e: Event) -> OperatorRequest:
    return OperatorRequest(
        t=e.t,
        request=get_str(e, "request"),
        outcome=get_str(e, "outcome"),
        fault_id=opt_int(e, "fault_id"),
        leader=opt_str(e, "leader"),
        candidate=opt_str(e, "candidate"),
        status=opt_int(e, "status"),
        error=opt_str(e, "error"),
    )


@dataclass(slots=True)
class _Measure:
    fault: FaultRecord
    t_fault_end: float | None = None


class Faults:
    """Faults as applied, and the failover each primary-hitting fault led to."""

    def __init__(self) -> None:
        self.records: dict[int, FaultRecord] = {}
        self._open: dict[int, _Measure] = {}
        self.failovers: list[Failover] = []

    def fault(self, e: Event, primaries: tuple[str, ...]) -> None:
        fault_id, phase = get_int(e, "id"), get_str(e, "phase")
        known = self.records.get(fault_id)
        if phase == "end" and known is not None:
            self._end(known, e.t)
            return
        if known is not None:
            raise HistoryIntegrityError(f"fault {fault_id}: a second {phase!r} event")
        record = FaultRecord(
            id=fault_id,
            kind=get_str(e, "fault"),
            targets=names(e, "targets"),
            label=opt_str(e, "label") or get_str(e, "fault"),
            t_start=e.t,
            t_end=e.t if phase == "end" else None,
            primaries_at_start=primaries,
            params=mapping(e, "params"),
            skipped=phase == "skipped",
            error=opt_str(e, "error"),
        )
        self.records[fault_id] = record
        hits = set(record.targets) & set(primaries)
        if phase == "start" and record.kind in FAILOVER_FAULT_KINDS and hits:
            self._open[fault_id] = _Measure(record)

    def _end(self, old: FaultRecord, t: float) -> None:
        if old.t_end is not None or old.skipped:
            raise HistoryIntegrityError(f"fault {old.id}: a second end (or an end after skipped)")
        self.records[old.id] = replace(old, t_end=t)
        if old.id in self._open:
            self._open[old.id].t_fault_end = t

    @property
    def measuring(self) -> bool:
        """Some fault that hit the primary waits for its failover."""
        return bool(self._open)

    def ack(self, node: str, t: float) -> None:
        for fault_id, m in list(self._open.items()):
            old = m.fault.primaries_at_start
            if node not in old:
                self._resolve(fault_id, "failover", node, t)
            elif (m.t_fault_end is not None and t >= m.t_fault_end) or (
                m.fault.kind in RECOVERED_IN_PLACE_KINDS and t > m.fault.t_start
            ):
                self._resolve(fault_id, "kept_serving", node, t)

    def _resolve(self, fault_id: int, outcome: str, node: str | None, t: float | None) -> None:
        fault = self._open.pop(fault_id).fault
        self.failovers.append(
            Failover(
                fault_id=fault.id,
                fault=fault.kind,
                label=fault.label,
                t_fault=fault.t_start,
                old_primaries=fault.primaries_at_start,
                outcome=outcome,
                new_primary=node if outcome == "failover" else None,
                t_first_ok=t if outcome == "failover" else None,
            )
        )

    def finish(self) -> tuple[tuple[FaultRecord, ...], tuple[Failover, ...]]:
        for fault_id in list(self._open):
            self._resolve(fault_id, "none", None, None)
        faults = sorted(self.records.values(), key=lambda f: (f.t_start, f.id))
        failovers = sorted(self.failovers, key=lambda f: (f.t_fault, f.fault_id))
        return tuple(faults), tuple(failovers)
