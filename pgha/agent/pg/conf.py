# The agent owns PostgreSQL's configuration files: postgresql.conf (which includes initdb's
# settings, kept as postgresql.base.conf, Patroni style), pg_hba.conf, the replication passfile and
# the standby.signal file. Parameters are layered: the settings every HA member needs, then the
# cluster's dynamic configuration, then local overrides, and last what the agent must control itself
# (addresses, synchronous_standby_names, primary_conninfo, archiving).
# Safety rules: a replica always has wal_log_hints on (so pg_rewind can reconcile it later) and
# enough WAL senders and slots; a server that starts in recovery gets the hot-standby parameters
# at least at its control file's values (PostgreSQL refuses to start a standby below the primary's
# settings, so a lowered max_connections must not strand a replica restarted before the primary:
# Patroni's effective_configuration); the replication password is in a 0600 passfile, never in a
# conf file.
"""Render and write postgresql.conf, pg_hba.conf, the passfile and standby.signal."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg.conninfo import make_conninfo

from pgha.agent.pg import backrest
from pgha.agent.pg.exec import OsUser, write_file
from pgha.agent.pg.settings import ConnTarget, ParamValue, PgSettings, slot_name
from pgha.engine.values import SyncStandbyNames

log = logging.getLogger(__name__)

BASE_CONF = "postgresql.base.conf"
MAIN_CONF = "postgresql.conf"
HBA_CONF = "pg_hba.conf"
PASSFILE = "pgha.pgpass"
STANDBY_SIGNAL = "standby.signal"
RECOVERY_SIGNAL = "recovery.signal"
FOLLOWING_MARK = "# pgha-following: "

DEFAULTS: Mapping[str, ParamValue] = {
    "wal_level": "replica",
    "max_wal_senders": 10,
    "max_replication_slots": 10,
    "wal_keep_size": "128MB",
    "max_connections": 100,
    "password_encryption": "scram-sha-256",
}
MINIMUMS: Mapping[str, int] = {"max_wal_senders": 10, "max_replication_slots": 10}
# The hot-standby parameters: their pg_controldata field, and PostgreSQL's default (the value in
# effect when the configuration does not set one).
HOT_STANDBY_FIELDS: Mapping[str, tuple[str, int]] = {
    "max_connections": ("max_connections setting", 100),
    "max_worker_processes": ("max_worker_processes setting", 8),
    "max_wal_senders": ("max_wal_senders setting", 10),
    "max_prepared_transactions": ("max_prepared_xacts setting", 0),
    "max_locks_per_transaction": ("max_locks_per_xact setting", 64),
}
_AGENT_OWNED = frozenset(
    {
        "listen_addresses",
        "port",
        "unix_socket_directories",
        "hot_standby",
        "wal_log_hints",
        "synchronous_standby_names",
        "primary_conninfo",
        "primary_slot_name",
        "recovery_target_timeline",
        "hba_file",
        "config_file",
        "data_directory",
    }
)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfInputs:
    """What the managed files depend on besides the settings."""

    following: str | None = None  # member name primary_conninfo points at
    upstream: ConnTarget | None = None  # where that member listens
    ssn: SyncStandbyNames = field(default_factory=SyncStandbyNames)
    dynamic: Mapping[str, Any] = field(default_factory=dict)  # the DCS `postgresql` section
    floors: Mapping[str, int] = field(default_factory=dict)  # recovery: control-file values


def quote(value: ParamValue) -> str:
    """A postgresql.conf value: always a quoted string (booleans as on/off)."""
    text = ("on" if value else "off") if isinstance(value, bool) else str(value)
    text = text.replace("\\", "\\\\").replace("'", "''").replace("\n", "\\n")
    return f"'{text}'"


def render_ssn(value: SyncStandbyNames) -> str:
    """synchronous_standby_names text: '*', FIRST n ("a","b"), ANY n (...), or ''."""
    if value.star:
        return "*"
    if not value.names:
        return ""
    names = ",".join('"' + n.replace('"', '""') + '"' for n in sorted(value.names))
    kind = "ANY" if value.quorum else "FIRST"
    return f"{kind} {max(value.count, 1)} ({names})"


def _dynamic_params(dynamic: Mapping[str, Any]) -> dict[str, ParamValue]:
    # The cluster's parameters, checked against this server's own catalogue of settings: a value
    # it would refuse (written to /config past the REST API's and pgha ctl's checks, e.g. with
    # etcdctl) is left out with a warning, logged once per value, so that it can never keep
    # PostgreSQL from starting; parameters pgha sets itself are left to _agent_owned.
    from pgha.agent.pg import catalogue, params  # imported here: this function is their seam

    raw = dynamic.get("parameters") or {}
    if not isinstance(raw, Mapping):
        return {}
    return params.usable(catalogue.active(), raw)


def use_slots(settings: PgSettings, dynamic: Mapping[str, Any]) -> bool:
    """Replication slots on: the dynamic configuration's `use_slots`, else the local setting."""
    value = dynamic.get("use_slots", settings.use_slots)
    return bool(value)


