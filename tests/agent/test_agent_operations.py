"""Real agents: switchover, loss of etcd, failsafe, pause, pgBackRest replicas, REST input.

The same loopback cluster as test_agent_failover.py (ttl 10 / loop_wait 2 / retry_timeout 2,
the softdog emulation as the watchdog with a timeout of 8 s).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from pgha.agent.compose import pg_settings
from pgha.agent.config.file import load_agent_config
from pgha.agent.etcd.session import EtcdSession, EtcdSettings
from pgha.agent.pg.backrest import backup, stanza_create
from pgha.agent.pg.exec import OsUser
from tests.agent.cluster import REST_AUTH, AgentCluster, http, running_cluster
from tests.agent.conftest import give_to_os_user
from tests.probes import holds_for, wait_for

pytestmark = pytest.mark.agent


def settled(cluster: AgentCluster) -> str:
    """Wait for a primary with every other node streaming from it; returns the primary."""
    primary = cluster.wait_for_primary()
    others = set(cluster.nodes) - {primary}
    wait_for(
        "streaming replicas",
        lambda: cluster.streaming_replicas(primary) == others,
        60,
        ignoring=(psycopg.Error,),
    )

    def published() -> bool:  # what switchover checks: every member key says running
        code, body = cluster.nodes[primary].get("/cluster")
        states = [m.get("state") for m in body.get("members", [])] if code == 200 else []
        return states == ["running"] * len(cluster.nodes)

    wait_for("every member published as running", published, 15)
    return primary


def post(cluster: AgentCluster, name: str, path: str, body: object) -> tuple[int, object]:
    return http("POST", cluster.nodes[name].api_url + path, body, auth=REST_AUTH)


def writable(cluster: AgentCluster, name: str) -> bool:
    try:
        return cluster.query(name, "SELECT pg_is_in_recovery()") == [(False,)]
    except Exception:
        return False


def leader_key(cluster: AgentCluster) -> bytes | None:
    """The value of the cluster's leader key in etcd now, None when there is none."""
    settings = EtcdSettings(hosts=tuple(cluster.etcd.endpoints), scope=cluster.scope)
    session = EtcdSession(settings)
    try:
        kvs = session.range(f"/service/{cluster.scope}/leader".encode(), what="test").kvs
    finally:
        session.close()
    return bytes(kvs[0].value) if kvs else None


def pause(cluster: AgentCluster, through: str) -> None:
    """PATCH /config {"pause": true} through `through`; returns once every agent reports it."""
    code, _ = http(
        "PATCH", cluster.nodes[through].api_url + "/config", {"pause": True}, auth=REST_AUTH
    )
    assert code == 200
    for node in cluster.nodes.values():
        wait_for("pause seen", lambda node=node: node.get("/patroni")[1].get("pause"), 15)
    # /patroni reports the pause once decided; the primary disarms its watchdog as that cycle's
    # first action, an instant later.
    primary = cluster.primary()
    if primary is not None:
        wait_for("the primary's watchdog disarmed", lambda: watchdog_disarmed(cluster, primary), 5)


def watchdog_disarmed(cluster: AgentCluster, name: str) -> bool:
    """The node's softdog was closed with the magic character last (not armed now)."""
    log = cluster.nodes[name].root / "softdog.jsonl"
    lines = log.read_text().splitlines() if log.exists() else []
    return bool(lines) and '"magic_close"' in lines[-1]


def softdog_fired(cluster: AgentCluster, name: str) -> bool:
    log = cluster.nodes[name].root / "softdog.jsonl"
    return log.exists() and '"fired"' in log.read_text()


def test_switchover_moves_the_primary_to_the_candidate_within_5_s(workdir: Path) -> None:
    with running_cluster(workdir) as cluster:
        old = settled(cluster)
        candidate = sorted(set(cluster.nodes) - {old})[0]
        started = time.monotonic()
        code, message = post(cluster, old, "/switchover", {"leader": old, "candidate": candidate})
        assert code == 200, message
        wait_for(
            "a write on the candidate", lambda: cluster.try_write(candidate, 1), 10, every_s=0.05
        )
        switchover_s = time.monotonic() - started
        print(f"switchover to the first write on the candidate: {switchover_s:.2f} s")
        assert switchover_s < 5, switchover_s
        assert cluster.wait_for_primary(10) == candidate
        wait_for(
            "the old primary streaming",
            lambda: old in cluster.streaming_replicas(candidate),
            60,
            ignoring=(psycopg.Error,),
        )
        assert not softdog_fired(cluster, old)


