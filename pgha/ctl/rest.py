# `pgha ctl` talks to members' REST APIs for everything a member must do itself (switchover,
# failover, restart, reinitialize, reload) and to read `/patroni`. Safety rules: the credentials
# from the agent configuration are sent only as an Authorization header and never appear in a
# message; a connection failure or any non-2xx answer is reported as a failure (exit 1), never
# taken for success; every request is bounded by a timeout.
"""A small REST client for `pgha ctl`: POST actions and GET /patroni with HTTP Basic auth."""

from __future__ import annotations

import http.client
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pgha.agent.peers import http_call
from pgha.agent.rest.common import basic_auth_header
from pgha.ctl.common import CtlError


@dataclass(frozen=True, slots=True, kw_only=True)
class RestAnswer:
    """A member's answer: status, the message for the operator and the JSON body (or None)."""

    status: int
    message: str
    document: Any = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def answer_of(status: int, body: bytes) -> RestAnswer:
    """Read a REST answer: `{"error": m}` -> m; other JSON as compact JSON; text as text."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        document = json.loads(text) if text else None
    except ValueError:
        return RestAnswer(status=status, message=text)
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        return RestAnswer(status=status, message=document["error"], document=document)
    if isinstance(document, str):
        return RestAnswer(status=status, message=document, document=document)
    return RestAnswer(status=status, message=text, document=document)


@dataclass(frozen=True, slots=True, kw_only=True)
class RestClient:
    """Requests to members' REST APIs with the configured credentials (none: no header).

    `timeout_s` bounds reads such as GET /patroni; `action_timeout_s` bounds actions, which a
    member answers only when done (a switchover waits up to ttl + loop_wait, a restart longer).
    """

    username: str | None = None
    password: str | None = None
    timeout_s: float = 5.0
    action_timeout_s: float = 300.0

    def _headers(self, body: bytes | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.username is not None:
            headers["Authorization"] = basic_auth_header(self.username, self.password or "")
        return headers

    def call(
        self,
        member: str,
        api_url: str,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
    ) -> RestAnswer:
        """One request to `member`'s REST API at `api_url`.

        Raises:
            CtlError: exit 1 when the member publishes no address or cannot be reached.
        """
        if not api_url:
            raise CtlError(f"member {member} publishes no REST API address")
        data = None if body is None else json.dumps(dict(body)).encode()
        timeout_s = self.timeout_s if method == "GET" else self.action_timeout_s
        try:
            status, answer = http_call(
                api_url,
                path,
                method=method,
                body=data,
                headers=self._headers(data),
                timeout_s=timeout_s,
            )
        except (OSError, ValueError, http.client.HTTPException) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            reason = reason or type(exc).__name__
            raise CtlError(
                f"cannot reach the REST API of {member} at {api_url}: {reason}"
            ) from None
        return answer_of(status, answer)
