"""PostgreSQL parameters at every door, in process: the REST API (over real HTTP, with the fakes of
test_restapi.py), `pgha ctl edit-config`'s check and write, and the agent's configuration file.

Each door gives the same words for the same mistake, names the parameter (and, in the file, its
line), never shows a string value, and refuses parameters pgha sets itself. The installed server's
catalogue is used throughout (test_pg_params.py checks the verdicts against the server itself).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from pgha.agent.config.file import AgentConfigError, parse_agent_config, parse_dcs_config
from pgha.agent.pg import catalogue as pg_catalogue
from pgha.ctl.common import CtlError
from pgha.ctl.config import EditPlan, EditResult, apply_plan, check_config, store_config
from tests.agent.conftest import OS_USER, PG_BIN
from tests.agent.test_config import BASE, line_of
from tests.agent.test_restapi import AUTH, Node, Nodes

pytestmark = pytest.mark.agent

STORED = {"ttl": 30, "loop_wait": 10, "postgresql": {"parameters": {"max_connections": 100}}}
MISTAKES: list[tuple[str, object, str]] = [
    (
        "work_mem",
        "-7 parsecs",
        "postgresql.parameters.work_mem: expected an integer with a memory unit "
        "(B, kB, MB, GB, TB) between 64 kB and 2147483647 kB, got '-7 parsecs'",
    ),
    (
        "shared_preload_libraries",
        "pg_stat_statementz",
        "postgresql.parameters.shared_preload_libraries: expected libraries installed in "
        "/usr/lib/postgresql/15/lib (as <name>.so), got 'pg_stat_statementz', which is not "
        "installed there; did you mean 'pg_stat_statements'?",
    ),
    (
        "port",
        5433,
        "postgresql.parameters.port: expected a parameter pgha does not set itself, got 'port'; "
        "pgha sets it from postgresql.listen",
    ),
    (
        "data_directory",
        "/elsewhere",
        "postgresql.parameters.data_directory: expected a parameter pgha does not set itself",
    ),
    (
        "wal_level",
        "hot_standy",
        "postgresql.parameters.wal_level: expected one of minimal, replica, logical, "
        "got 'hot_standy'",
    ),
    (
        "work_men",
        "4MB",
        "postgresql.parameters.work_men: expected a parameter of PostgreSQL 15",
    ),
    ("fsync", "maybe", "postgresql.parameters.fsync: expected a boolean"),
]


@pytest.fixture(autouse=True)
def installed_server() -> None:
    pg_catalogue.use(PG_BIN, OS_USER)
    assert pg_catalogue.active() is not None


@pytest.fixture(scope="module")
def rest() -> Iterator[Node]:
    nodes = Nodes()
    yield nodes.start(config=dict(STORED))
    nodes.stop_all()


# ---------------------------------------------------------------- the REST API


@pytest.mark.parametrize(("name", "value", "message"), MISTAKES)
@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_rest_refuses_a_bad_parameter_with_400(
    rest: Node, method: str, name: str, value: object, message: str
) -> None:
    body = {**STORED, "postgresql": {"parameters": {name: value}}}
    answer = rest.call(method, "/config", body, auth=AUTH)
    assert answer.status == 400
    assert answer.json()["error"].startswith(message)
    assert rest.admin.config == STORED


def test_rest_stores_a_good_change(rest: Node) -> None:
    change = {"postgresql": {"parameters": {"work_mem": "8MB", "pg_stat_statements.max": 500}}}
    answer = rest.call("PATCH", "/config", change, auth=AUTH)
    assert answer.status == 200, answer.body
    assert rest.admin.config is not None
    assert rest.admin.config["postgresql"]["parameters"] == {
        "max_connections": 100,
        "work_mem": "8MB",
        "pg_stat_statements.max": 500,
    }
    rest.admin.config = dict(STORED)


def test_rest_never_shows_a_string_value(rest: Node, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pgha")
    for change in [{"restore_command": "x hunter2\n"}, {"unknown": "hunter2"}]:
        answer = rest.call("PATCH", "/config", {"postgresql": {"parameters": change}}, auth=AUTH)
        assert answer.status == 400
        assert b"hunter2" not in answer.body
    assert "hunter2" not in caplog.text


def test_a_stored_bad_value_does_not_block_other_changes(rest: Node) -> None:
    # Written past the doors (etcdctl): an unrelated change still goes through, and the bad value
    # can be removed; changing it to another bad value is refused.
    rest.admin.config = {**STORED, "postgresql": {"parameters": {"work_mem": "-7 parsecs"}}}
    try:
        assert rest.call("PATCH", "/config", {"loop_wait": 5}, auth=AUTH).status == 200
        bad = {"postgresql": {"parameters": {"work_mem": "-8 parsecs"}}}
        assert rest.call("PATCH", "/config", bad, auth=AUTH).status == 400
        gone = {"postgresql": {"parameters": {"work_mem": None}}}
        assert rest.call("PATCH", "/config", gone, auth=AUTH).status == 200
        assert rest.admin.config["postgresql"] == {"parameters": {}}
    finally:
        rest.admin.config = dict(STORED)


# ---------------------------------------------------------------- pgha ctl edit-config


@pytest.mark.parametrize(("name", "value", "message"), MISTAKES)
def test_ctl_refuses_with_the_rest_apis_words(name: str, value: object, message: str) -> None:
    raw = apply_plan(STORED, EditPlan(patches=({"postgresql": {"parameters": {name: value}}},)))
    with pytest.raises(CtlError) as caught:
        check_config(raw, STORED)
    assert caught.value.code == 2
    assert caught.value.message.startswith(f"invalid configuration: the new /config: {message}")


class OneConfig:
    """The ClusterAdmin calls store_config makes, on one stored configuration."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.writes: list[dict[str, Any]] = []

    def raw_config(self) -> tuple[dict[str, Any], int | None]:
        return dict(self.raw), 1

    def replace_config(self, raw: dict[str, Any], version: int | None) -> bool:
        self.writes.append(raw)
        self.raw = raw
        return True


