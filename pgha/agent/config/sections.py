# The small sections of the agent configuration: restapi, etcd3, watchdog, tags, log. Safety
# rules: the REST API and etcd run over plain http only, so a configuration asking for TLS is
# refused rather than silently sent in clear; a `required` watchdog mode is never mistaken for
# `off` (YAML's `off` arrives as false and means off; any other non-word is an error).
"""Parsers for the restapi, etcd3, watchdog, tags and log sections."""

from __future__ import annotations

from dataclasses import fields as dataclass_fields
from typing import Any

from pgha.agent.config.model import (
    Credentials,
    EtcdConfig,
    HostPort,
    LogConfig,
    RestApiConfig,
    WatchdogConfig,
)
from pgha.agent.config.values import (
    absolute_path,
    checked,
    connect_address,
    duration,
    host_port,
    kind,
    name,
    optional,
    required,
    secret,
)
from pgha.engine.config import WatchdogMode
from pgha.engine.values import Tags
from pgha.located.errors import Problem
from pgha.located.tree import Node, boolean, integer, items, mapping, problem, suggest, text
from pgha.located.units import Sign

CREDENTIAL_KEYS = ("username", "password")
RESTAPI_KEYS = (
    "listen",
    "connect_address",
    "authentication",
    "request_timeout",
    "request_deadline",
    "max_pending_connections",
    "max_workers",
)
MAX_REST_CONNECTIONS = 65536  # beyond any file-descriptor limit an agent runs with
_TLS = "HTTPS/TLS is not supported yet: pgha talks plain http on a trusted network"
RESTAPI_UNSUPPORTED = dict.fromkeys(
    ("certfile", "keyfile", "keyfile_password", "cafile", "verify_client", "ciphers"), _TLS
)
ETCD_KEYS = ("hosts", "host", "protocol", "username", "password")
ETCD_UNSUPPORTED = {
    **dict.fromkeys(("cacert", "cert", "key"), _TLS),
    **dict.fromkeys(
        ("url", "urls", "srv", "srv_suffix", "proxy"),
        "not supported: give the members as hosts: [host:port, ...]",
    ),
}
WATCHDOG_KEYS = ("mode", "device", "safety_margin")
TAG_KEYS = tuple(f.name for f in dataclass_fields(Tags))
LOG_KEYS = ("level", "history", "dir")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_MODE_TEXT = "off, automatic or required"


def credentials(node: Node) -> Credentials:
    """`{username, password}`: the user name is required, the password optional."""
    if not isinstance(node.value, dict):
        raise Problem(
            line=node.line,
            field=node.field,
            expected="a mapping with username and password",
            got=kind(node.value),
        )
    fields = mapping(node, CREDENTIAL_KEYS)
    return Credentials(
        username=name(required(fields, "username", "a user name"), "a user name"),
        password=optional(fields, "password", secret, None),
    )


def restapi(node: Node) -> RestApiConfig:
    """The `restapi` section."""
    fields = checked(node, RESTAPI_KEYS, RESTAPI_UNSUPPORTED)
    listen = host_port(required(fields, "listen", "host:port"))
    return RestApiConfig(
        listen=listen,
        connect_address=connect_address(fields, listen),
        authentication=optional(fields, "authentication", credentials, None),
        request_timeout_s=optional(fields, "request_timeout", duration, 5.0),
        request_deadline_s=optional(fields, "request_deadline", duration, 10.0),
        max_pending=optional(fields, "max_pending_connections", _connections, 256),
        max_workers=optional(fields, "max_workers", _connections, 16),
    )


def _connections(node: Node) -> int:
    count = integer(node, 1)
    if count > MAX_REST_CONNECTIONS:
        raise problem(node, f"an integer from 1 to {MAX_REST_CONNECTIONS}")
    return count


