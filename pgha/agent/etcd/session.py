# Safety rules: every etcd call is bounded by retry_timeout (bug zoo 5: a DCS client that retries
# forever keeps a cut-off primary writable), reads are linearizable (bug zoo 1: a member cut off
# from the quorum must not be read as if it were current), and an answer from a member whose raft
# term is lower than the highest term this session has seen is not trusted (bug zoo 12: a stale
# member rejoining after a partition would show an old leader). Failures become DcsError, with the
# endpoint in the message and never the password. The bug zoo: docs/patroni-rules.md §5.
"""The etcd v3 session: endpoints, deadlines, raft-term tracking and the raw gRPC calls."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc  # type: ignore[import-untyped]
from pyetcd import etcdrpc

from pgha.engine.config import ETCD_MAX_LEASE_TTL_S
from pgha.ports import DcsError

MIN_ATTEMPT_S = 0.5  # each endpoint gets at least this much of the deadline, if it is left
PASS_PAUSE_S = 0.1  # pause after every endpoint failed fast, so a dead cluster is never spun on
WATCH_RETRY_PAUSE_S = 0.5  # pause before watching again after a watch failed
_CHANNEL_OPTIONS = (
    # Reconnect to a restarted member within a second, not after gRPC's default 120 s backoff.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)
# Endpoint-independent errors: every member would answer the same, so trying others is useless.
_FINAL_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class EtcdSettings:
    """Where the cluster's keys live: etcd endpoints, key prefix and optional etcd credentials.

    `retry_timeout_s` bounds every call until a `/config` has been read (then its retry_timeout
    applies). The password never appears in repr, logs or error messages.
    """

    hosts: tuple[tuple[str, int], ...]
    scope: str
    namespace: str = "service"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    retry_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.hosts:
            raise ValueError("etcd: at least one host is needed")
        if not self.scope or "/" in self.scope:
            raise ValueError(f"etcd: invalid scope {self.scope!r}")
        if (self.username is None) != (self.password is None):
            raise ValueError("etcd: username and password go together")

    @property
    def prefix(self) -> str:
        """`/<namespace>/<scope>/`, the prefix of every key of the cluster."""
        namespace = self.namespace.strip("/")
        return f"/{namespace}/{self.scope}/" if namespace else f"/{self.scope}/"


class LeaseNotFound(DcsError):
    """etcd answered that the lease is gone (expired or revoked): EtcdDcs turns it into a lost
    lock or a new lease; a DcsError subclass so that it can never escape as anything else."""


def prefix_end(prefix: bytes) -> bytes:
    """The range end that covers every key starting with `prefix`."""
    end = bytearray(prefix)
    for index in reversed(range(len(end))):
        if end[index] < 0xFF:
            end[index] += 1
            return bytes(end[: index + 1])
    return b"\0"


class _Endpoint:
    """One member's gRPC channel, stubs and (with etcd auth) token."""

    def __init__(self, host: str, port: int) -> None:
        self.label = f"{host}:{port}"
        self.channel: Any = grpc.insecure_channel(self.label, options=_CHANNEL_OPTIONS)
        self.kv: Any = etcdrpc.KVStub(self.channel)
        self.lease: Any = etcdrpc.LeaseStub(self.channel)
        self.watch: Any = etcdrpc.WatchStub(self.channel)
        self.auth: Any = etcdrpc.AuthStub(self.channel)
        self.token: str | None = None

    def close(self) -> None:
        self.channel.close()


