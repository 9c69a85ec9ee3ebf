# The agent's configuration as frozen values, and the one error reading it can raise. Everything
# the agent does on a machine (which ports it binds, which programs it runs, which directory it
# may delete) comes from these values, so they are checked once, when the file is read, and never
# change afterwards. Safety rule: no secret leaves this module by accident: passwords are excluded
# from every `repr` (a logged config shows `username` only), and errors never carry a value that
# was written under a `password` key.
"""Frozen values of the agent configuration file, and `AgentConfigError`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pgha.agent.pg.settings import Credentials as Credentials
from pgha.engine.config import DynamicConfig, WatchdogMode
from pgha.engine.values import Tags
from pgha.located import LocatedError
from pgha.scenario import FrozenDict

# A PostgreSQL parameter value as written in YAML (booleans are written as on/off by the agent).
Scalar = str | int | float | bool


class AgentConfigError(LocatedError):
    """The agent configuration file is invalid (or cannot be read); the scenario format's error
    type (LocatedError: file, line, field, expected, got, hint), line 0 for a DCS document.

    The message never contains a password: a value given for a secret is described by its kind
    ("a string"), not echoed.
    """


@dataclass(frozen=True, slots=True, kw_only=True)
class HostPort:
    """A `host:port` address. `host` may be a comma-separated list for `postgresql.listen`."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class RestApiConfig:
    """`restapi`: where the REST API listens and how peers reach it."""

    listen: HostPort
    connect_address: HostPort
    authentication: Credentials | None = None
    request_timeout_s: float = 5.0
    request_deadline_s: float = 10.0  # the server's bounds: see pgha.agent.rest.server
    max_pending: int = 256
    max_workers: int = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class EtcdConfig:
    """`etcd3`: the etcd v3 endpoints (plain http) and optional credentials."""

    hosts: tuple[HostPort, ...]
    protocol: str = "http"
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class DcsConfig:
    """A checked dynamic configuration: `bootstrap.dcs` in the file, or the DCS `/config` key.

    `raw` is the JSON document (durations as numbers of seconds) written to `/config`;
    `dynamic` is what the engine reads (after `adjust_timeouts`); `warnings` says what
    `adjust_timeouts` changed, if anything.
    """

    raw: Mapping[str, Any] = field(default_factory=FrozenDict)
    dynamic: DynamicConfig = field(default_factory=DynamicConfig)
    parameters: Mapping[str, Scalar] = field(default_factory=FrozenDict)
    pg_hba: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class BootstrapConfig:
    """`bootstrap`: the first dynamic configuration (`dcs`) and the `initdb` options."""

    dcs_raw: Mapping[str, Any] = field(default_factory=FrozenDict)
    dynamic: DynamicConfig = field(default_factory=DynamicConfig)
    parameters: Mapping[str, Scalar] = field(default_factory=FrozenDict)
    pg_hba: tuple[str, ...] = ()
    initdb: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class PgAuthentication:
    """`postgresql.authentication`: the superuser, replication and (optional) rewind users."""

    superuser: Credentials
    replication: Credentials
    rewind: Credentials | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PgBackRestConfig:
    """`postgresql.pgbackrest`: restore replicas (and optionally archive WAL) with pgBackRest."""

    command: tuple[str, ...] = ("pgbackrest",)
    stanza: str | None = None
    config: str | None = None
    repo_path: str | None = None
    keep_data: bool = False
    no_leader: bool = False
    no_params: bool = False
    archive: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaMethod:
    """A replica creation method of the user's: a `postgresql.<name>` section."""

    name: str
    command: tuple[str, ...]
    options: tuple[str, ...] = ()
    keep_data: bool = False
    no_leader: bool = False
    no_params: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbacksConfig:
    """`postgresql.callbacks`: argument lists run without a shell; None when not configured."""

    on_start: tuple[str, ...] | None = None
    on_stop: tuple[str, ...] | None = None
    on_restart: tuple[str, ...] | None = None
    on_reload: tuple[str, ...] | None = None
    on_role_change: tuple[str, ...] | None = None
    pre_promote: tuple[str, ...] | None = None

    def command(self, event: str) -> tuple[str, ...] | None:
        """The argument list for `event` ("on_start", ... , "pre_promote"), or None."""
        value: tuple[str, ...] | None = getattr(self, event)
        return value


@dataclass(frozen=True, slots=True, kw_only=True)
class PostgresqlConfig:
    """`postgresql`: the local PostgreSQL server the agent manages."""

    listen: HostPort
    connect_address: HostPort
    data_dir: str
    authentication: PgAuthentication
    bin_dir: str = "/usr/lib/postgresql/15/bin"
    socket_dir: str = "/tmp"
    os_user: str | None = None
    parameters: Mapping[str, Scalar] = field(default_factory=FrozenDict)
    pg_hba: tuple[str, ...] = ()
    create_replica_methods: tuple[str, ...] = ("basebackup",)
    basebackup: tuple[str, ...] = ()
    pgbackrest: PgBackRestConfig | None = None
    replica_methods: Mapping[str, ReplicaMethod] = field(default_factory=FrozenDict)
    callbacks: CallbacksConfig = field(default_factory=CallbacksConfig)
    callback_timeout_s: float = 30.0
    pg_ctl_timeout_s: float = 60.0
    use_unix_socket: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchdogConfig:
    """`watchdog`: this node's watchdog device and how the engine must treat it."""

    mode: WatchdogMode = WatchdogMode.AUTOMATIC
    device: str = "/dev/watchdog"
    safety_margin_s: float = 5.0

    def apply_to(self, dynamic: DynamicConfig) -> DynamicConfig:
        """`dynamic` with this node's watchdog mode and safety margin (the local file decides)."""
        return replace(dynamic, watchdog_mode=self.mode, safety_margin_s=self.safety_margin_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class LogConfig:
    """`log`: the agent's log level, history file (JSON Lines) and log directory."""

    level: str = "INFO"
    history: str | None = None
    dir: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentConfig:
    """One agent's whole configuration file."""

    scope: str
    name: str
    restapi: RestApiConfig
    etcd: EtcdConfig
    postgresql: PostgresqlConfig
    namespace: str = "service"
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)
    tags: Tags = field(default_factory=Tags)
    log: LogConfig = field(default_factory=LogConfig)
    pid_file: str | None = None
    source_path: str = "<string>"

    @property
    def key_prefix(self) -> str:
        """The cluster's DCS key prefix, `/<namespace>/<scope>/`."""
        return f"/{self.namespace}/{self.scope}/"
