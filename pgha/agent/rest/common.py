# What every REST handler shares: the settings, the request and reply values, the error a handler
# raises for bad input, the strict JSON body parser with its field checks, and HTTP Basic auth.
# Safety rule: user input never reaches the cluster unchecked and never causes a 500. Bodies are
# size-limited by the server, parsed strictly here (no NaN or Infinity, no unknown fields, exact
# types), and every rejection is a 4xx. Credentials are compared in constant time and are never
# logged or echoed (the password is kept out of the settings' repr).
"""Settings, request/reply values, input validation and authentication for the REST API."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pgha.agent.admin import ClusterAdmin, CommandSink, FailsafeInbox
from pgha.status import AgentStatus

JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"
MAX_DEPTH = 32  # nesting of a JSON body; deeper input is refused before any handler recurses


@dataclass(frozen=True, slots=True, kw_only=True)
class RestSettings:
    """How the REST API listens, authenticates writes and bounds its requests.

    `connect_url` is the address peers and load balancers use (published as the member's
    `api_url`); empty means the local listening address. `username` set: every write (PATCH,
    PUT, POST, DELETE) needs HTTP Basic auth with `username`/`password`. `switchover_timeout_s`
    None: wait ttl + loop_wait of the current configuration for a switchover to finish. The
    connection limits (`request_deadline_s`, `max_pending`, `max_workers`, `fast_workers`) are
    explained at the top of pgha.agent.rest.server.
    """

    listen_host: str = "127.0.0.1"
    listen_port: int = 8008
    connect_url: str = ""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    request_timeout_s: float = 10.0  # writing an answer
    request_deadline_s: float = 10.0  # a whole request (head and body) arrives within this
    max_pending: int = 256  # connections whose request is still arriving (no thread each)
    max_workers: int = 16  # handlers running at once in the general lane (beyond: 503)
    fast_workers: int = 4  # threads of the fast lane (health checks, /patroni, /metrics)
    max_body_b: int = 64 * 1024
    command_timeout_s: float = 120.0
    switchover_timeout_s: float | None = None
    poll_interval_s: float = 0.5

    def __post_init__(self) -> None:
        if min(self.request_timeout_s, self.request_deadline_s) <= 0:
            raise ValueError("the REST request timeout and deadline must be > 0")
        if min(self.max_pending, self.max_workers, self.fast_workers) < 1:
            raise ValueError("the REST API needs at least one connection and one worker per lane")


def no_config_error() -> str | None:
    """The default source of `RestContext.config_error`: nothing was rejected."""
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class RestContext:
    """Everything a handler may use: the agent's status and clocks, and the cluster seams.

    `now_mono` is the agent's clock (health answers compare it with the lock deadline); request
    timeouts use `timer_mono` and `sleep` (real time by default).
    """

    settings: RestSettings
    status: Callable[[], AgentStatus]
    now_mono: Callable[[], float]
    now_wall: Callable[[], float]
    admin: ClusterAdmin
    commands: CommandSink
    inbox: FailsafeInbox
    name: str
    scope: str
    timer_mono: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    # Why the `/config` last read from the DCS was rejected (the last good one is in use), if it
    # was; shown as `config_error` in `/patroni` and every health answer.
    config_error: Callable[[], str | None] = no_config_error


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """One HTTP request as a handler sees it (the body is already size-checked)."""

    method: str
    path: str
    query: Mapping[str, str]
    body: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """One HTTP answer."""

    status: int
    body: bytes = b""
    content_type: str = TEXT_TYPE
    headers: tuple[tuple[str, str], ...] = ()


Handler = Callable[[RestContext, Request], Reply]


def json_reply(status: int, document: object) -> Reply:
    """A JSON answer."""
    return Reply(status=status, body=json.dumps(document).encode(), content_type=JSON_TYPE)


def text_reply(status: int, message: str) -> Reply:
    """A plain-text answer (Patroni's write endpoints answer with text)."""
    return Reply(status=status, body=message.encode())


def error_reply(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    """An error as JSON `{"error": message}`."""
    body = json.dumps({"error": message}).encode()
    return Reply(status=status, body=body, content_type=JSON_TYPE, headers=headers)


class HttpError(Exception):
    """A request the handler refuses: answered with `status` and `{"error": message}`."""

    def __init__(
        self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers

    def reply(self) -> Reply:
        return error_reply(self.status, self.message, self.headers)


# ---------------------------------------------------------------- JSON bodies


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("numbers must be finite")
    return value


def parse_json_object(body: bytes, *, optional: bool = False) -> dict[str, Any]:
    """The body as a JSON object; an empty body is `{}` when `optional`.

    Raises:
        HttpError: 400 for an empty (required) body, bad UTF-8 or JSON, NaN/Infinity, nesting
            too deep, or JSON that is not an object.
    """
    if not body.strip():
        if optional:
            return {}
        raise HttpError(400, "a JSON object body is required")
    try:
        document = json.loads(
            body.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite_float
        )
    except json.JSONDecodeError as exc:  # its message gives the position, never the input
        raise HttpError(400, f"malformed JSON body: {exc}") from None
    except (ValueError, RecursionError) as exc:  # bad UTF-8, NaN, huge numbers, deep nesting
        raise HttpError(400, f"malformed JSON body ({type(exc).__name__})") from None
    if not isinstance(document, dict):
        raise HttpError(400, "the body must be a JSON object")
    if _depth(document) > MAX_DEPTH:
        raise HttpError(400, f"the body is nested deeper than {MAX_DEPTH} levels")
    return document


def _depth(document: object) -> int:
    """How deeply `document` nests objects and arrays (iterative: no recursion on input)."""
    deepest, pending = 0, [(document, 0)]
    while pending:
        value, level = pending.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, level + 1)
            items = value.values() if isinstance(value, dict) else value
            pending.extend((item, level + 1) for item in items)
    return deepest


@dataclass(frozen=True, slots=True, kw_only=True)
class Field:
    """One accepted body field: `check(value)` is True for an acceptable value."""

    check: Callable[[object], bool]
    expected: str
    required: bool = False


def is_name(value: object) -> bool:
    """A non-empty string."""
    return isinstance(value, str) and value != ""


def is_bool(value: object) -> bool:
    return isinstance(value, bool)


def optional(check: Callable[[object], bool]) -> Callable[[object], bool]:
    """`check`, also accepting null."""
    return lambda value: value is None or check(value)


def check_fields(body: Mapping[str, Any], spec: Mapping[str, Field]) -> dict[str, Any]:
    """The body's fields after checking names, presence and types against `spec`.

    Raises:
        HttpError: 400 naming the unknown, missing or wrongly typed field.
    """
    unknown = sorted(set(body) - set(spec))
    if unknown:
        raise HttpError(400, f"unknown field(s): {', '.join(unknown)}")
    for name, rule in spec.items():
        if name not in body:
            if rule.required:
                raise HttpError(400, f"{name}: required")
        elif not rule.check(body[name]):
            raise HttpError(400, f"{name}: expected {rule.expected}")
    return dict(body)


# ---------------------------------------------------------------- authentication


def authorized(header: str | None, settings: RestSettings) -> bool:
    """True when no username is configured, or `header` is Basic auth with the right pair."""
    if settings.username is None:
        return True
    scheme, _, encoded = (header or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    user, sep, password = decoded.partition(b":")
    user_ok = hmac.compare_digest(user, settings.username.encode())
    password_ok = hmac.compare_digest(password, (settings.password or "").encode())
    return bool(sep) and user_ok and password_ok


def basic_auth_header(username: str, password: str) -> str:
    """The `Authorization` header value for HTTP Basic auth."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


AUTH_CHALLENGE = (("WWW-Authenticate", 'Basic realm="pgha"'),)