def test_scheduled_switchover_waits_for_its_time(workdir: Path) -> None:
    with running_cluster(workdir) as cluster:
        old = settled(cluster)
        candidate = sorted(set(cluster.nodes) - {old})[-1]
        at = datetime.now(UTC) + timedelta(seconds=6)
        body = {"leader": old, "candidate": candidate, "scheduled_at": at.isoformat()}
        code, message = post(cluster, old, "/switchover", body)
        assert code == 202, message
        code, _ = post(cluster, old, "/switchover", body)
        assert code == 409  # one scheduled switchover at a time
        holds_for("the old primary before the scheduled time", lambda: cluster.primary() == old, 3)
        assert cluster.wait_for_primary(30, not_=old) == candidate
        assert datetime.now(UTC) >= at


def test_loss_of_etcd_demotes_the_primary_within_loop_wait_plus_two_retry_timeouts(
    workdir: Path,
) -> None:
    # The demotion, not the watchdog (timeout 8 s), must take the primary down.
    loop_wait_s, retry_s = 2, 2
    with running_cluster(workdir) as cluster:
        primary = settled(cluster)
        lost_at = time.monotonic()
        for member in cluster.etcd.names:
            cluster.etcd.pause(member)
        wait_for(
            "the primary to stop accepting writes",
            lambda: not writable(cluster, primary),
            20,
            every_s=0.1,
        )
        demoted_s = time.monotonic() - lost_at
        print(f"primary stopped accepting writes {demoted_s:.2f} s after etcd was lost")
        assert demoted_s <= loop_wait_s + 2 * retry_s, demoted_s
        assert not softdog_fired(cluster, primary)
        assert not any(writable(cluster, n) for n in cluster.nodes)
        for member in cluster.etcd.names:
            cluster.etcd.resume(member)
        cluster.wait_for_primary(60)


def test_failsafe_mode_keeps_the_primary_while_every_member_is_reachable(workdir: Path) -> None:
    with running_cluster(workdir, dcs={"failsafe_mode": True}) as cluster:
        primary = settled(cluster)

        def failsafe_lists_everyone() -> bool:
            code, members = cluster.nodes[primary].get("/failsafe")
            return code == 200 and set(members) == set(cluster.nodes)

        wait_for("/failsafe with every member", failsafe_lists_everyone, 10)
        for member in cluster.etcd.names:
            cluster.etcd.pause(member)
        values = itertools.count(1)

        def write() -> bool:
            value = next(values)
            assert cluster.try_write(primary, value), f"write {value} refused"
            return True

        # A write every 0.5 s, well past ttl + loop_wait: the primary keeps serving throughout.
        holds_for("writes on the primary", write, 10 + 2 + 5, every_s=0.5)
        others = set(cluster.nodes) - {primary}
        assert not any(writable(cluster, n) for n in others)
        assert not softdog_fired(cluster, primary)
        reasons = {e.get("reason") for e in cluster.nodes[primary].history()}
        assert "failsafe_continue" in reasons or "failsafe_check" in reasons
        for member in cluster.etcd.names:
            cluster.etcd.resume(member)
        assert cluster.wait_for_primary(30) == primary


def test_pause_mode_stops_failover_and_the_watchdog(workdir: Path) -> None:
    with running_cluster(workdir) as cluster:
        primary = settled(cluster)
        pause(cluster, through=primary)
        cluster.kill_agent(primary)  # PostgreSQL keeps running, unmanaged
        wait_for("the lock to expire", lambda: leader_key(cluster) is None, 10 + 2 + 4)
        others = set(cluster.nodes) - {primary}

        def unmanaged_and_alone() -> bool:
            # the watchdog was disabled in pause: no fencing; and nobody promoted
            return writable(cluster, primary) and not any(writable(cluster, n) for n in others)

        # Three loops of every other agent with the lock gone: still nobody takes over.
        holds_for("the unmanaged primary alone", unmanaged_and_alone, 3 * 2, every_s=0.5)
        assert not softdog_fired(cluster, primary)
        cluster.start_agent(cluster.nodes[primary])
        wait_for("the old primary's agent", lambda: cluster.nodes[primary].get("/patroni")[0], 20)
        other = sorted(others)[0]
        code, _ = http(
            "PATCH", cluster.nodes[other].api_url + "/config", {"pause": None}, auth=REST_AUTH
        )
        assert code == 200
        assert cluster.wait_for_primary(30) == primary  # it takes its lock back, no failover


