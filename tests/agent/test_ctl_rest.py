"""`pgha ctl` commands that go through members' REST APIs: real RestApi servers on free ports,
backed by a real EtcdAdmin on a real etcd, with a recording CommandSink standing in for the loop
(there is no PostgreSQL here: the end-to-end runs against real agents are the integrator's).
Also list, topology and history over members published in etcd.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pgha.agent.admin import Command, CommandResult, FailsafeInbox
from pgha.agent.etcd.admin import EtcdAdmin
from pgha.agent.etcd.session import EtcdSettings
from pgha.agent.rest.api import RestApi, RestSettings
from pgha.status import AgentStatus
from tests.agent.etcd_cluster import EtcdCluster
from tests.agent.test_ctl import ctl, write_config
from tests.agent.test_ctl_etcd import AUTH, CONFIG, Env, scoped_env
from tests.probes import wait_for

pytestmark = pytest.mark.agent


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdCluster]:
    with EtcdCluster.running(size=1) as cluster:
        yield cluster


@pytest.fixture
def env(etcd: EtcdCluster, tmp_path: Path) -> Iterator[Env]:
    with scoped_env(etcd, tmp_path) as scoped:
        yield scoped


# ---------------------------------------------------------------- members' REST APIs


@dataclass
class RecordingSink:
    """The loop's command queue, recorded: answers `result` to every command."""

    result: CommandResult = field(
        default_factory=lambda: CommandResult(ok=True, status=200, message="done")
    )
    calls: list[tuple[Command, dict[str, Any]]] = field(default_factory=list)

    def submit(
        self, command: Command, options: Mapping[str, Any], timeout_s: float
    ) -> CommandResult:
        del timeout_s
        self.calls.append((command, dict(options)))
        return self.result


@dataclass
class Node:
    name: str
    api: RestApi
    sink: RecordingSink
    admin: EtcdAdmin
    status: dict[str, AgentStatus]


