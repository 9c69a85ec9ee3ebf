# Safety rule: operators change the cluster only through `/config` (a compare-and-set on the
# version they read, so two concurrent edits cannot silently overwrite each other) and `/failover`;
# never the leader key. This object has its own etcd session (REST API thread, `pgha ctl`), so an
# operator request can never reorder or block the loop's own DCS writes.
"""Operator access to the cluster's keys in etcd (pgha.agent.admin.ClusterAdmin)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pgha.agent.etcd.codec import (
    CONFIG,
    FAILOVER,
    MEMBERS,
    ConfigMemory,
    decode_cluster,
    dumps,
    encode_failover,
    json_object,
    to_entries,
)
from pgha.agent.etcd.session import (
    EtcdSession,
    EtcdSettings,
    cmp_created,
    cmp_modified,
    op_put,
    prefix_end,
)
from pgha.engine.values import ClusterView


class EtcdAdmin:
    """Operator-level reads and writes of the cluster's keys; every method may raise DcsError.

    Thread-safe (the REST API serves requests from several threads). Calls are bounded by the
    settings' retry_timeout_s until a `/config` has been read, then by its retry_timeout.
    """

    def __init__(self, settings: EtcdSettings) -> None:
        self._settings = settings
        self._session = EtcdSession(settings)
        self._memory = ConfigMemory()

    @property
    def session(self) -> EtcdSession:
        return self._session

    def close(self) -> None:
        self._session.close()

    def cluster(self) -> ClusterView:
        """One consistent (linearizable, single range) read of every key."""
        prefix = self._settings.prefix.encode()
        answer = self._session.range(prefix, prefix_end(prefix), what="cluster")
        view, self._memory = decode_cluster(
            to_entries(answer.kvs, self._settings.prefix), self._memory
        )
        self._session.retry_timeout_s = view.config.retry_timeout_s
        return view

    def last_config_error(self) -> str | None:
        """Why the latest `/config` read by cluster() was rejected, if it was."""
        return self._memory.error

    def member_documents(self) -> dict[str, dict[str, Any]]:
        """Every `members/<name>` JSON object, by name (unreadable values are left out)."""
        prefix = self._settings.prefix + MEMBERS
        start = prefix.encode()
        answer = self._session.range(start, prefix_end(start), what="member_documents")
        out: dict[str, dict[str, Any]] = {}
        for entry in to_entries(answer.kvs, prefix):
            document = json_object(entry.value)
            if document is not None and entry.key:
                out[entry.key] = document
        return out

    def raw_config(self) -> tuple[dict[str, Any], int | None]:
        """`/config` as JSON and its version; ({}, None) when absent, ({}, version) when the
        value is not a JSON object (so a replace_config can still repair it)."""
        answer = self._session.range(self._key(CONFIG), what="raw_config")
        if not answer.kvs:
            return {}, None
        kv = answer.kvs[0]
        return json_object(bytes(kv.value)) or {}, int(kv.mod_revision)

    def replace_config(self, raw: Mapping[str, Any], version: int | None) -> bool:
        """Compare-and-set `/config` at `version` (None: only if absent); False when it lost.

        The document is written as given: validating it is the caller's job.
        """
        key = self._key(CONFIG)
        compare = cmp_created(key) if version is None else cmp_modified(key, version)
        answer = self._session.txn(
            [compare], [op_put(key, dumps(dict(raw)))], what="replace_config"
        )
        return bool(answer.succeeded)

    def write_failover(
        self, *, leader: str | None, candidate: str | None, scheduled_at_wall: float | None
    ) -> None:
        """Write `/failover` (a switchover when `leader` is set; `scheduled_at` in UTC)."""
        value = encode_failover(
            leader=leader, candidate=candidate, scheduled_at_wall=scheduled_at_wall
        )
        self._session.put(self._key(FAILOVER), value, what="write_failover")

    def delete_failover(self) -> None:
        """Remove `/failover` (absent is fine)."""
        self._session.delete(self._key(FAILOVER), what="delete_failover")

    def _key(self, name: str) -> bytes:
        return (self._settings.prefix + name).encode()
