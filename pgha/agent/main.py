# `pgha agent`: run the HA loop beside one PostgreSQL server, or check a configuration file.
# Lifecycle: read and check the file, bind the REST API, run the loop until SIGTERM/SIGINT, then
# shut down in the order the engine decides (pgha/engine/shutdown.py: PostgreSQL stopped before the
# leader key is let go, nothing stopped in pause). Operator commands (restart, reinitialize,
# reload) run between two cycles; whether a node may be reinitialized, and which slots a primary
# keeps, are the engine's decisions too (pgha/engine/operator.py, pgha/engine/slots.py).
"""The `pgha agent` command: run the agent, or validate its configuration file."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

from pgha.agent.admin import Command, CommandResult
from pgha.agent.compose import Parts, build
from pgha.agent.config.file import (
    AgentConfigError,
    check_environment,
    config_warnings,
    load_agent_config,
    validate_main,
)
from pgha.agent.runner import AgentLoop, LoopParts
from pgha.engine.actions import Reinit, StopPostgres
from pgha.engine.operator import ReinitRefusal, reinit_source
from pgha.engine.shutdown import Stopping, shutdown_actions
from pgha.engine.slots import member_slots
from pgha.executor import AgentHalted, bound_call, run_actions
from pgha.ports import ActionFailed
from pgha.status import AgentStatus

log = logging.getLogger("pgha.agent")

EXIT_OK, EXIT_FAILED, EXIT_BAD_CONFIG, EXIT_HALTED = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pgha agent",
        description="Run the HA agent beside one PostgreSQL server (etcd v3 as the DCS).",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--config", "-c", type=Path, metavar="FILE", help="run with this file")
    mode.add_argument(
        "--validate-config", type=Path, metavar="FILE", help="check FILE and exit (0 ok, 2 bad)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `pgha agent`; returns the exit code (0 stopped cleanly, 1 failed, 2 bad config,
    3 halted by the engine)."""
    args = build_parser().parse_args(argv)
    if args.validate_config is not None:
        return validate_main(args.validate_config)
    try:
        cfg = load_agent_config(args.config)
    except AgentConfigError as error:
        print(f"pgha agent: {error}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    problems = check_environment(cfg)
    if problems:
        for problem in problems:
            print(f"pgha agent: {cfg.source_path}: {problem}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    logging.basicConfig(
        level=cfg.log.level,
        format=f"%(asctime)s %(levelname)s {cfg.name}: %(message)s",
    )
    for warning in config_warnings(cfg):
        log.warning("%s", warning)
    return Agent(build(cfg)).run()


class Agent:
    """One running agent: REST API thread, loop in the calling thread, orderly shutdown."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self._applied_config: Mapping[str, Any] | None = None
        self._clones_recorded = 0
        self._config_error: str | None = None  # the rejected /config reported last
        self.loop = AgentLoop(
            LoopParts(
                local=parts.local,
                ports=parts.ports,
                board=parts.board,
                commands=parts.commands,
                history=parts.history,
                wait_for_leader_change=parts.dcs.etcd.wait_for_leader_change,
                handle_command=self.handle_command,
                between_cycles=self.between_cycles,
                wake=parts.wake,
            )
        )

    @property
    def pending_restart(self) -> bool:
        """A changed parameter needs a restart (published in the member key, for `pgha ctl`)."""
        return bool(self.parts.member_extras.get("pending_restart"))

    @pending_restart.setter
    def pending_restart(self, value: bool) -> None:
        if value:
            self.parts.member_extras["pending_restart"] = True
        else:
            self.parts.member_extras.pop("pending_restart", None)

    def run(self) -> int:
        parts = self.parts
        try:
            parts.rest.start()
        except OSError as error:
            log.error("cannot start the REST API: %s", error)
            return EXIT_FAILED
        self._write_pid_file()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        parts.history.record("agent_start", pid=os.getpid(), scope=parts.cfg.scope)
        log.info("agent started (REST API at %s)", parts.rest.url)
        code = EXIT_OK
        try:
            self.loop.run()
        except AgentHalted:
            log.critical("the engine halted the agent: %s", parts.board.get().reason)
            code = EXIT_HALTED
        finally:
            self.shutdown()
        return code

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        del frame
        log.info("signal %s: shutting down", signal.Signals(signum).name)
        self.loop.request_stop()

    def _write_pid_file(self) -> None:
        if self.parts.cfg.pid_file:
            Path(self.parts.cfg.pid_file).write_text(f"{os.getpid()}\n")

    # ------------------------------------------------------------ between cycles

    def between_cycles(self, status: AgentStatus) -> None:
        """Housekeeping the engine does not decide: conf files, slots, config errors."""
        pg, dcs = self.parts.pg, self.parts.dcs.etcd
        for method in pg.clones[self._clones_recorded :]:
            self.parts.history.record("replica_created", method=method)
        self._clones_recorded = len(pg.clones)
        running = status.postgres.run.value == "running"
        document = dcs.raw_config_document()
        if running and document and document != self._applied_config:
            result = pg.apply_dynamic()
            self._applied_config = document
            self.pending_restart = result.pending_restart
            if result.changed:
                self.parts.history.record("config_applied", pending_restart=result.pending_restart)
        members = member_slots(
            status.cluster,
            name=status.name,
            running=running,
            holds_lock=status.holds_lock,
            pg_is_primary=status.postgres.is_primary,
        )
        if members is not None:
            pg.sync_slots(members)
        self._report_config_error()

    def _report_config_error(self) -> None:
        """A rejected `/config` (the last good one stays in use): said once in the log, the
        history (`config_rejected`) and the member key (`config_error`, for `pgha ctl`)."""
        dcs = self.parts.dcs.etcd
        error = dcs.last_config_error()
        if error == self._config_error:
            return
        self._config_error = error
        if error is None:
            self.parts.member_extras.pop("config_error", None)
            log.info("the DCS /config is valid again and in use")
            return
        self.parts.member_extras["config_error"] = error
        log.warning("the DCS /config is invalid, keeping the last good one: %s", error)
        self.parts.history.record("config_rejected", key=dcs.last_config_error_key(), error=error)

    # ------------------------------------------------------------ operator commands

    def handle_command(self, command: Command, options: Mapping[str, Any]) -> CommandResult:
        handlers = {
            Command.RESTART: self._restart,
            Command.REINITIALIZE: self._reinitialize,
            Command.RELOAD: self._reload,
        }
        self.parts.history.record("command", command=command.value)
        return handlers[command](options)

    def _restart(self, options: Mapping[str, Any]) -> CommandResult:
        status = self.parts.board.get()
        if options.get("restart_pending") and not self.pending_restart:
            return CommandResult(ok=False, status=503, message="restart is not pending")
        role = options.get("role")
        if role and role != _role_name(status):
            return CommandResult(ok=False, status=503, message=f"role does not match {role}")
        try:
            self.parts.pg.restart()
        except ActionFailed as error:
            return CommandResult(ok=False, status=503, message=f"restart failed: {error}")
        self.pending_restart = False
        self.parts.callbacks.run_named("on_restart", _role_name(status))
        return CommandResult(ok=True, status=200, message="restarted successfully")

    def _reinitialize(self, options: Mapping[str, Any]) -> CommandResult:
        del options
        status = self.parts.board.get()
        source = reinit_source(
            status.cluster, holds_lock=status.holds_lock, pg_is_primary=status.postgres.is_primary
        )
        if isinstance(source, ReinitRefusal):
            return CommandResult(ok=False, status=503, message=source.value)
        _, reinit, args = bound_call(Reinit(source=source), self.parts.ports)
        try:
            reinit(*args)
        except ActionFailed as error:
            return CommandResult(ok=False, status=503, message=f"reinitialize failed: {error}")
        return CommandResult(ok=True, status=200, message="reinitialized successfully")

    def _reload(self, options: Mapping[str, Any]) -> CommandResult:
        del options
        status = self.parts.board.get()
        try:
            if status.postgres.run.value == "running":
                result = self.parts.pg.apply_dynamic()
                self.pending_restart = result.pending_restart
                self.parts.pg.reload()
        except ActionFailed as error:
            return CommandResult(ok=False, status=503, message=f"reload failed: {error}")
        self.parts.callbacks.run_named("on_reload", _role_name(status))
        return CommandResult(ok=True, status=202, message="reload scheduled")

    # ------------------------------------------------------------ shutdown

    def shutdown(self) -> None:
        """Run the engine's shutdown (PostgreSQL, the leader key, the watchdog), then close."""
        parts = self.parts
        status = parts.board.get()
        self._shutdown_steps(status)
        parts.rest.stop()
        parts.callbacks.wait_idle(parts.cfg.postgresql.callback_timeout_s)
        parts.callbacks.close()
        parts.history.record("agent_stop", paused=status.paused)
        parts.history.close()
        parts.dcs.etcd.close()
        parts.admin.close()
        log.info("agent stopped")

    def _shutdown_steps(self, status: AgentStatus) -> None:
        """Ask the engine what to do, run it; once more with the stop's result (shutdown.py)."""
        leader = status.cluster.leader if status.cluster else None
        stopping = Stopping(
            paused=status.paused,
            holds_leader_key=leader is not None and leader.holder == status.name,
        )
        while actions := shutdown_actions(stopping):
            results = run_actions(actions, self.parts.ports)
            if results.failed is not None:
                log.error("shutdown: %s failed", type(results.failed).__name__)
            if not isinstance(actions[0], StopPostgres):
                return
            stopping = replace(stopping, postgres_stopped=results.failed is None)
        log.error("PostgreSQL did not stop: the leader key is kept and the watchdog stays armed")


def _role_name(status: AgentStatus) -> str:
    return "primary" if status.postgres.is_primary else "replica"
