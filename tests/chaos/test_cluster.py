"""The chaos cluster: the files each container is given (rendered from a scenario and checked with
pgha's own config parser), and the lifecycle against real containers: a 3-node cluster comes up
with one primary and HAProxy routing a write to it, its processes and files can be read, and
`down` / `down_all` leave nothing labelled behind."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import yaml

from chaos.cluster import ChaosCluster, new_run_id
from chaos.configs import (
    AGENT_YAML,
    DATA_DIR,
    NODE_JSON,
    PATRONI_YAML,
    agent_config,
    differences,
    etcd_command,
    node_files,
    node_json,
    patroni_config,
    plan_layout,
    safety_margin_s,
)
from chaos.docker_objects import LABEL, LABEL_RUN, down_all
from chaos.haproxy import parse_stats, render_haproxy_cfg, settled_view
from pgha.agent.config.file import config_warnings, parse_agent_config
from pgha.engine.config import DynamicConfig
from pgha.scenario import HAProxySpec, Scenario, parse_scenario
from tests.probes import wait_for

THREE = """
name: three
duration: 5m
cluster:
  nodes: [n1, {name: n2, tags: {nofailover: true}}, n3]
  etcd: 3
config: {ttl: 30, loop_wait: 10, retry_timeout: 10, synchronous_mode: true}
"""
ON_NODES = """
name: on-nodes
duration: 5m
cluster: {nodes: 3, etcd: 3, etcd_placement: on_nodes}
config: {ttl: 10, loop_wait: 2, retry_timeout: 3, watchdog: {mode: automatic, safety_margin: 5}}
clocks: {n2: {offset: 2s, drift_ppm: 100}}
network: {etcd_pre_vote: false}
"""
SUBNET = "172.30.77.0/24"


def _scenario(text: str) -> Scenario:
    return parse_scenario(text)


# ---------------------------------------------------------------- rendering (no Docker)


def test_layout_gives_every_host_a_fixed_address_in_the_subnet() -> None:
    layout = plan_layout(_scenario(THREE), "r1", SUBNET)
    assert (layout.gateway, layout.haproxy_ip) == ("172.30.77.1", "172.30.77.2")
    assert [layout.ip(n) for n in ("n1", "n2", "n3")] == [f"172.30.77.{i}" for i in (11, 12, 13)]
    assert layout.own_etcd_hosts == ("etcd1", "etcd2", "etcd3")
    assert layout.ip("etcd2") == "172.30.77.102"
    assert layout.container("n1") == "pgha-r1-n1"
    on_nodes = plan_layout(_scenario(ON_NODES), "r1", SUBNET)
    assert on_nodes.own_etcd_hosts == ()
    assert on_nodes.ip("etcd3") == on_nodes.ip("n3")
    assert on_nodes.initial_cluster().split(",")[0] == "etcd1=http://172.30.77.11:2380"


def test_a_subnet_too_small_is_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        plan_layout(_scenario(THREE), "r1", "172.30.77.0/26")


def test_node_json_follows_the_supervisor_contract() -> None:
    scenario = _scenario(ON_NODES)
    layout = plan_layout(scenario, "r1", SUBNET)
    n2 = node_json(scenario, layout, "n2", agent="pgha")
    assert n2["name"] == "n2"
    assert n2["agent"] == "pgha"
    assert n2["agent_config"] == AGENT_YAML
    assert n2["softdog"] is True
    assert n2["etcd"]["name"] == "etcd2"
    assert n2["etcd"]["pre_vote"] is False
    assert n2["etcd"]["host"] == "172.30.77.12"
    assert (n2["etcd"]["client_port"], n2["etcd"]["peer_port"], n2["etcd"]["state"]) == (
        2379, 2380, "new",
    )  # fmt: skip
    assert n2["faketime"] == {"offset_s": 2.0, "drift": pytest.approx(1.0001)}
    n1 = node_json(scenario, layout, "n1", agent="patroni")
    assert n1["faketime"] == {"offset_s": 0.0, "drift": 1.0}  # libfaketime on every node
    assert (n1["agent_config"], n1["softdog"]) == (PATRONI_YAML, False)
    three = _scenario(THREE)
    plain = node_json(three, plan_layout(three, "r1", SUBNET), "n1", agent="pgha")
    assert (plain["etcd"], plain["faketime"]) == (None, None)
    with pytest.raises(ValueError, match="agent"):
        node_json(three, plan_layout(three, "r1", SUBNET), "n1", agent="stolon")


def test_agent_yaml_is_valid_for_pgha_and_carries_the_scenario() -> None:
    scenario = _scenario(THREE)
    layout = plan_layout(scenario, "r1", SUBNET)
    text = node_files(scenario, layout, "n2", agent="pgha")[AGENT_YAML].decode()
    cfg = parse_agent_config(text, "agent.yaml")
    assert config_warnings(cfg) == ()
    assert cfg.name == "n2"
    assert cfg.tags.nofailover is True
    assert [str(h) for h in cfg.etcd.hosts] == [f"172.30.77.{i}:2379" for i in (101, 102, 103)]
    dynamic = cfg.bootstrap.dynamic
    assert (dynamic.ttl_s, dynamic.loop_wait_s, dynamic.retry_timeout_s) == (30, 10, 10)
    assert dynamic.sync_active_mode
    assert cfg.watchdog.device == "/run/pgha/watchdog.sock"
    assert cfg.watchdog.mode.value == "required"
    assert cfg.postgresql.data_dir == DATA_DIR
    raw = yaml.safe_load(text)
    assert raw["log"] == {"level": "INFO", "history": "/var/log/pgha/history.jsonl",
                          "dir": "/var/log/pgha"}  # fmt: skip
    assert raw["restapi"]["authentication"]["username"]
    assert raw["restapi"]["connect_address"] == "172.30.77.12:8008"


@pytest.mark.parametrize(
    ("ttl", "loop_wait", "retry", "margin"),
    [(30, 10, 10, 5), (10, 2, 3, 5), (10, 2, 2, -1), (20, 5, 7, 5), (30, 10, 10, -1), (3, 1, 1, 5)],
)
def test_the_watchdog_fires_after_a_lost_etcd_and_before_the_lock_expires(
    ttl: float, loop_wait: float, retry: float, margin: float
) -> None:
    cfg = DynamicConfig(
        ttl_s=ttl, loop_wait_s=loop_wait, retry_timeout_s=retry, safety_margin_s=margin
    )
    chosen = safety_margin_s(cfg)
    timeout_s = ttl - chosen
    assert timeout_s > loop_wait + retry
    assert timeout_s <= ttl
    assert chosen <= (ttl // 2 if margin == -1 else margin)


def test_a_scenario_without_watchdog_keeps_it_off() -> None:
    text = THREE.replace("synchronous_mode: true", 'watchdog: {mode: "off"}')
    scenario = _scenario(text)
    layout = plan_layout(scenario, "r1", SUBNET)
    assert agent_config(scenario, layout, "n1")["watchdog"]["mode"] == "off"
    assert node_json(scenario, layout, "n1", agent="pgha")["softdog"] is False


def test_patroni_gets_the_same_cluster_and_no_watchdog() -> None:
    scenario = _scenario(ON_NODES)
    layout = plan_layout(scenario, "r1", SUBNET)
    pgha, patroni = agent_config(scenario, layout, "n1"), patroni_config(scenario, layout, "n1")
    assert patroni["bootstrap"]["dcs"] == pgha["bootstrap"]["dcs"]
    assert patroni["etcd3"] == pgha["etcd3"]
    assert patroni["restapi"] == pgha["restapi"]
    assert patroni["watchdog"] == {"mode": "off"}
    assert patroni["postgresql"]["parameters"]["unix_socket_directories"] == "/tmp"
    with_device = patroni_config(scenario, layout, "n1", watchdog_device="/dev/watchdog")
    assert with_device["watchdog"]["mode"] == "required"
    notes = differences(scenario, agent="patroni")
    assert any("watchdog" in note for note in notes)
    assert any("ttl" in note for note in notes)  # Patroni raises ttl 10 to 20
    assert any("safety_margin" in note for note in differences(scenario, agent="pgha"))
    files = node_files(scenario, layout, "n1", agent="patroni")
    assert set(files) == {NODE_JSON, PATRONI_YAML}
    assert json.loads(files[NODE_JSON])["agent"] == "patroni"


def test_etcd_of_its_own_runs_with_the_scenarios_pre_vote() -> None:
    scenario = _scenario(THREE)
    argv = etcd_command(scenario, plan_layout(scenario, "r1", SUBNET), "etcd2")
    assert argv[0] == "etcd"
    assert "--name=etcd2" in argv
    assert "--pre-vote=true" in argv
    assert "--advertise-client-urls=http://172.30.77.102:2379" in argv


def test_haproxy_checks_every_node_on_its_rest_api() -> None:
    cfg = render_haproxy_cfg({"n1": "10.0.0.11", "n2": "10.0.0.12"})
    assert "bind *:5000" in cfg
    assert "bind *:5001" in cfg
    assert "option httpchk OPTIONS /primary" in cfg
    assert "option httpchk OPTIONS /replica" in cfg
    assert "inter 3s fall 3 rise 2 on-marked-down shutdown-sessions" in cfg  # Patroni's docs
    assert "timeout check 1s" in cfg  # as the simulator's check
    assert cfg.count("server n1 10.0.0.11:5432 maxconn 100 check port 8008") == 2


def test_haproxy_checks_follow_the_scenario() -> None:
    checks = HAProxySpec(check_interval_s=0.5, fall=2, rise=1)
    cfg = render_haproxy_cfg({"n1": "10.0.0.11"}, checks)
    assert cfg.count("inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions") == 2


def test_haproxy_is_settled_only_when_its_checks_agree_with_the_roles() -> None:
    csv_text = (
        "# pxname,svname,qcur,status\nprimary,FRONTEND,,OPEN\nprimary,n1,0,UP\n"
        "primary,n2,0,UP 1/2\nreplicas,n1,0,DOWN\nreplicas,n2,0,UP\n"
    )
    primary = parse_stats(csv_text, "primary", ("n1", "n2"))
    assert primary == {"n1": "UP", "n2": "UP 1/2"}
    assert settled_view("primary", primary, "n1", ()) == {"n1": "UP", "n2": "DOWN"}  # not yet
    replicas = parse_stats(csv_text, "replicas", ("n1", "n2"))
    assert settled_view("replicas", replicas, "n1", ()) == replicas
    assert settled_view("replicas", replicas, "n1", ("n2",)) == {"n1": "DOWN", "n2": "DOWN"}
    assert parse_stats("garbage", "primary", ("n1",)) == {}


# ---------------------------------------------------------------- real containers

CLUSTER = """
name: cluster-test
duration: 5m
cluster: {nodes: 3, etcd: 3}
config: {ttl: 20, loop_wait: 2, retry_timeout: 3}
"""


@pytest.fixture(scope="module")
def cluster(docker_client: Any, chaos_image: str) -> Iterator[ChaosCluster]:
    """One 3-node cluster (etcd on hosts of their own) for the module's tests."""
    run = ChaosCluster(
        docker_client, _scenario(CLUSTER), run_id=f"t{new_run_id()}", image=chaos_image
    )
    try:
        run.up(timeout_s=150)
        yield run
    finally:
        run.down()


