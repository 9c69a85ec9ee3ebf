"""`pgha ctl` without processes: table rendering (pretty, JSON, YAML), topology order, history,
and usage errors (exit 2, a message, no traceback).

Edit plans, prompts and REST answers are in test_ctl_config.py; real etcd in test_ctl_etcd.py
and members' REST APIs in test_ctl_rest.py (both use `write_config` and `ctl` from here).
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from pgha.ctl.main import run
from pgha.ctl.render import (
    MemberLine,
    Table,
    history_table,
    members_table,
    render,
    render_document,
    render_pretty,
    topology_order,
)
from pgha.engine.config import DynamicConfig, SyncMode
from pgha.engine.values import (
    ClusterView,
    FailoverKey,
    LeaderKey,
    Member,
    MemberRole,
    SyncKey,
    Tags,
)
from tests.agent.conftest import free_port

MB = 1024 * 1024


def write_config(
    path: Path,
    *,
    hosts: list[tuple[str, int]],
    scope: str = "demo",
    auth: tuple[str, str] | None = ("admin", "s3cret"),
) -> Path:
    """An agent configuration file for `pgha ctl` (only etcd, scope and REST auth matter)."""
    document: dict[str, Any] = {
        "scope": scope,
        "name": "ctl-test",
        "restapi": {"listen": "127.0.0.1:8008", "request_timeout": 5},
        "etcd3": {"hosts": [f"{host}:{port}" for host, port in hosts]},
        "postgresql": {
            "listen": "127.0.0.1:5432",
            "data_dir": "/tmp/pgha-ctl-test-unused",
            "authentication": {
                "superuser": {"username": "postgres", "password": "x"},
                "replication": {"username": "replicator", "password": "y"},
            },
        },
    }
    if auth is not None:
        document["restapi"]["authentication"] = {"username": auth[0], "password": auth[1]}
    path.write_text(yaml.safe_dump(document))
    return path


def ctl(argv: list[str], *, stdin: str = "", interactive: bool = False, **env: str) -> Any:
    """Run `pgha ctl argv`; (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = run(
        argv,
        stdin=io.StringIO(stdin),
        stdout=out,
        stderr=err,
        interactive=interactive,
        environ=dict(env),
    )
    return code, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------- the cluster tables


def three_members(**changes: Any) -> ClusterView:
    """n1 leads on timeline 3; n2 is a sync standby 2 MB behind; n3 cascades from n2."""
    members = (
        Member(
            name="n1",
            conn_url="postgres://h1:5432/x",
            role=MemberRole.PRIMARY,
            timeline=3,
            wal_lsn=100 * MB,
        ),
        Member(name="n2", conn_url="postgres://h2:5432/x", timeline=3, wal_lsn=98 * MB),
        Member(
            name="n3",
            conn_url="postgres://h3:5433/x",
            wal_lsn=None,
            tags=Tags(replicatefrom="n2"),
        ),
    )
    view = ClusterView(
        initialize="7301",
        leader=LeaderKey(holder="n1", version=3),
        members=members,
        sync=SyncKey(leader="n1", standbys=frozenset({"n2"})),
        status_optime_lsn=100 * MB,
        config=DynamicConfig(synchronous_mode=SyncMode.ON),
    )
    return ClusterView(**{**{f: getattr(view, f) for f in view.__slots__}, **changes})


DOCUMENTS: dict[str, dict[str, Any]] = {
    "n1": {"state": "running", "role": "primary"},
    "n2": {"state": "running", "replication_state": "streaming"},
    "n3": {"state": "stopped", "tags": {"replicatefrom": "n2"}},
}


def test_list_pretty_is_a_patronictl_box() -> None:
    text = render(members_table("demo", three_members(), DOCUMENTS), "pretty")
    assert text.splitlines() == [
        "+ Cluster: demo (7301) -----------+-----------+----+-----------+-------------------+",
        "| Member | Host    | Role         | State     | TL | Lag in MB | Tags              |",
        "+--------+---------+--------------+-----------+----+-----------+-------------------+",
        "| n1     | h1:5432 | Leader       | running   |  3 |           |                   |",
        "| n2     | h2:5432 | Sync Standby | streaming |  3 |         2 |                   |",
        "| n3     | h3:5433 | Replica      | stopped   |    |   unknown | replicatefrom: n2 |",
        "+--------+---------+--------------+-----------+----+-----------+-------------------+",
    ]


def test_list_json_has_typed_values_per_member() -> None:
    rows = json.loads(render(members_table("demo", three_members(), DOCUMENTS), "json"))
    assert [(r["Member"], r["Role"], r["State"], r["TL"], r["Lag in MB"]) for r in rows] == [
        ("n1", "Leader", "running", 3, None),
        ("n2", "Sync Standby", "streaming", 3, 2),
        ("n3", "Replica", "stopped", None, "unknown"),
    ]
    assert {r["Cluster"] for r in rows} == {"demo"}
    assert rows[2]["Tags"] == {"replicatefrom": "n2"}
    assert rows[0]["Host"] == "h1:5432"
    assert yaml.safe_load(render(members_table("demo", three_members(), DOCUMENTS), "yaml")) == rows


@pytest.mark.parametrize(
    ("changes", "role_of_n2"),
    [
        ({}, "Sync Standby"),
        ({"config": DynamicConfig(synchronous_mode=SyncMode.QUORUM)}, "Quorum Standby"),
        ({"sync": SyncKey()}, "Replica"),  # no active /sync key: not a sync standby
        ({"leader": LeaderKey(holder="n2", version=9)}, "Leader"),
    ],
)
def test_roles_follow_the_lock_and_the_sync_key(changes: dict[str, Any], role_of_n2: str) -> None:
    rows = json.loads(render(members_table("demo", three_members(**changes), DOCUMENTS), "json"))
    assert {r["Member"]: r["Role"] for r in rows}["n2"] == role_of_n2


@pytest.mark.parametrize(
    ("changes", "roles", "lags"),
    [
        ({}, ["Leader", "Sync Standby", "Replica"], [None, 2, "unknown"]),
        # no /status: the leader's published position
        ({"status_optime_lsn": None}, ["Leader", "Sync Standby", "Replica"], [None, 2, "unknown"]),
        # /status ahead of the leader's member key: the newer /status counts
        (
            {"status_optime_lsn": 103 * MB},
            ["Leader", "Sync Standby", "Replica"],
            [None, 5, "unknown"],
        ),
        # no leader: lag against /status
        ({"leader": None}, ["Replica", "Sync Standby", "Replica"], [0, 2, "unknown"]),
        # no leader and no /status: nothing to compare with, never shown as 0
        (
            {"leader": None, "status_optime_lsn": None},
            ["Replica", "Sync Standby", "Replica"],
            ["unknown", "unknown", "unknown"],
        ),
    ],
)
def test_roles_and_lag(changes: dict[str, Any], roles: list[str], lags: list[Any]) -> None:
    rows = json.loads(render(members_table("demo", three_members(**changes), DOCUMENTS), "json"))
    assert [r["Role"] for r in rows] == roles
    assert [r["Lag in MB"] for r in rows] == lags


def test_optional_columns_appear_when_needed_or_extended() -> None:
    plain = three_members(members=three_members().members[:2])
    docs = {"n1": {"state": "running"}, "n2": {"state": "running"}}
    assert members_table("demo", plain, docs).columns[-1] == "Lag in MB"
    extended = members_table("demo", plain, docs, extended=True)
    assert extended.columns[-2:] == ("Pending restart", "Tags")
    pending = members_table("demo", plain, {**docs, "n2": {"pending_restart": True}})
    assert pending.columns[-1] == "Pending restart"
    assert pending.rows[1][-1] is True
    assert "| *               |" in render_pretty(pending)


def test_footer_shows_pause_and_the_scheduled_switchover() -> None:
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    view = three_members(
        config=DynamicConfig(pause=True),
        failover=FailoverKey(leader="n1", candidate="n2", scheduled_at_wall=when),
    )
    table = members_table("demo", view, DOCUMENTS)
    assert table.footer == (
        " Maintenance mode: on",
        " Switchover scheduled at: 2030-01-02T03:04:05+00:00\n"
        "                    from: n1\n"
        "                      to: n2",
    )
    assert render(table, "pretty").endswith("                      to: n2")
    assert members_table("demo", three_members(), DOCUMENTS).footer == ()


def test_a_long_title_widens_the_table_and_no_rows_still_render() -> None:
    text = render(members_table("a-rather-long-cluster-name", ClusterView(), {}), "pretty")
    lines = text.splitlines()
    assert lines[0] == "+ Cluster: a-rather-long-cluster-name (uninitialized) +"
    assert {len(line) for line in lines} == {len(lines[0])}
    assert json.loads(render(members_table("x", ClusterView(), {}), "json")) == []


def test_multi_line_cells_get_a_rule_between_rows() -> None:
    table = Table(columns=("A", "B"), rows=(("x", {"k": 1, "l": 2}), ("y", None)))
    assert render_pretty(table).splitlines() == [
        "+---+------+",
        "| A | B    |",
        "+---+------+",
        "| x | k: 1 |",
        "|   | l: 2 |",
        "+---+------+",
        "| y |      |",
        "+---+------+",
    ]


def line(name: str, role: str = "Replica", upstream: str | None = None) -> MemberLine:
    return MemberLine(
        name=name,
        host="",
        role=role,
        state="running",
        timeline=1,
        lag_mb=0,
        pending_restart=False,
        tags={},
        replicatefrom=upstream,
    )


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        pytest.param(
            [line("b"), line("a", "Leader"), line("c")],
            [(0, "a"), (1, "b"), (1, "c")],
            id="leader-first",
        ),
        pytest.param(
            [line("a", "Leader"), line("b"), line("c", upstream="b"), line("d", upstream="c")],
            [(0, "a"), (1, "b"), (2, "c"), (3, "d")],
            id="cascade",
        ),
        pytest.param(
            [line("a", "Leader"), line("b", upstream="ghost"), line("c", upstream="c")],
            [(0, "a"), (1, "b"), (1, "c")],
            id="unknown-or-self-upstream-hangs-under-the-leader",
        ),
        pytest.param(
            [line("a"), line("b", upstream="a"), line("c")],
            [(0, "a"), (1, "b"), (0, "c")],
            id="no-leader",
        ),
        pytest.param(
            [line("a", "Leader"), line("b", upstream="c"), line("c", upstream="b")],
            [(0, "a"), (0, "b"), (0, "c")],
            id="cycle-is-not-hidden",
        ),
    ],
)
def test_topology_order(members: list[MemberLine], expected: list[tuple[int, str]]) -> None:
    assert [(depth, m.name) for depth, m in topology_order(members)] == expected


