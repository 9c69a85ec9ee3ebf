# `pgha ctl`: the operator's control command, like patronictl. It reads an agent configuration
# file for the etcd endpoints, the cluster's scope and namespace and the REST credentials, then
# runs one command. This module is the composition root: argument parsing, the etcd connection
# and the mapping of every failure to an exit code (0 ok, 1 failed or refused, 2 bad usage or
# configuration) and a one-line message. Safety rule: an operator never sees a traceback or a
# password: errors are reported by what failed and where, never by echoing secrets.
"""`pgha ctl`: list, topology, history, show-config, edit-config, pause, resume, switchover,
failover, restart, reinit and reload."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

from pgha.agent.compose import etcd_settings
from pgha.agent.config.file import AgentConfigError, load_agent_config
from pgha.agent.config.model import AgentConfig
from pgha.agent.etcd.admin import EtcdAdmin
from pgha.agent.etcd.codec import HISTORY, history_lines
from pgha.agent.etcd.session import EtcdSettings
from pgha.ctl.actions import (
    cmd_failover,
    cmd_reinit,
    cmd_reload,
    cmd_restart,
    cmd_switchover,
)
from pgha.ctl.cluster import (
    Ctl,
    cmd_edit_config,
    cmd_history,
    cmd_list,
    cmd_pause,
    cmd_show_config,
)
from pgha.ctl.common import EXIT_FAILED, EXIT_USAGE, Console, CtlError
from pgha.ctl.render import FORMATS
from pgha.ctl.rest import RestClient
from pgha.engine.values import ClusterView
from pgha.ports import DcsError

__all__ = ["CtlEtcdAdmin", "build_parser", "main", "run"]

ENV_CONFIG = "PGHA_CONFIG"
DCS_TIMEOUT_S = 5.0

Command = Callable[[Ctl, argparse.Namespace], int]
COMMANDS: dict[str, tuple[Command, str]] = {
    "list": (cmd_list, "the members: role, state, timeline, lag, tags"),
    "topology": (cmd_list, "the members as a replication tree"),
    "history": (cmd_history, "the timeline switches (failovers and switchovers)"),
    "show-config": (cmd_show_config, "the dynamic configuration (/config)"),
    "edit-config": (cmd_edit_config, "change the dynamic configuration"),
    "pause": (cmd_pause, "stop automatic failover (maintenance mode)"),
    "resume": (cmd_pause, "resume automatic failover"),
    "switchover": (cmd_switchover, "hand the leader role to another member (now or later)"),
    "failover": (cmd_failover, "make a member the leader, with or without a current leader"),
    "restart": (cmd_restart, "restart PostgreSQL on members"),
    "reinit": (cmd_reinit, "wipe replicas and clone them again"),
    "reload": (cmd_reload, "make members re-read their configuration"),
}


class CtlEtcdAdmin(EtcdAdmin):
    """EtcdAdmin for `pgha ctl`: every call bounded by `timeout_s` (not the cluster's
    retry_timeout, which a cluster read would otherwise adopt), plus the raw `/history`."""

    def __init__(self, settings: EtcdSettings, timeout_s: float = DCS_TIMEOUT_S) -> None:
        super().__init__(settings)
        self._timeout_s = timeout_s
        self._history_key = (settings.prefix + HISTORY).encode()
        self.session.retry_timeout_s = timeout_s

    def cluster(self) -> ClusterView:
        view = super().cluster()
        self.session.retry_timeout_s = self._timeout_s
        return view

    def history_lines(self) -> list[Any]:
        """The `/history` value's lines as stored (an absent or unreadable value: [])."""
        answer = self.session.range(self._history_key, what="history")
        return history_lines(bytes(answer.kvs[0].value) if answer.kvs else None)


# ---------------------------------------------------------------- arguments


def _format_option(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "-f", "--format", dest="format", choices=FORMATS, default=default, help="output format"
    )


def _force(parser: argparse.ArgumentParser, what: str = "without asking for confirmation") -> None:
    parser.add_argument("--force", action="store_true", help=what)


def _add_edit_config(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "-s",
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="set a dotted key (the value is read as YAML; null deletes the key)",
    )
    sub.add_argument(
        "-p",
        "--pg",
        action="append",
        metavar="NAME=VALUE",
        help="set postgresql.parameters.NAME (null deletes it)",
    )
    sub.add_argument("--apply", metavar="FILE", help="merge a YAML file ('-': stdin)")
    sub.add_argument("--replace", metavar="FILE", help="replace /config with a YAML file")
    _force(sub, "apply without asking for confirmation")


def _add_actions(subs: dict[str, argparse.ArgumentParser]) -> None:
    subs["list"].add_argument(
        "-e",
        "--extended",
        action="store_true",
        help="always show the Pending restart and Tags columns",
    )
    for name in ("pause", "resume"):
        _add_wait(subs[name])
    _add_switchover(subs["switchover"])
    subs["failover"].add_argument("--candidate", help="the member to make leader")
    _force(subs["failover"])
    _add_restart(subs["restart"])
    subs["reinit"].add_argument("members", nargs="+", metavar="MEMBER")
    _force(subs["reinit"], "no confirmation, and cancel a task already running on the member")
    subs["reload"].add_argument("members", nargs="*", metavar="MEMBER", help="default: all")
    _force(subs["reload"])


def _add_wait(sub: argparse.ArgumentParser) -> None:
    """`pause` / `resume`: --wait and --wait-timeout."""
    sub.add_argument("--wait", action="store_true", help="wait until every member reports it")
    sub.add_argument(
        "--wait-timeout",
        type=_seconds(24 * 3600),
        default=60.0,
        metavar="SECONDS",
        help="give up waiting after this long (default 60)",
    )