def _labelled(client: Any, labels: dict[str, str]) -> list[Any]:
    filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
    return [
        *client.containers.list(all=True, filters=filters),
        *client.networks.list(filters=filters),
        *client.volumes.list(filters=filters),
    ]


def _count(dsn: str) -> int | None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("select count(*) from probe").fetchone()
    return None if row is None else int(row[0])


@pytest.mark.chaos
def test_one_primary_and_haproxy_routes_a_write_to_it(cluster: ChaosCluster) -> None:
    primary = cluster.primary()
    assert primary in cluster.node_names
    with psycopg.connect(cluster.haproxy_dsn(), autocommit=True) as conn:
        conn.execute("create table if not exists probe (id int primary key)")
        conn.execute("insert into probe values (1) on conflict do nothing")
        row = conn.execute("select host(inet_server_addr()), pg_is_in_recovery()").fetchone()
    assert row == (cluster.ip(primary), False)
    for node in cluster.node_names:  # the write reached every replica too
        wait_for(
            f"the row on {node}",
            lambda node=node: _count(cluster.dsn(node)) == 1,
            10.0,
            every_s=0.2,
            ignoring=(psycopg.Error,),
        )
    with psycopg.connect(cluster.haproxy_dsn(read=True), autocommit=True) as conn:
        assert conn.execute("select pg_is_in_recovery()").fetchone() == (True,)


