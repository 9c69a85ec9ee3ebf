# The agent's REST API: a stdlib ThreadingHTTPServer in a daemon thread that answers load balancers
# (health endpoints), peers in a leader race (`/patroni`), failsafe heartbeats and operators, on
# Patroni's paths with Patroni's status codes. This module is the HTTP layer only: it reads and
# bounds the request, routes it, enforces Basic auth on every write and turns failures into
# answers; the handlers live in rest_read, rest_write and rest_switchover. Safety rules: health
# answers never read the DCS (pgha.health decides from the published status); writes reach the
# cluster only through the ClusterAdmin and the CommandSink, never around the loop; bad input is
# always a 4xx (never a 500) and request bodies and Authorization headers are never logged.
"""The REST API server: routing, authentication, request limits and the server thread."""

from __future__ import annotations

import logging
import re
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

from pgha import __version__, health
from pgha.agent.admin import ClusterAdmin, CommandSink, FailsafeInbox
from pgha.agent.rest_common import (
    AUTH_CHALLENGE,
    Handler,
    HttpError,
    Reply,
    Request,
    RestContext,
    RestSettings,
    authorized,
    error_reply,
    no_config_error,
)
from pgha.agent.rest_read import (
    cluster_get,
    config_get,
    failsafe_get,
    health_get,
    history_get,
    metrics_get,
)
from pgha.agent.rest_switchover import failover_post, switchover_delete, switchover_post
from pgha.agent.rest_write import (
    config_patch,
    config_put,
    failsafe_post,
    reinitialize_post,
    reload_post,
    restart_post,
)
from pgha.loop import AgentStatus
from pgha.ports import DcsError

__all__ = ["RestApi", "RestSettings", "dispatch"]

log = logging.getLogger("pgha.restapi")

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DRAIN_LIMIT_B = 1024 * 1024  # an oversized body up to this size is read and dropped before 413
_DIGITS = re.compile(r"[0-9]{1,18}")

GET_ROUTES: Mapping[str, Handler] = {
    **dict.fromkeys(health.ENDPOINTS, health_get),
    "/cluster": cluster_get,
    "/history": history_get,
    "/config": config_get,
    "/failsafe": failsafe_get,
    "/metrics": metrics_get,
}
WRITE_ROUTES: Mapping[tuple[str, str], Handler] = {
    ("PATCH", "/config"): config_patch,
    ("PUT", "/config"): config_put,
    ("POST", "/switchover"): switchover_post,
    ("DELETE", "/switchover"): switchover_delete,
    ("POST", "/failover"): failover_post,
    ("POST", "/restart"): restart_post,
    ("POST", "/reinitialize"): reinitialize_post,
    ("POST", "/reload"): reload_post,
    ("POST", "/failsafe"): failsafe_post,
}


def route(method: str, path: str) -> Handler:
    """The handler of `method` on `path`; HEAD and OPTIONS use GET's.

    Raises:
        HttpError: 404 for an unknown path, 405 (with Allow) for a method the path lacks.
    """
    found = GET_ROUTES.get(path) if method in READ_METHODS else WRITE_ROUTES.get((method, path))
    if found is not None:
        return found
    allowed = sorted(m for m, p in WRITE_ROUTES if p == path)
    if path in GET_ROUTES:
        allowed = ["GET", "HEAD", "OPTIONS", *allowed]
    if not allowed:
        raise HttpError(404, "unknown path")
    raise HttpError(405, f"{method} is not allowed here", (("Allow", ", ".join(allowed)),))


def dispatch(ctx: RestContext, request: Request, authorization: str | None) -> Reply:
    """Route, authenticate and run one request; every failure becomes an answer."""
    try:
        handler = route(request.method, request.path)
        if request.method in WRITE_METHODS and not authorized(authorization, ctx.settings):
            raise HttpError(401, "authentication required", AUTH_CHALLENGE)
        return handler(ctx, request)
    except HttpError as exc:
        return exc.reply()
    except DcsError as exc:
        log.warning("%s %s: the DCS did not answer: %s", request.method, request.path, exc)
        return error_reply(503, "the DCS is not reachable; try again")
    except Exception:
        log.exception("%s %s: unexpected error", request.method, request.path)
        return error_reply(500, "internal error")


# ---------------------------------------------------------------- HTTP


