"""The nemesis: which host pairs a partition cuts and the iptables rules for them (checked with the
real iptables in a network namespace of their own), what the Docker world refuses before a run,
and every fault applied to one real 3-node cluster and undone: partitions and heal, agent and
PostgreSQL pauses and crashes, docker kill / pause, clock offsets under libfaketime, a full data
disk, etcd member kills, the reboot of a machine its watchdog reset, a timed schedule, a
switchover through the REST API, and an operator's PATCH /config and raw etcd puts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from chaos.cluster import ChaosCluster, new_run_id
from chaos.configs import FAKETIME_RC
from chaos.disks import LABEL_FILE
from chaos.nemesis import Nemesis, unsupported
from chaos.nemesis_view import etcd_leader
from chaos.nemesis_writes import EtcdGateway, KeyValue, operator_result
from chaos.netrules import (
    CHAIN_IN,
    CHAIN_OUT,
    LIST_ARGV,
    RULES_ENV,
    SYNC_SCRIPT,
    Rule,
    drop_rules,
    listed_rules,
    loss_rules,
    restore_input,
)
from pgha.faults import Applied, partition_pairs, split
from pgha.scenario import FaultSpec, Target, parse_scenario
from tests.probes import wait_for

BASE = """
name: nemesis-test
duration: 10m
cluster: {nodes: 3, etcd: 3}
config: {ttl: 20, loop_wait: 2, retry_timeout: 3}
"""


def fault(line: str, base: str = BASE) -> FaultSpec:
    """One fault of the test cluster, parsed from its YAML flow mapping."""
    return parse_scenario(f"{base}faults:\n  - {line}\n").faults[0]


# ---------------------------------------------------------------- pure rules (no Docker)

HOSTS = ("n1", "n2", "n3", "etcd1")
IPS = {h: f"10.9.0.{i}" for i, h in enumerate((*HOSTS, "haproxy", "client"), start=1)}


def _named(target: Target) -> tuple[str, ...]:
    return target.names


def test_partition_forms_cut_the_pairs_the_simulator_cuts() -> None:
    def pairs(line: str) -> tuple[set[tuple[str, str]], tuple[str, ...]]:
        spec: Any = fault(line).params
        cut, hosts = partition_pairs(spec, _named, (*HOSTS, "client"))
        return set(cut), hosts

    cut, hosts = pairs("{at: 0s, partition: {isolate: n1}}")
    assert hosts == ("n1",)
    assert cut == {
        (a, b) for h in ("n2", "n3", "etcd1", "client") for a, b in ((h, "n1"), ("n1", h))
    }
    cut, _ = pairs("{at: 0s, partition: {groups: [[n1], [n2, etcd1]]}}")
    assert cut == {("n1", "n2"), ("n2", "n1"), ("n1", "etcd1"), ("etcd1", "n1")}  # n3 reaches all
    cut, hosts = pairs("{at: 0s, partition: {from: n1, to: [n2, n3]}}")
    assert (cut, hosts) == ({("n1", "n2"), ("n1", "n3")}, ("n1", "n2", "n3"))
    cut, hosts = pairs("{at: 0s, partition: {a: n1, b: n2, bridge: n3}}")
    assert (cut, hosts) == ({("n1", "n2"), ("n2", "n1")}, ("n1", "n2", "n3"))
    assert split([["a"], ["b"], ["c"]]).count(("a", "c")) == 1


def test_drop_rules_go_on_both_sides_of_a_cut_link_we_manage() -> None:
    rules = drop_rules([("n1", "n2"), ("client", "n1")], IPS, managed=("n1", "n2"))
    assert rules["n1"] == [
        Rule(chain=CHAIN_OUT, args=("-d", "10.9.0.2/32", "-j", "DROP")),
        Rule(chain=CHAIN_IN, args=("-s", "10.9.0.6/32", "-j", "DROP")),
    ]
    assert rules["n2"] == [Rule(chain=CHAIN_IN, args=("-s", "10.9.0.1/32", "-j", "DROP"))]
    assert "client" not in rules  # the Docker host is not ours to change
    assert {r.chain for r in loss_rules(["n3"], 0.2)["n3"]} == {CHAIN_IN, CHAIN_OUT}
    with pytest.raises(ValueError, match="loss rate"):
        loss_rules(["n3"], 0.0)
    with pytest.raises(ValueError, match="plain word"):
        Rule(chain=CHAIN_IN, args=("-m", "comment", "--comment", "two words")).line()


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("iptables") is None,
    reason="needs root, unshare and iptables",
)
def test_rules_replace_the_chains_atomically_in_a_real_network_namespace() -> None:
    first = drop_rules([("n1", "n2")], IPS, managed=("n1",))["n1"] + loss_rules(["n1"], 0.5)["n1"]
    second = drop_rules([("n1", "n3")], IPS, managed=("n1",))["n1"]
    script = (
        f'{RULES_ENV}="$1" sh -c "$SYNC" && {RULES_ENV}="$2" sh -c "$SYNC" && sh -c "$LIST" '
        f'&& echo --- && {RULES_ENV}="$3" sh -c "$SYNC" && sh -c "$LIST"'
    )
    texts = [restore_input(first), restore_input(second), restore_input([])]
    done = subprocess.run(
        ["unshare", "-n", "sh", "-c", script, "sh", *texts],
        capture_output=True, text=True, check=False, timeout=30,
        env={**os.environ, "SYNC": SYNC_SCRIPT, "LIST": LIST_ARGV[2]},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    during, after = done.stdout.split("---")
    assert listed_rules(during) == [r.line() for r in second]  # the first set is gone
    assert listed_rules(after) == []


def test_unsupported_names_what_this_world_cannot_apply() -> None:
    ok = BASE + "faults:\n  - {at: 1s, kill: primary, for: 5s}\n  - {at: 9s, disk_full: n1}\n"
    assert unsupported(parse_scenario(ok), loop_devices=True) == []
    problems = unsupported(parse_scenario(ok), loop_devices=False)
    assert len(problems) == 1
    assert "disk_full" in problems[0]
    bad = (
        BASE.replace("duration: 10m", "duration: 10m\nnetwork: {latency: 50ms}")
        + "clocks: {etcd2: {offset: 2s}}\n"
        + "faults:\n  - {at: 1s, latency: {targets: n1, median: 50ms}}\n"
        + "  - {at: 2s, clock: {node: etcd1, offset: 5s}}\n"
    )
    problems = unsupported(parse_scenario(bad), loop_devices=True)
    assert len(problems) == 4
    assert sum("netem" in p for p in problems) == 2
    assert sum("libfaketime" in p for p in problems) == 2
    assert any("line" in p for p in problems)


@pytest.mark.parametrize(
    ("status", "body", "timed_out", "expected"),
    [
        (200, b'Successfully switched over to "n2"', False, ("accepted", None)),
        (202, b"Switchover scheduled", False, ("accepted", None)),
        (
            412,
            b'{"error": "candidate is not a synchronous standby", "refusal": "candidate_not_sync"}',
            False,
            ("refused", "candidate_not_sync"),
        ),
        (
            409,
            b'{"error": "...", "refusal": "already_scheduled"}',
            False,
            ("refused", "already_scheduled"),
        ),
        (412, b"candidate name does not match", False, ("refused", "http_412")),  # Patroni
        (
            503,
            b'{"error": "the DCS is not reachable; try again"}',
            False,
            ("failed", "dcs_unavailable"),
        ),
        (503, b"Switchover status unknown", False, ("failed", "timeout")),
        (503, b"Switchover failed", False, ("failed", "not_done")),
        (500, b"", False, ("failed", "http_500")),
        (None, b"", False, ("failed", "unreachable")),
        (None, b"", True, ("failed", "timeout")),
    ],
)
def test_an_operator_answer_is_an_outcome_and_an_error(
    status: int | None, body: bytes, timed_out: bool, expected: tuple[str, str | None]
) -> None:
    assert operator_result(status, body, timed_out) == expected


# ---------------------------------------------------------------- one real cluster

CLUSTER = BASE + "clocks: {n1: {offset: 0s}}\n"  # libfaketime on every node


@pytest.fixture(scope="module")
def cluster(docker_client: Any, chaos_image: str) -> Iterator[ChaosCluster]:
    """A 3-node cluster with libfaketime and loop-device data disks, for the whole module."""
    run = ChaosCluster(
        docker_client, parse_scenario(CLUSTER), run_id=f"t{new_run_id()}", image=chaos_image,
        data_volumes=True,
    )  # fmt: skip
    try:
        run.up(timeout_s=150)
        yield run
    finally:
        run.down()


@pytest.fixture
def nemesis(cluster: ChaosCluster) -> Iterator[Nemesis]:
    """A fresh nemesis; afterwards everything is healed and the cluster healthy again."""
    nem = Nemesis(cluster, reboot_after_s=1.0)
    yield nem
    nem.stop()
    nem.heal_everything()
    cluster.wait_healthy(timeout_s=120)


def _replica(cluster: ChaosCluster) -> str:
    primary = cluster.primary()
    return next(n for n in cluster.node_names if n != primary)


def _reaches(cluster: ChaosCluster, src: str, dst: str, port: int) -> bool:
    argv = ["timeout", "2", "bash", "-c", f"</dev/tcp/{cluster.ip(dst)}/{port}"]
    return cluster.exec(src, argv)[0] == 0


def _proc_state(cluster: ChaosCluster, node: str, pid: int) -> str:
    return cluster.exec(node, ["ps", "-o", "stat=", "-p", str(pid)])[1].strip()


def _phases(nem: Nemesis) -> list[tuple[str, str]]:
    return [(r["fault"], r["phase"]) for r in nem.records if r["kind"] == "fault"]


@pytest.mark.chaos
def test_isolating_the_primary_cuts_it_off_and_heal_removes_every_rule(
    cluster: ChaosCluster, nemesis: Nemesis
) -> None:
    primary = cluster.primary()
    assert primary is not None
    peer = _replica(cluster)
    applied = nemesis.apply(fault("{at: 0s, partition: {isolate: primary}}"))
    assert isinstance(applied, Applied), applied
    assert applied.hosts == (primary,)
    probes = [(peer, primary, 5432), (primary, peer, 8008), (primary, "etcd1", 2379),
              ("haproxy", primary, 8008), (peer, "etcd1", 2379)]  # fmt: skip
    with ThreadPoolExecutor(len(probes)) as pool:
        reached = list(pool.map(lambda p: _reaches(cluster, *p), probes))
    assert reached == [False, False, False, False, True]
    nemesis.apply(fault("{at: 0s, heal: true}"))
    assert _phases(nemesis) == [("partition", "start"), ("partition", "end"), ("heal", "start")]
    assert _reaches(cluster, peer, primary, 5432)
    assert _reaches(cluster, primary, "etcd1", 2379)
    for host in (*cluster.hosts, "haproxy"):
        assert listed_rules(cluster.exec(host, list(LIST_ARGV))[1]) == [], host


@pytest.mark.chaos
def test_a_one_way_partition_and_loss_touch_only_their_hosts(
    cluster: ChaosCluster, nemesis: Nemesis
) -> None:
    one_way = nemesis.apply(fault("{at: 0s, partition: {from: n1, to: n2}}"))
    loss = nemesis.apply(fault("{at: 0s, loss: {targets: n3, rate: 30%}}"))
    rules = {h: listed_rules(cluster.exec(h, list(LIST_ARGV))[1]) for h in cluster.node_names}
    assert rules["n1"] == [f"-A {CHAIN_OUT} -d {cluster.ip('n2')}/32 -j DROP"]
    assert rules["n2"] == [f"-A {CHAIN_IN} -s {cluster.ip('n1')}/32 -j DROP"]
    assert len(rules["n3"]) == 2
    assert all("statistic" in rule for rule in rules["n3"])
    assert isinstance(one_way, Applied), one_way
    assert isinstance(loss, Applied), loss
    nemesis.end(one_way)
    assert listed_rules(cluster.exec("n1", list(LIST_ARGV))[1]) == []
    assert len(listed_rules(cluster.exec("n3", list(LIST_ARGV))[1])) == 2  # loss still active


@pytest.mark.chaos
def test_pausing_the_agent_or_postgres_stops_exactly_those_processes(
    cluster: ChaosCluster, nemesis: Nemesis
) -> None:
    node = _replica(cluster)
    agent, postmaster = cluster.pid(node, "agent"), cluster.pid(node, "postgres")
    assert agent is not None
    assert postmaster is not None
    paused = nemesis.apply(fault(f"{{at: 0s, pause: {{node: {node}, what: agent}}}}"))
    assert isinstance(paused, Applied), paused
    assert _proc_state(cluster, node, agent).startswith("T")
    assert not _proc_state(cluster, node, postmaster).startswith("T")
    nemesis.end(paused)
    assert not _proc_state(cluster, node, agent).startswith("T")
    frozen = nemesis.apply(fault(f"{{at: 0s, pause: {{node: {node}, what: postgres}}}}"))
    assert isinstance(frozen, Applied), frozen
    children = cluster.exec(node, ["pgrep", "-P", str(postmaster)])[1].split()
    assert children
    states = [_proc_state(cluster, node, int(pid)) for pid in [postmaster, *children]]
    assert all(state.startswith("T") for state in states if state), states
    assert not _proc_state(cluster, node, agent).startswith("T")
    nemesis.end(frozen)
    assert not _proc_state(cluster, node, postmaster).startswith("T")


@pytest.mark.chaos
def test_killing_the_agent_only_and_starting_it_again(
    cluster: ChaosCluster, nemesis: Nemesis
) -> None:
    node = _replica(cluster)
    agent, postmaster = cluster.pid(node, "agent"), cluster.pid(node, "postgres")
    killed = nemesis.apply(fault(f"{{at: 0s, kill_agent: {node}}}"))
    assert isinstance(killed, Applied), killed
    wait_for("the agent gone", lambda: cluster.pid(node, "agent") is None, 5, every_s=0.2)
    assert cluster.pid(node, "postgres") == postmaster  # PostgreSQL runs on
    assert cluster.rest_status(node, "/health") is None
    nemesis.end(killed)
    wait_for("a new agent", lambda: cluster.pid(node, "agent") not in (None, agent), 5, every_s=0.2)
    wait_for("/replica 200", lambda: cluster.rest_status(node, "/replica") == 200, 30, every_s=0.2)


@pytest.mark.chaos
def test_crashing_postgres_only_leaves_the_agent_to_restart_it(
    cluster: ChaosCluster, nemesis: Nemesis
) -> None:
    node = _replica(cluster)
    agent, postmaster = cluster.pid(node, "agent"), cluster.pid(node, "postgres")
    crashed = nemesis.apply(fault(f"{{at: 0s, kill_postgres: {node}}}"))
    assert isinstance(crashed, Applied), crashed
    code, _ = cluster.exec(node, ["kill", "-0", str(postmaster)])
    assert code != 0  # the postmaster is gone
    assert cluster.pid(node, "agent") == agent
    wait_for(
        "a new postmaster",
        lambda: cluster.pid(node, "postgres") not in (None, postmaster),
        30,
        every_s=0.2,
    )
    wait_for("/replica 200", lambda: cluster.rest_status(node, "/replica") == 200, 30, every_s=0.2)


@pytest.mark.chaos
def test_docker_kill_and_start_and_pause_of_a_node(cluster: ChaosCluster, nemesis: Nemesis) -> None:
    node = _replica(cluster)
    killed = nemesis.apply(fault(f"{{at: 0s, kill: {node}, for: 5s}}"))
    assert isinstance(killed, Applied), killed
    assert cluster.state(node) == "exited"
    nemesis.watch_once()  # a machine a fault killed is not the watchdog's: no reboot
    assert cluster.state(node) == "exited"
    nemesis.end(killed)
    assert cluster.state(node) == "running"
    wait_for("/replica 200", lambda: cluster.rest_status(node, "/replica") == 200, 60, every_s=0.2)
    paused = nemesis.apply(fault(f"{{at: 0s, pause: {node}}}"))
    assert isinstance(paused, Applied), paused
    assert cluster.state(node) == "paused"
    nemesis.end(paused)
    assert cluster.state(node) == "running"


@pytest.mark.chaos
def test_a_node_reset_by_its_watchdog_boots_again(cluster: ChaosCluster, nemesis: Nemesis) -> None:
    node = _replica(cluster)
    cluster.container(node).kill()  # what the supervisor's exit 137 looks like from outside
    nemesis.watch_once()

    def booted() -> bool:  # what the nemesis's watcher thread does every WATCH_INTERVAL_S
        nemesis.watch_once()
        return cluster.state(node) == "running"

    wait_for("the reset node booted", booted, 1.2, every_s=0.2)  # reboot_after_s 1 s
    events = [(r["node"], r["event"]) for r in nemesis.records if r["kind"] == "machine"]
    assert events == [(node, "reset"), (node, "boot")]


@pytest.mark.chaos
def test_a_clock_offset_is_seen_by_processes_under_libfaketime(
    cluster: ChaosCluster, nemesis: Nemesis
) -> None:
    def skew(node: str) -> float:
        faked = (
            "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 "
            f"FAKETIME_TIMESTAMP_FILE={FAKETIME_RC} FAKETIME_NO_CACHE=1 "
            "FAKETIME_DONT_FAKE_MONOTONIC=1 date +%s.%N"
        )
        out = cluster.exec(node, ["sh", "-c", f"date +%s.%N; {faked}"])[1].split()
        return float(out[1]) - float(out[0])

    agent = cluster.pid("n2", "agent")
    environ = cluster.exec("n2", ["cat", f"/proc/{agent}/environ"])[1]
    assert "libfaketime" in environ  # the agent (and PostgreSQL, its child) run under it
    assert abs(skew("n2")) < 1
    offset = nemesis.apply(fault("{at: 0s, clock: {node: n2, offset: 1h}, for: 10s}"))
    assert isinstance(offset, Applied), offset
    assert skew("n2") == pytest.approx(3600, abs=1)
    assert abs(skew("n1")) < 1
    nemesis.apply(fault("{at: 0s, clock: {node: n2, jump: -40s}}"))
    assert skew("n2") == pytest.approx(3560, abs=1)
    nemesis.end(offset)
    assert abs(skew("n2")) < 1
    assert [phase for _, phase in _phases(nemesis)] == ["start", "start", "end"]


@pytest.mark.chaos
def test_a_full_data_disk_refuses_writes_until_freed(
    cluster: ChaosCluster, nemesis: Nemesis
) -> None:
    node = _replica(cluster)
    write = ["dd", "if=/dev/zero", "of=/var/lib/pgha/probe", "bs=1M", "count=4", "conv=fsync"]
    full = nemesis.apply(fault(f"{{at: 0s, disk_full: {node}}}"))
    assert isinstance(full, Applied), full
    code, output = cluster.exec(node, write, user="postgres")
    assert code != 0
    assert "No space left" in output
    nemesis.end(full)
    assert cluster.exec(node, write, user="postgres")[0] == 0
    cluster.exec(node, ["rm", "-f", "/var/lib/pgha/probe"])


@pytest.mark.chaos
def test_killing_the_etcd_leader_and_starting_it_again(
    cluster: ChaosCluster, nemesis: Nemesis
) -> None:
    leader = etcd_leader(cluster)
    assert leader in cluster.etcd_names
    killed = nemesis.apply(fault("{at: 0s, etcd: {member: etcd_leader, action: kill}}"))
    assert isinstance(killed, Applied), killed
    assert killed.hosts == (leader,)
    assert cluster.state(leader) == "exited"
    wait_for(
        "a new etcd leader",
        lambda: etcd_leader(cluster) not in (None, leader),
        15,
        every_s=0.2,
    )
    nemesis.end(killed)
    assert cluster.state(leader) == "running"


@pytest.mark.chaos
def test_the_schedule_applies_and_undoes_faults_at_their_times(
    cluster: ChaosCluster, nemesis: Nemesis
) -> None:
    node = _replica(cluster)
    spec = fault(f"{{at: 0.5s, pause: {{node: {node}, what: agent}}, for: 1s}}")
    t0 = time.monotonic()
    nemesis.start([spec], t0)
    wait_for("the fault applied and undone", lambda: len(_phases(nemesis)) == 2, 10, every_s=0.2)
    nemesis.stop()
    start, end = (r for r in nemesis.records if r["kind"] == "fault")
    assert (start["phase"], end["phase"], start["id"]) == ("start", "end", end["id"])
    assert start["t"] - t0 == pytest.approx(0.5, abs=0.4)
    assert end["t"] - start["t"] == pytest.approx(1.0, abs=0.4)
    assert start["targets"] == [node]


@pytest.mark.chaos
def test_a_switchover_through_the_rest_api(cluster: ChaosCluster, nemesis: Nemesis) -> None:
    primary, candidate = cluster.primary(), _replica(cluster)
    nemesis.apply(fault(f"{{at: 0s, switchover: {{leader: primary, candidate: {candidate}}}}}"))
    for thread in nemesis.operators:
        thread.join(timeout=60)
    (record,) = (r for r in nemesis.records if r["kind"] == "fault")
    assert (record["phase"], record["status"], record["via"]) == ("start", 200, primary)
    assert record["targets"] == [primary, candidate]
    (answer,) = (r for r in nemesis.records if r["kind"] == "operator")
    assert (answer["request"], answer["fault_id"], answer["node"]) == (
        "switchover",
        record["id"],
        "ctl",
    )
    assert (answer["outcome"], answer["status"], answer["error"], answer["via"]) == (
        "accepted",
        200,
        None,
        primary,
    )
    assert answer["t"] >= record["t"]
    wait_for("the candidate primary", lambda: cluster.primary() == candidate, 30, every_s=0.2)


@pytest.mark.chaos
def test_an_operator_config_change_and_etcd_garbage_through_the_real_doors(
    cluster: ChaosCluster, nemesis: Nemesis
) -> None:
    primary = cluster.primary()
    huge = 99999999999999999999999999
    specs = parse_scenario(
        BASE + "faults:\n"
        f"  - {{at: 0.2s, config: {{patch: {{ttl: {huge}}}, node: primary}}}}\n"
        "  - {at: 0.5s, config: {patch: {ttl: 25, loop_wait: 3}}, for: 4s}\n"
        "  - {at: 1s, etcd_put: {key: members/ghost, value: '{'}, for: 2s}\n"
        "  - {at: 1s, etcd_put: {key: failover, value: garbage}}\n"
    ).faults
    etcd = EtcdGateway([f"http://{cluster.ip(m)}:2379" for m in cluster.etcd_names])
    ghost = "/service/pgha-chaos/members/ghost"
    nemesis.start(specs, time.monotonic())
    wait_for(
        "the ghost member key, no lease",
        lambda: etcd.get(ghost) == KeyValue(b"{", 0),
        10,
        every_s=0.2,
    )
    wait_for(
        "three operator answers",
        lambda: len([r for r in nemesis.records if r["kind"] == "operator"]) == 3,
        30,
        every_s=0.2,
    )
    wait_for("six fault phases", lambda: len(_phases(nemesis)) == 6, 20, every_s=0.2)
    nemesis.stop()
    answers = sorted(
        (r for r in nemesis.records if r["kind"] == "operator"),
        key=lambda r: (r["fault_id"], r["restore"]),  # the two changes are sent in parallel
    )
    assert [
        (r["fault_id"], r["outcome"], r["status"], r["error"], r["restore"]) for r in answers
    ] == [
        (1, "refused", 400, "invalid_config", False),  # the real validate_config said no
        (2, "accepted", 200, None, False),
        (2, "accepted", 200, None, True),
    ]
    assert answers[0]["via"] == primary
    assert "ttl" in answers[0]["detail"]
    stored = nemesis.ops.rest_answer(primary, "/config", None, method="GET")
    assert (json.loads(stored.body)["ttl"], json.loads(stored.body)["loop_wait"]) == (20, 2)
    assert etcd.get(ghost) is None  # absent before: deleted again
    assert cluster.primary() == primary  # nobody crashed, the primary kept its lock
    phases = _phases(nemesis)
    assert sorted(phases[:4]) == [
        ("config", "start"),
        ("config", "start"),
        ("etcd_put", "start"),
        ("etcd_put", "start"),
    ]
    # The failover garbage stays (no `for`): the leader deletes what it cannot read, or not.
    assert phases[4:] == [("etcd_put", "end"), ("config", "end")]


@pytest.mark.chaos
def test_down_removes_the_data_disks(docker_client: Any, cluster: ChaosCluster) -> None:
    """Last in the module: it removes the module's cluster."""
    filters = {"label": f"pgha.chaos.run={cluster.run_id}"}
    images = [v.attrs["Labels"][LABEL_FILE] for v in docker_client.volumes.list(filters=filters)]
    assert len(images) == 3
    cluster.down()
    assert docker_client.volumes.list(filters=filters) == []
    attached = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=False)
    assert not any(image in attached.stdout for image in images)
    assert not any(os.path.exists(image) for image in images)