def _add_switchover(switchover: argparse.ArgumentParser) -> None:
    switchover.add_argument("--leader", "--primary", dest="leader", help="the current leader")
    switchover.add_argument("--candidate", help="the new leader (default: the best replica)")
    switchover.add_argument(
        "--scheduled", metavar="ISO|now", help="when (ISO 8601; without a time zone: local time)"
    )
    _force(switchover)


def _add_restart(restart: argparse.ArgumentParser) -> None:
    restart.add_argument("members", nargs="*", metavar="MEMBER", help="default: every member")
    restart.add_argument("--pending", action="store_true", help="only if a restart is pending")
    restart.add_argument(
        "--role", choices=("primary", "replica", "any"), help="only if the member has this role"
    )
    restart.add_argument(
        "--timeout",
        type=_seconds(24 * 3600),
        metavar="SECONDS",
        help="fail if PostgreSQL takes longer to start",
    )
    _force(restart)


def _seconds(limit_s: float) -> Callable[[str], float]:
    """An argparse type: seconds above 0 and at most `limit_s`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
        if not 0 < value <= limit_s:
            raise argparse.ArgumentTypeError(f"expected seconds above 0, at most {limit_s:g}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The `pgha ctl` argument parser."""
    parser = argparse.ArgumentParser(
        prog="pgha ctl", description="Inspect and operate a running pgha cluster."
    )
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help=f"an agent configuration file (default: ${ENV_CONFIG})",
    )
    parser.add_argument(
        "--dcs-timeout",
        type=_seconds(3600),
        default=DCS_TIMEOUT_S,
        metavar="SECONDS",
        help=f"give up on etcd after this long (default {DCS_TIMEOUT_S:g})",
    )
    _format_option(parser, "pretty")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    subs: dict[str, argparse.ArgumentParser] = {}
    for name, (_, summary) in COMMANDS.items():
        subs[name] = commands.add_parser(name, help=summary, description=summary)
        _format_option(subs[name], argparse.SUPPRESS)
    _add_edit_config(subs["edit-config"])
    _add_actions(subs)
    return parser


# ---------------------------------------------------------------- running


def _config(path: str | None, environ: dict[str, str]) -> AgentConfig:
    path = path or environ.get(ENV_CONFIG)
    if not path:
        raise CtlError(f"no configuration: pass -c FILE or set {ENV_CONFIG}", EXIT_USAGE)
    try:
        return load_agent_config(path)
    except AgentConfigError as exc:
        raise CtlError(str(exc), EXIT_USAGE) from None


def settings_of(cfg: AgentConfig) -> EtcdSettings:
    """Where the cluster's keys are, from the agent configuration."""
    try:
        return etcd_settings(cfg, DCS_TIMEOUT_S)
    except ValueError as exc:
        raise CtlError(f"{cfg.source_path}: {exc}", EXIT_USAGE) from None


def rest_client(cfg: AgentConfig) -> RestClient:
    """REST calls with the agent's credentials and request timeout."""
    auth = cfg.restapi.authentication
    return RestClient(
        username=None if auth is None else auth.username,
        password=None if auth is None else auth.password,
        timeout_s=cfg.restapi.request_timeout_s,
    )


def _parse(argv: list[str], console: Console) -> argparse.Namespace | int:
    parser = build_parser()
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = console.out, console.err  # argparse prints usage and help here
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    finally:
        sys.stdout, sys.stderr = stdout, stderr


def run(
    argv: list[str],
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    interactive: bool | None = None,
    environ: dict[str, str] | None = None,
) -> int:
    """`main` with its streams, terminal flag and environment given (for tests and embedding)."""
    console = _console(stdin, stdout, stderr, interactive)
    environ = dict(os.environ) if environ is None else environ
    args = _parse(argv, console)
    if isinstance(args, int):
        return args
    try:
        cfg = _config(args.config, environ)
        settings = settings_of(cfg)
    except CtlError as exc:
        console.warn(exc.message)
        return exc.code
    admin = CtlEtcdAdmin(settings, args.dcs_timeout)
    ctl = Ctl(
        scope=cfg.scope,
        admin=admin,
        rest=rest_client(cfg),
        console=console,
        fmt=args.format,
        environ=environ,
    )
    try:
        return _command(ctl, args, settings)
    finally:
        admin.close()


def _console(
    stdin: TextIO | None, stdout: TextIO | None, stderr: TextIO | None, interactive: bool | None
) -> Console:
    """The given streams and terminal flag, the process's own where not given."""
    stdin = sys.stdin if stdin is None else stdin
    return Console(
        out=sys.stdout if stdout is None else stdout,
        err=sys.stderr if stderr is None else stderr,
        stdin=stdin,
        interactive=_isatty(stdin) if interactive is None else interactive,
    )


def _command(ctl: Ctl, args: argparse.Namespace, settings: EtcdSettings) -> int:
    """Run the command; every failure becomes one line on stderr and an exit code."""
    try:
        return COMMANDS[args.command][0](ctl, args)
    except CtlError as exc:
        ctl.console.warn(exc.message)
        return exc.code
    except DcsError as exc:
        hosts = ",".join(f"{host}:{port}" for host, port in settings.hosts)
        ctl.console.warn(f"cannot reach etcd at {hosts}: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        ctl.console.warn("aborted")
        return EXIT_FAILED
    except Exception as exc:  # a bug: still one line, never a traceback
        ctl.console.warn(f"pgha ctl {args.command}: internal error ({type(exc).__name__}): {exc}")
        return EXIT_FAILED


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def main(argv: list[str]) -> int:
    """`pgha ctl ...` (argv without "ctl"); the exit code: 0 ok, 1 failed, 2 bad usage."""
    return run(argv)