class _Server(ThreadingHTTPServer):
    """The listening socket; one daemon thread per connection."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], context: RestContext) -> None:
        self.context = context
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve the host name (a DNS lookup that can hang).
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    """One connection: parse, bound and answer a request (HTTP/1.0, closed after each answer)."""

    server_version = f"pgha/{__version__}"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self._context().settings.request_timeout_s)  # per read

    def _context(self) -> RestContext:
        return cast(_Server, self.server).context

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_OPTIONS(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        try:
            request = self._request()
        except HttpError as exc:
            self.close_connection = True
            self._send(exc.reply())
            return
        except OSError:  # the client was too slow or went away while sending its body
            self.close_connection = True
            return
        self._send(dispatch(self._context(), request, self.headers.get("Authorization")))

    def _request(self) -> Request:
        try:
            parts = urlsplit(self.path)
        except ValueError:
            raise HttpError(400, "malformed request target") from None
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        path = parts.path.rstrip("/") or "/"
        return Request(method=self.command, path=path, query=query, body=self._read_body())

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raise HttpError(411, "a Content-Length is required")
        text = self.headers.get("Content-Length")
        if text is None:
            return b""
        if _DIGITS.fullmatch(text.strip()) is None:
            raise HttpError(400, "malformed Content-Length")
        length = int(text)
        limit_b = self._context().settings.max_body_b
        if length > limit_b:
            self._drain(length)
            raise HttpError(413, f"the body is larger than {limit_b} bytes")
        body = self.rfile.read(length)
        if len(body) < length:
            raise HttpError(400, "the body is shorter than its Content-Length")
        return body

    def _drain(self, length_b: int) -> None:
        """Read and drop a refused body, so that closing does not reset the answer."""
        if length_b > DRAIN_LIMIT_B:
            return
        try:
            while length_b > 0 and (chunk := self.rfile.read(min(length_b, 65536))):
                length_b -= len(chunk)
        except OSError:
            pass

    def _send(self, reply: Reply) -> None:
        send_body = self.command not in ("HEAD", "OPTIONS")
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body) if send_body else 0))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(reply.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors found by the stdlib parser: a 4xx with a JSON body (5xx there is user input)."""
        del explain
        code = 405 if code == HTTPStatus.NOT_IMPLEMENTED else (400 if code >= 500 else code)
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # a line the parser could not read: answer in 1.0
            self.request_version = "HTTP/1.0"
        self._send(error_reply(code, message or HTTPStatus(code).phrase))

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = (getattr(self, "path", "") or "").partition("?")[0]
        log.debug('%s "%s %s" %s', self.client_address[0], self.command, path, code)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.client_address[0], format % args)


# ---------------------------------------------------------------- the server


class RestApi:
    """The REST API of one agent: `start()` binds and serves in a daemon thread, `stop()` ends it.

    Args:
        settings: where to listen and how to authenticate.
        status: the latest published AgentStatus (called per request).
        now_mono: the agent's monotonic clock (health answers compare it with the lock deadline).
        admin: the cluster's keys for /cluster, /config and /switchover.
        commands: where restart, reinitialize and reload go (run by the loop between cycles).
        inbox: where accepted failsafe heartbeats are kept.
        name: this member's name.
        scope: the cluster name (a label of every metric).
        now_wall: the wall clock, only to refuse a scheduled_at in the past.
    """

    def __init__(
        self,
        settings: RestSettings,
        *,
        status: Callable[[], AgentStatus],
        now_mono: Callable[[], float],
        admin: ClusterAdmin,
        commands: CommandSink,
        inbox: FailsafeInbox,
        name: str,
        scope: str = "",
        now_wall: Callable[[], float] = time.time,
        config_error: Callable[[], str | None] = no_config_error,
    ) -> None:
        self.settings = settings
        self._context = RestContext(
            settings=settings,
            status=status,
            config_error=config_error,
            now_mono=now_mono,
            now_wall=now_wall,
            admin=admin,
            commands=commands,
            inbox=inbox,
            name=name,
            scope=scope,
        )
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and start serving.

        Raises:
            OSError: the address cannot be bound (the message names it), e.g. the port is taken.
            RuntimeError: already started.
        """
        if self._server is not None:
            raise RuntimeError("the REST API is already running")
        host, port = self.settings.listen_host, self.settings.listen_port
        try:
            server = _Server((host, port), self._context)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise OSError(exc.errno, f"REST API cannot listen on {host}:{port}: {reason}") from exc
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"pgha-rest-{self._context.name}",
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()
        log.info("REST API listening on %s", self.url)

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent; requests in flight are abandoned)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5.0)

    @property
    def url(self) -> str:
        """The base URL of the listening socket, e.g. `http://127.0.0.1:8008`."""
        if self._server is None:
            raise RuntimeError("the REST API is not running")
        host, port = self._server.server_address[:2]
        host = str(host)
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "[::1]"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    @property
    def connect_url(self) -> str:
        """The URL peers should use: `settings.connect_url`, else the listening URL."""
        return self.settings.connect_url or self.url

    def __enter__(self) -> RestApi:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
