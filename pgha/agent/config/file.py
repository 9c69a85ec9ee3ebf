# The agent's configuration file: YAML close to Patroni's, read once at start into frozen values.
# Every mistake is an `AgentConfigError` naming the file, line and field (the same shape as a
# scenario error), so an operator never starts an agent on a half-understood file. Parsing never
# looks at the machine; `check_environment` does, and `validate_main` (`pgha agent
# --validate-config FILE`) runs both. Safety rule: no password reaches an error or the summary;
# values found under any `password` key are redacted from every message as a last line of defence.
"""Load and validate the agent configuration: `load_agent_config`, `validate_main`."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

from pgha.agent.config.dcs import bootstrap, parse_dcs_config, timing_warnings
from pgha.agent.config.env import check_environment
from pgha.agent.config.model import (
    AgentConfig,
    AgentConfigError,
    BootstrapConfig,
    CallbacksConfig,
    Credentials,
    DcsConfig,
    EtcdConfig,
    HostPort,
    LogConfig,
    PgAuthentication,
    PgBackRestConfig,
    PostgresqlConfig,
    ReplicaMethod,
    RestApiConfig,
    WatchdogConfig,
)
from pgha.agent.config.postgresql import postgresql
from pgha.agent.config.sections import etcd3, log, restapi, tags, watchdog
from pgha.agent.config.values import absolute_path, checked, name, optional, required
from pgha.engine.config import DynamicConfig, WatchdogMode
from pgha.engine.values import Tags
from pgha.located.errors import Problem
from pgha.located.tree import Node, compose, problem

__all__ = [
    "AgentConfig",
    "AgentConfigError",
    "BootstrapConfig",
    "CallbacksConfig",
    "Credentials",
    "DcsConfig",
    "EtcdConfig",
    "HostPort",
    "LogConfig",
    "PgAuthentication",
    "PgBackRestConfig",
    "PostgresqlConfig",
    "ReplicaMethod",
    "RestApiConfig",
    "WatchdogConfig",
    "check_environment",
    "config_warnings",
    "load_agent_config",
    "parse_agent_config",
    "parse_dcs_config",
    "summary",
    "timing_warnings",
    "validate_main",
]

TOP_KEYS = (
    "scope",
    "namespace",
    "name",
    "restapi",
    "etcd3",
    "bootstrap",
    "postgresql",
    "watchdog",
    "tags",
    "log",
    "pid_file",
)
_ONLY_ETCD3 = "pgha supports etcd v3 only: use an etcd3 section"
TOP_UNSUPPORTED = {
    "etcd": "the etcd v2 API is not supported: use an etcd3 section",
    **dict.fromkeys(("consul", "zookeeper", "exhibitor", "kubernetes", "raft"), _ONLY_ETCD3),
    "citus": "Citus is not supported",
    "standby_cluster": "a standby cluster is not supported yet",
    "ctl": "pgha ctl does not use TLS: remove this section",
}
_NAMESPACE_TEXT = "a namespace of letters, digits, '_', '.', '-' and '/'"


def parse_agent_config(text: str, source: str = "<string>") -> AgentConfig:
    """Parse an agent configuration from YAML text.

    Args:
        text: the YAML document.
        source: the file name used in errors and kept as `AgentConfig.source_path`.

    Raises:
        AgentConfigError: the first mistake found, with its line, field and what was expected.
    """
    try:
        root = compose(text)
    except Problem as found:
        if found.got == "an empty document":
            found.expected = "a mapping of agent settings (scope, name, restapi, ...)"
        raise _error(found, source, ()) from None
    secrets = _secrets(root)
    try:
        return _agent(root, source)
    except Problem as found:
        raise _error(found, source, secrets) from None


def load_agent_config(path: str | os.PathLike[str]) -> AgentConfig:
    """Read and parse an agent configuration file (UTF-8 YAML).

    Raises:
        AgentConfigError: the file cannot be read, has a YAML syntax error, or the first mistake.
    """
    source = os.fspath(path)
    try:
        content = Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise AgentConfigError(
            path=source, line=1, field="<file>", expected="a readable UTF-8 file", got=reason
        ) from None
    return parse_agent_config(content, source)


def _agent(root: Node, source: str) -> AgentConfig:
    fields = checked(root, TOP_KEYS, TOP_UNSUPPORTED)
    scope = name(
        required(fields, "scope", "a cluster name"), "a cluster name (letters, digits, _.-)"
    )
    namespace = optional(fields, "namespace", _namespace, "service")
    member = name(required(fields, "name", "a member name"), "a member name (letters, digits, _.-)")
    rest = restapi(required(fields, "restapi", "a restapi section"))
    return AgentConfig(
        scope=scope,
        namespace=namespace,
        name=member,
        restapi=rest,
        etcd=etcd3(required(fields, "etcd3", "an etcd3 section")),
        bootstrap=bootstrap(fields.get("bootstrap")),
        postgresql=postgresql(required(fields, "postgresql", "a postgresql section"), rest.listen),
        watchdog=optional(fields, "watchdog", watchdog, WatchdogConfig()),
        tags=optional(fields, "tags", tags, Tags()),
        log=optional(fields, "log", log, LogConfig()),
        pid_file=optional(fields, "pid_file", absolute_path, None),
        source_path=source,
    )


def _namespace(node: Node) -> str:
    # Patroni writes "/service/"; keys live under /<namespace>/<scope>/, so keep it bare.
    value = node.value
    parts = value.strip("/").split("/") if isinstance(value, str) else []
    if not parts or not all(part and _is_name(part) for part in parts):
        raise problem(node, _NAMESPACE_TEXT)
    return "/".join(parts)


def _is_name(part: str) -> bool:
    return all(c.isascii() and (c.isalnum() or c in "_.-") for c in part)


def _secrets(root: Node) -> tuple[str, ...]:
    # Every value written under a `password` key, wherever it is (even a misplaced one).
    found: list[str] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node.value, dict):
            for key, child in node.value.items():
                if key == "password" and isinstance(child.value, str | int | float) and child.value:
                    found.append(str(child.value))
                stack.append(child)
        elif isinstance(node.value, tuple):
            stack.extend(node.value)
    return tuple(found)


def _error(found: Problem, source: str, secrets: tuple[str, ...]) -> AgentConfigError:
    leaks = any(secret in found.got for secret in secrets)
    return AgentConfigError(
        path=source,
        line=found.line,
        field=found.field,
        expected=found.expected,
        got="a value that is not shown (it is also used as a password)" if leaks else found.got,
        hint="" if any(secret in found.hint for secret in secrets) else found.hint,
    )


# ---------------------------------------------------------------- validation


def config_warnings(cfg: AgentConfig) -> tuple[str, ...]:
    """Valid but probably unintended settings: adjusted timeouts, an unusable watchdog."""
    out = [f"bootstrap.dcs: {warning}" for warning in cfg.bootstrap.warnings]
    effective = cfg.watchdog.apply_to(cfg.bootstrap.dynamic)
    if cfg.watchdog.mode is not WatchdogMode.OFF and effective.watchdog_slack_s < 0:
        consequence = (
            "this node will never become leader"
            if cfg.watchdog.mode is WatchdogMode.REQUIRED
            else "the watchdog will not be used"
        )
        out.append(
            f"watchdog: its timeout ({effective.watchdog_timeout_s:g} s from ttl and "
            f"safety_margin) is shorter than loop_wait ({effective.loop_wait_s:g} s): {consequence}"
        )
    elif cfg.watchdog.mode is not WatchdogMode.OFF and _dcs_outage_slack_s(effective) <= 0:
        out.append(
            f"watchdog: its timeout ({effective.watchdog_timeout_s:g} s from ttl and "
            f"safety_margin) is not longer than loop_wait + retry_timeout "
            f"({effective.loop_wait_s + effective.retry_timeout_s:g} s), the time a loop "
            "that cannot reach etcd takes before it can demote or kick in failsafe mode: the "
            "watchdog will reset a healthy primary during every etcd outage; lower safety_margin"
        )
    return tuple(out)


def _dcs_outage_slack_s(dynamic: DynamicConfig) -> float:
    """How long before the watchdog fires a loop that found etcd unreachable may still act."""
    return dynamic.watchdog_timeout_s - dynamic.loop_wait_s - dynamic.retry_timeout_s


def summary(cfg: AgentConfig) -> str:
    """One paragraph saying what the agent will do with `cfg` (no secrets)."""
    dynamic = cfg.bootstrap.dynamic
    pg = cfg.postgresql
    hosts = ", ".join(str(host) for host in cfg.etcd.hosts)
    return (
        f"Member {cfg.name!r} of cluster {cfg.scope!r} (keys under {cfg.key_prefix}) uses etcd "
        f"at {hosts}. Its REST API listens on {cfg.restapi.listen} (peers use "
        f"{cfg.restapi.connect_address}); PostgreSQL listens on {pg.listen} (peers use "
        f"{pg.connect_address}) with data_dir {pg.data_dir}, programs from {pg.bin_dir}"
        f"{f', run as {pg.os_user}' if pg.os_user else ''}. Timing after adjustment: "
        f"ttl {dynamic.ttl_s:g} s, loop_wait {dynamic.loop_wait_s:g} s, retry_timeout "
        f"{dynamic.retry_timeout_s:g} s. Watchdog {cfg.watchdog.mode.value} "
        f"({cfg.watchdog.device}, safety_margin {cfg.watchdog.safety_margin_s:g} s)."
    )


def validate_main(path: str | os.PathLike[str]) -> int:
    """`pgha agent --validate-config FILE`: parse, check the machine, print the outcome.

    Returns:
        0 after printing "<file>: OK", a summary and any warnings to stdout; 2 after printing
        the error(s) to stderr. Never raises and never prints a traceback.
    """
    source = os.fspath(path)
    try:
        cfg = load_agent_config(source)
        problems = check_environment(cfg)
    except AgentConfigError as err:
        print(err, file=sys.stderr)
        return 2
    except Exception as err:
        # Not the message: it might quote the file. The type is enough to report the bug.
        print(f"{source}: cannot validate ({type(err).__name__})", file=sys.stderr)
        return 2
    if problems:
        for message in problems:
            print(f"{source}: {message}", file=sys.stderr)
        return 2
    print(f"{source}: OK")
    print(textwrap.fill(summary(cfg), width=100, break_long_words=False, break_on_hyphens=False))
    for warning in config_warnings(cfg):
        print(f"warning: {warning}")
    return 0
