# The agent's DCS port in the simulator: an etcd v3 client on one database host. Every call goes to
# one etcd member over the simulated network; a member that does not answer in time is left for
# the next one, and the whole call gives up with DcsError when retry_timeout has passed
# (docs/patroni-rules.md bug zoo 5: no DCS call may hang forever). The client remembers the highest
# raft term it has seen and does not trust an answer from a member with a lower one (bug zoo 12,
# Patroni 4.0.6). The leader key and the member key share one lease of ttl, as with Patroni's etcd3
# backend; the leader key is taken by an atomic create and renewed by a compare-and-set on its mod
# revision. The `config` key normally holds a parsed DynamicConfig; anything else (a JSON document
# an operator or a fault wrote) goes through the engine's parser, and a bad value keeps the last
# good configuration, exactly as the real agent does (pgha/agent/etcd/codec.py `absorb_config`):
# never a crash. Any other key may hold a raw value, as `etcdctl put` writes it (bytes, or anything
# that is not what the simulated agents write there): it is decoded by the real agent's codec,
# garbage included. A leader key written without a lease reads as unleased, as in etcd.
"""The simulated etcd client: the engine's DCS port as SimPy generators."""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Mapping
from dataclasses import replace
from functools import partial
from typing import Any

import simpy

from pgha.agent.etcd.codec import ConfigMemory, decode_cluster, json_object
from pgha.agent.etcd.codec import Entry as RawEntry
from pgha.engine.config import ConfigError, DynamicConfig, parse_dynamic_config
from pgha.engine.values import (
    ClusterView,
    FailoverKey,
    HistoryEntry,
    LeaderKey,
    LockResult,
    Member,
    SyncKey,
)
from pgha.ports import DcsError
from sim.etcd import CompareFailed, Entry, EtcdCluster, Snapshot
from sim.net import Network, Unreachable
from sim.world import World

Gen = Generator[simpy.Event, Any, Any]
ATTEMPT_S = 2.0  # one request to one member; then try the next member


def config_of(value: object, last_good: DynamicConfig) -> tuple[DynamicConfig, str | None, str]:
    """The configuration a `config` value gives: (config, error or None, key the error names).

    A DynamicConfig is used as it is; a mapping is parsed by the engine's parser; anything else,
    or a mapping the parser refuses, keeps `last_good`.
    """
    if isinstance(value, DynamicConfig):
        return value, None, ""
    if isinstance(value, bytes):
        value = json_object(value)
    if not isinstance(value, Mapping):
        return last_good, "config: not a JSON object", "config"
    try:
        return parse_dynamic_config(value), None, ""
    except ConfigError as exc:
        return last_good, f"config: {exc}", exc.key


def view_of(
    snapshot: Snapshot, fallback_config: DynamicConfig, last_good: DynamicConfig | None = None
) -> ClusterView:
    """The engine's ClusterView from one read of the key space.

    `fallback_config` is used while there is no `config` key; `last_good` (default: the fallback)
    when the key holds a value the engine's parser refuses. Raw bytes in any key but `config`
    are decoded by the real agent's codec.
    """
    kv = snapshot.kv
    raw = {k: e for k, e in kv.items() if _is_raw(k, e.value)}
    if not raw:
        return _native_view(kv, fallback_config, last_good)
    native = {k: e for k, e in kv.items() if k not in raw}
    return _with_raw(_native_view(native, fallback_config, last_good), raw)


# The type each key holds when the simulated agents write it; anything else is a raw value.
_NATIVE: dict[str, type] = {
    "initialize": str,
    "leader": str,
    "failover": FailoverKey,
    "sync": SyncKey,
    "history": tuple,
    "status": int,
    "failsafe": tuple,
}


def _is_raw(key: str, value: object) -> bool:
    # `config` has its own reader (config_of); keys pgha does not read are ignored. Exact types:
    # this runs for every key of every read.
    native = _NATIVE.get(key)
    if native is None:
        if not key.startswith("members/"):
            return False
        native = Member
    return type(value) is not native


def _raw_bytes(value: object) -> bytes:
    # What etcd would hold: bytes as they are, text as UTF-8, anything else as JSON.
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    try:
        return json.dumps(value, default=str).encode()
    except (TypeError, ValueError, RecursionError):
        return str(value).encode()


