# Safety rule: the leader must learn that it lost the lock before the lock expires for everyone
# else. A leader renews at most loop_wait after its last renewal, and each DCS call may take
# retry_timeout, so `loop_wait + 2 * retry_timeout <= ttl` must hold (Patroni
# `Config._validate_and_adjust_timeouts`, reference section 3). The watchdog must fire before the
# lock expires: timeout = ttl - safety_margin (or ttl // 2 when safety_margin is -1), and it is
# unusable when that is shorter than loop_wait (reference section 2.9). Values here are parsed once
# and then frozen.
"""Dynamic (cluster-wide) and local (per-node) configuration as frozen values."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

# Patroni silently raises ttl to 20 s; pgha accepts down to 3 s, where the timing rule still leaves
# loop_wait >= 1 s and retry_timeout >= 1 s, and the watchdog keeps a short ttl safe.
MIN_TTL_S = 3.0
MIN_LOOP_WAIT_S = 1.0
MIN_RETRY_TIMEOUT_S = 3.0


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
        super().__init__(f"{key}: expected {expected}, got {got!r}")
        self.key = key
        self.expected = expected
        self.got = got


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


_DURATIONS: dict[str, tuple[str, float]] = {
    "ttl": ("ttl_s", MIN_TTL_S),
    "loop_wait": ("loop_wait_s", MIN_LOOP_WAIT_S),
    "retry_timeout": ("retry_timeout_s", 1.0),
    "primary_start_timeout": ("primary_start_timeout_s", 0.0),
    "master_start_timeout": ("primary_start_timeout_s", 0.0),
}
_INTS: dict[str, tuple[str, int]] = {
    "maximum_lag_on_failover": ("maximum_lag_on_failover_b", 0),
    "maximum_lag_on_syncnode": ("maximum_lag_on_syncnode_b", -1),
    "synchronous_node_count": ("synchronous_node_count", 1),
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


def _number(key: str, value: object, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, "a number", value)
    if value < minimum:
        raise ConfigError(key, f"a number >= {minimum:g}", value)
    return float(value)


def _integer(key: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, "an integer", value)
    if value < minimum:
        raise ConfigError(key, f"an integer >= {minimum}", value)
    return value


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
            if item not in modes:
                raise ConfigError("watchdog.mode", "off, automatic or required", item)
            out["watchdog_mode"] = modes[item]
        elif key == "safety_margin":
            out["safety_margin_s"] = _number("watchdog.safety_margin", item, -1.0)
        else:
            raise ConfigError(f"watchdog.{key}", "mode or safety_margin", key)
    return out


def _field(key: str, value: object) -> dict[str, Any]:
    if key in _DURATIONS:
        name, minimum = _DURATIONS[key]
        return {name: _number(key, value, minimum)}
    if key in _INTS:
        name, low = _INTS[key]
        return {name: _integer(key, value, low)}
    if key in _BOOLS:
        return {_BOOLS[key]: _boolean(key, value)}
    if key == "synchronous_mode":
        return {"synchronous_mode": _sync_mode(value)}
    if key == "watchdog":
        return _watchdog(value)
    raise ConfigError(key, "a known dynamic configuration key", key)


IGNORED_KEYS = frozenset({"postgresql", "standby_cluster", "slots", "ignore_slots", "tags"})


def parse_dynamic_config(raw: Mapping[str, object]) -> DynamicConfig:
    """Build a DynamicConfig from Patroni-style keys, then apply `adjust_timeouts`.

    Raises:
        ConfigError: a key is unknown or a value has the wrong type or range.
    """
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in IGNORED_KEYS:
            fields.update(_field(key, value))
    return adjust_timeouts(DynamicConfig(**fields))
