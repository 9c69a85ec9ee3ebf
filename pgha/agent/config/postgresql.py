# The `postgresql` section: the local server, its users, how replicas are created and which
# callbacks run. Safety rules: cluster-wide settings (use_pg_rewind, remove_data_directory_*) are
# refused here, so every member applies the same value from `/config`; parameters pgha sets itself
# (port, listen_addresses, socket and data directories) are refused, so a file can never make
# PostgreSQL listen somewhere other than the address published to peers, and every parameter is
# checked against the settings catalogue of the server in `bin_dir` (pg/params.py), so a value it
# would refuse is a configuration error, not a server that cannot start; callbacks are argument
# lists, never shell strings.
"""Parser for the `postgresql` section."""

from __future__ import annotations

from pgha.agent.config.dcs import check_bootstrap_parameters, pg_parameters
from pgha.agent.config.model import (
    CallbacksConfig,
    HostPort,
    PgAuthentication,
    PgBackRestConfig,
    PostgresqlConfig,
    ReplicaMethod,
)
from pgha.agent.config.sections import credentials
from pgha.agent.config.values import (
    WILDCARD_HOSTS,
    absolute_path,
    argv,
    checked,
    connect_address,
    duration,
    host_port,
    name,
    optional,
    options,
    required,
    string_list,
)
from pgha.agent.pg import catalogue as pg_catalogue
from pgha.located.errors import Problem
from pgha.located.tree import Fields, Node, boolean, items, mapping, problem
from pgha.scenario import FrozenDict

PG_KEYS = (
    "listen",
    "connect_address",
    "data_dir",
    "bin_dir",
    "socket_dir",
    "os_user",
    "authentication",
    "parameters",
    "pg_hba",
    "create_replica_methods",
    "basebackup",
    "pgbackrest",
    "callbacks",
    "callback_timeout",
    "pg_ctl_timeout",
    "use_unix_socket",
)
_DYNAMIC = "it is cluster-wide (dynamic): set it under bootstrap.dcs.postgresql"
_LATER = "not supported by pgha yet"
PG_UNSUPPORTED = {
    **dict.fromkeys(
        (
            "use_pg_rewind",
            "use_slots",
            "remove_data_directory_on_rewind_failure",
            "remove_data_directory_on_diverged_timelines",
        ),
        _DYNAMIC,
    ),
    "pre_promote": "put it under postgresql.callbacks",
    "config_dir": "postgresql.conf is kept in data_dir",
    **dict.fromkeys(
        ("pgpass", "recovery_conf", "pg_ident", "custom_conf", "bin_name", "before_stop"), _LATER
    ),
}
DEFAULT_BIN_DIR = "/usr/lib/postgresql/15/bin"
DEFAULT_SOCKET_DIR = "/tmp"
AUTH_KEYS = ("superuser", "replication", "rewind")
BUILTIN_METHODS = ("basebackup", "pgbackrest")
PGBACKREST_KEYS = (
    "command",
    "stanza",
    "config",
    "repo_path",
    "keep_data",
    "no_leader",
    "no_params",
    "archive",
)
METHOD_KEYS = ("command", "options", "keep_data", "no_leader", "no_params")
CALLBACK_KEYS = ("on_start", "on_stop", "on_restart", "on_reload", "on_role_change", "pre_promote")
_CONNECTION = "pgha connects pg_basebackup to the leader itself"
BASEBACKUP_FORBIDDEN = {
    "pgdata": "pgha passes postgresql.data_dir",
    "format": "pgha needs a plain data directory",
    "wal-method": "pgha streams WAL during the backup",
    "xlog-method": "pgha streams WAL during the backup",
    "write-recovery-conf": "pgha writes the standby configuration itself",
    **dict.fromkeys(("host", "port", "username", "dbname", "no-password"), _CONNECTION),
}
# sun_path is 108 bytes on Linux, including the terminating NUL.
SOCKET_PATH_MAX = 107


