"""`pgha ctl` edit-config plans and merges, prompts, schedules and REST answers (no processes)."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgha.ctl.actions import parse_scheduled
from pgha.ctl.cluster import config_error_lines
from pgha.ctl.common import Console, CtlError
from pgha.ctl.config import (
    EditPlan,
    apply_plan,
    check_config,
    config_diff,
    load_document,
    parse_value,
    pg_patch,
    set_patch,
    store_config,
)
from pgha.ctl.rest import answer_of
from pgha.engine.config import diff_patch

# ---------------------------------------------------------------- edit-config


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("30", 30),
        ("1.5", 1.5),
        ("on", True),
        ("false", False),
        ("null", None),
        ("~", None),
        ("quorum", "quorum"),
        ("'on'", "on"),
        ("[a, b]", ["a", "b"]),
        ("", ""),
        ("2024-01-01", "2024-01-01"),  # a YAML date is not JSON: kept as text
        (".nan", ".nan"),
        ("a: [", "a: ["),  # not YAML: kept as text
    ],
)
def test_values_are_read_as_yaml(text: str, value: Any) -> None:
    assert parse_value(text) == value


def test_set_and_pg_become_merge_patches() -> None:
    assert set_patch("ttl=40") == {"ttl": 40}
    assert set_patch("postgresql.use_pg_rewind=true") == {"postgresql": {"use_pg_rewind": True}}
    assert set_patch("a.b=x=y") == {"a": {"b": "x=y"}}
    assert set_patch("loop_wait=null") == {"loop_wait": None}
    assert pg_patch("auto_explain.log_min_duration=10s") == {
        "postgresql": {"parameters": {"auto_explain.log_min_duration": "10s"}}
    }


@pytest.mark.parametrize("bad", ["ttl", "=3", "a..b=1", ".a=1"])
def test_malformed_assignments_are_usage_errors(bad: str) -> None:
    with pytest.raises(CtlError) as caught:
        set_patch(bad)
    assert caught.value.code == 2


STORED = {
    "ttl": 30,
    "loop_wait": 10,
    "postgresql": {"parameters": {"max_connections": 100, "work_mem": "4MB"}},
}


@pytest.mark.parametrize(
    ("plan", "expected"),
    [
        (EditPlan(), STORED),
        (
            EditPlan(patches=({"ttl": 40}, {"postgresql": {"parameters": {"work_mem": None}}})),
            {"ttl": 40, "loop_wait": 10, "postgresql": {"parameters": {"max_connections": 100}}},
        ),
        (
            EditPlan(patches=({"loop_wait": None}, {"pause": True})),
            {"ttl": 30, "postgresql": STORED["postgresql"], "pause": True},
        ),
        (
            EditPlan(replacement={"ttl": 20}, patches=({"loop_wait": 5},)),
            {"ttl": 20, "loop_wait": 5},
        ),
        (EditPlan(patches=({"ttl": 40}, {"ttl": 50})), {**STORED, "ttl": 50}),  # last one wins
        (EditPlan(patches=({"postgresql": None},)), {"ttl": 30, "loop_wait": 10}),
        (EditPlan(patches=({"nope": None},)), STORED),
    ],
)
def test_apply_plan(plan: EditPlan, expected: dict[str, Any]) -> None:
    before = json.dumps(STORED)
    assert apply_plan(STORED, plan) == expected
    assert json.dumps(STORED) == before  # the stored value is not changed in place


json_values = st.recursive(
    st.one_of(st.booleans(), st.integers(), st.text(max_size=5)),
    lambda inner: st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=4), json_values, max_size=5)


@given(old=json_objects, new=json_objects)
def test_an_editor_session_becomes_a_patch_that_gives_the_edited_document(
    old: dict[str, Any], new: dict[str, Any]
) -> None:
    patch = diff_patch(old, new)
    assert apply_plan(old, EditPlan(patches=(patch,))) == new
    assert (patch == {}) == (old == new)


def test_config_diff_is_a_unified_diff_of_yaml() -> None:
    diff = config_diff({"ttl": 30, "loop_wait": 10}, {"ttl": 40, "loop_wait": 10})
    assert diff.splitlines()[:2] == ["--- /config (stored)", "+++ /config (new)"]
    assert "-ttl: 30" in diff.splitlines()
    assert "+ttl: 40" in diff.splitlines()
    assert config_diff(STORED, STORED) == ""


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"ttl": "soon"}, "ttl"),
        ({"loop_wait": -1}, "loop_wait"),
        ({"synchronous_mode": "sometimes"}, "synchronous_mode"),
        ({"no_such_key": 1}, "no_such_key"),
        ({"postgresql": {"parameters": {"port": 5433}}}, "port"),
        ({"ttl": 99999999999999999999999999}, "ttl: expected a number of seconds from 3 to 3600"),
        ({"ttl": 10000000000}, "ttl: expected a number of seconds from 3 to 3600"),
        ({"ttl": 30, "loop_wait": 3601}, "loop_wait: expected a number of seconds from 1 to"),
        ({"primary_start_timeout": 86401}, "primary_start_timeout: expected"),
        ({"maximum_lag_on_syncnode": -2}, "maximum_lag_on_syncnode: expected an integer from -1"),
        ({"synchronous_node_count": 1.0}, "synchronous_node_count: expected an integer"),
        ({}, "empty /config"),
    ],
)
def test_invalid_configurations_are_refused_naming_the_key(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(CtlError) as caught:
        check_config(raw)
    assert caught.value.code == 2
    assert field in caught.value.message


class RecordingAdmin:
    """The two ClusterAdmin calls store_config makes; every write is recorded."""

    def __init__(self) -> None:
        self.raw: dict[str, Any] = {"ttl": 30, "loop_wait": 10}
        self.writes: list[dict[str, Any]] = []

    def raw_config(self) -> tuple[dict[str, Any], int | None]:
        return dict(self.raw), 1

    def replace_config(self, raw: dict[str, Any], version: int | None) -> bool:
        self.writes.append(dict(raw))
        return True


def no_confirm(old: object, new: object, checked: object) -> None:
    del old, new, checked


@pytest.mark.parametrize(
    "option",
    ["ttl=99999999999999999999999999", "ttl=10000000000", "ttl=.inf", "ttl=" + "9" * 5000],
)
def test_edit_config_refuses_before_writing(option: str) -> None:
    admin = RecordingAdmin()
    plan = EditPlan(patches=(set_patch(option),))
    with pytest.raises(CtlError) as caught:
        store_config(admin, lambda raw: apply_plan(raw, plan), no_confirm)  # type: ignore[arg-type]
    assert caught.value.code == 2
    assert "ttl: expected" in caught.value.message
    assert len(caught.value.message) < 300
    assert admin.writes == []


def test_edit_config_refuses_to_empty_the_configuration() -> None:
    admin = RecordingAdmin()
    plan = EditPlan(patches=({"ttl": None, "loop_wait": None},))
    with pytest.raises(CtlError) as caught:
        store_config(admin, lambda raw: apply_plan(raw, plan), no_confirm)  # type: ignore[arg-type]
    assert caught.value.code == 2
    assert admin.writes == []


def test_documents_must_be_mappings_of_json_values() -> None:
    assert load_document("", "f") == {}
    assert load_document('{"ttl": 30}', "f") == {"ttl": 30}
    for text in ("- a\n- b\n", "ttl: [", "when: 2024-01-01\n", "ttl: " + "9" * 5000):
        with pytest.raises(CtlError) as caught:
            load_document(text, "f")
        assert caught.value.code == 2


# ---------------------------------------------------------------- prompts, schedules, answers


def console(stdin: str, interactive: bool) -> Console:
    return Console(
        out=io.StringIO(), err=io.StringIO(), stdin=io.StringIO(stdin), interactive=interactive
    )


def test_confirmation_needs_a_terminal_or_force() -> None:
    console("", interactive=False).confirm("go?", force=True)
    console("y\n", interactive=True).confirm("go?", force=False)
    for stdin, interactive, code in [("y\n", False, 2), ("n\n", True, 1), ("", True, 1)]:
        with pytest.raises(CtlError) as caught:
            console(stdin, interactive).confirm("go?", force=False)
        assert caught.value.code == code


def test_ask_uses_the_default_and_needs_a_terminal() -> None:
    assert console("\n", interactive=True).ask("Primary", "n1", option="--leader") == "n1"
    assert console("n2\n", interactive=True).ask("Primary", "n1", option="--leader") == "n2"
    with pytest.raises(CtlError) as caught:
        console("n2\n", interactive=False).ask("Primary", "n1", option="--leader")
    assert caught.value.code == 2
    assert "--leader" in caught.value.message


def test_scheduled_times() -> None:
    assert parse_scheduled(None) is None
    assert parse_scheduled("now") is None
    aware = parse_scheduled("2030-01-02T03:04:05+02:00")
    assert aware is not None
    assert aware.utcoffset() == timedelta(hours=2)
    local = parse_scheduled("2030-01-02T03:04:05")
    assert local is not None
    assert local.utcoffset() is not None  # no time zone given: the local one
    with pytest.raises(CtlError) as caught:
        parse_scheduled("tomorrow")
    assert caught.value.code == 2


@pytest.mark.parametrize(
    ("status", "body", "ok", "message"),
    [
        (200, b"Successfully switched over", True, "Successfully switched over"),
        (401, b'{"error": "authentication required"}', False, "authentication required"),
        (503, b"restart failed\n", False, "restart failed"),
        (200, b'{"pause": true}', True, '{"pause": true}'),
        (202, b"", True, ""),
    ],
)
def test_rest_answers(status: int, body: bytes, ok: bool, message: str) -> None:
    answer = answer_of(status, body)
    assert (answer.ok, answer.message) == (ok, message)


def test_list_warns_about_members_that_refuse_the_stored_config() -> None:
    documents: dict[str, dict[str, Any]] = {
        "n2": {"state": "running", "config_error": "config: ttl: expected a number, got 'x'"},
        "n1": {"state": "running"},
        "n3": {"config_error": None},
    }
    assert config_error_lines(documents) == [
        "warning: n2 refuses the stored /config and keeps its last good one: "
        "config: ttl: expected a number, got 'x'"
    ]
