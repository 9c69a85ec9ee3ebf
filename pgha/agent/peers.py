# The Peers port over HTTP: during a leader race a candidate asks every other member's REST API for
# `GET /patroni`, and a primary in failsafe mode POSTs `/failsafe` heartbeats to every member.
# Safety rules: each call is bounded by `timeout_s` in total, however many peers there are and
# however slowly they answer (the requests run in parallel and stragglers are abandoned), because
# a race or a failsafe round that outlives the lock's ttl decides on stale facts; anything but a
# well-formed 200 counts as unreachable (a peer that cannot be read is never counted as healthy)
# or as not acknowledged. No proxies, no redirects, no retries; credentials are never logged.
"""Peers port: fetch peers' /patroni status and post failsafe heartbeats, in parallel."""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar
from urllib.parse import urlsplit

from pgha.agent.admin import FailsafeInbox
from pgha.agent.rest.common import basic_auth_header
from pgha.engine.values import FailsafeHeartbeat, PeerStatus
from pgha.health import peer_status_from_patroni

log = logging.getLogger("pgha.peers")

MAX_ANSWER_B = 1024 * 1024
T = TypeVar("T")


def _unreachable(name: str) -> PeerStatus:
    return PeerStatus(name=name, reachable=False, running=False)


def server_of(api_url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a member's `api_url` (which may end in `/patroni`).

    Raises:
        ValueError: the URL is not http(s) or has no host or a bad port.
    """
    parts = urlsplit(api_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL")
    return parts.scheme, parts.hostname, parts.port


def http_call(
    api_url: str,
    path: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float,
) -> tuple[int, bytes]:
    """One request to the peer at `api_url` (its path is replaced by `path`): (status, body).

    Raises:
        OSError: connection errors and timeouts; ValueError: a bad URL;
        http.client.HTTPException: a malformed answer.
    """
    scheme, host, port = server_of(api_url)
    connection_type = (
        http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_type(host, port, timeout=timeout_s)
    try:
        connection.request(method, path, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        return response.status, response.read(MAX_ANSWER_B)
    finally:
        connection.close()


class HttpPeers:
    """`pgha.ports.Peers` over the members' REST APIs.

    Args:
        name: this member's name (sent in failsafe heartbeats).
        api_url_of: a member's REST base URL, or None when unknown.
        auth: (username, password) for POST /failsafe, or None.
        inbox: the heartbeats this node's own REST API accepted.
        timeout_s: the bound on each call, in total.
    """

    def __init__(
        self,
        *,
        name: str,
        api_url_of: Callable[[str], str | None],
        auth: tuple[str, str] | None,
        inbox: FailsafeInbox,
        timeout_s: float = 2.0,
    ) -> None:
        self._name = name
        self._api_url_of = api_url_of
        self._authorization = basic_auth_header(*auth) if auth is not None else None
        self._inbox = inbox
        self._timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"HttpPeers(name={self._name!r}, timeout_s={self._timeout_s})"

    def _parallel(
        self, names: tuple[str, ...], one: Callable[[str], T], late: Callable[[str], T]
    ) -> list[T]:
        """`one(name)` for every name at once; `late(name)` for those not done within timeout_s."""
        if not names:
            return []
        pool = ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="pgha-peers")
        try:
            futures = [pool.submit(one, name) for name in names]
            wait(futures, timeout=self._timeout_s)
            return [
                future.result() if future.done() and future.exception() is None else late(name)
                for name, future in zip(names, futures, strict=True)
            ]
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _status_of(self, name: str) -> PeerStatus:
        unreachable = _unreachable(name)
        url = self._api_url_of(name)
        if not url:
            return unreachable
        try:
            code, body = http_call(url, "/patroni", timeout_s=self._timeout_s)
            document = json.loads(body) if code == 200 else None
        except (OSError, ValueError, http.client.HTTPException) as exc:
            log.debug("GET /patroni of %s failed: %s", name, type(exc).__name__)
            return unreachable
        return peer_status_from_patroni(name, document)

    def fetch_status(self, names: tuple[str, ...]) -> tuple[PeerStatus, ...]:
        """GET /patroni of each in parallel, within timeout_s; failures say reachable=False."""
        return tuple(self._parallel(names, self._status_of, _unreachable))

    def _heartbeat_to(self, name: str) -> bool:
        url = self._api_url_of(name)
        if not url:
            return False
        headers = {"Content-Type": "application/json"}
        if self._authorization is not None:
            headers["Authorization"] = self._authorization
        body = json.dumps({"name": self._name}).encode()
        try:
            code, _ = http_call(
                url,
                "/failsafe",
                method="POST",
                body=body,
                headers=headers,
                timeout_s=self._timeout_s,
            )
        except (OSError, ValueError, http.client.HTTPException) as exc:
            log.debug("POST /failsafe to %s failed: %s", name, type(exc).__name__)
            return False
        return code == 200

    def post_failsafe(self, names: tuple[str, ...]) -> tuple[str, ...]:
        """POST /failsafe {"name": me} to each in parallel; the names that answered 200 in time."""
        answers = self._parallel(names, self._heartbeat_to, lambda name: False)
        return tuple(name for name, ok in zip(names, answers, strict=True) if ok)

    def last_failsafe_heartbeat(self) -> FailsafeHeartbeat | None:
        """The latest heartbeat this node's REST API accepted."""
        return self._inbox.latest()
