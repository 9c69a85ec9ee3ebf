# Safety rule: the leader must learn that it lost the lock before the lock expires for everyone
# else. A leader renews at most loop_wait after its last renewal, and each DCS call may take
# retry_timeout, so `loop_wait + 2 * retry_timeout <= ttl` must hold (Patroni
# `Config._validate_and_adjust_timeouts`, docs/patroni-rules.md §3). The watchdog must fire before
# the lock expires: timeout = ttl - safety_margin (or ttl // 2 when safety_margin is -1), and it is
# unusable when that is shorter than loop_wait (docs/patroni-rules.md §2.9). Values here are parsed
# once and then frozen.
# Every number is bounded from below *and* above, and must be finite: one value the DCS client
# cannot use (a ttl above etcd's maximum lease, or one that does not fit etcd's int64) would make
# every agent's lease grant fail at once, so such a value must be refused at every door, and an
# agent that reads one from the DCS keeps its last good configuration.
"""Dynamic (cluster-wide) and local (per-node) configuration as frozen values."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

# Patroni silently raises ttl to 20 s; pgha accepts down to 3 s, where the timing rule still leaves
# loop_wait >= 1 s and retry_timeout >= 1 s, and the watchdog keeps a short ttl safe.
MIN_TTL_S = 3.0
MIN_LOOP_WAIT_S = 1.0
MIN_RETRY_TIMEOUT_S = 1.0
# etcd 3.4's largest lease (`lease.MaxLeaseTTL`, 9e9 s): a grant above it fails with "etcdserver:
# too large lease TTL", so no ttl may reach it.
ETCD_MAX_LEASE_TTL_S = 9_000_000_000
# The documented cap, far below etcd's: a primary whose machine dies is replaced about ttl later,
# so an hour is already no high availability at all; it also keeps the watchdog timeout
# (ttl - safety_margin) within the 16-bit seconds of the Linux watchdog API (65535).
MAX_TTL_S = 3600.0
# loop_wait and retry_timeout are further bounded by ttl through the timing rule (adjusted, not
# refused, as Patroni does); their own cap only keeps the arithmetic finite.
MAX_LOOP_WAIT_S = MAX_TTL_S
MAX_RETRY_TIMEOUT_S = MAX_TTL_S
# A primary that cannot start for a day is not coming back; beyond that the value is a typo.
MAX_PRIMARY_START_TIMEOUT_S = 86400.0
# WAL positions are 64-bit; a lag bound at int64's maximum already means "no bound", and larger
# integers do not fit etcd clients in other languages (or JSON readers that use doubles exactly).
MAX_LAG_B = 2**63 - 1
# No more standbys than PostgreSQL can have WAL senders (MAX_BACKENDS, 2^18 - 1).
MAX_SYNC_NODE_COUNT = 262143
MAX_SAFETY_MARGIN_S = MAX_TTL_S


class SyncMode(enum.Enum):
    """`synchronous_mode`: off, on (FIRST n) or quorum (ANY n)."""

    OFF = "off"
    ON = "on"
    QUORUM = "quorum"


class WatchdogMode(enum.Enum):
    """`watchdog.mode`: off, automatic (use if possible) or required (no lead without it)."""

    OFF = "off"
    AUTOMATIC = "automatic"
    REQUIRED = "required"


class ConfigError(ValueError):
    """A configuration value is invalid; `key` names it and the message says what was expected."""

    def __init__(self, key: str, expected: str, got: object) -> None:
        super().__init__(f"{key}: expected {expected}, got {shown(got)}")
        self.key = key
        self.expected = expected
        self.got = got


SHOWN_CHARS = 60  # a value in a message is cut here (a request body may be a megabyte)


def shown(value: object) -> str:
    """`repr(value)`, short: huge integers by their size, long texts cut (never raises)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**18:
        digits = int(value.bit_length() * math.log10(2))  # exact after the check below
        digits += abs(value) >= 10**digits
        return f"an integer of {digits} digits"
    text = repr(value) if isinstance(value, str | int | float | bool) or value is None else ""
    if not text:
        text = f"a {type(value).__name__}"
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


