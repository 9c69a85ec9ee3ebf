# Safety rules: the leader key is taken only by an atomic create and kept only by a compare-and-set
# on the version the engine decided on (bug zoo 4), on a lease of ttl so it expires when the holder
# stops renewing; a failed compare is CAS_FAILED (demote at once, never infer leadership from a
# read: bug zoo 1) and a connectivity problem is a DcsError within retry_timeout (bug zoo 5). The
# lease is granted with ttl rounded up, so it never expires before the engine's timing rule
# (loop_wait + 2 * retry_timeout <= ttl) and the watchdog (ttl - safety_margin) assume it does.
# A leader key without a lease (never an agent's) is deleted only by a compare-and-set on the mod
# revision the engine saw unchanged for ttl, so any rewrite in between wins. The bug zoo:
# docs/patroni-rules.md §5.
"""The etcd v3 DCS of the real agent (pgha.ports.Dcs), Patroni-compatible key layout."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pgha.agent.etcd.admin import EtcdAdmin
from pgha.agent.etcd.codec import (
    CONFIG,
    FAILOVER,
    FAILSAFE,
    HISTORY,
    INITIALIZE,
    LEADER,
    MEMBERS,
    STATUS,
    SYNC,
    ConfigMemory,
    decode_cluster,
    decode_history_line,
    dumps,
    encode_member,
    encode_sync,
    history_line,
    history_lines,
    to_entries,
)
from pgha.agent.etcd.session import (
    EtcdSession,
    EtcdSettings,
    LeaseNotFound,
    cmp_created,
    cmp_modified,
    cmp_value,
    op_delete,
    op_get,
    op_put,
    prefix_end,
    txn_kvs,
)
from pgha.engine.config import ConfigError, DynamicConfig, parse_dynamic_config
from pgha.engine.values import (
    ClusterView,
    HistoryEntry,
    LockResult,
    MemberRole,
    PostgresState,
    Tags,
)
from pgha.ports import DcsError

__all__ = ["EtcdAdmin", "EtcdDcs", "EtcdSettings", "lease_ttl_s"]

HISTORY_ATTEMPTS = 3  # read-modify-write rounds of append_history before giving up


def lease_ttl_s(ttl_s: float) -> int:
    """The etcd lease ttl for a dynamic ttl: whole seconds, rounded up (never shorter).

    Raises:
        DcsError: `ttl_s` is not finite (the configuration parser refuses it first; defence in
            depth, so that no such value can raise out of the loop as a ValueError).
    """
    if not math.isfinite(ttl_s):
        raise DcsError(f"etcd lease: ttl {ttl_s!r} is not a finite number of seconds")
    return max(1, math.ceil(ttl_s))


@dataclass(frozen=True, slots=True, kw_only=True)
class _Lease:
    lease_id: int
    ttl_s: int


class EtcdDcs:
    """One node's view of, and writes to, the cluster's keys in etcd (pgha.ports.Dcs).

    Not thread-safe: the loop thread owns it (the REST API uses its own EtcdAdmin).
    """

    def __init__(
        self,
        settings: EtcdSettings,
        *,
        name: str,
        api_url: str,
        conn_url: str,
        tags: Tags,
        bootstrap_config: Mapping[str, Any],
        postgres_state: Callable[[], PostgresState],
        member_extras: Callable[[], Mapping[str, Any]] = dict,
    ) -> None:
        self._settings = settings
        self._name = name
        self._api_url = api_url
        self._conn_url = conn_url
        self._tags = tags
        self._bootstrap_config = dict(bootstrap_config)
        self._postgres_state = postgres_state
        self._member_extras = member_extras
        self._memory = _bootstrap_memory(self._bootstrap_config)
        self._session = EtcdSession(settings, retry_timeout_s=self._memory.config.retry_timeout_s)
        self._lease: _Lease | None = None
        self._leader_revision: int | None = None  # mod revision of our last write of `leader`
        self._read_revision: int | None = None
        self._api_urls: dict[str, str] = {}

    # ------------------------------------------------------------------ extras for the agent

    def last_config_error(self) -> str | None:
        """Why the latest `/config` read was rejected (the previous good one is in use)."""
        return self._memory.error

    def last_config_error_key(self) -> str | None:
        """The key the latest rejection names (`config` when the value is not a JSON object)."""
        return self._memory.error_key

    def raw_config_document(self) -> dict[str, Any]:
        """The last good `/config` as JSON (the bootstrap configuration until one was read)."""
        return dict(self._memory.document)

    @property
    def config(self) -> DynamicConfig:
        """The dynamic configuration in use (last good `/config`, else the bootstrap one)."""
        return self._memory.config

    @property
    def session(self) -> EtcdSession:
        return self._session

    def wait_for_leader_change(self, timeout_s: float) -> bool:
        """Block until `leader` changes after the last read_cluster, or `timeout_s` passes.

        True when it changed. A failing watch waits out the time (never spins, never raises).
        """
        start = 0 if self._read_revision is None else self._read_revision + 1
        return self._session.watch_once(self._key(LEADER), start, timeout_s)

    def close(self) -> None:
        """Close the connections (the lease is left to expire; release_lock first if needed)."""
        self._session.close()

    # ------------------------------------------------------------------ Dcs: reads

    def read_cluster(self) -> ClusterView:
        """One linearizable range read of the whole prefix: a consistent snapshot."""
        prefix = self._settings.prefix.encode()
        answer = self._session.range(prefix, prefix_end(prefix), what="read_cluster")
        entries = to_entries(answer.kvs, self._settings.prefix)
        view, self._memory = decode_cluster(entries, self._memory)
        self._session.retry_timeout_s = view.config.retry_timeout_s
        self._read_revision = int(answer.header.revision)
        self._api_urls = {member.name: member.api_url for member in view.members}
        return view

    # ------------------------------------------------------------------ Dcs: bootstrap keys

    def acquire_initialize(self) -> bool:
        """Create `initialize` = "" if absent (the bootstrap race); True if this node won."""
        key = self._key(INITIALIZE)
        answer = self._session.txn(
            [cmp_created(key)], [op_put(key, b"")], what="acquire_initialize"
        )
        return bool(answer.succeeded)

    def write_initialize(self, sysid: str) -> None:
        """`initialize` = the system identifier (bootstrap done)."""
        self._session.put(self._key(INITIALIZE), sysid.encode(), what="write_initialize")

    def delete_initialize(self) -> None:
        """Remove `initialize` (a failed bootstrap), so another node may try."""
        self._session.delete(self._key(INITIALIZE), what="delete_initialize")

    def write_config(self) -> None:
        """Write the bootstrap dynamic configuration to `/config`, only if the key is absent."""
        key = self._key(CONFIG)
        value = dumps(self._bootstrap_config)
        self._session.txn([cmp_created(key)], [op_put(key, value)], what="write_config")

    # ------------------------------------------------------------------ Dcs: the leader lock

    def acquire_lock(self) -> LockResult:
        """Create `leader` = my name on my lease if it does not exist."""
        key, me = self._key(LEADER), self._name.encode()
        lease_id = self._ensure_lease()
        try:
            answer = self._session.txn(
                [cmp_created(key)], [op_put(key, me, lease_id)], [op_get(key)], what="acquire_lock"
            )
        except LeaseNotFound:
            self._lease = None
            return LockResult.CAS_FAILED
        if answer.succeeded:
            self._leader_revision = int(answer.header.revision)
            return LockResult.OK
        # A retried create whose first attempt did apply finds the key already ours.
        for kv in txn_kvs(answer):
            if kv.value == me and int(kv.lease) == lease_id:
                self._leader_revision = int(kv.mod_revision)
                return LockResult.OK
        return LockResult.CAS_FAILED

    def renew_lock(self, version: int) -> LockResult:
        """Refresh my lease, then compare-and-set `leader` at `version` (and holding my name)."""
        key, me = self._key(LEADER), self._name.encode()
        lease_id = self._renew_lease()
        if lease_id is None:
            return LockResult.CAS_FAILED  # the lease expired: the key went with it
        try:
            answer = self._session.txn(
                [cmp_modified(key, version), cmp_value(key, me)],
                [op_put(key, me, lease_id)],
                what="renew_lock",
            )
        except LeaseNotFound:
            self._lease = None
            return LockResult.CAS_FAILED
        if not answer.succeeded:
            return LockResult.CAS_FAILED
        self._leader_revision = int(answer.header.revision)
        return LockResult.OK

    def release_lock(self, version: int | None) -> None:
        """Delete `leader` if it holds my name (at `version`, else as I last wrote it)."""
        key = self._key(LEADER)
        compare = [cmp_value(key, self._name.encode())]
        revision = self._leader_revision if version is None else version
        if revision is not None:
            compare.append(cmp_modified(key, revision))
        self._session.txn(compare, [op_delete(key)], what="release_lock")
        self._leader_revision = None

    def expire_leader_key(self, version: int) -> bool:
        """Delete `leader` if still at `version` (a key without a lease that nobody renewed);
        False when the compare-and-set lost (someone wrote the key since)."""
        key = self._key(LEADER)
        answer = self._session.txn(
            [cmp_modified(key, version)], [op_delete(key)], what="expire_leader_key"
        )
        return bool(answer.succeeded)

    # ------------------------------------------------------------------ Dcs: other keys

    def write_sync(
        self, leader: str | None, standbys: frozenset[str], quorum: int, version: int | None
    ) -> bool:
        """Compare-and-set `sync` at `version` (None: create); False when the CAS lost."""
        key = self._key(SYNC)
        compare = cmp_created(key) if version is None else cmp_modified(key, version)
        value = encode_sync(leader, standbys, quorum)
        answer = self._session.txn([compare], [op_put(key, value)], what="write_sync")
        return bool(answer.succeeded)

    def write_status(self, optime_lsn: int) -> None:
        """`status` = {"optime": lsn} (the leader's position, for maximum_lag_on_failover)."""
        self._session.put(self._key(STATUS), dumps({"optime": optime_lsn}), what="write_status")

    def write_failsafe(self, members: tuple[str, ...]) -> None:
        """`failsafe` = {name: api_url} (api urls from the last read; mine from my settings)."""
        urls = self._api_urls | {self._name: self._api_url}
        value = dumps({name: urls.get(name, "") for name in members})
        self._session.put(self._key(FAILSAFE), value, what="write_failsafe")

    def append_history(self, entry: HistoryEntry) -> None:
        """Append a line to `history` by compare-and-set; a timeline already there is kept."""
        key = self._key(HISTORY)
        for _attempt in range(HISTORY_ATTEMPTS):
            answer = self._session.range(key, what="append_history")
            current = answer.kvs[0] if answer.kvs else None
            lines = history_lines(None if current is None else current.value)
            known = (decode_history_line(line) for line in lines)
            if any(item is not None and item.timeline == entry.timeline for item in known):
                return
            compare = (
                cmp_created(key)
                if current is None
                else cmp_modified(key, int(current.mod_revision))
            )
            value = dumps([*lines, history_line(entry, time.time())])
            if self._session.txn([compare], [op_put(key, value)], what="append_history").succeeded:
                return
        raise DcsError("etcd append_history: the key kept changing under the compare-and-set")

    def clear_failover(self, version: int) -> bool:
        """Delete `failover` if still at `version`; False when the CAS lost (or it is gone)."""
        key = self._key(FAILOVER)
        answer = self._session.txn(
            [cmp_modified(key, version)], [op_delete(key)], what="clear_failover"
        )
        return bool(answer.succeeded)

    def update_member(self, role: MemberRole) -> None:
        """Publish `members/<me>` on my lease (refreshing it, or taking a new one if it expired)."""
        value = encode_member(
            role=role,
            pg=self._postgres_state(),
            api_url=self._api_url,
            conn_url=self._conn_url,
            tags=self._tags,
            extras=self._member_extras(),
        )
        key = self._key(MEMBERS + self._name)
        try:
            self._session.put(key, value, lease_id=self._ensure_lease(), what="update_member")
        except LeaseNotFound:
            self._lease = None
            self._session.put(key, value, lease_id=self._ensure_lease(), what="update_member")

    # ------------------------------------------------------------------ leases

    def _ensure_lease(self) -> int:
        """My lease, refreshed; a new one when there is none, it expired or the ttl changed."""
        lease_id = self._renew_lease()
        if lease_id is not None:
            return lease_id
        ttl_s = lease_ttl_s(self._memory.config.ttl_s)
        lease_id, _granted_s = self._session.lease_grant(ttl_s, what="lease_grant")
        self._lease = _Lease(lease_id=lease_id, ttl_s=ttl_s)
        return lease_id

    def _renew_lease(self) -> int | None:
        """Refresh my lease; None when it expired. No lease yet, or a changed ttl, grants one."""
        ttl_s = lease_ttl_s(self._memory.config.ttl_s)
        lease = self._lease
        if lease is None or lease.ttl_s != ttl_s:
            lease_id, _granted_s = self._session.lease_grant(ttl_s, what="lease_grant")
            self._lease = _Lease(lease_id=lease_id, ttl_s=ttl_s)
            return lease_id
        if self._session.lease_keepalive(lease.lease_id, what="lease_keepalive") > 0:
            return lease.lease_id
        self._lease = None
        return None

    def _key(self, name: str) -> bytes:
        return (self._settings.prefix + name).encode()


def _bootstrap_memory(raw: Mapping[str, Any]) -> ConfigMemory:
    """The bootstrap configuration, in use until `/config` is read."""
    try:
        return ConfigMemory(config=parse_dynamic_config(raw), document=dict(raw))
    except ConfigError as exc:
        return ConfigMemory(error=f"bootstrap config: {exc}")