class EtcdSession:
    """The connection to one etcd cluster, shared by all calls of one user (thread-safe).

    Each call gets a deadline of `retry_timeout_s`. Within it the endpoints are tried in turn,
    starting with the last one that answered; each attempt gets at least `MIN_ATTEMPT_S` (or what
    is left), so one paused member cannot use up the whole deadline. An endpoint fails when it
    does not answer, answers with a gRPC error, or answers with a raft term below the highest seen.
    """

    def __init__(self, settings: EtcdSettings, *, retry_timeout_s: float | None = None) -> None:
        self._settings = settings
        self._endpoints = [_Endpoint(host, port) for host, port in settings.hosts]
        self._lock = threading.Lock()
        self._current = 0
        self._highest_term = 0
        self.retry_timeout_s = (
            settings.retry_timeout_s if retry_timeout_s is None else retry_timeout_s
        )

    @property
    def highest_term(self) -> int:
        """The highest raft term any trusted answer carried."""
        with self._lock:
            return self._highest_term

    def accept_term(self, raft_term: int) -> bool:
        """Record an answer's raft term; False (do not trust it) when it is below the highest."""
        with self._lock:
            if raft_term < self._highest_term:
                return False
            self._highest_term = raft_term
            return True

    def close(self) -> None:
        """Close every channel (pending calls fail)."""
        for endpoint in self._endpoints:
            endpoint.close()

    # ------------------------------------------------------------------ unary calls

    def range(self, key: bytes, range_end: bytes = b"", *, what: str) -> Any:
        """A linearizable Range of `key` (or [key, range_end)); the RangeResponse."""
        request = etcdrpc.RangeRequest(key=key, range_end=range_end, serializable=False)
        return self.call(what, lambda ep, t, md: ep.kv.Range(request, timeout=t, metadata=md))

    def put(self, key: bytes, value: bytes, *, lease_id: int = 0, what: str) -> Any:
        """Put `key`; the PutResponse (raises LeaseNotFound when the lease is gone)."""
        request = etcdrpc.PutRequest(key=key, value=value, lease=lease_id)
        return self.call(what, lambda ep, t, md: ep.kv.Put(request, timeout=t, metadata=md))

    def delete(self, key: bytes, *, what: str) -> Any:
        """Delete `key` (absent is fine); the DeleteRangeResponse."""
        request = etcdrpc.DeleteRangeRequest(key=key)
        return self.call(what, lambda ep, t, md: ep.kv.DeleteRange(request, timeout=t, metadata=md))

    def txn(
        self,
        compare: Sequence[Any],
        success: Sequence[Any],
        failure: Sequence[Any] = (),
        *,
        what: str,
    ) -> Any:
        """A transaction (see the `cmp_*` and `op_*` helpers); the TxnResponse."""
        request = etcdrpc.TxnRequest(compare=compare, success=success, failure=failure)
        return self.call(what, lambda ep, t, md: ep.kv.Txn(request, timeout=t, metadata=md))

    def lease_grant(self, ttl_s: int, *, what: str) -> tuple[int, int]:
        """Grant a lease of `ttl_s`; (lease id, granted ttl in seconds).

        Raises:
            DcsError: also for a ttl etcd cannot grant (below 1 s, above its MaxLeaseTTL, or not
                an int64): defence in depth behind the configuration parser, so that a bad ttl
                is a DCS error for the loop and never an unexpected ValueError.
        """
        if isinstance(ttl_s, bool) or not isinstance(ttl_s, int):
            raise DcsError(f"etcd {what}: lease ttl {ttl_s!r} is not a whole number of seconds")
        if not 1 <= ttl_s <= ETCD_MAX_LEASE_TTL_S:
            raise DcsError(f"etcd {what}: lease ttl {ttl_s} s is not in 1..{ETCD_MAX_LEASE_TTL_S}")
        try:
            request = etcdrpc.LeaseGrantRequest(TTL=ttl_s)
        except (TypeError, ValueError, OverflowError) as exc:  # unreachable after the check above
            raise DcsError(f"etcd {what}: lease ttl {ttl_s} s refused ({exc})") from None
        answer = self.call(
            what, lambda ep, t, md: ep.lease.LeaseGrant(request, timeout=t, metadata=md)
        )
        return int(answer.ID), int(answer.TTL)

    def lease_keepalive(self, lease_id: int, *, what: str) -> int:
        """Refresh a lease once; its new ttl in seconds, 0 when the lease is gone."""
        answer = self.call(what, lambda ep, t, md: _keepalive_once(ep, lease_id, t, md))
        return max(0, int(answer.TTL))

    # ------------------------------------------------------------------ the retry loop

    def call(self, what: str, attempt: Callable[[_Endpoint, float, Any], Any]) -> Any:
        """Run `attempt(endpoint, timeout_s, metadata)` on the endpoints in turn until one gives a
        trusted answer or retry_timeout_s has passed (DcsError). The answer must have a header."""
        deadline = time.monotonic() + self.retry_timeout_s
        last_error = "no endpoint was tried"
        while True:
            for index, endpoint, tries_left in self._rotation():
                remaining_s = deadline - time.monotonic()
                if remaining_s <= 0:
                    break
                attempt_end = time.monotonic() + min(
                    remaining_s, max(MIN_ATTEMPT_S, remaining_s / tries_left)
                )
                try:
                    metadata = self._metadata(endpoint, attempt_end - time.monotonic())
                    timeout_s = max(0.001, attempt_end - time.monotonic())
                    answer = attempt(endpoint, timeout_s, metadata)
                except grpc.RpcError as exc:
                    last_error = self._rpc_failure(endpoint, exc, what)
                    continue
                if not self.accept_term(int(answer.header.raft_term)):
                    last_error = f"{endpoint.label}: stale member (raft term below the highest)"
                    continue
                with self._lock:
                    self._current = index
                return answer
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise DcsError(
                    f"etcd {what}: no trusted answer within {self.retry_timeout_s:g} s "
                    f"(last: {last_error})"
                )
            time.sleep(min(PASS_PAUSE_S, remaining_s))

    def _rotation(self) -> Iterator[tuple[int, _Endpoint, int]]:
        """Every endpoint once, starting with the last good one: (index, endpoint, tries left)."""
        with self._lock:
            start = self._current
        count = len(self._endpoints)
        for offset in range(count):
            index = (start + offset) % count
            yield index, self._endpoints[index], count - offset

    def _rpc_failure(self, endpoint: _Endpoint, exc: Any, what: str) -> str:
        """Classify a gRPC error: raise for final ones, else describe it (try the next member)."""
        code = exc.code()
        detail = f"{endpoint.label}: {code.name}: {exc.details()}"
        if code is grpc.StatusCode.NOT_FOUND and "lease" in str(exc.details()):
            raise LeaseNotFound(detail) from None
        if code is grpc.StatusCode.UNAUTHENTICATED:
            endpoint.token = None  # an expired token: authenticate again on the next attempt
        elif code in _FINAL_CODES:
            raise DcsError(f"etcd {what}: {detail}") from None
        return detail

    def _metadata(self, endpoint: _Endpoint, timeout_s: float) -> Any:
        """gRPC call metadata: the auth token when etcd auth is configured (fetched if needed)."""
        username, password = self._settings.username, self._settings.password
        if username is None or password is None:
            return None
        if endpoint.token is None:
            request = etcdrpc.AuthenticateRequest(name=username, password=password)
            try:
                answer = endpoint.auth.Authenticate(request, timeout=max(0.001, timeout_s))
                endpoint.token = str(answer.token)
            except grpc.RpcError as exc:
                if exc.code() is not grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                endpoint.token = ""  # etcd auth is not enabled: call without a token
        return (("token", endpoint.token),) if endpoint.token else None

    # ------------------------------------------------------------------ watch

    def watch_once(self, key: bytes, start_revision: int, timeout_s: float) -> bool:
        """Block until `key` changes at or after `start_revision` (0: from now), up to `timeout_s`.

        True on a change (or when etcd cancelled the watch, e.g. compacted: re-read to know);
        False when the time ran out. A failing endpoint is skipped after a short sleep, so this
        never spins and never raises.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            for _index, endpoint, _left in self._rotation():
                remaining_s = deadline - time.monotonic()
                if remaining_s <= 0:
                    return False
                outcome = self._watch_attempt(endpoint, key, start_revision, remaining_s)
                if outcome is not None:
                    return outcome
                time.sleep(min(WATCH_RETRY_PAUSE_S, max(0.0, deadline - time.monotonic())))

    def _watch_attempt(
        self, endpoint: _Endpoint, key: bytes, start_revision: int, timeout_s: float
    ) -> bool | None:
        """One watch stream: True changed, False timed out, None this endpoint failed."""
        end = time.monotonic() + timeout_s
        create = etcdrpc.WatchCreateRequest(key=key, start_revision=start_revision)
        request = etcdrpc.WatchRequest(create_request=create)
        try:
            metadata = self._metadata(endpoint, timeout_s) or ()
        except grpc.RpcError:
            return None
        # One request, then the client half-closes; etcd keeps the watch until we cancel the call.
        # "hasleader": a member without a raft leader refuses or cancels the watch.
        stream = endpoint.watch.Watch(
            iter([request]),
            timeout=max(0.001, end - time.monotonic()),
            metadata=(*metadata, ("hasleader", "true")),
        )
        try:
            return _first_watch_event(stream, self.accept_term)
        except grpc.RpcError as exc:
            # The server may end the stream first, with UNKNOWN "context deadline exceeded".
            if exc.code() is grpc.StatusCode.DEADLINE_EXCEEDED or time.monotonic() >= end - 0.05:
                return False
            if exc.code() is grpc.StatusCode.UNAUTHENTICATED:
                endpoint.token = None
            return None
        finally:
            stream.cancel()  # ends the gRPC call, and with it the watch on the server


def _first_watch_event(stream: Any, accept_term: Callable[[int], bool]) -> bool | None:
    """Read watch responses until an event (True); None for a stale member or a closed stream."""
    for answer in stream:
        if answer.created and not accept_term(int(answer.header.raft_term)):
            return None
        if answer.events or answer.canceled or answer.compact_revision:
            return True
    return None


def _keepalive_once(endpoint: _Endpoint, lease_id: int, timeout_s: float, metadata: Any) -> Any:
    """One LeaseKeepAlive round trip on a bidirectional stream, then close the stream."""
    request = etcdrpc.LeaseKeepAliveRequest(ID=lease_id)
    stream = endpoint.lease.LeaseKeepAlive(iter([request]), timeout=timeout_s, metadata=metadata)
    try:
        for answer in stream:
            return answer
        raise DcsError(f"etcd {endpoint.label}: lease keepalive stream closed without an answer")
    finally:
        stream.cancel()


# ---------------------------------------------------------------------- transaction helpers


def cmp_created(key: bytes, create_revision: int = 0) -> Any:
    """Compare: `key` was created at `create_revision` (0: the key does not exist)."""
    return etcdrpc.Compare(
        key=key,
        target=etcdrpc.Compare.CREATE,
        result=etcdrpc.Compare.EQUAL,
        create_revision=create_revision,
    )


def cmp_modified(key: bytes, mod_revision: int) -> Any:
    """Compare: `key` was last modified at `mod_revision` (0: the key does not exist)."""
    return etcdrpc.Compare(
        key=key, target=etcdrpc.Compare.MOD, result=etcdrpc.Compare.EQUAL, mod_revision=mod_revision
    )


def cmp_value(key: bytes, value: bytes) -> Any:
    """Compare: `key` holds `value` (false when the key does not exist)."""
    return etcdrpc.Compare(
        key=key, target=etcdrpc.Compare.VALUE, result=etcdrpc.Compare.EQUAL, value=value
    )


def op_put(key: bytes, value: bytes, lease_id: int = 0) -> Any:
    return etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(key=key, value=value, lease=lease_id))


def op_delete(key: bytes) -> Any:
    return etcdrpc.RequestOp(request_delete_range=etcdrpc.DeleteRangeRequest(key=key))


def op_get(key: bytes) -> Any:
    return etcdrpc.RequestOp(request_range=etcdrpc.RangeRequest(key=key))


def txn_kvs(answer: Any) -> list[Any]:
    """The key-values of every range operation in a TxnResponse."""
    out: list[Any] = []
    for response in answer.responses:
        if response.WhichOneof("response") == "response_range":
            out.extend(response.response_range.kvs)
    return out