def parameters(settings: PgSettings, inputs: ConfInputs) -> dict[str, ParamValue]:
    """The parameters postgresql.conf sets, in precedence order (later wins)."""
    merged = configured_parameters(settings, inputs)
    merged.update(raised_to_floors(merged, inputs.floors))
    merged.update(_agent_owned(settings, inputs))
    return merged


def configured_parameters(
    settings: PgSettings, inputs: ConfInputs, *, warn: bool = True
) -> dict[str, ParamValue]:
    """The parameters from the defaults, the cluster's and the local configuration (no floors,
    none of the agent's own); `warn` False: ignore invalid names silently (a second look)."""
    merged: dict[str, ParamValue] = dict(DEFAULTS)
    for name, value in [*_dynamic_params(inputs.dynamic).items(), *settings.parameters.items()]:
        if not _NAME.match(name) or name in _AGENT_OWNED:
            if warn:
                log.warning("ignoring parameter %r: invalid or managed by the agent", name)
            continue
        merged[name] = value
    for name, minimum in MINIMUMS.items():
        merged[name] = max(_as_int(merged.get(name), minimum), minimum)
    if str(merged.get("wal_level")) not in ("replica", "logical"):
        merged["wal_level"] = "replica"
    return merged


def recovery_floors(controldata: Mapping[str, str]) -> dict[str, int]:
    """The control file's values of the hot-standby parameters (those it shows as integers)."""
    floors = {}
    for name, (control_field, _default) in HOT_STANDBY_FIELDS.items():
        value = _whole(controldata.get(control_field))
        if value is not None:
            floors[name] = value
    return floors


def raised_to_floors(params: Mapping[str, ParamValue], floors: Mapping[str, int]) -> dict[str, int]:
    """The parameters whose configured value (PostgreSQL's default when unset) is below its floor,
    raised to it. An unreadable configured value is left alone: PostgreSQL says what is wrong."""
    raised = {}
    for name, floor in floors.items():
        default = HOT_STANDBY_FIELDS[name][1] if name in HOT_STANDBY_FIELDS else None
        configured = _whole(params.get(name, default))
        if configured is not None and configured < floor:
            raised[name] = floor
    return raised


