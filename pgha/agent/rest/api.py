# The agent's REST API: it answers load balancers (health endpoints), peers in a leader race
# (`/patroni`), failsafe heartbeats and operators, on Patroni's paths with Patroni's status codes.
# This module routes a request, enforces Basic auth on every write and turns failures into answers;
# the handlers live in read.py, write.py and switchover.py. The connections are handled by
# pgha.agent.rest.server (no thread waits for a client; a deadline per request; two bounded lanes
# of workers, so that slow clients and long operations never delay a health check: its design is
# at its top) and the wire format, with the framing rules against request smuggling, by
# pgha.agent.rest.wire. Safety rules: health answers never read the DCS (pgha.health decides from
# the published status); writes reach the cluster only through the ClusterAdmin and the
# CommandSink, never around the loop; bad input is always a 4xx (never a 500) and request bodies
# and Authorization headers are never logged.
"""The REST API: routing, authentication and the server's lifecycle."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from pgha import health
from pgha.agent.admin import ClusterAdmin, CommandSink, FailsafeInbox
from pgha.agent.rest.common import (
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
from pgha.agent.rest.read import (
    cluster_get,
    config_get,
    failsafe_get,
    health_get,
    history_get,
    metrics_get,
)
from pgha.agent.rest.server import RestServer
from pgha.agent.rest.switchover import failover_post, switchover_delete, switchover_post
from pgha.agent.rest.wire import READ_METHODS
from pgha.agent.rest.write import (
    config_patch,
    config_put,
    failsafe_post,
    reinitialize_post,
    reload_post,
    restart_post,
)
from pgha.ports import DcsError
from pgha.status import AgentStatus

__all__ = ["RestApi", "RestSettings", "dispatch"]

log = logging.getLogger("pgha.restapi")

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

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


# Answered from the agent's memory only (no DCS read, no wait): the server's fast lane.
FAST_READ_PATHS = frozenset({*health.ENDPOINTS, "/metrics"})
FAST_WRITES = frozenset({("POST", "/failsafe")})


def is_fast(method: str, path: str) -> bool:
    """True for a request whose handler answers from memory at once (health checks, /patroni,
    /metrics, a failsafe heartbeat): served by the fast lane, never behind slow operations."""
    if method in READ_METHODS:
        return path in FAST_READ_PATHS
    return (method, path) in FAST_WRITES


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
        self._server: RestServer | None = None

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
            server = RestServer(
                (host, port),
                self.settings,
                serve=self._serve,
                is_fast=is_fast,
                name=self._context.name,
            )
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise OSError(exc.errno, f"REST API cannot listen on {host}:{port}: {reason}") from exc
        self._server = server
        server.start()
        log.info("REST API listening on %s", self.url)

    def _serve(self, request: Request, authorization: str | None) -> Reply:
        return dispatch(self._context, request, authorization)

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent; requests in flight are abandoned)."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    @property
    def url(self) -> str:
        """The base URL of the listening socket, e.g. `http://127.0.0.1:8008`."""
        if self._server is None:
            raise RuntimeError("the REST API is not running")
        host, port = self._server.address
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