# The ClusterView fields each key decodes into (members/<name> are merged separately).
_FIELDS = {
    "initialize": ("initialize",),
    "leader": ("leader",),
    "failover": ("failover", "failover_invalid_version"),
    "sync": ("sync",),
    "history": ("history",),
    "status": ("status_optime_lsn",),
    "failsafe": ("failsafe",),
}


def _with_raw(view: ClusterView, raw: Mapping[str, Entry]) -> ClusterView:
    # Raw values as etcdctl writes them, decoded exactly as the real agent decodes them.
    entries = [
        RawEntry(key=k, value=_raw_bytes(e.value), mod_revision=e.mod_rev, lease_id=e.lease or 0)
        for k, e in raw.items()
    ]
    decoded, _ = decode_cluster(entries, ConfigMemory())
    changes: dict[str, Any] = {f: getattr(decoded, f) for k in raw for f in _FIELDS.get(k, ())}
    members = sorted((*view.members, *decoded.members), key=_name)
    return replace(view, members=tuple(members), **changes)


def _native_view(
    kv: Mapping[str, Entry], fallback_config: DynamicConfig, last_good: DynamicConfig | None
) -> ClusterView:
    leader = kv.get("leader")
    failover = kv.get("failover")
    sync = kv.get("sync")
    config = kv.get("config")
    members = sorted((e.value for k, e in kv.items() if k.startswith("members/")), key=_name)
    return ClusterView(
        initialize=kv["initialize"].value if "initialize" in kv else None,
        leader=(
            None
            if leader is None
            else LeaderKey(
                holder=leader.value, version=leader.mod_rev, leased=leader.lease is not None
            )
        ),
        members=tuple(members),
        failover=None if failover is None else replace(failover.value, version=failover.mod_rev),
        sync=SyncKey() if sync is None else replace(sync.value, version=sync.mod_rev),
        history=kv["history"].value if "history" in kv else (),
        status_optime_lsn=kv["status"].value if "status" in kv else None,
        failsafe=kv["failsafe"].value if "failsafe" in kv else None,
        config=(
            fallback_config
            if config is None
            else config_of(config.value, last_good or fallback_config)[0]
        ),
        config_version=None if config is None else config.mod_rev,
    )


def _name(member: Member) -> str:
    return member.name


def _history_lines(entry: Entry) -> tuple[HistoryEntry, ...]:
    # A raw value (written by hand) is read as the agent reads it: unreadable lines dropped.
    if _is_raw("history", entry.value):
        return _with_raw(ClusterView(), {"history": entry}).history
    lines: tuple[HistoryEntry, ...] = entry.value
    return lines


def _deliver(watch: simpy.Event) -> None:
    if not watch.triggered:
        watch.succeed()