def _backrest_config(workdir: Path) -> Path:
    base = workdir / "backrest"
    for sub in ("", "repo", "lock", "log"):
        (base / sub).mkdir(exist_ok=True)
        give_to_os_user(base / sub)
    config = base / "pgbackrest.conf"
    config.write_text(
        "[global]\n"
        f"repo1-path={base / 'repo'}\nlock-path={base / 'lock'}\nlog-path={base / 'log'}\n"
        "log-level-console=warn\nlog-level-file=off\narchive-timeout=30\ncompress-type=none\n"
    )
    config.chmod(0o644)
    return config


def test_a_replica_is_created_from_pgbackrest(workdir: Path) -> None:
    config = _backrest_config(workdir)
    backrest = {
        "create_replica_methods": ["pgbackrest", "basebackup"],
        "pgbackrest": {"stanza": "main", "config": str(config), "archive": True},
    }
    with running_cluster(
        workdir, names=("n1", "n2"), postgresql=backrest, start_only=("n1",)
    ) as cluster:
        primary = cluster.wait_for_primary()
        assert primary == "n1"
        cfg = load_agent_config(cluster.nodes["n1"].config_path)
        settings, user = pg_settings(cfg), OsUser.of(cfg.postgresql.os_user)
        stanza_create(settings, user)
        assert cluster.try_write("n1", 1)
        backup(settings, user)
        assert cluster.try_write("n1", 2)
        cluster.start_node(cluster.nodes["n2"])
        wait_for(
            "n2 streaming",
            lambda: "n2" in cluster.streaming_replicas("n1"),
            90,
            ignoring=(psycopg.Error,),
        )
        created = [e for e in cluster.nodes["n2"].history() if e["kind"] == "replica_created"]
        assert [e["method"] for e in created] == ["pgbackrest"]
        wait_for(
            "both rows on n2", lambda: cluster.ids("n2") == {1, 2}, 20, ignoring=(psycopg.Error,)
        )


def test_rest_api_requires_authentication_and_answers_bad_input_with_4xx(workdir: Path) -> None:
    with running_cluster(workdir, names=("n1",)) as cluster:
        node = cluster.nodes[cluster.wait_for_primary()]
        url = node.api_url
        body = {"leader": node.name, "candidate": "n9"}
        assert http("POST", url + "/switchover", body)[0] == 401
        assert http("POST", url + "/switchover", body, auth=("admin", "wrong"))[0] == 401
        assert http("POST", url + "/restart", {}, auth=("nobody", REST_AUTH[1]))[0] == 401
        assert http("PATCH", url + "/config", {"ttl": "soon"}, auth=REST_AUTH)[0] == 400
        assert http("PATCH", url + "/config", [1, 2], auth=REST_AUTH)[0] == 400
        assert http("POST", url + "/switchover", {"leader": 5}, auth=REST_AUTH)[0] == 400
        code, _ = http("POST", url + "/switchover", {"leader": "n9"}, auth=REST_AUTH)
        assert 400 <= code < 500
        assert http("GET", url + "/no-such-endpoint")[0] == 404
        assert http("DELETE", url + "/patroni", auth=REST_AUTH)[0] in (404, 405)
        code, text = http("GET", url + "/metrics")
        assert code == 200
        samples = dict(line.split(" ", 1) for line in str(text).splitlines() if line[:1] != "#")
        primary_sample = next(k for k in samples if k.startswith("pgha_primary"))
        assert float(samples[primary_sample]) == 1
        code, config = http("GET", url + "/config")
        assert code == 200
        assert isinstance(config, dict)
        assert config["ttl"] == 10


BAD_CONFIG = """\
scope: demo
name: n1
restapi:
  listen: 127.0.0.1:8008
etcd3:
  hosts: [127.0.0.1:2379]
postgresql:
  listen: 127.0.0.1:5432
  data_dir: /tmp/nowhere/data
  authentication:
    superuser: {username: postgres, password: s3cret-value}
    replication: {username: replicator, password: s3cret-value}
  callbacks:
    on_start: "echo started; rm -rf /"
"""


