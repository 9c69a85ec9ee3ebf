# Safety rule: a malformed value in one key must never hide the others or crash the loop (a crash
# would stop lock renewal). Each key decodes on its own, and an exception in one (whatever it is)
# leaves that key as if unreadable: skipped, or for `/config`, the last good configuration kept and
# the error reported; for `/sync`, a bad value is read as "active with no electable standby", so it
# can never let an unsynchronised replica promote; a `/failover` that is no valid request is no
# request, and its version is passed on for the leader to delete it. The leader key says whether it
# has a lease (agents always write it on one). Versions are etcd mod revisions, so every write the
# engine makes can be a compare-and-set on the snapshot it decided on (bug zoo 4,
# docs/patroni-rules.md §5). No I/O.
"""Patroni-compatible JSON encoding and decoding of the cluster's etcd keys."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import pgha
from pgha.engine.config import ConfigError, DynamicConfig, parse_dynamic_config
from pgha.engine.values import (
    ClusterView,
    FailoverKey,
    HistoryEntry,
    LeaderKey,
    Member,
    MemberRole,
    PostgresState,
    SyncKey,
    Tags,
)

log = logging.getLogger(__name__)

INITIALIZE = "initialize"
LEADER = "leader"
MEMBERS = "members/"
CONFIG = "config"
SYNC = "sync"
FAILOVER = "failover"
HISTORY = "history"
STATUS = "status"
FAILSAFE = "failsafe"
HISTORY_REASON = "no recovery target specified"  # what PostgreSQL's history files usually say


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One etcd key under the cluster prefix: `key` is relative to the prefix."""

    key: str
    value: bytes
    mod_revision: int
    lease_id: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigMemory:
    """The last good `/config`: parsed, as raw JSON, and the error of the latest bad one (with
    the key it names: `config` itself when the value is not a JSON object)."""

    config: DynamicConfig = field(default_factory=DynamicConfig)
    document: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    error_key: str | None = None


# ---------------------------------------------------------------------- decoding


def to_entries(kvs: Iterable[Any], prefix: str) -> list[Entry]:
    """etcd KeyValue messages under `prefix` as Entries (keys relative to the prefix)."""
    out = []
    for kv in kvs:
        key = bytes(kv.key).decode("utf-8", errors="replace")
        if key.startswith(prefix):
            out.append(
                Entry(
                    key=key[len(prefix) :],
                    value=bytes(kv.value),
                    mod_revision=int(kv.mod_revision),
                    lease_id=int(kv.lease),
                )
            )
    return out


def decode_cluster(
    entries: Iterable[Entry], memory: ConfigMemory
) -> tuple[ClusterView, ConfigMemory]:
    """Build the ClusterView of one range read; also the updated config memory."""
    by_key = {entry.key: entry for entry in entries}
    config_entry = by_key.get(CONFIG)
    memory = absorb_config(config_entry, memory)
    failover_entry = by_key.get(FAILOVER)
    failover = _guarded(_failover, failover_entry, None)
    view = ClusterView(
        initialize=_guarded(_text, by_key.get(INITIALIZE), None),
        leader=_guarded(_leader, by_key.get(LEADER), None),
        members=tuple(
            member
            for key, entry in sorted(by_key.items())
            if key.startswith(MEMBERS)
            and (member := _guarded(decode_member, entry, None)) is not None
        ),
        failover=failover,
        sync=_sync_of(by_key.get(SYNC)),
        history=_guarded(_history, by_key.get(HISTORY), ()),
        status_optime_lsn=_guarded(_status, by_key.get(STATUS), None),
        failsafe=_guarded(_failsafe, by_key.get(FAILSAFE), None),
        config=memory.config,
        config_version=None if config_entry is None else config_entry.mod_revision,
        failover_invalid_version=(
            failover_entry.mod_revision if failover_entry is not None and failover is None else None
        ),
    )
    return view, memory


_T = TypeVar("_T")
_D = TypeVar("_D")


def _guarded(decode: Callable[[Entry], _T], entry: Entry | None, default: _D) -> _T | _D:
    """`decode(entry)`, or `default` when the entry is absent or decoding it raised anything.

    Defence in depth: the decoders below do not raise on any input known; an exception they
    did not foresee must still not stop the loop (nor hide the other keys).
    """
    if entry is None:
        return default
    try:
        return decode(entry)
    except Exception:  # any value an operator can write must be survivable
        log.warning("etcd key %r: unreadable value ignored", entry.key, exc_info=True)
        return default


def absorb_config(entry: Entry | None, memory: ConfigMemory) -> ConfigMemory:
    """A read `/config`: valid -> remembered; invalid -> previous kept, error noted; absent -> as
    before (the bootstrap configuration until the key is first written)."""
    if entry is None:
        return replace(memory, error=None, error_key=None)
    document = json_object(entry.value)
    if document is None:
        return replace(memory, error="config: not a JSON object", error_key=CONFIG)
    try:
        config = parse_dynamic_config(document)
    except ConfigError as exc:
        return replace(memory, error=f"config: {exc}", error_key=exc.key)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:  # defence in depth
        return replace(memory, error=f"config: invalid ({type(exc).__name__})", error_key=CONFIG)
    return ConfigMemory(config=config, document=document, error=None)


