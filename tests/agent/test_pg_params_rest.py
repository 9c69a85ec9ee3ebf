"""A real agent and PostgreSQL: bad PostgreSQL parameters never reach the server (issue 13, item 3).

`PATCH /config` with `work_mem: "-7 parsecs"` or `shared_preload_libraries: pg_stat_statementz`
used to answer 200 and write the value to every node; the next restart failed and the server's
log went to /dev/null. Now every door refuses such a value with a 400 (or exit 2) naming the
parameter, a value written past the doors (etcdctl) is left out of postgresql.conf, the server
logs to <data_dir>/log/postgresql.log, and a failed start reports PostgreSQL's own complaint.

One node on a one-member etcd, shared by the module (the behaviour is per node).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.cluster import REST_AUTH as AUTH
from tests.agent.cluster import SUPERUSER, AgentCluster, http
from tests.agent.conftest import give_to_os_user
from tests.agent.etcd_cluster import EtcdCluster
from tests.agent.test_agent_config_guard import etcdctl_put
from tests.agent.test_agent_operations import ctl
from tests.probes import wait_for

pytestmark = pytest.mark.agent

DCS = {"ttl": 10, "loop_wait": 1, "retry_timeout": 2}


@pytest.fixture(scope="module")
def cluster() -> Iterator[AgentCluster]:
    workdir = Path(tempfile.mkdtemp(prefix="pgha-test-"))
    workdir.chmod(0o755)
    give_to_os_user(workdir)
    try:
        with EtcdCluster.running(workdir / "etcd", size=1) as etcd:
            found = AgentCluster(workdir, etcd, names=("n1",), dcs=DCS, watchdog_mode="off")
            try:
                found.start()
                found.wait_for_primary()
                yield found
            except BaseException:
                print(found.logs())
                raise
            finally:
                found.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def agent_log(cluster: AgentCluster) -> str:
    return (cluster.nodes["n1"].root / "agent.out").read_text(errors="replace")


def show(cluster: AgentCluster, name: str) -> str | None:
    try:
        rows = cluster.query("n1", f"SHOW {name}")
    except Exception:
        return None
    return str(rows[0][0]) if rows else None


def stored_config(cluster: AgentCluster) -> dict[str, object]:
    code, body = http("GET", cluster.nodes["n1"].api_url + "/config")
    assert code == 200
    assert isinstance(body, dict)
    return body


def test_the_server_logs_under_its_data_directory(cluster: AgentCluster) -> None:
    log = cluster.nodes["n1"].data_dir / "log" / "postgresql.log"
    wait_for("the server's log", lambda: "ready to accept connections" in log.read_text(), 10)


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        (
            {"work_mem": "-7 parsecs"},
            "postgresql.parameters.work_mem: expected an integer with a memory unit (B, kB, MB, "
            "GB, TB) between 64 kB and 2147483647 kB, got '-7 parsecs'",
        ),
        (
            {"shared_preload_libraries": "pg_stat_statementz"},
            "postgresql.parameters.shared_preload_libraries: expected libraries installed in "
            "/usr/lib/postgresql/15/lib (as <name>.so), got 'pg_stat_statementz', which is not "
            "installed there; did you mean 'pg_stat_statements'?",
        ),
        (
            {"port": 5433},
            "postgresql.parameters.port: expected a parameter pgha does not set itself, got "
            "'port'; pgha sets it from postgresql.listen",
        ),
        (
            {"hba_file": "/etc/passwd"},
            "postgresql.parameters.hba_file: expected a parameter pgha does not set itself",
        ),
    ],
)
def test_a_bad_parameter_is_refused_at_every_door(
    cluster: AgentCluster, parameters: dict[str, object], message: str
) -> None:
    url = cluster.nodes["n1"].api_url + "/config"
    before = stored_config(cluster)
    for method, body in [
        ("PATCH", {"postgresql": {"parameters": parameters}}),
        ("PUT", {**before, "postgresql": {"parameters": parameters}}),
    ]:
        code, answer = http(method, url, body, auth=AUTH)
        assert code == 400, (method, answer)
        assert answer["error"].startswith(message)
    ((name, value),) = parameters.items()
    refused = ctl(cluster, "edit-config", "--force", "--pg", f"{name}={value}")
    assert refused.returncode == 2, refused.stderr
    assert message in refused.stderr
    assert "Traceback" not in refused.stderr
    assert stored_config(cluster) == before


def test_a_good_parameter_is_stored_and_applied(cluster: AgentCluster) -> None:
    change = {"postgresql": {"parameters": {"work_mem": "8MB", "pgha_test.flag": "x"}}}
    code, _ = http("PATCH", cluster.nodes["n1"].api_url + "/config", change, auth=AUTH)
    assert code == 200
    wait_for("work_mem 8MB", lambda: show(cluster, "work_mem") == "8MB", 15)
    assert show(cluster, "pgha_test.flag") == "x"


def test_a_bad_value_in_etcd_is_left_out_and_the_server_still_restarts(
    cluster: AgentCluster,
) -> None:
    good = stored_config(cluster)
    bad = {
        "work_mem": "-7 parsecs",
        "shared_preload_libraries": "pg_stat_statementz",
        "maintenance_work_mem": "20MB",
    }
    etcdctl_put(cluster, "config", json.dumps({**good, "postgresql": {"parameters": bad}}))
    wait_for(
        "maintenance_work_mem 20MB", lambda: show(cluster, "maintenance_work_mem") == "20MB", 15
    )
    conf = (cluster.nodes["n1"].data_dir / "postgresql.conf").read_text()
    assert "parsecs" not in conf
    assert "pg_stat_statementz" not in conf
    code, answer = http("POST", cluster.nodes["n1"].api_url + "/restart", {}, auth=AUTH)
    assert code == 200, answer
    assert show(cluster, "maintenance_work_mem") == "20MB"
    text = agent_log(cluster)
    assert text.count("ignoring postgresql.parameters.work_mem: expected an integer") == 1
    assert text.count("ignoring postgresql.parameters.shared_preload_libraries") == 1
    etcdctl_put(cluster, "config", json.dumps(good))


def test_a_failed_start_reports_postgresqls_own_complaint(cluster: AgentCluster) -> None:
    # A bad line pgha does not manage (postgresql.base.conf, included by postgresql.conf, of a
    # parameter postgresql.conf does not set again); its value is the superuser's password,
    # which PostgreSQL's complaint repeats and pgha scrubs.
    node = cluster.nodes["n1"]
    base = node.data_dir / "postgresql.base.conf"
    original = base.read_text()
    base.write_text(original + f"\neffective_cache_size = '{SUPERUSER[1]}'\n")
    try:
        cluster.kill_postgres("n1")
        complaint = 'invalid value for parameter "effective_cache_size": "***"'
        wait_for("the complaint in the agent's log", lambda: complaint in agent_log(cluster), 30)
    finally:
        base.write_text(original)
    text = agent_log(cluster)
    assert f"PostgreSQL's log ({node.data_dir}/log/postgresql.log)" in text
    assert SUPERUSER[1] not in text
    wait_for("PostgreSQL up again", lambda: show(cluster, "work_mem") is not None, 60)