def test_topology_indents_replicas_under_their_upstream() -> None:
    table = members_table("demo", three_members(), DOCUMENTS, topology=True)
    assert [row[0] for row in table.rows] == ["n1", "+ n2", "  + n3"]
    rows = json.loads(render(table, "json"))
    assert [(r["Member"], r["Depth"]) for r in rows] == [("n1", 0), ("n2", 1), ("n3", 2)]


def test_history_table_from_raw_lines() -> None:
    lines = [
        [1, 25165984, "no recovery target specified", "2024-05-01T10:00:00+00:00", "n2"],
        [2, 50331808, "no recovery target specified"],  # an older, shorter line
        "not a line",
        [3],
    ]
    table = history_table(lines)
    assert json.loads(render(table, "json")) == [
        {
            "TL": 1,
            "LSN": 25165984,
            "Reason": "no recovery target specified",
            "Timestamp": "2024-05-01T10:00:00+00:00",
            "New Leader": "n2",
        },
        {
            "TL": 2,
            "LSN": 50331808,
            "Reason": "no recovery target specified",
            "Timestamp": None,
            "New Leader": None,
        },
    ]
    pretty = render(table, "pretty").splitlines()
    assert pretty[1].split("|")[1:-1] == [
        " TL ",
        "      LSN ",  # numbers (and their header) are right-aligned
        " Reason                       ",
        " Timestamp                 ",
        " New Leader ",
    ]
    assert render(history_table([]), "pretty").count("\n") == 3