@pytest.mark.chaos
def test_processes_files_and_logs_of_a_node_can_be_read(cluster: ChaosCluster) -> None:
    node = cluster.node_names[0]
    pids = {process: cluster.pid(node, process) for process in ("agent", "softdog", "postgres")}
    assert all(isinstance(pid, int) and pid > 1 for pid in pids.values()), pids
    assert cluster.pid("etcd1", "etcd") == 1  # an etcd member of its own is its container
    code, output = cluster.exec(node, ["cat", f"/proc/{pids['agent']}/cmdline"])
    assert code == 0
    assert "agent" in output
    history = cluster.read_agent_history(node)
    assert history
    assert {event["node"] for event in history if "node" in event} == {node}
    assert cluster.read_file(node, "/no/such/file") is None
    assert "started agent" in cluster.logs(node)
    assert cluster.state(node) == "running"
    code, output = cluster.exec("haproxy", ["haproxy", "-c", "-f", "/etc/haproxy/haproxy.cfg"])
    assert code == 0, output


@pytest.mark.chaos
def test_down_removes_every_object_of_the_run(docker_client: Any, chaos_image: str) -> None:
    scenario = _scenario(CLUSTER.replace("nodes: 3, etcd: 3", "nodes: 1, etcd: 1"))
    run = ChaosCluster(docker_client, scenario, run_id=f"t{new_run_id()}", image=chaos_image)
    try:
        run.up(timeout_s=120)
        assert len(_labelled(docker_client, {LABEL_RUN: run.run_id})) == 4  # 3 containers, 1 net
    finally:
        run.down()
    assert _labelled(docker_client, {LABEL_RUN: run.run_id}) == []