@dataclass(frozen=True, slots=True, kw_only=True)
class DynamicConfig:
    """The `/config` key: Patroni's dynamic configuration, with its defaults."""

    ttl_s: float = 30.0
    loop_wait_s: float = 10.0
    retry_timeout_s: float = 10.0
    maximum_lag_on_failover_b: int = 1048576
    maximum_lag_on_syncnode_b: int = -1
    primary_start_timeout_s: float = 300.0
    synchronous_mode: SyncMode = SyncMode.OFF
    synchronous_mode_strict: bool = False
    synchronous_node_count: int = 1
    failsafe_mode: bool = False
    check_timeline: bool = False
    pause: bool = False
    use_pg_rewind: bool = True
    remove_data_directory_on_rewind_failure: bool = False
    remove_data_directory_on_diverged_timelines: bool = False
    watchdog_mode: WatchdogMode = WatchdogMode.AUTOMATIC
    safety_margin_s: float = 5.0

    @property
    def sync_active_mode(self) -> bool:
        """True when synchronous replication is managed (on or quorum)."""
        return self.synchronous_mode is not SyncMode.OFF

    @property
    def watchdog_timeout_s(self) -> float:
        """Watchdog timeout: ttl - safety_margin, or ttl // 2 when safety_margin is -1."""
        if self.safety_margin_s == -1:
            return float(self.ttl_s // 2)
        return self.ttl_s - self.safety_margin_s

    @property
    def watchdog_slack_s(self) -> float:
        """Time the loop may overrun before the watchdog fires; negative means unusable."""
        return self.watchdog_timeout_s - self.loop_wait_s


def adjust_timeouts(cfg: DynamicConfig) -> DynamicConfig:
    """Enforce `loop_wait + 2 * retry_timeout <= ttl` the way Patroni does.

    If the rule is broken, loop_wait is lowered to `ttl - 2 * retry_timeout`; if even a loop_wait of
    1 s breaks it, loop_wait becomes 1 and retry_timeout `(ttl - 1) // 2`.
    """
    if cfg.loop_wait_s + 2 * cfg.retry_timeout_s <= cfg.ttl_s:
        return cfg
    loop_wait_s = cfg.ttl_s - 2 * cfg.retry_timeout_s
    if loop_wait_s >= MIN_LOOP_WAIT_S:
        return replace(cfg, loop_wait_s=loop_wait_s)
    return replace(cfg, loop_wait_s=MIN_LOOP_WAIT_S, retry_timeout_s=float((cfg.ttl_s - 1) // 2))


# key -> (field, minimum, maximum); see the MAX_* constants above for why each maximum.
_DURATIONS: dict[str, tuple[str, float, float]] = {
    "ttl": ("ttl_s", MIN_TTL_S, MAX_TTL_S),
    "loop_wait": ("loop_wait_s", MIN_LOOP_WAIT_S, MAX_LOOP_WAIT_S),
    "retry_timeout": ("retry_timeout_s", MIN_RETRY_TIMEOUT_S, MAX_RETRY_TIMEOUT_S),
    "primary_start_timeout": ("primary_start_timeout_s", 0.0, MAX_PRIMARY_START_TIMEOUT_S),
    "master_start_timeout": ("primary_start_timeout_s", 0.0, MAX_PRIMARY_START_TIMEOUT_S),
}
_INTS: dict[str, tuple[str, int, int]] = {
    "maximum_lag_on_failover": ("maximum_lag_on_failover_b", 0, MAX_LAG_B),
    "maximum_lag_on_syncnode": ("maximum_lag_on_syncnode_b", -1, MAX_LAG_B),
    "synchronous_node_count": ("synchronous_node_count", 1, MAX_SYNC_NODE_COUNT),
}
_BOOLS: dict[str, str] = {
    "synchronous_mode_strict": "synchronous_mode_strict",
    "failsafe_mode": "failsafe_mode",
    "check_timeline": "check_timeline",
    "pause": "pause",
    "use_pg_rewind": "use_pg_rewind",
    "remove_data_directory_on_rewind_failure": "remove_data_directory_on_rewind_failure",
    "remove_data_directory_on_diverged_timelines": "remove_data_directory_on_diverged_timelines",
}


def _number(key: str, value: object, minimum: float, maximum: float) -> float:
    """A finite number of seconds within [minimum, maximum]; bools, NaN and inf are refused."""
    expected = f"a number of seconds from {minimum:g} to {maximum:g}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, expected, value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(key, f"a finite number ({expected})", value)
    if not minimum <= value <= maximum:  # exact for ints of any size: no float conversion
        raise ConfigError(key, expected, value)
    return float(value)


def _integer(key: str, value: object, minimum: int, maximum: int) -> int:
    """An integer within [minimum, maximum]; bools and floats (even 2.0) are refused."""
    expected = f"an integer from {minimum} to {maximum}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, expected, value)
    if not minimum <= value <= maximum:
        raise ConfigError(key, expected, value)
    return value


def _safety_margin(value: object) -> float:
    """-1 (the watchdog fires at ttl // 2), or seconds from 0 to MAX_SAFETY_MARGIN_S."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value == -1:
        return -1.0
    try:
        return _number("watchdog.safety_margin", value, 0.0, MAX_SAFETY_MARGIN_S)
    except ConfigError as exc:
        raise ConfigError(exc.key, f"-1, or {exc.expected}", value) from None


def _boolean(key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, "true or false", value)
    return value


def _sync_mode(value: object) -> SyncMode:
    if value is True or value == "on":
        return SyncMode.ON
    if value is False or value == "off":
        return SyncMode.OFF
    if value == "quorum":
        return SyncMode.QUORUM
    raise ConfigError("synchronous_mode", "true, false, 'on', 'off' or 'quorum'", value)


def _watchdog(value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError("watchdog", "a mapping with mode and safety_margin", value)
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key == "mode":
            modes = {m.value: m for m in WatchdogMode} | {False: WatchdogMode.OFF}
            if not isinstance(item, str | bool) or item not in modes:
                raise ConfigError("watchdog.mode", "off, automatic or required", item)
            out["watchdog_mode"] = modes[item]
        elif key == "safety_margin":
            out["safety_margin_s"] = _safety_margin(item)
        else:
            raise ConfigError(f"watchdog.{key}", "mode or safety_margin", key)
    return out


def _field(key: str, value: object) -> dict[str, Any]:
    if key in _DURATIONS:
        name, low_s, high_s = _DURATIONS[key]
        return {name: _number(key, value, low_s, high_s)}
    if key in _INTS:
        name, low, high = _INTS[key]
        return {name: _integer(key, value, low, high)}
    if key in _BOOLS:
        return {_BOOLS[key]: _boolean(key, value)}
    if key == "synchronous_mode":
        return {"synchronous_mode": _sync_mode(value)}
    if key == "watchdog":
        return _watchdog(value)
    raise ConfigError(key, "a known dynamic configuration key", key)


IGNORED_KEYS = frozenset({"postgresql", "standby_cluster", "slots", "ignore_slots", "tags"})
# The dynamic configuration's keys as the parser above reads them, exported once for every door
# that checks a document before it reaches the parser (the agent's file, the scenario format).
# (The order is the one messages and the schema list them in.)
DURATION_KEYS = tuple(_DURATIONS)
ENGINE_KEYS = (
    *DURATION_KEYS,
    "maximum_lag_on_failover",
    "maximum_lag_on_syncnode",
    "synchronous_mode",
    "synchronous_mode_strict",
    "synchronous_node_count",
    "failsafe_mode",
    "check_timeline",
    "pause",
    "use_pg_rewind",
    "remove_data_directory_on_rewind_failure",
    "remove_data_directory_on_diverged_timelines",
)
WATCHDOG_KEYS = ("mode", "safety_margin")


def parse_dynamic_config(raw: Mapping[str, object]) -> DynamicConfig:
    """Build a DynamicConfig from Patroni-style keys, then apply `adjust_timeouts`.

    Bounds (inclusive; numbers must be finite, bools are not numbers, integers are not floats):
    ttl 3..3600 s (MAX_TTL_S, far below etcd's MaxLeaseTTL of 9e9 s); loop_wait 1..3600 s;
    retry_timeout 1..3600 s; primary_start_timeout (or master_start_timeout) 0..86400 s;
    maximum_lag_on_failover 0..2^63-1 bytes; maximum_lag_on_syncnode -1..2^63-1 bytes;
    synchronous_node_count 1..262143; watchdog.safety_margin -1 or 0..3600 s. Relation:
    `loop_wait + 2 * retry_timeout <= ttl` is then enforced by `adjust_timeouts` (as Patroni
    does), so loop_wait and retry_timeout never exceed ttl in the result.

    Raises:
        ConfigError: a key is unknown or a value has the wrong type or range.
    """
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in IGNORED_KEYS:
            fields.update(_field(key, value))
    return adjust_timeouts(DynamicConfig(**fields))


def merge_patch(target: object, patch: object) -> Any:
    """RFC 7386 JSON merge patch of a configuration document (PATCH /config, `pgha ctl`, the
    simulator's `config` fault): objects merge recursively, null deletes, the rest replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def diff_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The RFC 7386 merge patch that turns `old` into `new`: `merge_patch(old, diff_patch(old,
    new)) == new` (an editor session in `pgha ctl`, the nemesis undoing a `config` fault)."""
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(before, dict) and isinstance(value, dict):
            inner = diff_patch(before, value)
            if inner:
                patch[key] = inner
        elif key not in old or before != value:
            patch[key] = value
    return patch
