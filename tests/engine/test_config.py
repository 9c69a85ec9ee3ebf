"""Timing rules and dynamic configuration parsing (reference section 3)."""

from __future__ import annotations

from typing import Any

import pytest

from pgha.engine.config import (
    ConfigError,
    DynamicConfig,
    SyncMode,
    WatchdogMode,
    adjust_timeouts,
    parse_dynamic_config,
)


@pytest.mark.parametrize(
    ("ttl", "loop_wait", "retry", "expected"),
    [
        (30, 10, 10, (30, 10, 10)),  # defaults satisfy loop_wait + 2 * retry <= ttl exactly
        (30, 15, 10, (30, 10, 10)),  # loop_wait lowered to ttl - 2 * retry
        (20, 10, 10, (20, 1, 9)),  # even loop_wait 1 breaks it: retry = (ttl - 1) // 2
        (10, 2, 3, (10, 2, 3)),
        (3, 1, 1, (3, 1, 1)),
        (21, 2, 10, (21, 1, 10)),  # ttl - 2 * retry = 1 is still allowed
    ],
)
def test_timing_rule_is_enforced_like_patroni(
    ttl: float, loop_wait: float, retry: float, expected: tuple[float, float, float]
) -> None:
    got = adjust_timeouts(DynamicConfig(ttl_s=ttl, loop_wait_s=loop_wait, retry_timeout_s=retry))
    assert (got.ttl_s, got.loop_wait_s, got.retry_timeout_s) == expected
    assert got.loop_wait_s + 2 * got.retry_timeout_s <= got.ttl_s


@pytest.mark.parametrize(
    ("ttl", "margin", "timeout", "slack"),
    [(30, 5, 25, 15), (20, 5, 15, 5), (30, -1, 15, 5), (31, -1, 15, 5), (12, 5, 7, -3)],
)
def test_watchdog_timeout_is_ttl_minus_safety_margin(
    ttl: float, margin: float, timeout: float, slack: float
) -> None:
    c = DynamicConfig(ttl_s=ttl, safety_margin_s=margin)
    assert c.watchdog_timeout_s == timeout
    assert c.watchdog_slack_s == slack


def test_patroni_keys_parse_into_frozen_values() -> None:
    c = parse_dynamic_config(
        {
            "ttl": 20,
            "loop_wait": 2,
            "retry_timeout": 3.5,
            "maximum_lag_on_failover": 0,
            "maximum_lag_on_syncnode": -1,
            "master_start_timeout": 0,
            "synchronous_mode": "quorum",
            "synchronous_mode_strict": True,
            "synchronous_node_count": 2,
            "failsafe_mode": True,
            "check_timeline": True,
            "pause": True,
            "use_pg_rewind": False,
            "remove_data_directory_on_rewind_failure": True,
            "remove_data_directory_on_diverged_timelines": True,
            "watchdog": {"mode": "required", "safety_margin": -1},
            "postgresql": {"parameters": {"max_connections": 100}},
        }
    )
    assert c == DynamicConfig(
        ttl_s=20,
        loop_wait_s=2,
        retry_timeout_s=3.5,
        maximum_lag_on_failover_b=0,
        primary_start_timeout_s=0,
        synchronous_mode=SyncMode.QUORUM,
        synchronous_mode_strict=True,
        synchronous_node_count=2,
        failsafe_mode=True,
        check_timeline=True,
        pause=True,
        use_pg_rewind=False,
        remove_data_directory_on_rewind_failure=True,
        remove_data_directory_on_diverged_timelines=True,
        watchdog_mode=WatchdogMode.REQUIRED,
        safety_margin_s=-1,
    )
    assert c.sync_active_mode


@pytest.mark.parametrize(
    ("value", "mode"),
    [(True, SyncMode.ON), ("on", SyncMode.ON), (False, SyncMode.OFF), ("off", SyncMode.OFF)],
)
def test_synchronous_mode_accepts_booleans_and_words(value: object, mode: SyncMode) -> None:
    assert parse_dynamic_config({"synchronous_mode": value}).synchronous_mode is mode


def test_watchdog_mode_false_means_off_and_empty_config_gives_defaults() -> None:
    assert parse_dynamic_config({"watchdog": {"mode": False}}).watchdog_mode is WatchdogMode.OFF
    assert parse_dynamic_config({}) == DynamicConfig()
    assert not DynamicConfig().sync_active_mode


def test_parsed_timeouts_are_adjusted() -> None:
    c = parse_dynamic_config({"ttl": 30, "loop_wait": 20, "retry_timeout": 10})
    assert (c.loop_wait_s, c.retry_timeout_s) == (10, 10)


@pytest.mark.parametrize(
    ("raw", "key", "expected"),
    [
        ({"ttl": "30s"}, "ttl", "a number"),
        ({"ttl": True}, "ttl", "a number"),
        ({"ttl": 2}, "ttl", "a number >= 3"),
        ({"loop_wait": 0}, "loop_wait", "a number >= 1"),
        ({"maximum_lag_on_failover": 1.5}, "maximum_lag_on_failover", "an integer"),
        ({"maximum_lag_on_failover": False}, "maximum_lag_on_failover", "an integer"),
        ({"synchronous_node_count": 0}, "synchronous_node_count", "an integer >= 1"),
        ({"pause": "yes"}, "pause", "true or false"),
        ({"synchronous_mode": "sometimes"}, "synchronous_mode", "'quorum'"),
        ({"watchdog": "on"}, "watchdog", "a mapping"),
        ({"watchdog": {"mode": "always"}}, "watchdog.mode", "off, automatic or required"),
        ({"watchdog": {"safety_margin": -2}}, "watchdog.safety_margin", ">= -1"),
        ({"watchdog": {"device": "/dev/x"}}, "watchdog.device", "mode or safety_margin"),
        ({"tll": 30}, "tll", "a known dynamic configuration key"),
    ],
)
def test_bad_values_name_the_key_and_what_was_expected(
    raw: dict[str, Any], key: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_dynamic_config(raw)
    assert err.value.key == key
    assert expected in err.value.expected
    assert key in str(err.value)