class Nodes:
    """RestApis on free ports, each published as `members/<name>` of the env's cluster."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.nodes: dict[str, Node] = {}

    def start(self, name: str, *, leader: bool = False, paused_from_config: bool = True) -> Node:
        settings = EtcdSettings(hosts=tuple(self.env.etcd.endpoints), scope=self.env.scope)
        admin = EtcdAdmin(settings)
        sink = RecordingSink()
        box = {"status": AgentStatus(name=name)}

        def status() -> AgentStatus:
            if paused_from_config:  # what the loop would publish after reading /config
                return AgentStatus(name=name, paused=bool(admin.raw_config()[0].get("pause")))
            return box["status"]

        rest = RestSettings(
            listen_port=0,
            username=AUTH[0],
            password=AUTH[1],
            switchover_timeout_s=1.5,
            poll_interval_s=0.05,
        )
        api = RestApi(
            rest,
            status=status,
            now_mono=time.monotonic,
            admin=admin,
            commands=sink,
            inbox=FailsafeInbox(time.monotonic),
            name=name,
            scope=self.env.scope,
        )
        api.start()
        node = Node(name=name, api=api, sink=sink, admin=admin, status=box)
        self.nodes[name] = node
        self.env.put(
            f"members/{name}",
            {
                "conn_url": "postgres://127.0.0.1:5432/postgres",
                "api_url": f"{api.url}/patroni",
                "state": "running",
                "role": "primary" if leader else "replica",
                "timeline": 1,
                "xlog_location": 50331648,
            },
        )
        if leader:
            self.env.put("leader", name.encode())
        return node

    def stop_all(self) -> None:
        for node in self.nodes.values():
            node.api.stop()
            node.admin.close()


@pytest.fixture
def nodes(env: Env) -> Iterator[Nodes]:
    started = Nodes(env)
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture
def two(env: Env, nodes: Nodes) -> Nodes:
    """n1 holds the lock, n2 replicates; /config exists."""
    assert env.admin.replace_config(CONFIG, None)
    nodes.start("n1", leader=True)
    nodes.start("n2")
    return nodes


def test_list_topology_and_history_read_etcd(env: Env, two: Nodes) -> None:
    env.put("status", {"optime": 50331648 + 3 * 1024 * 1024})
    env.put("history", [[1, 25165984, "no recovery target specified", "2024-05-01T10:00:00Z"]])
    code, out, _ = env.ctl("list", "-f", "json")
    assert code == 0
    rows = json.loads(out)
    assert [(r["Member"], r["Role"], r["Lag in MB"]) for r in rows] == [
        ("n1", "Leader", None),
        ("n2", "Replica", 3),
    ]
    code, out, _ = env.ctl("topology")
    assert code == 0
    assert out.splitlines()[0].startswith(f"+ Cluster: {env.scope} (uninitialized) -")
    assert [line.split("|")[1].strip() for line in out.splitlines()[3:5]] == ["n1", "+ n2"]
    code, out, _ = env.ctl("--format", "json", "history")
    assert code == 0
    assert json.loads(out)[0]["LSN"] == 25165984
    assert json.loads(out)[0]["Timestamp"] == "2024-05-01T10:00:00Z"


def test_restart_reload_and_reinit_reach_the_named_members(env: Env, two: Nodes) -> None:
    n1, n2 = two.nodes["n1"], two.nodes["n2"]
    code, out, _ = env.ctl("restart", "n2", "--pending", "--role", "replica", "--force")
    assert (code, out.strip()) == (0, "n2: done")
    assert n2.sink.calls == [(Command.RESTART, {"restart_pending": True, "role": "replica"})]
    assert n1.sink.calls == []
    assert env.ctl("reload", "--force")[0] == 0  # no names: every member
    assert n1.sink.calls == [(Command.RELOAD, {})]
    assert n2.sink.calls[-1] == (Command.RELOAD, {})
    assert env.ctl("reinit", "n2", "--force")[0] == 0
    assert n2.sink.calls[-1] == (Command.REINITIALIZE, {"force": True})
    code, _, err = env.ctl("reinit", "n1", "--force")
    assert code == 1
    assert "leader" in err
    assert len(n1.sink.calls) == 1


def test_unknown_members_are_usage_errors(env: Env, two: Nodes) -> None:
    for argv in (["restart", "n9", "--force"], ["reload", "n2", "n9", "--force"]):
        code, _, err = env.ctl(*argv)
        assert code == 2
        assert "n9" in err
    assert env.ctl("switchover", "--candidate", "n9", "--force")[0] == 2
    assert env.ctl("failover", "--candidate", "n9", "--force")[0] == 2
    assert all(node.sink.calls == [] for node in two.nodes.values())


def test_failed_answers_exit_1(env: Env, two: Nodes, tmp_path: Path) -> None:
    wrong = ("admin", "wrong-pw-1234")
    config = write_config(
        tmp_path / "wrong.yaml", hosts=env.etcd.endpoints, scope=env.scope, auth=wrong
    )
    code, out, err = ctl(["-c", str(config), "reload", "n1", "--force"])
    assert code == 1
    assert "401" in err
    assert wrong[1] not in out + err
    assert two.nodes["n1"].sink.calls == []
    two.nodes["n2"].sink.result = CommandResult(ok=False, status=503, message="restart failed")
    code, out, err = env.ctl("restart", "--force")
    assert code == 1  # n1 succeeded, n2 did not
    assert "n1: done" in out
    assert "503" in err
    assert "restart failed" in err
    two.nodes["n2"].api.stop()
    code, _, err = env.ctl("reload", "n2", "--force")
    assert code == 1
    assert "cannot reach the REST API of n2" in err


def move_lock_when_asked(env: Env, to: str) -> threading.Thread:
    """Act as the agents would: once `/failover` appears, give the lock to `to`."""

    def watch() -> None:
        try:
            wait_for(
                "/failover", lambda: env.admin.cluster().failover is not None, 10, every_s=0.05
            )
        except AssertionError:
            return  # nobody asked: the test's own checks say what went wrong
        env.put("leader", to.encode())
        env.delete("failover")

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_switchover_now_and_scheduled(env: Env, two: Nodes) -> None:
    code, _, err = env.ctl("switchover", "--leader", "n2", "--force")
    assert code == 1
    assert "not the leader" in err
    code, _, _ = env.ctl("switchover", "--candidate", "n2")  # no terminal, no --force
    assert code == 2
    assert env.admin.cluster().failover is None
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    code, out, _ = env.ctl(
        "switchover", "--candidate", "n2", "--scheduled", when.isoformat(), "--force"
    )
    assert (code, out.strip()) == (0, "Switchover scheduled")
    failover = env.admin.cluster().failover
    assert failover is not None
    assert (failover.leader, failover.candidate) == ("n1", "n2")
    assert failover.scheduled_at_wall == when.timestamp()
    code, out, _ = env.ctl("list")
    assert " Switchover scheduled at: " in out
    env.delete("failover")
    mover = move_lock_when_asked(env, "n2")
    code, out, _ = env.ctl("switchover", "--force")
    mover.join()
    assert code == 0
    assert "n2" in out
    leader = env.admin.cluster().leader
    assert leader is not None
    assert leader.holder == "n2"


def test_a_switchover_that_does_not_happen_exits_1(env: Env, two: Nodes) -> None:
    code, _, err = env.ctl("switchover", "--leader", "n1", "--candidate", "n2", "--force")
    assert code == 1  # nobody acted on /failover within the REST API's timeout: 503
    assert "503" in err


def test_failover_falls_back_to_another_member(env: Env, two: Nodes) -> None:
    two.nodes["n2"].api.stop()  # the candidate's REST API is down; n1's takes the request
    mover = move_lock_when_asked(env, "n2")
    code, out, err = env.ctl("failover", "--candidate", "n2", "--force")
    mover.join()
    assert code == 0, err
    assert "cannot reach the REST API of n2" in err
    assert "n2" in out
    assert env.ctl("failover", "--force")[0] == 2  # --candidate is required


def test_pause_wait_waits_for_every_member(env: Env, nodes: Nodes) -> None:
    assert env.admin.replace_config(CONFIG, None)
    nodes.start("n1", leader=True)
    nodes.start("n2")
    code, out, _ = env.ctl("pause", "--wait")
    assert code == 0
    assert out.strip().splitlines()[-1] == "Every member reports it"
    assert env.ctl("resume", "--wait")[0] == 0
    nodes.start("n3", paused_from_config=False)  # a member whose loop never sees the change
    code, _, err = env.ctl("pause", "--wait", "--wait-timeout", "1")
    assert code == 1
    assert err.strip().endswith("n3")
    assert env.stored()["pause"] is True


def test_interactive_switchover_prompts_with_defaults(env: Env, two: Nodes) -> None:
    mover = move_lock_when_asked(env, "n2")
    # Primary [n1]: (default), Candidate: n2, When [now]: (default), confirm: y
    code, out, err = env.ctl("switchover", interactive=True, stdin="\nn2\n\ny\n")
    mover.join()
    assert code == 0, err
    assert out.startswith(f"+ Cluster: {env.scope} ")  # the members are shown first
    assert "Primary [n1]: " in out
    assert "demoting current leader n1? [y/N]: " in out
    assert out.strip().endswith('"n2"')
    code, _, _ = env.ctl("switchover", interactive=True, stdin="\n\n\nn\n")  # answered no
    assert code == 1
    assert env.admin.cluster().failover is None