def etcd3(node: Node) -> EtcdConfig:
    """The `etcd3` section: `hosts` (a list or "a:1,b:2") or `host`; plain http only."""
    fields = checked(node, ETCD_KEYS, ETCD_UNSUPPORTED)
    hosts_node, host_node = fields.get("hosts"), fields.get("host")
    if hosts_node is not None and host_node is not None:
        raise problem(host_node, "either host or hosts, not both")
    if hosts_node is not None:
        hosts = _etcd_hosts(hosts_node)
    elif host_node is not None:
        hosts = (host_port(host_node),)
    else:
        hosts = _etcd_hosts(required(fields, "hosts", "a list of host:port"))
    protocol = optional(fields, "protocol", _protocol, "http")
    username = optional(fields, "username", lambda n: name(n, "a user name"), None)
    password = optional(fields, "password", secret, None)
    if (username is None) != (password is None):
        missing = "password" if password is None else "username"
        raise Problem(
            line=fields.node.line,
            field=f"{fields.node.field}.{missing}",
            expected=f"{missing} (etcd authentication needs both username and password)",
            got="nothing",
        )
    return EtcdConfig(hosts=hosts, protocol=protocol, username=username, password=password)


def _etcd_hosts(node: Node) -> tuple[HostPort, ...]:
    if isinstance(node.value, str):
        parts = [p.strip() for p in node.value.split(",")]
        hosts = tuple(host_port(Node(part, node.line, node.field)) for part in parts)
    else:
        hosts = tuple(host_port(entry) for entry in items(node, "a list of host:port"))
    if len(set(hosts)) != len(hosts):
        raise problem(node, "each etcd member once")
    return hosts


def _protocol(node: Node) -> str:
    if node.value == "http":
        return "http"
    hint = "https is not supported yet" if node.value == "https" else ""
    raise problem(node, "http", hint)


def watchdog(node: Node) -> WatchdogConfig:
    """The `watchdog` section (`mode: off` may arrive as YAML false)."""
    fields = mapping(node, WATCHDOG_KEYS)
    return WatchdogConfig(
        mode=optional(fields, "mode", _watchdog_mode, WatchdogMode.AUTOMATIC),
        device=optional(fields, "device", absolute_path, "/dev/watchdog"),
        safety_margin_s=optional(fields, "safety_margin", _safety_margin, 5.0),
    )


def _watchdog_mode(node: Node) -> WatchdogMode:
    if node.value is False:
        return WatchdogMode.OFF
    for mode in WatchdogMode:
        if node.value == mode.value:
            return mode
    hint = (
        suggest(node.value, [m.value for m in WatchdogMode]) if isinstance(node.value, str) else ""
    )
    raise problem(node, _MODE_TEXT, hint)


def _safety_margin(node: Node) -> float:
    margin_s = duration(node, Sign.ANY)
    if margin_s < 0 and margin_s != -1:
        raise problem(node, "a duration >= 0, or -1 (the watchdog then fires at ttl // 2)")
    return margin_s


def tags(node: Node) -> Tags:
    """The `tags` section: the member tags peers and the engine read."""
    fields = mapping(node, TAG_KEYS)
    values: dict[str, Any] = {}
    for key, child in fields.entries.items():
        if key == "failover_priority":
            values[key] = integer(child, 0)
        elif key == "replicatefrom":
            values[key] = name(child, "a member name")
        else:
            values[key] = boolean(child)
    return Tags(**values)


def log(node: Node) -> LogConfig:
    """The `log` section."""
    fields = mapping(node, LOG_KEYS)
    return LogConfig(
        level=optional(fields, "level", _log_level, "INFO"),
        history=optional(fields, "history", absolute_path, None),
        dir=optional(fields, "dir", absolute_path, None),
    )


def _log_level(node: Node) -> str:
    expected = f"one of {', '.join(LOG_LEVELS)}"
    level = text(node, expected).upper()
    if level not in LOG_LEVELS:
        raise problem(node, expected, suggest(level, LOG_LEVELS))
    return level
