# The REST API's write endpoints other than switchover: the dynamic configuration (PATCH as a JSON
# merge patch, PUT as a replacement), operator commands for the loop (restart, reinitialize,
# reload) and the failsafe heartbeat. Safety rules: a configuration is validated as a whole, with
# the engine's own parser and PostgreSQL parameters against the installed server's catalogue of
# settings (pg/params.py), before it is stored, and it is stored only by compare-and-set on the
# version it was merged from (a concurrent change is never overwritten); commands go through the
# CommandSink, so they run between two loop cycles and never race the loop; a node that holds the
# leader lock or runs as primary refuses a failsafe heartbeat (pgha.engine.heartbeat: two leaders
# must never both believe they lead).
"""Handlers for /config writes, /restart, /reinitialize, /reload and POST /failsafe."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from pgha.agent.admin import Command
from pgha.agent.pg import catalogue as pg_catalogue
from pgha.agent.pg import params as pg_params
from pgha.agent.rest.common import (
    Field,
    HttpError,
    Reply,
    Request,
    RestContext,
    check_fields,
    error_reply,
    is_bool,
    is_name,
    json_reply,
    optional,
    parse_json_object,
    text_reply,
)
from pgha.engine.config import ConfigError, merge_patch, parse_dynamic_config
from pgha.engine.heartbeat import heartbeat_refusal
from pgha.health import is_leader

CAS_ATTEMPTS = 3
MAX_RESTART_TIMEOUT_S = 24 * 3600.0
EMPTY_PUT = (
    "PUT /config {} would reset every setting to its default: send the whole configuration "
    "(every key to keep), or PATCH /config with the keys to change (null deletes one)"
)
RESTART_ROLES = {"primary": "primary", "master": "primary", "replica": "replica", "any": "any"}
_UNCHECKED_WARNED: dict[str, str] = {}  # the reason last logged for unchecked parameters

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- /config


def _is_string_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(line, str) for line in value)


def _parameters_of(raw: Mapping[str, Any] | None) -> Mapping[str, Any]:
    section = raw.get("postgresql") if raw is not None else None
    parameters = section.get("parameters") if isinstance(section, dict) else None
    return parameters if isinstance(parameters, dict) else {}


def _same(a: object, b: object) -> bool:
    return type(a) is type(b) and a == b


def _check_parameters(parameters: Mapping[str, Any], stored: Mapping[str, Any]) -> None:
    # Only what the request changes: a value already stored (even one an agent skips because it
    # was written past this door) must not block an unrelated change.
    changed = {k: v for k, v in parameters.items() if not _same(stored.get(k), v)}
    catalogue = pg_catalogue.active() if changed else None
    if changed and catalogue is None:
        _warn_unchecked()
    for name, value in changed.items():
        problem = pg_params.check(catalogue, str(name), value)
        if problem is not None:
            raise HttpError(400, problem.message())


def _warn_unchecked() -> None:
    reason = pg_catalogue.unavailable() or "unknown reason"
    if _UNCHECKED_WARNED.get("reason") != reason:
        _UNCHECKED_WARNED["reason"] = reason
        log.warning(
            "PostgreSQL parameters are checked by type only: the settings catalogue of the "
            "installed server cannot be read (%s); every agent still skips a value its "
            "PostgreSQL refuses",
            reason,
        )


def _check_postgresql(section: object, stored: Mapping[str, Any]) -> None:
    # Values of string parameters are never echoed: parameters may hold secrets (pg_params).
    if not isinstance(section, dict):
        raise HttpError(400, "postgresql: expected a mapping")
    parameters = section.get("parameters", {})
    if not isinstance(parameters, dict):
        raise HttpError(400, "postgresql.parameters: expected a mapping")
    _check_parameters(parameters, stored)
    for key in ("pg_hba", "pg_ident"):
        if key in section and not _is_string_list(section[key]):
            raise HttpError(400, f"postgresql.{key}: expected a list of strings")


def validate_config(raw: Mapping[str, Any], before: Mapping[str, Any] | None = None) -> None:
    """Refuse a configuration the engine would not accept, or a malformed `postgresql` section.

    The engine's parser bounds every value from below and above (e.g. ttl 3..3600 s, below
    etcd's largest lease), so nothing an agent cannot use is ever written to the DCS.
    PostgreSQL parameters that differ from `before` (the stored configuration) are checked
    against the installed server's catalogue of settings (type, unit, range, enum value,
    libraries), and parameters pgha sets itself are refused.

    Raises:
        HttpError: 400 with the ConfigError's message: the key, what is allowed, what was sent.
    """
    try:
        parse_dynamic_config(raw)
    except ConfigError as exc:
        raise HttpError(400, str(exc)) from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise HttpError(400, f"invalid configuration ({type(exc).__name__})") from None
    if "postgresql" in raw:
        _check_postgresql(raw["postgresql"], _parameters_of(before))


def _store_config(ctx: RestContext, change: Callable[[dict[str, Any]], dict[str, Any]]) -> Reply:
    """Apply `change` to the stored config by compare-and-set, retrying a few lost races."""
    for _ in range(CAS_ATTEMPTS):
        raw, version = ctx.admin.raw_config()
        updated = change(raw)
        validate_config(updated, raw)
        if version is not None and updated == raw:
            return json_reply(200, updated)
        if ctx.admin.replace_config(updated, version):
            return json_reply(200, updated)
    return error_reply(409, "the configuration changed concurrently; try again")


def config_patch(ctx: RestContext, request: Request) -> Reply:
    """`PATCH /config`: merge the body into the stored configuration (null deletes a key)."""
    patch = parse_json_object(request.body)

    def change(raw: dict[str, Any]) -> dict[str, Any]:
        merged = merge_patch(raw, patch)
        assert isinstance(merged, dict)  # a JSON object patch always merges to an object
        return merged

    return _store_config(ctx, change)


def config_put(ctx: RestContext, request: Request) -> Reply:
    """`PUT /config`: replace the stored configuration with the body.

    An empty object is refused (400): it would silently reset every setting, PostgreSQL
    parameters included, to the defaults. Send the whole configuration, or PATCH the keys.
    """
    replacement = parse_json_object(request.body)
    if not replacement:
        raise HttpError(400, EMPTY_PUT)
    return _store_config(ctx, lambda raw: replacement)


# ---------------------------------------------------------------- commands


def _submit(
    ctx: RestContext, command: Command, options: Mapping[str, Any], extra_s: float = 0.0
) -> Reply:
    timeout_s = ctx.settings.command_timeout_s + extra_s
    result = ctx.commands.submit(command, options, timeout_s)
    status = result.status if 200 <= result.status < 600 else (200 if result.ok else 503)
    return text_reply(status, result.message)


def _is_restart_timeout(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return 0 < value <= MAX_RESTART_TIMEOUT_S


_RESTART_FIELDS = {
    "restart_pending": Field(check=is_bool, expected="true or false"),
    "role": Field(
        check=lambda v: isinstance(v, str) and v in RESTART_ROLES,
        expected="primary, replica or any",
    ),
    "timeout": Field(check=_is_restart_timeout, expected="seconds, above 0 and at most 86400"),
}


def restart_post(ctx: RestContext, request: Request) -> Reply:
    """`POST /restart` with optional conditions `restart_pending`, `role` and `timeout`."""
    body = check_fields(parse_json_object(request.body, optional=True), _RESTART_FIELDS)
    if "role" in body:
        body["role"] = RESTART_ROLES[body["role"]]
    return _submit(ctx, Command.RESTART, body, float(body.get("timeout", 0.0)))


_REINIT_FIELDS = {"force": Field(check=is_bool, expected="true or false")}


def reinitialize_post(ctx: RestContext, request: Request) -> Reply:
    """`POST /reinitialize` with optional `force`."""
    body = check_fields(parse_json_object(request.body, optional=True), _REINIT_FIELDS)
    return _submit(ctx, Command.REINITIALIZE, body)


def reload_post(ctx: RestContext, request: Request) -> Reply:
    """`POST /reload`: re-read the local configuration (no body fields)."""
    body = check_fields(parse_json_object(request.body, optional=True), {})
    return _submit(ctx, Command.RELOAD, body)


# ---------------------------------------------------------------- failsafe heartbeat


def _is_text(value: object) -> bool:
    return isinstance(value, str)


_FAILSAFE_FIELDS = {
    "name": Field(check=is_name, expected="the leader's member name", required=True),
    "conn_url": Field(check=optional(_is_text), expected="a string"),
    "api_url": Field(check=optional(_is_text), expected="a string"),
    "slots": Field(check=lambda v: v is None or isinstance(v, dict), expected="a mapping"),
}


def failsafe_post(ctx: RestContext, request: Request) -> Reply:
    """`POST /failsafe`: a leader's heartbeat while the DCS is down; 409 when this node holds the
    lock or runs as primary (pgha.engine.heartbeat)."""
    body = check_fields(parse_json_object(request.body), _FAILSAFE_FIELDS)
    status = ctx.status()
    refused = heartbeat_refusal(
        pg_is_primary=status.postgres.is_primary, holds_lock=is_leader(status, ctx.now_mono())
    )
    if refused is not None:
        return error_reply(409, refused.value)
    ctx.inbox.accept(body["name"])
    return text_reply(200, "Accepted")