def test_bad_configuration_files_are_refused_with_file_line_and_field(workdir: Path) -> None:
    bad = workdir / "bad.yaml"
    bad.write_text(BAD_CONFIG)
    for option in ("--config", "--validate-config"):
        done = subprocess.run(
            [sys.executable, "-m", "pgha", "agent", option, str(bad)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        assert f"{bad}:14:" in done.stderr
        assert "postgresql.callbacks.on_start" in done.stderr
        assert "Traceback" not in done.stderr + done.stdout
        assert "s3cret-value" not in done.stderr + done.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "pgha", "agent", "--config", str(workdir / "absent.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2
    assert "absent.yaml" in missing.stderr
    assert "Traceback" not in missing.stderr


def ctl(cluster: AgentCluster, *args: str) -> subprocess.CompletedProcess[str]:
    config = str(cluster.nodes["n1"].config_path)
    return subprocess.run(
        [sys.executable, "-m", "pgha", "ctl", "-c", config, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_ctl_lists_switches_over_and_shows_history_of_a_live_cluster(workdir: Path) -> None:
    with running_cluster(workdir) as cluster:
        old = settled(cluster)
        listed = ctl(cluster, "list", "--format", "json")
        assert listed.returncode == 0, listed.stderr
        rows = {row["Member"]: row for row in json.loads(listed.stdout)}
        assert set(rows) == set(cluster.nodes)
        assert [name for name, row in rows.items() if row["Role"] == "Leader"] == [old]
        assert {row["State"] for row in rows.values()} == {"running"}
        candidate = sorted(set(cluster.nodes) - {old})[0]
        switched = ctl(cluster, "switchover", "--leader", old, "--candidate", candidate, "--force")
        assert switched.returncode == 0, switched.stderr
        assert cluster.wait_for_primary(20) == candidate

        def history() -> list[tuple[object, object]]:
            done = ctl(cluster, "history", "--format", "json")
            assert done.returncode == 0, done.stderr
            return [(line["TL"], line["New Leader"]) for line in json.loads(done.stdout)]

        assert wait_for("the /history line", history, 10) == [(1, candidate)]
        pretty = ctl(cluster, "list")
        assert pretty.returncode == 0
        assert f"Cluster: {cluster.scope}" in pretty.stdout


def _callback_script(node_root: Path) -> Path:
    """A callback program that appends its arguments to callbacks.log in the node's directory."""
    script = node_root / "callback.sh"
    script.write_text(f'#!/bin/sh\necho "$@" >> {node_root / "callbacks.log"}\n')
    script.chmod(0o755)
    give_to_os_user(script)
    return script


def test_dynamic_parameters_reach_every_node_and_callbacks_run(workdir: Path) -> None:
    per_node = {}
    for name in ("n1", "n2", "n3"):
        (workdir / name).mkdir(mode=0o755)
        give_to_os_user(workdir / name)
        script = str(_callback_script(workdir / name))
        callbacks = {"on_role_change": [script], "on_restart": [script], "on_start": [script]}
        per_node[name] = {"postgresql": {"callbacks": callbacks}}
    with running_cluster(workdir, per_node=per_node, existing_dirs=True) as cluster:
        primary = settled(cluster)
        log = cluster.nodes[primary].root / "callbacks.log"
        expected = f"on_start primary {cluster.scope}"
        wait_for("the start callback", lambda: expected in log.read_text().splitlines(), 10)
        change = {"postgresql": {"parameters": {"work_mem": "7MB", "wal_buffers": "1MB"}}}
        url = cluster.nodes[primary].api_url + "/config"
        assert http("PATCH", url, change, auth=REST_AUTH)[0] == 200
        for name in cluster.nodes:
            wait_for(
                f"work_mem on {name}",
                lambda name=name: cluster.query(name, "SHOW work_mem") == [("7MB",)],
                15,
                ignoring=(psycopg.Error,),
            )

        def pending() -> dict[str, bool]:
            rows = json.loads(ctl(cluster, "list", "--format", "json", "-e").stdout)
            return {row["Member"]: row["Pending restart"] for row in rows}

        wait_for("pending restarts", lambda: all(pending().values()), 15)
        restarted = ctl(cluster, "restart", primary, "--force")
        assert restarted.returncode == 0, restarted.stderr
        assert cluster.query(primary, "SHOW wal_buffers") == [("1MB",)]
        wait_for("the primary's restart done", lambda: not pending()[primary], 15)
        wait_for("the restart callback", lambda: "on_restart" in log.read_text(), 10)
        candidate = sorted(set(cluster.nodes) - {primary})[0]
        switched = ctl(
            cluster, "switchover", "--leader", primary, "--candidate", candidate, "--force"
        )
        assert switched.returncode == 0, switched.stderr
        new_log = cluster.nodes[candidate].root / "callbacks.log"
        for path, role in ((new_log, "primary"), (log, "replica")):
            line = f"on_role_change {role} {cluster.scope}"
            wait_for(
                f"{line} in {path}", lambda p=path, ln=line: ln in p.read_text().splitlines(), 15
            )
