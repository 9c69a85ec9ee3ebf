"""Timing rules and dynamic configuration parsing (docs/patroni-rules.md §3)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from pgha.engine.config import (
    DURATION_KEYS,
    ENGINE_KEYS,
    ETCD_MAX_LEASE_TTL_S,
    MAX_LOOP_WAIT_S,
    MAX_RETRY_TIMEOUT_S,
    MAX_SAFETY_MARGIN_S,
    MAX_TTL_S,
    ConfigError,
    DynamicConfig,
    SyncMode,
    WatchdogMode,
    adjust_timeouts,
    diff_patch,
    merge_patch,
    parse_dynamic_config,
    shown,
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


HUGE = 99999999999999999999999999  # issue 13 item 1: did not fit etcd's int64 lease ttl
ABOVE_ETCD = 10000000000  # issue 13 item 2: above etcd's MaxLeaseTTL (9e9 s)


@pytest.mark.parametrize(
    ("raw", "key", "expected"),
    [
        ({"ttl": "30s"}, "ttl", "a number of seconds from 3 to 3600"),
        ({"ttl": True}, "ttl", "a number of seconds"),
        ({"ttl": None}, "ttl", "a number of seconds"),
        ({"ttl": [30]}, "ttl", "a number of seconds"),
        ({"ttl": 2}, "ttl", "from 3 to 3600"),
        ({"ttl": 2.999}, "ttl", "from 3 to 3600"),
        ({"ttl": 3600.5}, "ttl", "from 3 to 3600"),
        ({"ttl": HUGE}, "ttl", "from 3 to 3600"),
        ({"ttl": ABOVE_ETCD}, "ttl", "from 3 to 3600"),
        ({"ttl": 10**400}, "ttl", "from 3 to 3600"),
        ({"ttl": -(10**400)}, "ttl", "from 3 to 3600"),
        ({"ttl": 1e300}, "ttl", "from 3 to 3600"),
        ({"ttl": math.inf}, "ttl", "a finite number"),
        ({"ttl": -math.inf}, "ttl", "a finite number"),
        ({"ttl": math.nan}, "ttl", "a finite number"),
        ({"loop_wait": 0}, "loop_wait", "from 1 to 3600"),
        ({"loop_wait": 3601}, "loop_wait", "from 1 to 3600"),
        ({"loop_wait": math.nan}, "loop_wait", "a finite number"),
        ({"retry_timeout": 0.5}, "retry_timeout", "from 1 to 3600"),
        ({"retry_timeout": HUGE}, "retry_timeout", "from 1 to 3600"),
        ({"retry_timeout": False}, "retry_timeout", "a number of seconds"),
        ({"primary_start_timeout": -1}, "primary_start_timeout", "from 0 to 86400"),
        ({"primary_start_timeout": 86401}, "primary_start_timeout", "from 0 to 86400"),
        ({"master_start_timeout": math.inf}, "master_start_timeout", "a finite number"),
        ({"maximum_lag_on_failover": 1.5}, "maximum_lag_on_failover", "an integer"),
        ({"maximum_lag_on_failover": 2.0}, "maximum_lag_on_failover", "an integer"),
        ({"maximum_lag_on_failover": False}, "maximum_lag_on_failover", "an integer"),
        (
            {"maximum_lag_on_failover": -1},
            "maximum_lag_on_failover",
            "from 0 to 9223372036854775807",
        ),
        ({"maximum_lag_on_failover": 2**63}, "maximum_lag_on_failover", "to 9223372036854775807"),
        ({"maximum_lag_on_failover": math.inf}, "maximum_lag_on_failover", "an integer"),
        ({"maximum_lag_on_syncnode": -2}, "maximum_lag_on_syncnode", "from -1 to"),
        ({"maximum_lag_on_syncnode": HUGE}, "maximum_lag_on_syncnode", "from -1 to"),
        ({"synchronous_node_count": 0}, "synchronous_node_count", "from 1 to 262143"),
        ({"synchronous_node_count": 262144}, "synchronous_node_count", "from 1 to 262143"),
        ({"synchronous_node_count": True}, "synchronous_node_count", "an integer"),
        ({"pause": "yes"}, "pause", "true or false"),
        ({"pause": 1}, "pause", "true or false"),
        ({"synchronous_mode": "sometimes"}, "synchronous_mode", "'quorum'"),
        ({"synchronous_mode": [True]}, "synchronous_mode", "'quorum'"),
        ({"watchdog": "on"}, "watchdog", "a mapping"),
        ({"watchdog": {"mode": "always"}}, "watchdog.mode", "off, automatic or required"),
        ({"watchdog": {"mode": ["off"]}}, "watchdog.mode", "off, automatic or required"),
        ({"watchdog": {"mode": {"a": 1}}}, "watchdog.mode", "off, automatic or required"),
        ({"watchdog": {"safety_margin": -2}}, "watchdog.safety_margin", "-1, or a number"),
        ({"watchdog": {"safety_margin": -0.5}}, "watchdog.safety_margin", "from 0 to 3600"),
        ({"watchdog": {"safety_margin": 3601}}, "watchdog.safety_margin", "from 0 to 3600"),
        ({"watchdog": {"safety_margin": math.nan}}, "watchdog.safety_margin", "finite"),
        ({"watchdog": {"safety_margin": True}}, "watchdog.safety_margin", "-1, or a number"),
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
    assert str(err.value).startswith(f"{key}: expected ")
    assert ", got " in str(err.value)
    assert len(str(err.value)) < 200


@pytest.mark.parametrize(
    ("raw", "field", "value"),
    [
        ({"ttl": 3}, "ttl_s", 3.0),
        ({"ttl": 3600, "loop_wait": 3600, "retry_timeout": 10}, "ttl_s", 3600.0),
        ({"ttl": 3600.0}, "ttl_s", 3600.0),
        ({"loop_wait": 1}, "loop_wait_s", 1.0),
        ({"retry_timeout": 1}, "retry_timeout_s", 1.0),
        ({"primary_start_timeout": 0}, "primary_start_timeout_s", 0.0),
        ({"primary_start_timeout": 86400}, "primary_start_timeout_s", 86400.0),
        ({"maximum_lag_on_failover": 2**63 - 1}, "maximum_lag_on_failover_b", 2**63 - 1),
        ({"maximum_lag_on_syncnode": -1}, "maximum_lag_on_syncnode_b", -1),
        ({"synchronous_node_count": 262143}, "synchronous_node_count", 262143),
        ({"watchdog": {"safety_margin": -1}}, "safety_margin_s", -1.0),
        ({"watchdog": {"safety_margin": -1.0}}, "safety_margin_s", -1.0),
        ({"watchdog": {"safety_margin": 0}}, "safety_margin_s", 0.0),
        ({"watchdog": {"safety_margin": 3600}}, "safety_margin_s", 3600.0),
    ],
)
def test_the_bounds_themselves_are_accepted(raw: dict[str, Any], field: str, value: float) -> None:
    assert getattr(parse_dynamic_config(raw), field) == value


def test_the_ttl_cap_is_below_etcds_maximum_lease() -> None:
    assert MAX_TTL_S < ETCD_MAX_LEASE_TTL_S
    assert MAX_TTL_S - MAX_SAFETY_MARGIN_S <= 65535  # the Linux watchdog API's 16-bit seconds
    assert MAX_LOOP_WAIT_S <= MAX_TTL_S
    assert MAX_RETRY_TIMEOUT_S <= MAX_TTL_S


@pytest.mark.parametrize(
    ("ttl", "loop_wait", "retry"),
    [(3, 3600, 3600), (3600, 3600, 3600), (3, 1, 3600), (3600, 1, 1), (4.5, 3600, 1)],
)
def test_the_timing_rule_holds_at_the_extremes(ttl: float, loop_wait: float, retry: float) -> None:
    c = parse_dynamic_config({"ttl": ttl, "loop_wait": loop_wait, "retry_timeout": retry})
    assert c.loop_wait_s + 2 * c.retry_timeout_s <= c.ttl_s
    assert c.loop_wait_s >= 1
    assert c.retry_timeout_s >= 1


@pytest.mark.parametrize(
    ("got", "text"),
    [
        (HUGE, "an integer of 26 digits"),
        pytest.param(10**5000, "an integer of 5001 digits", id="5000-digits"),
        (-(10**30), "an integer of 31 digits"),
        (12, "12"),
        (10**18 - 1, "999999999999999999"),
        (10**18, "an integer of 19 digits"),
        (math.nan, "nan"),
        ("x" * 500, "'" + "x" * 56 + "..."),
        ({"a": 1}, "a dict"),
        (None, "None"),
        (True, "True"),
    ],
)
def test_values_in_messages_are_short_and_never_raise(got: object, text: str) -> None:
    assert shown(got) == text
    assert str(ConfigError("k", "something", got)) == f"k: expected something, got {text}"


# One value of each key's type, to show that the exported key list is exactly what the parser reads.
_ONE_VALUE = {"synchronous_mode": "on", "synchronous_node_count": 1}


@pytest.mark.parametrize("key", ENGINE_KEYS)
def test_every_exported_key_is_read_by_the_parser(key: str) -> None:
    value = _ONE_VALUE.get(key, True if key not in DURATION_KEYS and "lag" not in key else 5)
    parse_dynamic_config({key: value})


def test_the_parser_reads_no_key_the_export_leaves_out() -> None:
    from pgha.engine import config

    read = set(config._DURATIONS) | set(config._INTS) | set(config._BOOLS)
    assert read | {"synchronous_mode"} == set(ENGINE_KEYS)
    assert len(ENGINE_KEYS) == len(set(ENGINE_KEYS))


@pytest.mark.parametrize(
    ("target", "patch", "merged"),
    [
        ({"ttl": 30}, {"loop_wait": 5}, {"ttl": 30, "loop_wait": 5}),  # objects merge
        ({"ttl": 30, "pause": True}, {"pause": None}, {"ttl": 30}),  # null deletes
        ({"ttl": 30}, {"absent": None}, {"ttl": 30}),  # deleting what is not there
        ({"postgresql": {"parameters": {"a": 1, "b": 2}}},
         {"postgresql": {"parameters": {"b": None, "c": 3}}},
         {"postgresql": {"parameters": {"a": 1, "c": 3}}}),  # recursively
        ({"tags": ["a"]}, {"tags": ["b"]}, {"tags": ["b"]}),  # lists replace
        ({"ttl": 30}, ["not", "an", "object"], ["not", "an", "object"]),  # a non-object replaces
        ("a string", {"ttl": 30}, {"ttl": 30}),  # a non-object target starts empty
    ],
)  # fmt: skip
def test_merge_patch_is_rfc_7386(target: object, patch: object, merged: object) -> None:
    before = repr(target)
    assert merge_patch(target, patch) == merged
    assert repr(target) == before  # the target is never changed in place


@pytest.mark.parametrize(
    ("current", "wanted"),
    [  # the pgha ctl editor and the nemesis undo use it: the inverse of merge_patch
        ({"ttl": 20, "loop_wait": 5}, {"ttl": 30}),
        ({}, {"ttl": 30, "watchdog": {"mode": "off"}}),
        (
            {"postgresql": {"parameters": {"a": 1, "b": 2}}},
            {"postgresql": {"parameters": {"a": 1}}},
        ),
        ({"a": {"b": 1}}, {"a": 5}),
        ({"a": 5}, {"a": {"b": 1}}),
        ({"a": [1, 2]}, {"a": [1]}),
        ({"ttl": 30}, {"ttl": 30}),
        ({"watchdog": {"mode": "off"}, "ttl": 20}, {"watchdog": {"mode": "off"}, "ttl": 30}),
    ],
)
def test_diff_patch_turns_the_old_document_into_the_new_one(
    current: dict[str, object], wanted: dict[str, object]
) -> None:
    patch = diff_patch(current, wanted)
    assert merge_patch(current, patch) == wanted
    if current == wanted:
        assert patch == {}