def test_config_documents_render_as_yaml_or_json() -> None:
    raw = {"ttl": 30, "postgresql": {"parameters": {"max_connections": 100}}}
    assert yaml.safe_load(render_document(raw, "pretty")) == raw
    assert yaml.safe_load(render_document(raw, "yaml")) == raw
    assert json.loads(render_document(raw, "json")) == raw


# ---------------------------------------------------------------- usage errors: exit 2


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """A valid configuration whose etcd port has nobody listening."""
    return write_config(tmp_path / "agent.yaml", hosts=[("127.0.0.1", free_port())])


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["bogus"],
        ["list", "--format", "xml"],
        ["--dcs-timeout", "0", "list"],
        ["reinit"],
        ["restart", "--timeout", "-1", "n1"],
        ["restart", "--role", "leader"],
        ["edit-config", "--set", "novalue"],
        ["edit-config", "--pg", "=1"],
        ["edit-config", "--apply", "/nonexistent/file.yaml"],
        ["edit-config", "--apply", "-", "--replace", "-"],
        ["edit-config"],  # nothing to change and no terminal for $EDITOR
    ],
)
def test_bad_usage_exits_2_with_a_message(config_file: Path, argv: list[str]) -> None:
    code, _, err = ctl(["-c", str(config_file), *argv] if argv else [])
    assert code == 2
    assert err.strip()
    assert "Traceback" not in err


def test_configuration_errors_exit_2(tmp_path: Path) -> None:
    code, _, err = ctl(["list"])
    assert (code, "PGHA_CONFIG" in err) == (2, True)
    bad = tmp_path / "bad.yaml"
    bad.write_text("scope: demo\nname: x\n")
    code, _, err = ctl(["list"], PGHA_CONFIG=str(bad))
    assert code == 2
    assert str(bad) in err
    code, _, err = ctl(["-c", str(tmp_path / "missing.yaml"), "list"])
    assert code == 2
    assert "Traceback" not in err


def test_help_exits_0(config_file: Path) -> None:
    code, out, _ = ctl(["--help"])
    assert code == 0
    assert "edit-config" in out
    code, out, _ = ctl(["-c", str(config_file), "switchover", "--help"])
    assert code == 0
    assert "--candidate" in out


def test_unreachable_etcd_exits_1_naming_the_endpoints(config_file: Path) -> None:
    port = yaml.safe_load(config_file.read_text())["etcd3"]["hosts"][0].split(":")[1]
    code, _, err = ctl(["-c", str(config_file), "--dcs-timeout", "0.3", "list"])
    assert code == 1
    assert err.startswith(f"cannot reach etcd at 127.0.0.1:{port}: ")
    assert "Traceback" not in err
