# The node's PostgreSQL settings, as plain frozen values: where the data directory and programs are,
# the addresses, the three roles (superuser, replication, rewind) and how replicas are created.
# Safety rule: passwords are kept out of every repr (and so out of logs and exception messages), and
# `PgSettings.scrub` removes them from any program output before it is logged or raised.
"""Settings of the real PostgreSQL port (built from the agent's `postgresql:` YAML section)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ParamValue = str | int | float | bool

KNOWN_REPLICA_METHODS = frozenset({"basebackup", "pgbackrest"})  # the built-in methods
# The server's log when no log file is configured, under the data directory: `log/` is where
# PostgreSQL's own logging collector writes by default (log_directory), so it is where operators
# look, and it lives and dies with the data it describes. pg_basebackup and pg_rewind copy it like
# any file (a new replica starts with its source's log; pg_ctl appends to it), so a failed start
# reports only what was written after the start began (agent/pg/ctl.py).
SERVER_LOG = ("log", "postgresql.log")


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """A user name and its password (None: no password); the password is never in `repr`."""

    username: str
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class PgBackRestSettings:
    """pgBackRest: the stanza, where its configuration and repository are, and restore options.

    `no_leader`: a restore needs no running leader (it reads the repository), so a replica can be
    created from it while the cluster has no leader. `keep_data`: the data directory is not emptied
    before the restore, which then runs with `--delta` over what is there (only changed files are
    copied). `no_params`: Patroni's flag; pgha never passes Patroni's `--scope`, `--role`,
    `--datadir`, `--connstring` to pgBackRest (it refuses unknown options), so it changes nothing.
    """

    stanza: str
    config_path: str | None = None
    repo_path: str | None = None
    no_leader: bool = False
    keep_data: bool = False
    no_params: bool = False
    restore_options: tuple[str, ...] = ()  # extra `pgbackrest restore` options
    command: tuple[str, ...] = ("pgbackrest",)  # the program (and options for every command)


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomMethod:
    """A user's replica creation program (a `postgresql.<name>` section), run without a shell.

    It is called as `command --scope=<cluster> --role=replica --datadir=<data_dir>
    --connstring=<source conninfo without password> options...` (with `no_params`:
    `command options...`), with the replication password in PGPASSWORD. `keep_data`: the data
    directory is handed over as it is instead of emptied first. `no_leader`: it can run without a
    source member (e.g. a restore from a backup).
    """

    name: str
    command: tuple[str, ...]
    options: tuple[str, ...] = ()  # complete arguments, e.g. ("--threads=4",)
    keep_data: bool = False
    no_leader: bool = False
    no_params: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PgSettings:
    """Everything the port needs to know about this node's PostgreSQL.

    `parameters` are local overrides (applied after the dynamic configuration's); `pg_hba` lines
    come before the dynamic configuration's. When `os_user` is set and the agent runs as root,
    every PostgreSQL program runs as that user and every file written is given to it.
    """

    name: str
    data_dir: str
    bin_dir: str = "/usr/lib/postgresql/15/bin"
    listen_host: str = "127.0.0.1"
    listen_port: int = 5432
    connect_host: str = "127.0.0.1"
    connect_port: int | None = None  # None: listen_port
    superuser: Credentials = field(default_factory=lambda: Credentials(username="postgres"))
    replication: Credentials = field(default_factory=lambda: Credentials(username="replicator"))
    rewind: Credentials | None = None
    parameters: Mapping[str, ParamValue] = field(default_factory=dict)
    pg_hba: tuple[str, ...] = ()
    create_replica_methods: tuple[str, ...] = ("basebackup",)
    basebackup_options: tuple[str, ...] = ()  # extra pg_basebackup options, e.g. --max-rate=100M
    pgbackrest: PgBackRestSettings | None = None
    custom_methods: Mapping[str, CustomMethod] = field(default_factory=dict)  # by method name
    archive_via_pgbackrest: bool = False
    initdb_options: tuple[str, ...] = ("--data-checksums",)
    pg_ctl_timeout_s: float = 60.0
    clone_timeout_s: float = 3600.0  # one replica creation method (pg_basebackup, restore, ...)
    os_user: str | None = None
    socket_dir: str = "/var/run/postgresql"
    log_file: str | None = None  # the server's stderr (pg_ctl -l); None: SERVER_LOG in data_dir
    cluster_name: str = ""
    use_slots: bool = True
    connect_timeout_s: float = 2.0
    statement_timeout_s: float = 5.0

    @property
    def port(self) -> int:
        """The port clients on this machine connect to."""
        return self.connect_port if self.connect_port is not None else self.listen_port

    @property
    def server_log(self) -> str:
        """Where the server's stderr goes: `log_file`, else `<data_dir>/log/postgresql.log`."""
        return self.log_file or str(Path(self.data_dir, *SERVER_LOG))

    def program(self, name: str) -> str:
        """The path of a PostgreSQL program (pg_ctl, initdb, ...)."""
        return f"{self.bin_dir.rstrip('/')}/{name}"

    def scrub(self, text: str) -> str:
        """`text` with every configured password replaced by `***`."""
        for creds in (self.superuser, self.replication, self.rewind):
            if creds is not None and creds.password:
                text = text.replace(creds.password, "***")
        return text


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplyResult:
    """What `apply_dynamic` did: files changed (and were reloaded), a restart is pending."""

    changed: bool
    pending_restart: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnTarget:
    """Where a member's PostgreSQL listens, from its `conn_url`."""

    host: str
    port: int
    dbname: str = "postgres"


def parse_conn_url(url: str) -> ConnTarget | None:
    """`postgres://host:port/dbname` -> ConnTarget; None when it cannot be read."""
    try:
        parts = urlsplit(url)
        port = parts.port or 5432
    except ValueError:
        return None
    if parts.scheme not in ("postgres", "postgresql") or not parts.hostname:
        return None
    dbname = parts.path.lstrip("/") or "postgres"
    return ConnTarget(host=parts.hostname, port=port, dbname=dbname)


_NOT_SLOT_CHAR = re.compile(r"[^a-z0-9_]")


def slot_name(member: str) -> str:
    """The physical replication slot name of a member: lower case, [a-z0-9_], at most 63 bytes."""
    return _NOT_SLOT_CHAR.sub("_", member.lower())[:63]