def postgresql(node: Node, restapi_listen: HostPort) -> PostgresqlConfig:
    """The `postgresql` section; `restapi_listen` is checked not to share its port."""
    methods = _methods(node)
    custom = tuple(m for m in methods if m not in BUILTIN_METHODS)
    fields = checked(node, (*PG_KEYS, *custom), PG_UNSUPPORTED)
    listen = host_port(required(fields, "listen", "host:port"), multi_host=True)
    _check_ports(fields, listen, restapi_listen)
    socket_dir = optional(fields, "socket_dir", absolute_path, DEFAULT_SOCKET_DIR)
    _check_socket(fields, socket_dir, listen.port)
    bin_dir = optional(fields, "bin_dir", absolute_path, DEFAULT_BIN_DIR)
    os_user = optional(fields, "os_user", lambda n: name(n, "an operating-system user"), None)
    pg_catalogue.use(bin_dir, os_user)  # parameters are checked against this server's settings
    check_bootstrap_parameters()
    return PostgresqlConfig(
        listen=listen,
        connect_address=connect_address(fields, listen),
        data_dir=absolute_path(required(fields, "data_dir", "an absolute path")),
        bin_dir=bin_dir,
        socket_dir=socket_dir,
        os_user=os_user,
        authentication=_authentication(
            required(fields, "authentication", "a mapping with superuser and replication")
        ),
        parameters=optional(fields, "parameters", pg_parameters, FrozenDict()),
        pg_hba=optional(fields, "pg_hba", lambda n: string_list(n, "a list of pg_hba lines"), ()),
        create_replica_methods=methods,
        basebackup=optional(fields, "basebackup", lambda n: options(n, BASEBACKUP_FORBIDDEN), ()),
        pgbackrest=_pgbackrest(fields, methods),
        replica_methods=FrozenDict(
            {m: _custom_method(required(fields, m, "a replica method section"), m) for m in custom}
        ),
        callbacks=optional(fields, "callbacks", _callbacks, CallbacksConfig()),
        callback_timeout_s=optional(fields, "callback_timeout", duration, 30.0),
        pg_ctl_timeout_s=optional(fields, "pg_ctl_timeout", duration, 60.0),
        use_unix_socket=optional(fields, "use_unix_socket", boolean, False),
    )


def _methods(node: Node) -> tuple[str, ...]:
    found = node.value.get("create_replica_methods") if isinstance(node.value, dict) else None
    if found is None:
        return ("basebackup",)
    methods: list[str] = []
    for entry in items(found, "a list of replica methods such as [basebackup]"):
        method = name(entry, "basebackup, pgbackrest or the name of a section of yours")
        if method in methods:
            raise problem(entry, "each method once")
        if method not in BUILTIN_METHODS and (method in PG_KEYS or method in PG_UNSUPPORTED):
            raise problem(entry, "a method name that is not a postgresql key")
        methods.append(method)
    return tuple(methods)


def _check_ports(fields: Fields, listen: HostPort, restapi_listen: HostPort) -> None:
    pg_hosts = set(listen.host.split(","))
    everyone = pg_hosts | {restapi_listen.host}
    shared = restapi_listen.host in pg_hosts or bool(everyone & WILDCARD_HOSTS)
    if listen.port == restapi_listen.port and shared:
        raise problem(
            required(fields, "listen", "host:port"),
            f"a port other than restapi.listen's ({restapi_listen.port})",
        )


def _check_socket(fields: Fields, socket_dir: str, port: int) -> None:
    socket_path = f"{socket_dir.rstrip('/')}/.s.PGSQL.{port}"
    if len(socket_path.encode()) > SOCKET_PATH_MAX:
        raise problem(
            required(fields, "socket_dir", "an absolute path"),
            f"a directory short enough for the socket path ({SOCKET_PATH_MAX} bytes at most)",
        )


def _authentication(node: Node) -> PgAuthentication:
    fields = mapping(node, AUTH_KEYS)
    return PgAuthentication(
        superuser=credentials(required(fields, "superuser", "a mapping with username, password")),
        replication=credentials(
            required(fields, "replication", "a mapping with username, password")
        ),
        rewind=optional(fields, "rewind", credentials, None),
    )


def _pgbackrest(fields: Fields, methods: tuple[str, ...]) -> PgBackRestConfig | None:
    node = fields.get("pgbackrest")
    if node is None and "pgbackrest" not in methods:
        return None
    if node is None:
        node = required(fields, "pgbackrest", "a pgbackrest section with a stanza")
    section = mapping(node, PGBACKREST_KEYS)
    config = PgBackRestConfig(
        command=optional(section, "command", argv, ("pgbackrest",)),
        stanza=optional(section, "stanza", lambda n: name(n, "a stanza name"), None),
        config=optional(section, "config", absolute_path, None),
        repo_path=optional(section, "repo_path", absolute_path, None),
        keep_data=optional(section, "keep_data", boolean, False),
        no_leader=optional(section, "no_leader", boolean, False),
        no_params=optional(section, "no_params", boolean, False),
        archive=optional(section, "archive", boolean, False),
    )
    if config.stanza is None and ("pgbackrest" in methods or config.archive):
        raise Problem(
            line=node.line,
            field=f"{node.field}.stanza",
            expected="a stanza name (required when pgbackrest creates replicas or archives WAL)",
            got="nothing",
        )
    return config


def _custom_method(node: Node, method: str) -> ReplicaMethod:
    fields = mapping(node, METHOD_KEYS)
    return ReplicaMethod(
        name=method,
        command=argv(required(fields, "command", "an argument list")),
        options=optional(fields, "options", lambda n: options(n, {}), ()),
        keep_data=optional(fields, "keep_data", boolean, False),
        no_leader=optional(fields, "no_leader", boolean, False),
        no_params=optional(fields, "no_params", boolean, False),
    )


def _callbacks(node: Node) -> CallbacksConfig:
    fields = mapping(node, CALLBACK_KEYS)
    return CallbacksConfig(**{key: argv(child) for key, child in fields.entries.items()})