def json_object(value: bytes) -> dict[str, Any] | None:
    """The JSON object in `value`, or None when it is not one."""
    decoded = _json(value)
    return decoded if isinstance(decoded, dict) else None


def _json(value: bytes) -> Any:
    """The JSON value in `value`; None when it is none (too deep, too long a number, not UTF-8)."""
    try:
        return json.loads(value)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def _text(entry: Entry) -> str:
    return entry.value.decode("utf-8", errors="replace")


def _leader(entry: Entry) -> LeaderKey:
    # Any text is a holder's name; a name that is no member is still a holder (nobody else may
    # take the key). Without a lease (lease 0) it is no agent's: see LeaderKey.
    return LeaderKey(holder=_text(entry), version=entry.mod_revision, leased=entry.lease_id != 0)


_DECIMAL = re.compile(r"-?[0-9]+")


def _int(value: object) -> int | None:
    """An int from JSON (ints only, or a decimal string of ASCII digits); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _DECIMAL.fullmatch(text := value.strip()):
        try:
            return int(text)
        except ValueError:  # more digits than Python converts
            return None
    return None


def _bool(value: object, default: bool) -> bool:
    """Patroni-style boolean tag: true/false, or the strings on/off, yes/no, true/false, 1/0."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "on", "yes", "1"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"false", "off", "no", "0"}:
        return False
    return default


def decode_tags(raw: object) -> Tags:
    """Member tags; an unreadable tag keeps its default."""
    if not isinstance(raw, dict):
        return Tags()
    priority = _int(raw.get("failover_priority"))
    replicatefrom = raw.get("replicatefrom")
    return Tags(
        nofailover=_bool(raw.get("nofailover"), False),
        failover_priority=1 if priority is None else priority,
        noloadbalance=_bool(raw.get("noloadbalance"), False),
        clonefrom=_bool(raw.get("clonefrom"), False),
        replicatefrom=replicatefrom if isinstance(replicatefrom, str) and replicatefrom else None,
        nosync=_bool(raw.get("nosync"), False),
        nostream=_bool(raw.get("nostream"), False),
    )


_ROLES = {
    "primary": MemberRole.PRIMARY,
    "master": MemberRole.PRIMARY,
    "standby_leader": MemberRole.PRIMARY,
    "replica": MemberRole.REPLICA,
    "uninitialized": MemberRole.UNINITIALIZED,
}


