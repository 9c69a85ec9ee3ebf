# The seams between the agent's threads. The loop thread owns PostgreSQL and the engine; the REST
# API thread answers peers, load balancers and operators. They meet only here: operator commands go
# to the loop through a `CommandSink` (run between two cycles, never in the middle of one), the
# failsafe heartbeats a leader POSTs are kept in a `FailsafeInbox` the loop reads, and operators'
# cluster-wide changes (/config, /failover) go to the DCS through a `ClusterAdmin`, never through
# the engine's port, so a REST request can never reorder the loop's own DCS writes.
"""Protocols and small shared objects that connect the REST API, the control CLI and the loop."""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pgha.engine.values import ClusterView, FailsafeHeartbeat


class ClusterAdmin(Protocol):
    """Operator-level access to the cluster's keys (REST API and `pgha ctl`). Raises DcsError."""

    def cluster(self) -> ClusterView:
        """One consistent read of every key."""
        ...

    def member_documents(self) -> dict[str, dict[str, Any]]:
        """Every `members/<name>` value as published (JSON objects), by member name."""
        ...

    def raw_config(self) -> tuple[dict[str, Any], int | None]:
        """The `/config` key as JSON and its version (mod revision); ({}, None) when absent."""
        ...

    def replace_config(self, raw: Mapping[str, Any], version: int | None) -> bool:
        """Compare-and-set `/config` at `version` (None: create if absent); False when it lost."""
        ...

    def write_failover(
        self, *, leader: str | None, candidate: str | None, scheduled_at_wall: float | None
    ) -> None:
        """Write the `/failover` key (a switchover when `leader` is set)."""
        ...

    def delete_failover(self) -> None:
        """Remove a pending `/failover` key (cancel a scheduled switchover)."""
        ...


class Command(enum.Enum):
    """Operator commands the loop runs between two cycles."""

    RESTART = "restart"
    REINITIALIZE = "reinitialize"
    RELOAD = "reload"


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandResult:
    """What a command did: `ok`, an HTTP-like status and a message for the operator."""

    ok: bool
    status: int
    message: str


class CommandSink(Protocol):
    """Where the REST API sends operator commands; `submit` blocks until done or `timeout_s`."""

    def submit(
        self, command: Command, options: Mapping[str, Any], timeout_s: float
    ) -> CommandResult: ...


class FailsafeInbox:
    """The latest failsafe heartbeat this node's REST API accepted (thread-safe)."""

    def __init__(self, clock_mono: Callable[[], float]) -> None:
        self._clock_mono = clock_mono
        self._lock = threading.Lock()
        self._latest: FailsafeHeartbeat | None = None

    def accept(self, leader: str) -> None:
        """Record a heartbeat from `leader`, received now."""
        with self._lock:
            self._latest = FailsafeHeartbeat(leader=leader, received_mono=self._clock_mono())

    def latest(self) -> FailsafeHeartbeat | None:
        with self._lock:
            return self._latest