def test_ctl_does_not_recheck_a_stored_value_but_refuses_a_new_one() -> None:
    admin = OneConfig({**STORED, "postgresql": {"parameters": {"work_mem": "-7 parsecs"}}})

    def edit(patch: dict[str, Any]) -> EditResult:
        plan = EditPlan(patches=(patch,))
        outcome, _ = store_config(
            admin,  # type: ignore[arg-type]
            lambda raw: apply_plan(raw, plan),
            lambda old, new, checked: None,
        )
        return outcome

    assert edit({"loop_wait": 5}) is EditResult.WRITTEN
    with pytest.raises(CtlError, match=r"postgresql\.parameters\.fsync: expected a boolean"):
        edit({"postgresql": {"parameters": {"fsync": "maybe"}}})
    assert len(admin.writes) == 1


def test_ctl_without_a_catalogue_warns_that_values_were_checked_by_type_only() -> None:
    pg_catalogue.use("/nonexistent/bin", None)
    try:
        raw = {**STORED, "postgresql": {"parameters": {"work_mem": "-7 parsecs"}}}
        checked = check_config(raw, STORED)
        assert any("checked by type only" in w for w in checked.warnings)
        with pytest.raises(CtlError, match=r"postgresql\.parameters\.port"):
            check_config({**STORED, "postgresql": {"parameters": {"port": 1}}}, STORED)
    finally:
        pg_catalogue.use(PG_BIN, OS_USER)


def test_the_dcs_parser_checks_only_what_changed() -> None:
    stored = {"postgresql": {"parameters": {"work_mem": "-7 parsecs"}}}
    assert parse_dcs_config({**stored, "ttl": 30}, "/config", stored).parameters == {
        "work_mem": "-7 parsecs"
    }
    with pytest.raises(AgentConfigError, match="work_mem"):
        parse_dcs_config({**stored, "ttl": 30}, "/config")


# ---------------------------------------------------------------- the configuration file

_FILE = BASE.replace("bin_dir: /opt/pg/bin", f"bin_dir: {PG_BIN}")


@pytest.mark.parametrize(
    ("old", "new", "field", "words"),
    [
        (
            "    shared_buffers: 128MB",
            "    shared_buffers: 64kB",
            "postgresql.parameters.shared_buffers",
            "expected an integer with a memory unit (B, kB, MB, GB, TB) between 128 kB and",
        ),
        (
            "    shared_buffers: 128MB",
            "    shared_preload_libraries: pg_stat_statementz",
            "postgresql.parameters.shared_preload_libraries",
            "got 'pg_stat_statementz', which is not installed there",
        ),
        (
            "        max_wal_senders: 10",
            "        max_wal_senders: lots",
            "bootstrap.dcs.postgresql.parameters.max_wal_senders",
            "expected an integer between 0 and 262143, got 'lots'",
        ),
        (
            "        wal_level: replica",
            "        wal_level: archive_everything",
            "bootstrap.dcs.postgresql.parameters.wal_level",
            "expected one of minimal, replica, logical",
        ),
        (
            "        hot_standby: on",
            "        hot_standby: off",
            "bootstrap.dcs.postgresql.parameters.hot_standby",
            "pgha always sets it on",
        ),
        (
            "    shared_buffers: 128MB",
            "    cluster_name: other",
            "postgresql.parameters.cluster_name",
            "pgha sets it to the cluster's scope",
        ),
    ],
)
def test_the_file_names_the_line_and_field_of_a_bad_parameter(
    old: str, new: str, field: str, words: str
) -> None:
    assert _FILE.count(old) == 1
    text = _FILE.replace(old, new)
    with pytest.raises(AgentConfigError) as caught:
        parse_agent_config(text, "node1.yaml")
    error = caught.value
    assert (error.field, error.line) == (field, line_of(text, new.strip()))
    assert words in str(error)
    assert str(error).startswith(f"node1.yaml:{error.line}: {field}: expected")


def test_the_file_bootstrap_parameters_use_the_files_own_server() -> None:
    # bootstrap comes before postgresql in the file: its parameters wait for bin_dir.
    pg_catalogue.use("/nonexistent/bin", None)
    text = _FILE.replace("        max_wal_senders: 10", "        max_wal_senders: lots")
    with pytest.raises(AgentConfigError, match="max_wal_senders: expected an integer"):
        parse_agent_config(text, "node1.yaml")
    good = parse_agent_config(_FILE, "node1.yaml")
    assert good.bootstrap.parameters["hot_standby"] is True  # on, as pgha sets it: accepted