@pytest.mark.chaos
def test_patroni_comes_up_with_etcd_on_the_nodes(docker_client: Any, chaos_image: str) -> None:
    """The peer mode: the same cluster run by Patroni 4.1.5, etcd members inside the nodes."""
    text = CLUSTER.replace("etcd: 3}", "etcd: 3, etcd_placement: on_nodes}")
    run = ChaosCluster(
        docker_client, _scenario(text), run_id=f"t{new_run_id()}", image=chaos_image,
        agent="patroni",
    )  # fmt: skip
    try:
        run.up(timeout_s=150)
        primary = run.primary()
        assert primary in run.node_names
        assert all(isinstance(run.pid(node, "etcd"), int) for node in run.node_names)
        assert run.pid(primary, "softdog") is None  # Patroni cannot use the emulation
        code, output = run.exec(primary, ["cat", f"/proc/{run.pid(primary, 'agent')}/cmdline"])
        assert "patroni" in output, code
    finally:
        run.down()


@pytest.mark.chaos
def test_down_all_leaves_nothing_labelled(
    docker_client: Any, chaos_image: str, cluster: ChaosCluster
) -> None:
    """Last in the module: it removes the module's cluster too. `down_all` removes every run's
    objects, so it only runs where no other test session can be running chaos clusters (CI, or
    PGHA_CHAOS_TEST_DOWN_ALL=1), and never while another run is alive."""
    if not (os.environ.get("CI") or os.environ.get("PGHA_CHAOS_TEST_DOWN_ALL")):
        pytest.skip("down_all would remove concurrent sessions' clusters (set CI to run it)")
    others = {
        c.labels.get(LABEL_RUN) for c in docker_client.containers.list(
            all=True, filters={"label": f"{LABEL}=1"}
        )
    } - {cluster.run_id}  # fmt: skip
    if others:  # never remove another test's or user's running cluster
        pytest.skip(f"other chaos runs are alive: {sorted(r for r in others if r)}")
    scenario = _scenario(CLUSTER.replace("nodes: 3, etcd: 3", "nodes: 1, etcd: 1"))
    run = ChaosCluster(docker_client, scenario, run_id=f"t{new_run_id()}", image=chaos_image)
    try:
        run._create_network()
        run._create("n1", role="node", command=["sleep", "60"], files={})
        counts = down_all(docker_client)
    finally:
        run.down()
    assert counts["containers"] >= 1
    assert counts["networks"] >= 1
    assert counts["images"] == 0  # images stay unless asked
    assert _labelled(docker_client, {LABEL: "1"}) == []
