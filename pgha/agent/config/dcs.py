# The dynamic configuration (Patroni's `bootstrap.dcs`, later the DCS `/config` key) and initdb's
# options. The engine's own parser (`parse_dynamic_config`) decides every range, so the file, the
# simulator and a `/config` read back from etcd mean the same thing; this module only finds the
# line of a bad value and keeps the JSON document that is written to `/config`. Safety rule (the
# timing rule of pgha/engine/config.py): `loop_wait + 2 * retry_timeout <= ttl` is enforced by
# `adjust_timeouts`, and any change it makes is reported as a warning, never applied silently.
# PostgreSQL parameters are checked against the installed server's own catalogue of settings
# (pg/params.py: type, unit, range, enum value, libraries; parameters pgha sets itself refused),
# so a value that would keep PostgreSQL from starting never reaches `/config` from the file or
# from `pgha ctl edit-config`.
"""`bootstrap.dcs` / `/config`, and `bootstrap.initdb`."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pgha.agent.config.model import AgentConfigError, BootstrapConfig, DcsConfig, Scalar
from pgha.agent.config.values import checked, options, scalar_mapping, string_list
from pgha.agent.pg import catalogue as pg_catalogue
from pgha.agent.pg import params as pg_params
from pgha.engine.config import (
    DURATION_KEYS,
    ENGINE_KEYS,
    ConfigError,
    DynamicConfig,
    parse_dynamic_config,
)
from pgha.located.errors import Problem
from pgha.located.tree import ROOT, Node, boolean, child_field, items, problem
from pgha.located.units import Sign, duration_s
from pgha.scenario import FrozenDict

DCS_KEYS = (*ENGINE_KEYS, "postgresql", "slots", "ignore_slots")
_LATER = "not supported by pgha yet"
DCS_UNSUPPORTED = {
    "watchdog": "the watchdog is set per node: use the top-level watchdog section",
    "tags": "tags are set per node: use the top-level tags section",
    "standby_cluster": "a standby cluster is not supported yet",
    **dict.fromkeys(
        (
            "primary_stop_timeout",
            "master_stop_timeout",
            "max_timelines_history",
            "member_slots_ttl",
            "primary_race_backoff",
        ),
        _LATER,
    ),
}
# Patroni keeps these under dcs.postgresql; the engine reads them at the top level.
LIFTED_KEYS = (
    "use_pg_rewind",
    "remove_data_directory_on_rewind_failure",
    "remove_data_directory_on_diverged_timelines",
)
DCS_POSTGRESQL_KEYS = ("parameters", "pg_hba", "use_slots", *LIFTED_KEYS)
DCS_POSTGRESQL_UNSUPPORTED = {"pg_ident": _LATER, "recovery_conf": _LATER}
MANAGED_PARAMETERS = pg_params.MANAGED
INITDB_FORBIDDEN = {
    "pgdata": "pgha passes postgresql.data_dir",
    "username": "pgha passes the superuser from postgresql.authentication",
    "pwfile": "pgha sets the superuser password from postgresql.authentication",
    "pwprompt": "pgha never prompts",
    "no-sync": "an unsynced data directory is not safe to promote",
    "nosync": "an unsynced data directory is not safe to promote",
    "sync-only": "pgha runs initdb to create a cluster",
    "version": "pgha runs initdb to create a cluster",
    "help": "pgha runs initdb to create a cluster",
}
BOOTSTRAP_KEYS = ("dcs", "initdb")
BOOTSTRAP_UNSUPPORTED = {
    "method": "custom bootstrap methods are not supported yet",
    "post_bootstrap": _LATER,
    "post_init": _LATER,
    "users": "create users after bootstrap (Patroni removed this key too)",
    "pg_hba": "set bootstrap.dcs.postgresql.pg_hba",
}
_DEFAULTS = DynamicConfig()
# bootstrap.dcs.postgresql.parameters of the file being parsed (in this thread), checked against
# the server's catalogue once the postgresql section has said where the server is.
_BOOTSTRAP = threading.local()


@dataclass(frozen=True, slots=True, kw_only=True)
class _PgSection:
    raw: Mapping[str, Any] = field(default_factory=FrozenDict)
    parameters: Mapping[str, Scalar] = field(default_factory=FrozenDict)
    pg_hba: tuple[str, ...] = ()
    lifted: Mapping[str, Node] = field(default_factory=FrozenDict)
    warnings: tuple[str, ...] = ()


def _same(a: object, b: object) -> bool:
    return type(a) is type(b) and a == b


def pg_parameters(
    node: Node, unchanged: Mapping[str, object] | None = None, later: list[Node] | None = None
) -> FrozenDict[Scalar]:
    """PostgreSQL parameters: scalars, none that pgha sets itself, each taken by the installed
    server (pg_params.check against its catalogue; only the form when it cannot be read).

    A value equal to the one in `unchanged` (what `/config` already holds) is not checked again.
    With `later`, only the form is checked now and `node` is appended to `later`.
    """
    found = scalar_mapping(node, {})
    assert isinstance(node.value, dict)  # scalar_mapping refused anything else
    if later is not None:
        later.append(node)
    for name, child in node.value.items():
        if unchanged is not None and _same(unchanged.get(name), found[name]):
            continue
        catalogue = pg_catalogue.active() if later is None else None
        problem = pg_params.check(catalogue, name, found[name])
        if problem is not None:
            raise Problem(
                line=child.line,
                field=child.field,
                expected=problem.expected,
                got=problem.got,
                hint=problem.hint,
            )
    return found


def check_bootstrap_parameters() -> None:
    """Check `bootstrap.dcs.postgresql.parameters` of the file being parsed against the catalogue
    now in use: `bootstrap` puts them aside because the `postgresql` section, parsed after it,
    says which server is installed (its bin_dir).

    Raises:
        Problem: the first parameter that server would refuse, at its line.
    """
    pending: list[Node] = getattr(_BOOTSTRAP, "parameters", None) or []
    _BOOTSTRAP.parameters = []
    for node in pending:
        pg_parameters(node)


def unchecked_warning(parameters: Mapping[str, object]) -> tuple[str, ...]:
    """A warning when `parameters` could only be checked by type (no catalogue here)."""
    if not parameters or pg_catalogue.active() is not None:
        return ()
    return (
        "postgresql.parameters were checked by type only: the settings catalogue of the "
        f"installed PostgreSQL cannot be read here ({pg_catalogue.unavailable()}); each agent "
        "skips a value its PostgreSQL refuses, with a warning in its log",
    )


def bootstrap(node: Node | None) -> BootstrapConfig:
    """The `bootstrap` section (defaults when absent)."""
    if node is None:
        node = Node({}, 1, "bootstrap")
    fields = checked(node, BOOTSTRAP_KEYS, BOOTSTRAP_UNSUPPORTED)
    dcs_node = fields.get("dcs")
    if dcs_node is None:
        dcs_node = Node({}, node.line, child_field(node.field, "dcs"))
    initdb_node = fields.get("initdb")
    later: list[Node] = []
    _BOOTSTRAP.parameters = later
    dcs = dcs_config(dcs_node, later=later)
    return BootstrapConfig(
        dcs_raw=dcs.raw,
        dynamic=dcs.dynamic,
        parameters=dcs.parameters,
        pg_hba=dcs.pg_hba,
        initdb=() if initdb_node is None else options(initdb_node, INITDB_FORBIDDEN),
        warnings=dcs.warnings,
    )


def parse_dcs_config(
    raw: Mapping[str, object],
    source: str = "<dcs /config>",
    stored: Mapping[str, object] | None = None,
) -> DcsConfig:
    """Check a dynamic configuration read as JSON (e.g. the DCS `/config` key).

    PostgreSQL parameters whose value is the same in `stored` (the configuration it replaces)
    are not checked against the catalogue again.

    Raises:
        AgentConfigError: with `line` 0 and the offending key as `field`.
    """
    try:
        return dcs_config(_tree(raw, ROOT), _stored_parameters(stored))
    except Problem as found:
        raise AgentConfigError(
            path=source,
            line=0,
            field=found.field,
            expected=found.expected,
            got=found.got,
            hint=found.hint,
        ) from None


def _stored_parameters(stored: Mapping[str, object] | None) -> Mapping[str, object] | None:
    if stored is None:
        return None
    section = stored.get("postgresql")
    parameters = section.get("parameters") if isinstance(section, Mapping) else None
    return parameters if isinstance(parameters, Mapping) else {}


def _tree(value: object, field_path: str) -> Node:
    if isinstance(value, Mapping):
        children = {str(k): _tree(v, child_field(field_path, str(k))) for k, v in value.items()}
        return Node(children, 0, field_path)
    if isinstance(value, list | tuple):
        return Node(
            tuple(_tree(v, f"{field_path}[{i}]") for i, v in enumerate(value)), 0, field_path
        )
    return Node(value, 0, field_path)


def dcs_config(
    node: Node, unchanged: Mapping[str, object] | None = None, later: list[Node] | None = None
) -> DcsConfig:
    """A dynamic configuration mapping, checked by the engine's parser with lines kept
    (PostgreSQL parameters: see `pg_parameters` for `unchanged` and `later`)."""
    fields = checked(node, DCS_KEYS, DCS_UNSUPPORTED)
    raw: dict[str, Any] = {}
    flat: dict[str, object] = {}
    origin: dict[str, Node] = {}
    pg = _PgSection()
    for key, child in fields.entries.items():
        if key == "postgresql":
            pg = _dcs_postgresql(child, unchanged, later)
            raw[key] = pg.raw
        elif key in ("slots", "ignore_slots"):
            raw[key] = _slots(key, child)
        else:
            value = _duration_number(child) if key in DURATION_KEYS else child.value
            raw[key] = flat[key] = value
            origin[key] = child
    if "primary_start_timeout" in flat and "master_start_timeout" in flat:
        raise problem(origin["master_start_timeout"], "only primary_start_timeout (its new name)")
    for key, child in pg.lifted.items():
        if key in flat and flat[key] != child.value:
            raise problem(child, f"the same value as the top-level {key} (it is given twice)")
        flat[key] = child.value
        origin[key] = child
    dynamic = _dynamic(flat, origin, node)
    return DcsConfig(
        raw=FrozenDict(raw),
        dynamic=dynamic,
        parameters=pg.parameters,
        pg_hba=pg.pg_hba,
        warnings=timing_warnings(flat, dynamic) + pg.warnings,
    )


def _duration_number(node: Node) -> float | int:
    # Numbers pass through as written (so /config keeps `ttl: 30`); the engine checks ranges.
    if isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return node.value
    seconds = duration_s(node, Sign.NON_NEGATIVE)
    return int(seconds) if seconds.is_integer() else seconds


def _dynamic(flat: Mapping[str, object], origin: Mapping[str, Node], node: Node) -> DynamicConfig:
    try:
        return parse_dynamic_config(flat)
    except ConfigError as err:
        raise problem(origin.get(err.key, node), err.expected) from None


def _dcs_postgresql(
    node: Node, unchanged: Mapping[str, object] | None, later: list[Node] | None
) -> _PgSection:
    fields = checked(node, DCS_POSTGRESQL_KEYS, DCS_POSTGRESQL_UNSUPPORTED)
    raw: dict[str, Any] = {}
    parameters: Mapping[str, Scalar] = FrozenDict()
    pg_hba: tuple[str, ...] = ()
    for key, child in fields.entries.items():
        if key == "parameters":
            raw[key] = parameters = pg_parameters(child, unchanged, later)
        elif key == "pg_hba":
            raw[key] = pg_hba = string_list(child, "a list of pg_hba.conf lines")
        else:
            raw[key] = boolean(child)
    lifted = {key: child for key, child in fields.entries.items() if key in LIFTED_KEYS}
    return _PgSection(
        raw=FrozenDict(raw),
        parameters=parameters,
        pg_hba=pg_hba,
        lifted=FrozenDict(lifted),
        warnings=unchecked_warning(parameters) if later is None else (),
    )


def _slots(key: str, node: Node) -> object:
    # Kept in /config for Patroni tools; pgha itself does not manage permanent slots yet.
    if key == "slots":
        if not isinstance(node.value, dict):
            raise problem(node, "a mapping of slot names to slot definitions")
        return FrozenDict({name: _json(child) for name, child in node.value.items()})
    return tuple(_json(entry) for entry in items(node, "a list of mappings", non_empty=False))


def _json(node: Node) -> object:
    if isinstance(node.value, dict):
        return FrozenDict({key: _json(child) for key, child in node.value.items()})
    if isinstance(node.value, tuple):
        return tuple(_json(child) for child in node.value)
    if node.value is None or isinstance(node.value, str | int | float):
        return node.value
    raise problem(node, "a JSON value (string, number, true/false, null, list or mapping)")


def timing_warnings(flat: Mapping[str, object], dynamic: DynamicConfig) -> tuple[str, ...]:
    """What `adjust_timeouts` changed, as sentences (empty when it changed nothing)."""
    loop_wait_s = _given(flat, "loop_wait", _DEFAULTS.loop_wait_s)
    retry_timeout_s = _given(flat, "retry_timeout", _DEFAULTS.retry_timeout_s)
    if (loop_wait_s, retry_timeout_s) == (dynamic.loop_wait_s, dynamic.retry_timeout_s):
        return ()
    return (
        f"loop_wait + 2 * retry_timeout ({loop_wait_s:g} + 2 * {retry_timeout_s:g} s) exceeds "
        f"ttl ({dynamic.ttl_s:g} s); adjusted to loop_wait {dynamic.loop_wait_s:g} s and "
        f"retry_timeout {dynamic.retry_timeout_s:g} s",
    )


def _given(flat: Mapping[str, object], key: str, default_s: float) -> float:
    value = flat.get(key, default_s)
    return float(value) if isinstance(value, int | float) else default_s