def decode_member(entry: Entry) -> Member | None:
    """One `members/<name>` key; None when its value is not a JSON object."""
    document = json_object(entry.value)
    name = entry.key[len(MEMBERS) :]
    if document is None or not name:
        return None
    role = document.get("role")
    return Member(
        name=name,
        api_url=_str(document.get("api_url")),
        conn_url=_str(document.get("conn_url")),
        role=_ROLES.get(role, MemberRole.REPLICA) if isinstance(role, str) else MemberRole.REPLICA,
        running=document.get("state") == "running",
        timeline=_int(document.get("timeline")),
        wal_lsn=_int(document.get("xlog_location")),
        tags=decode_tags(document.get("tags")),
        checkpoint_after_promote_pending=document.get("checkpoint_after_promote") is False,
    )


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _optional_name(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _failover(entry: Entry) -> FailoverKey | None:
    """A valid request; None when the value is none (decode_cluster passes its version on).

    Valid: a JSON object naming a leader or a candidate (strings), with a readable schedule if
    any. Patroni would read `{}` or `[]` as "switch over to anyone"; pgha never writes that, and
    garbage must not move the primary, so it is no request.
    """
    document = json_object(entry.value)
    if document is None:
        return None
    leader, candidate = document.get("leader"), document.get("member")
    if not all(value is None or isinstance(value, str) for value in (leader, candidate)):
        return None
    if not (leader or candidate):
        return None
    scheduled = document.get("scheduled_at")
    scheduled_at_wall = None
    if scheduled is not None:
        scheduled_at_wall = parse_timestamp(scheduled)
        if scheduled_at_wall is None:
            return None  # an unreadable schedule must not turn into "now"
    return FailoverKey(
        leader=_optional_name(leader),
        candidate=_optional_name(candidate),
        scheduled_at_wall=scheduled_at_wall,
        version=entry.mod_revision,
    )


def parse_timestamp(value: object) -> float | None:
    """Epoch seconds of an ISO-8601 timestamp with a timezone; None otherwise."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
        return None if moment.tzinfo is None else moment.timestamp()
    except (ValueError, OverflowError, OSError):
        return None


def _sync_of(entry: Entry | None) -> SyncKey:
    if entry is None:
        return SyncKey()
    return _guarded(_sync, entry, SyncKey(leader="", version=entry.mod_revision))


def _sync(entry: Entry) -> SyncKey:
    document = json_object(entry.value)
    blocked = SyncKey(leader="", version=entry.mod_revision)  # see the module comment
    if document is None:
        return blocked
    leader, quorum = document.get("leader"), document.get("quorum")
    names = _names(document.get("sync_standby"))
    count = 0 if quorum is None else _int(quorum)
    if names is None or count is None or (leader is not None and not isinstance(leader, str)):
        return blocked
    return SyncKey(leader=leader or None, standbys=names, quorum=count, version=entry.mod_revision)


def _names(value: object) -> frozenset[str] | None:
    """`"a,b"` (Patroni), a list of names, or null; None when it is none of these."""
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(name.strip() for name in value.split(",") if name.strip())
    if isinstance(value, list) and all(isinstance(name, str) for name in value):
        return frozenset(value)
    return None


def _history(entry: Entry) -> tuple[HistoryEntry, ...]:
    lines = _json(entry.value)
    if not isinstance(lines, list):
        return ()
    out = []
    for line in lines:
        item = decode_history_line(line)
        if item is not None:
            out.append(item)
    return tuple(out)


def decode_history_line(line: object) -> HistoryEntry | None:
    """`[timeline, switch_lsn, reason, timestamp, new_leader]`; None when unreadable."""
    if not isinstance(line, list) or len(line) < 2:
        return None
    timeline, switch_lsn = _int(line[0]), _int(line[1])
    if timeline is None or switch_lsn is None:
        return None
    new_leader = _optional_name(line[4]) if len(line) > 4 else None
    return HistoryEntry(timeline=timeline, switch_lsn=switch_lsn, new_leader=new_leader)


def _status(entry: Entry) -> int | None:
    document = json_object(entry.value)
    return None if document is None else _int(document.get("optime"))


def _failsafe(entry: Entry) -> tuple[str, ...] | None:
    document = json_object(entry.value)
    return None if document is None else tuple(str(name) for name in document)


# ---------------------------------------------------------------------- encoding


def dumps(value: object) -> bytes:
    """Compact JSON, as bytes."""
    return json.dumps(value, separators=(",", ":")).encode()


def encode_tags(tags: Tags) -> dict[str, Any]:
    """Tags as Patroni publishes them: only those that differ from the default."""
    defaults = Tags()
    out: dict[str, Any] = {}
    for name in (
        "nofailover",
        "failover_priority",
        "noloadbalance",
        "clonefrom",
        "nosync",
        "nostream",
        "replicatefrom",
    ):
        value = getattr(tags, name)
        if value != getattr(defaults, name):
            out[name] = value
    return out


def encode_member(
    *,
    role: MemberRole,
    pg: PostgresState,
    api_url: str,
    conn_url: str,
    tags: Tags,
    extras: Mapping[str, Any] | None = None,
) -> bytes:
    """The `members/<name>` value (`extras`: more fields, e.g. `pending_restart`)."""
    document: dict[str, Any] = {
        "conn_url": conn_url,
        "api_url": api_url,
        "state": pg.run.value,
        "role": role.value,
        "version": pgha.__version__,
    }
    if pg.data_present:
        document["xlog_location"] = pg.wal_lsn
    if pg.timeline is not None:
        document["timeline"] = pg.timeline
    tag_document = encode_tags(tags)
    if tag_document:
        document["tags"] = tag_document
    document.update(extras or {})
    return dumps(document)


def encode_sync(leader: str | None, standbys: frozenset[str], quorum: int) -> bytes:
    """The `sync` value: `sync_standby` as Patroni writes it ("a,b", or null when empty)."""
    return dumps(
        {"leader": leader, "sync_standby": ",".join(sorted(standbys)) or None, "quorum": quorum}
    )


def encode_failover(
    *, leader: str | None, candidate: str | None, scheduled_at_wall: float | None
) -> bytes:
    """The `failover` value; `scheduled_at` as ISO-8601 in UTC."""
    document: dict[str, Any] = {}
    if leader is not None:
        document["leader"] = leader
    if candidate is not None:
        document["member"] = candidate
    if scheduled_at_wall is not None:
        document["scheduled_at"] = datetime.fromtimestamp(scheduled_at_wall, tz=UTC).isoformat()
    return dumps(document)


def history_lines(value: bytes | None) -> list[Any]:
    """The raw lines of a `history` value (an unreadable value counts as empty)."""
    lines = None if value is None else _json(value)
    return lines if isinstance(lines, list) else []


def history_line(entry: HistoryEntry, now_wall: float) -> list[Any]:
    """`[timeline, switch_lsn, reason, timestamp, new_leader]` as Patroni writes it."""
    stamp = datetime.fromtimestamp(now_wall, tz=UTC).isoformat()
    return [entry.timeline, entry.switch_lsn, HISTORY_REASON, stamp, entry.new_leader]