class SimDcs:
    """One host's etcd client: requests with a deadline, endpoint rotation, term tracking."""

    def __init__(
        self,
        world: World,
        net: Network,
        cluster: EtcdCluster,
        host: str,
        *,
        bootstrap_config: DynamicConfig,
        linearizable: bool = True,
        trust_lower_terms: bool = False,
        unbounded_retries: bool = False,
    ) -> None:
        self.world, self.net, self.cluster, self.host = world, net, cluster, host
        self.env = world.env
        self.endpoints = sorted(cluster.members)
        self._endpoint = world.rng(f"dcs/{host}").randrange(len(self.endpoints))
        self.bootstrap_config = bootstrap_config
        self.config = bootstrap_config  # the latest dynamic config seen: ttl and retry_timeout
        self.config_error: str | None = None  # why the latest `config` read was refused
        # The safe client reads linearizably, trusts no member behind the highest raft term it
        # has seen, and gives up at retry_timeout. The bug-zoo variants switch these off.
        self.linearizable = linearizable
        self.trust_lower_terms = trust_lower_terms
        self.unbounded_retries = unbounded_retries
        self.max_term = 0
        self.lease: int | None = None
        self.lease_ttl_s = 0.0  # the ttl `lease` was granted with
        self._watch: simpy.Event | None = None
        self._read_revision = 0  # the revision of our latest read: a watch starts after it
        cluster.key_watchers.append(self._key_changed)

    # ---------------------------------------------------------------- plumbing

    @property
    def member(self) -> str:
        return self.endpoints[self._endpoint]

    def _rotate(self) -> None:
        self._endpoint = (self._endpoint + 1) % len(self.endpoints)

    def _request(self, serve: Callable[[str, float], Gen]) -> Gen:
        # Try members in turn until one answers with a term we can trust, or retry_timeout passes.
        deadline = self.env.now + self.config.retry_timeout_s
        while self.env.now < deadline or self.unbounded_retries:
            member = self.member
            timeout = (
                ATTEMPT_S if self.unbounded_retries else min(ATTEMPT_S, deadline - self.env.now)
            )
            try:
                result, term = yield from self.net.call(
                    self.host, member, partial(serve, member), timeout
                )
            except Unreachable:
                self._rotate()
                continue
            if term < self.max_term and not self.trust_lower_terms:
                self._rotate()  # a stale member (bug zoo 12): ask another
                continue
            self.max_term = term
            return result
        raise DcsError(f"{self.host}: etcd did not answer within retry_timeout")

    def _write(self, op: Callable[[EtcdCluster], Any]) -> Gen:
        # Plain functions that return the generators (not generators delegating to them): every
        # level of `yield from` costs on each resume, and writes are most of the DCS traffic.
        cluster = self.cluster
        return self._request(lambda member, deadline: cluster.serve_write(member, op, deadline))

    # ---------------------------------------------------------------- reads and watches

    def read_cluster(self) -> Gen:
        def serve(member: str, deadline: float) -> Gen:
            cluster, linearizable = self.cluster, self.linearizable
            snap = yield from cluster.serve_read(member, deadline, linearizable=linearizable)
            return snap, snap.term

        snapshot = yield from self._request(serve)
        self._read_revision = snapshot.revision
        view = view_of(snapshot, self.bootstrap_config, self.config)
        self.config = view.config
        self._note_config(snapshot)
        return view

    def _note_config(self, snapshot: Snapshot) -> None:
        # A refused `config` is recorded once per distinct error, as the real agent does.
        entry = snapshot.kv.get("config")
        error, key = (None, "") if entry is None else config_of(entry.value, self.config)[1:]
        if error is not None and error != self.config_error:
            self.world.record("config_rejected", node=self.host, key=key, error=error)
        self.config_error = error

    def read_view(self) -> Gen:
        """One read for the REST API: the same view, but the loop's own read still decides
        where its watch starts (a REST request does not move the agent's watch index)."""

        def serve(member: str, deadline: float) -> Gen:
            cluster, linearizable = self.cluster, self.linearizable
            snap = yield from cluster.serve_read(member, deadline, linearizable=linearizable)
            return snap, snap.term

        snapshot = yield from self._request(serve)
        return view_of(snapshot, self.bootstrap_config, self.config)

    def watch(self) -> simpy.Event:
        """An event that fires when the leader key changes after our latest read.

        Like Patroni's watch from the read's index: a change between the read and the start of
        the sleep (the lease ran out while the agent was deciding) fires it at once.
        """
        watch = self._watch = self.env.event()
        if self.cluster.leader_key_rev > self._read_revision:
            self._key_changed("leader")
        return watch

    def _key_changed(self, key: str) -> None:
        watch = self._watch
        if key != "leader" or watch is None or watch.triggered:
            return
        member = self.member
        delay = self.net.delay(member, self.host)
        if self.cluster.current(member) and delay is not None:
            timer = self.env.timeout(delay)  # a timer with a callback: no process per delivery
            timer.callbacks.append(lambda _: _deliver(watch))

    # ---------------------------------------------------------------- leases

    def _lease(self, cluster: EtcdCluster) -> int:
        # Our lease, kept alive; a new one if it expired (its keys are gone with it) or the ttl
        # changed (as the agent does: pgha/agent/etcd/dcs.py `_renew_lease`).
        ttl_s = self.config.ttl_s
        if self.lease is None or self.lease_ttl_s != ttl_s or not cluster.keepalive(self.lease):
            self.lease, self.lease_ttl_s = cluster.grant(ttl_s), ttl_s
        return self.lease

    # ---------------------------------------------------------------- the port's operations

    def acquire_initialize(self) -> Gen:
        def op(c: EtcdCluster) -> bool:
            if "initialize" in c.kv:
                return False
            c.put("initialize", "")
            return True

        return (yield from self._write(op))

    def write_initialize(self, sysid: str) -> Gen:
        yield from self._write(lambda c: c.put("initialize", sysid))

    def delete_initialize(self) -> Gen:
        yield from self._write(lambda c: c.delete("initialize"))

    def write_config(self) -> Gen:
        def op(c: EtcdCluster) -> None:
            if "config" not in c.kv:
                c.put("config", self.bootstrap_config)

        yield from self._write(op)

    def acquire_lock(self) -> Gen:
        def op(c: EtcdCluster) -> LockResult:
            if "leader" in c.kv:
                return LockResult.CAS_FAILED
            c.put("leader", self.host, self._lease(c))
            return LockResult.OK

        try:
            return (yield from self._write(op))
        except DcsError:
            return LockResult.DCS_ERROR

    def renew_lock(self, version: int) -> Gen:
        def op(c: EtcdCluster) -> LockResult:
            entry = c.kv.get("leader")
            if entry is None or entry.mod_rev != version or entry.value != self.host:
                return LockResult.CAS_FAILED
            lease = self.lease
            if lease is None or entry.lease not in (lease, None):
                return LockResult.CAS_FAILED
            if self.lease_ttl_s != self.config.ttl_s:
                lease = self._lease(c)  # a changed ttl: the key moves to a new lease
            elif not c.keepalive(lease):
                return LockResult.CAS_FAILED
            c.put("leader", self.host, lease)
            return LockResult.OK

        try:
            return (yield from self._write(op))
        except DcsError:
            return LockResult.DCS_ERROR

    def release_lock(self, version: int | None) -> Gen:
        def op(c: EtcdCluster) -> None:
            entry = c.kv.get("leader")
            mine = entry is not None and entry.value == self.host
            if mine and (version is None or entry.mod_rev == version):  # type: ignore[union-attr]
                c.delete("leader")

        yield from self._write(op)

    def expire_leader_key(self, version: int) -> Gen:
        def op(c: EtcdCluster) -> bool:
            entry = c.kv.get("leader")
            return entry is not None and entry.mod_rev == version and c.delete("leader")

        return (yield from self._write(op))

    def write_sync(
        self, leader: str | None, standbys: frozenset[str], quorum: int, version: int | None
    ) -> Gen:
        value = SyncKey(leader=leader, standbys=standbys, quorum=quorum)

        def op(c: EtcdCluster) -> bool:
            entry = c.kv.get("sync")
            if (entry.mod_rev if entry is not None else None) != version:
                return False
            c.put("sync", value)
            return True

        return (yield from self._write(op))

    def write_status(self, optime_lsn: int) -> Gen:
        yield from self._write(lambda c: c.put("status", optime_lsn))

    def write_failsafe(self, members: tuple[str, ...]) -> Gen:
        yield from self._write(lambda c: c.put("failsafe", members))

    def append_history(self, entry: HistoryEntry) -> Gen:
        def op(c: EtcdCluster) -> None:
            old = c.kv.get("history")
            lines: tuple[HistoryEntry, ...] = () if old is None else _history_lines(old)
            if all(line.timeline != entry.timeline for line in lines):
                c.put("history", (*lines, entry))

        yield from self._write(op)

    def clear_failover(self, version: int) -> Gen:
        def op(c: EtcdCluster) -> bool:
            entry = c.kv.get("failover")
            if entry is None or entry.mod_rev != version:
                return False
            return c.delete("failover")

        return (yield from self._write(op))

    def write_failover(self, key: FailoverKey) -> Gen:
        """Operator: write the failover key (switchover or failover), as patronictl does."""
        yield from self._write(lambda c: c.put("failover", key))

    def transact(self, op: Callable[[EtcdCluster], Any]) -> Gen:
        """One raw transaction on this connection, for the REST API's `/config` writes (read,
        then compare-and-set): `op` runs at the etcd leader, as the agent's own writes do."""
        return (yield from self._write(op))

    def update_member(self, member: Member) -> Gen:
        yield from self._write(lambda c: c.put(f"members/{member.name}", member, self._lease(c)))


__all__ = ["CompareFailed", "SimDcs", "view_of"]