def _whole(value: object) -> int | None:
    """An integer setting written as an int or decimal text; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip() if isinstance(value, str | float) else ""
    return int(text) if text.isascii() and text.isdigit() else None


def _as_int(value: ParamValue | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def _agent_owned(settings: PgSettings, inputs: ConfInputs) -> dict[str, ParamValue]:
    owned: dict[str, ParamValue] = {
        "listen_addresses": settings.listen_host,
        "port": settings.listen_port,
        "unix_socket_directories": settings.socket_dir,
        "hot_standby": True,
        "wal_log_hints": True,
        "synchronous_standby_names": render_ssn(inputs.ssn),
        "recovery_target_timeline": "latest",
    }
    if settings.cluster_name:
        owned["cluster_name"] = settings.cluster_name
    if inputs.upstream is not None:
        owned["primary_conninfo"] = primary_conninfo(settings, inputs.upstream)
        if use_slots(settings, inputs.dynamic):
            owned["primary_slot_name"] = slot_name(settings.name)
    archive = backrest.archive_command(settings)
    if archive is not None:
        owned.update(archive_mode="on", archive_command=archive)
    restore = backrest.restore_command(settings)
    if restore is not None:
        owned["restore_command"] = restore
    return owned


def primary_conninfo(settings: PgSettings, upstream: ConnTarget) -> str:
    """The replication connection string: the passfile holds the password."""
    return make_conninfo(
        host=upstream.host,
        port=str(upstream.port),
        user=settings.replication.username,
        passfile=str(Path(settings.data_dir) / PASSFILE),
        application_name=settings.name,
        connect_timeout="5",
        keepalives="1",
    )


def render_main_conf(settings: PgSettings, inputs: ConfInputs) -> str:
    """postgresql.conf: a marker of the followed member, the base include, then parameters."""
    lines = ["# Written by pgha; manual edits are overwritten."]
    if inputs.following is not None and inputs.upstream is not None:
        lines.append(FOLLOWING_MARK + inputs.following)
    lines.append(f"include_if_exists '{BASE_CONF}'")
    params = parameters(settings, inputs)
    lines += [f"{name} = {quote(params[name])}" for name in sorted(params)]
    return "\n".join(lines) + "\n"


def _hba_user(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def render_hba(settings: PgSettings, dynamic: Mapping[str, Any]) -> str:
    """pg_hba.conf: the agent's own roles from this machine first, then configured lines."""
    su, repl, rewind = settings.superuser, settings.replication, settings.rewind
    su_method = "scram-sha-256" if su.password else "trust"
    lines = [
        "# Written by pgha; manual edits are overwritten.",
        f"local all {_hba_user(su.username)} {su_method}",
        f"host all {_hba_user(su.username)} 127.0.0.1/32 {su_method}",
        f"host replication {_hba_user(repl.username)} 127.0.0.1/32 "
        + ("scram-sha-256" if repl.password else "trust"),
    ]
    if rewind is not None:
        method = "scram-sha-256" if rewind.password else "trust"
        lines.append(f"host all {_hba_user(rewind.username)} 127.0.0.1/32 {method}")
    extra = dynamic.get("pg_hba") or []
    configured = [*settings.pg_hba, *(str(x) for x in extra if isinstance(extra, list | tuple))]
    lines += [line for line in configured if "\n" not in line and "\r" not in line]
    return "\n".join(lines) + "\n"


def _pgpass_field(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\:")


def render_passfile(settings: PgSettings) -> str:
    """The libpq passfile primary_conninfo refers to: the replication role's password."""
    repl = settings.replication
    if repl.password is None:
        return ""
    return f"*:*:*:{_pgpass_field(repl.username)}:{_pgpass_field(repl.password)}\n"


def write_all(settings: PgSettings, user: OsUser, inputs: ConfInputs) -> bool:
    """Write postgresql.conf, pg_hba.conf and the passfile; True when any of them changed."""
    data = Path(settings.data_dir)
    changed = write_file(user, data / PASSFILE, render_passfile(settings))
    changed |= write_file(user, data / HBA_CONF, render_hba(settings, inputs.dynamic))
    changed |= write_file(user, data / MAIN_CONF, render_main_conf(settings, inputs))
    return changed


def keep_initdb_conf(settings: PgSettings) -> None:
    """After initdb: its postgresql.conf becomes postgresql.base.conf (included by ours)."""
    data = Path(settings.data_dir)
    main, base = data / MAIN_CONF, data / BASE_CONF
    if main.exists() and not base.exists():
        main.rename(base)


def set_standby_signal(settings: PgSettings, user: OsUser, *, standby: bool) -> None:
    """Create standby.signal for a replica; remove it (and recovery.signal) for a primary."""
    data = Path(settings.data_dir)
    if standby:
        write_file(user, data / STANDBY_SIGNAL, "")
        return
    for name in (STANDBY_SIGNAL, RECOVERY_SIGNAL):
        (data / name).unlink(missing_ok=True)


def read_following(settings: PgSettings) -> str | None:
    """The member the managed postgresql.conf follows (kept across agent restarts)."""
    try:
        text = (Path(settings.data_dir) / MAIN_CONF).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(FOLLOWING_MARK):
            return line[len(FOLLOWING_MARK) :].strip() or None
    return None


def unquote(text: str) -> str:
    """The value of a quoted postgresql.conf string as `quote` wrote it."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        text = text[1:-1]
    out, i = [], 0
    while i < len(text):
        pair = text[i : i + 2]
        if pair in ("''", "\\\\", "\\n"):
            out.append({"''": "'", "\\\\": "\\", "\\n": "\n"}[pair])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def read_parameter(settings: PgSettings, name: str) -> str | None:
    """A parameter's value in the managed postgresql.conf (None: absent or unreadable)."""
    try:
        text = (Path(settings.data_dir) / MAIN_CONF).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == name:
            return unquote(value)
    return None
