# The real agent's loop driver: it answers the shared loop's requests (pgha/loop.py) with the real
# ports, sleeps until the engine's wake time or a change of the leader key, publishes every status
# for the REST API, writes the history, and runs operators' commands between two cycles, never in
# the middle of one (a restart in the middle of a cycle would act on a stale observation). It makes
# no HA choice: every one is the engine's (docs/design.md, "The engine contract").
"""Drive the agent loop with real ports; status board, command queue and history for the agent."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from pgha.agent.admin import Command, CommandResult
from pgha.engine.state import NodeState
from pgha.engine.values import LocalConfig, PgRun, PostgresState
from pgha.events import ActionsEvent, Event, history_records
from pgha.history import HistoryWriter
from pgha.loop import run_blocking
from pgha.ports import Ports
from pgha.status import AgentStatus

log = logging.getLogger("pgha.agent")

WATCH_SLICE_S = 1.0  # the longest a sleep waits before looking at commands and stop requests


class StatusBoard:
    """The latest published AgentStatus (thread-safe): the REST API reads it."""

    def __init__(self, initial: AgentStatus) -> None:
        self._lock = threading.Lock()
        self._status = initial

    def publish(self, status: AgentStatus) -> None:
        with self._lock:
            self._status = status

    def get(self) -> AgentStatus:
        with self._lock:
            return self._status


@dataclass(slots=True)
class _Pending:
    command: Command
    options: Mapping[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: CommandResult | None = None


class CommandQueue:
    """Operator commands from the REST API, run by the loop between two cycles (a CommandSink)."""

    def __init__(self, wake: threading.Event) -> None:
        self._wake = wake
        self._lock = threading.Lock()
        self._pending: deque[_Pending] = deque()

    def submit(
        self, command: Command, options: Mapping[str, Any], timeout_s: float
    ) -> CommandResult:
        """Queue `command`, wake the loop and wait up to `timeout_s` for its result."""
        pending = _Pending(command, dict(options))
        with self._lock:
            self._pending.append(pending)
        self._wake.set()
        if pending.done.wait(timeout_s) and pending.result is not None:
            return pending.result
        message = f"{command.value} is still running or queued after {timeout_s:g} s"
        return CommandResult(ok=False, status=503, message=message)

    def run_pending(self, handle: Callable[[Command, Mapping[str, Any]], CommandResult]) -> None:
        """Run every queued command with `handle`, in order, and hand back the results."""
        while True:
            with self._lock:
                if not self._pending:
                    return
                pending = self._pending.popleft()
            try:
                pending.result = handle(pending.command, pending.options)
            except Exception:  # an operator command must never take the loop down
                log.exception("command %s failed", pending.command.value)
                pending.result = CommandResult(
                    ok=False, status=500, message=f"{pending.command.value} failed"
                )
            pending.done.set()


class AgentHistory:
    """The agent's own history (docs/history.md), on the host's monotonic clock; thread-safe."""

    def __init__(self, target: Path | None, name: str, now_mono: Callable[[], float]) -> None:
        self._name = name
        self._now_mono = now_mono
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self._writer: HistoryWriter | None = None
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._file = target.open("a", encoding="utf-8")
            self._writer = HistoryWriter(self._file)

    def record(self, kind: str, **fields: Any) -> None:
        """Append one event about this node, flushed at once (a crash loses nothing written)."""
        if self._writer is None:
            return
        with self._lock:
            t = max(self._now_mono(), self._writer.last_t or 0.0)
            self._writer.record(t, kind, self._name, **fields)
            self._writer.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file, self._writer = None, None


def pg_role(pg: PostgresState) -> str:
    """The `pg_role` history value of a PostgreSQL state."""
    if pg.run is PgRun.STOPPED:
        return "stopped" if pg.clean_shutdown else "crashed"
    if pg.run is PgRun.STARTING:
        return "starting"
    return "replica" if pg.in_recovery else "primary"


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopParts:
    """What the loop driver needs besides the ports."""

    local: LocalConfig
    ports: Ports
    board: StatusBoard
    commands: CommandQueue
    history: AgentHistory
    wait_for_leader_change: Callable[[float], bool]  # (timeout_s) -> True when the key changed
    handle_command: Callable[[Command, Mapping[str, Any]], CommandResult]
    between_cycles: Callable[[AgentStatus], None]  # config reloads, slots: after commands
    wake: threading.Event


class AgentLoop:
    """The blocking loop of one agent, stopped from another thread with `request_stop()`."""

    def __init__(self, parts: LoopParts) -> None:
        self._parts = parts
        self._stopping = threading.Event()
        self._last_pg: tuple[str, int | None, str | None] | None = None

    def request_stop(self) -> None:
        self._stopping.set()
        self._parts.wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run(self) -> None:
        """Run until `request_stop()`; raises AgentHalted when the engine halts the agent."""
        parts = self._parts
        run_blocking(
            parts.local,
            NodeState(name=parts.local.name),
            parts.ports,
            sleep=self._sleep,
            stop=self._before_step,
            on_event=self._on_event,
            on_status=self._on_status,
        )

    def _before_step(self) -> bool:
        if self._stopping.is_set():
            return True
        self._parts.commands.run_pending(self._parts.handle_command)
        try:
            self._parts.between_cycles(self._parts.board.get())
        except Exception:  # housekeeping must not stop the HA loop
            log.exception("between-cycles housekeeping failed")
        return self._stopping.is_set()

    def _sleep(self, until_mono: float, watch: bool) -> None:
        clock, wake = self._parts.ports.clock, self._parts.wake
        while not self._stopping.is_set():
            remaining_s = until_mono - clock.now_mono()
            if remaining_s <= 0 or wake.is_set():
                break
            slice_s = min(remaining_s, WATCH_SLICE_S)
            if watch:
                if self._parts.wait_for_leader_change(slice_s):
                    break
            else:
                wake.wait(slice_s)
        wake.clear()

    def _on_event(self, event: Event) -> None:
        for kind, fields in history_records(event):
            self._parts.history.record(kind, **fields)
        if isinstance(event, ActionsEvent) and event.ran:
            # The actions may have started, stopped or promoted PostgreSQL: the REST API answers
            # from what it is now, not from what it was when the step began (health checks
            # would otherwise lag a loop_wait behind).
            board = self._parts.board
            pg = self._parts.ports.postgres.state()
            board.publish(replace(board.get(), postgres=pg))
            self._record_pg(pg)

    def _on_status(self, status: AgentStatus) -> None:
        old = self._parts.board.get()
        self._parts.board.publish(status)
        if old.role is not status.role or old.reason is None:
            log.info("role %s (%s)", status.role.value, status.reason and status.reason.value)
            reason = status.reason.value if status.reason else None
            self._parts.history.record("agent_role", role=status.role.value, reason=reason)
        self._record_pg(status.postgres)

    def _record_pg(self, pg: PostgresState) -> None:
        seen = (pg_role(pg), pg.timeline, pg.following)
        if seen != self._last_pg:
            self._last_pg = seen
            self._parts.history.record(
                "pg_role", role=seen[0], timeline=pg.timeline, lsn=pg.wal_lsn, upstream=seen[2]
            )
