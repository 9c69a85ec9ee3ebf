"""The chaos image, for real: it builds (and a second build is a cache hit), its programs have the
versions the harness relies on, iptables drops packets inside a container with NET_ADMIN,
libfaketime skews the wall clock through the rc file the nemesis rewrites, and a one-node container
under chaos.node_init bootstraps a primary, survives a clean stop and reboot, and is reset (exit
137) by the softdog emulation when its agent is frozen with SIGSTOP."""

from __future__ import annotations

import functools
import io
import json
import socket
import tarfile
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from chaos.image import BASE_REPO, IMAGE_REPO, LABEL
from chaos.image_removal import remove_images
from chaos.node_init import FAKETIME_RC, faketime_env, faketime_rc, parse_node
from tests.chaos.conftest import ImageBuild
from tests.probes import holds_for, wait_for

pytestmark = pytest.mark.chaos

NODE_COMMAND = ["/opt/pgha/venv/bin/python", "-m", "chaos.node_init", "/etc/pgha/node.json"]
TTL_S = 10


def _run(client: Any, image: str, script: str, **kwargs: Any) -> str:
    """Run `sh -c script` in a throw-away container; its output (stdout and stderr)."""
    out = client.containers.run(
        image, ["sh", "-c", script], remove=True, stdout=True, stderr=True,
        labels={LABEL: "1"}, **kwargs,
    )  # fmt: skip
    return bytes(out).decode()


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _read_file(container: Any, path: str) -> str:
    """A file of a (running or stopped) container; "" when missing."""
    try:
        chunks, _ = container.get_archive(path)
    except Exception:
        return ""
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        member = tar.next()
        handle = tar.extractfile(member) if member is not None else None
        return handle.read().decode(errors="replace") if handle is not None else ""


def _diagnostics(container: Any) -> str:
    logs = container.logs().decode(errors="replace")[-3000:]
    agent = _read_file(container, "/var/log/pgha/agent.log")[-4000:]
    return f"\n--- container log ---\n{logs}\n--- agent.log ---\n{agent}"


# ---------------------------------------------------------------- the image


def test_image_builds_once_then_hits_the_cache(
    chaos_image_build: ImageBuild, docker_client: Any
) -> None:
    image = docker_client.images.get(chaos_image_build.tag)
    assert image.labels.get(LABEL) == "1"
    assert f"{IMAGE_REPO}:latest" in image.tags
    base = docker_client.images.list(name=BASE_REPO, filters={"label": f"{LABEL}=1"})
    assert base, "the debootstrap base image is labelled too"
    build = chaos_image_build
    print(
        f"\nimage {build.tag}: {image.attrs['Size'] / 1e6:.0f} MB; session build "
        f"{build.build_s:.1f} s, cached build {build.cached_build_s:.1f} s"
    )
    if not build.sources_changed:  # (other work on the tree may change them meanwhile)
        assert build.cached_build_s < 30.0


VERSION_SCRIPT = """
echo "pgha: $(pgha --version 2>&1)"
echo "postgres: $(/usr/lib/postgresql/15/bin/postgres --version)"
echo "etcd: $(etcd --version | head -1)"
echo "etcdctl: $(ETCDCTL_API=3 etcdctl version | head -1)"
echo "haproxy: $(haproxy -v | head -1)"
echo "patroni: $(/opt/patroni/venv/bin/patroni --version 2>&1)"
echo "pgbackrest: $(pgbackrest version)"
echo "clusters: $(ls /etc/postgresql | wc -l) $(ls /var/lib/postgresql | wc -l)" 2>/dev/null
echo "node_init: $(/opt/pgha/venv/bin/python -c 'import chaos.node_init as m; print(m.RESET_EXIT)')"
echo "faketime: $(ls /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1)"
echo "postgres_user: $(id -u postgres)"
"""


@pytest.fixture(scope="module")
def versions(chaos_image: str, docker_client: Any) -> dict[str, str]:
    out = _run(docker_client, chaos_image, VERSION_SCRIPT)
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


@pytest.mark.parametrize(
    ("program", "expected"),
    [
        ("pgha", "pgha 0.1.0"),
        ("postgres", "postgres (PostgreSQL) 15."),
        ("etcd", "etcd Version: 3.4."),
        ("etcdctl", "etcdctl version: 3.4."),
        ("haproxy", "HAProxy version 2."),
        ("patroni", "patroni 4.1.5"),
        ("pgbackrest", "pgBackRest 2."),
        ("clusters", "0 0"),  # no cluster made by the package, no data directory
        ("node_init", "137"),
        ("faketime", "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"),
    ],
)
def test_programs_have_the_expected_versions(
    versions: dict[str, str], program: str, expected: str
) -> None:
    assert versions.get(program, "").startswith(expected), versions


# ---------------------------------------------------------------- iptables

LISTENER = (
    "import socket; s = socket.socket(); s.bind(('0.0.0.0', 7777)); s.listen(16)\n"
    "while True: s.accept()[0].close()\n"
)


def _connects(ip: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=timeout_s):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("iptables", ["iptables", "iptables-legacy"])
def test_iptables_drops_packets_inside_a_container(
    chaos_image: str, docker_client: Any, chaos_network: Any, iptables: str
) -> None:
    network, subnet, run_id = chaos_network
    container = docker_client.containers.run(
        chaos_image, ["python3", "-c", LISTENER], detach=True, cap_add=["NET_ADMIN"],
        name=f"pgha-{run_id}-ipt", network=network.name,
        labels={LABEL: "1", f"{LABEL}.run": run_id},
    )  # fmt: skip
    container.reload()
    ip = container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
    assert ip in [str(host) for host in subnet.hosts()]
    wait_for("the listener in the container", lambda: _connects(ip, 7777), 10)
    code, out = container.exec_run([iptables, "-w", "-A", "INPUT", "-p", "tcp", "--dport", "7777",
                                    "-m", "statistic", "--mode", "random", "--probability", "1",
                                    "-j", "DROP"])  # fmt: skip
    assert code == 0, out
    assert not _connects(ip, 7777)
    code, out = container.exec_run([iptables, "-w", "-S", "INPUT"])
    assert code == 0
    assert b"--dport 7777" in out


# ---------------------------------------------------------------- libfaketime

FAKETIME_PROBE = """
import os, time, subprocess
def skew():
    faked = float(subprocess.run(["date", "+%s.%N"], capture_output=True, text=True).stdout)
    real = float(subprocess.run(["date", "+%s.%N"], capture_output=True, text=True,
                                env={"PATH": "/usr/bin:/bin"}).stdout)
    return round(faked - real)
rc = os.environ["FAKETIME_TIMESTAMP_FILE"]
for spec in ("+3600 x1", "-120 x1", "+2.5m x1", "+0 x1"):
    open(rc, "w").write(spec + "\\n")
    print(spec, skew())
mono = time.monotonic(); time.sleep(0.2)  # the sleeps are the measurement
print("mono_step", round(time.monotonic() - mono, 1))
open(rc, "w").write("+0 x2\\n")
wall, mono = time.time(), time.monotonic(); time.sleep(0.5)
print("rate", round((time.time() - wall) / (time.monotonic() - mono), 1))
print("mono", time.monotonic())
"""


def test_faketime_skews_the_wall_clock_through_the_rc_file(
    chaos_image: str, docker_client: Any
) -> None:
    env = faketime_env()  # the supervisor's environment for the agent and PostgreSQL
    script = (
        f"mkdir -p {FAKETIME_RC.parent} && printf '{faketime_rc(3600.0)}' > {FAKETIME_RC} && "
        f"python3 -c '{FAKETIME_PROBE.replace(chr(39), chr(34))}'"
    )
    host_before = time.monotonic()
    out = _run(docker_client, chaos_image, script, environment=env)
    host_after = time.monotonic()
    rows = dict(line.rsplit(" ", 1) for line in out.splitlines() if " " in line)
    # CLOCK_MONOTONIC is not faked (and not namespaced): history times stay the host's.
    assert host_before <= float(rows.pop("mono", "nan")) <= host_after, out
    assert rows == {
        "+3600 x1": "3600",  # the date program, a child, sees the offset
        "-120 x1": "-120",  # rewriting the file changes the clock without a restart
        "+2.5m x1": "150",  # fractions and units
        "+0 x1": "0",
        "mono_step": "0.2",  # time.sleep works (the image's fix) on the real monotonic clock
        "rate": "2.0",  # "x2": the wall clock runs twice as fast
    }, out


# ---------------------------------------------------------------- the supervisor


def _create_node(
    client: Any, image: str, network: Any, run_id: str, ip: str, files: dict[str, bytes]
) -> Any:
    api = client.api
    created = api.create_container(
        image, NODE_COMMAND, name=f"pgha-{run_id}-n1", hostname="n1",
        labels={LABEL: "1", f"{LABEL}.run": run_id},
        host_config=api.create_host_config(cap_add=["NET_ADMIN"]),
        networking_config=api.create_networking_config(
            {network.name: api.create_endpoint_config(ipv4_address=ip)}
        ),
    )  # fmt: skip
    container = client.containers.get(created["Id"])
    assert container.put_archive("/etc/pgha", _tar(files))
    return container


def test_supervisor_restarts_the_agent_on_sigusr1_and_stops_on_sigterm(
    chaos_image: str, docker_client: Any, chaos_network: Any
) -> None:
    network, subnet, run_id = chaos_network
    node = {"name": "n1", "etcd": None, "agent": "pgha", "agent_config": "/etc/pgha/agent.yaml",
            "faketime": None, "softdog": False}  # fmt: skip
    files = {"node.json": json.dumps(node).encode(), "agent.yaml": b"scope: [not, valid]\n"}
    container = _create_node(docker_client, chaos_image, network, run_id, str(subnet[10]), files)
    container.start()

    def ran(count: int) -> bool:
        """The agent was started and has exited `count` times."""
        logs = container.logs().decode()
        return logs.count("started agent pid") == logs.count("exited with 2") == count

    def agent_runs(count: int) -> None:
        diagnostics = functools.partial(_diagnostics, container)
        wait_for(f"{count} agent runs", lambda: ran(count), 20, every_s=0.2, details=diagnostics)

    agent_runs(1)  # a bad configuration: the agent exits 2
    holds_for("one agent run", lambda: ran(1), 1.0, every_s=0.2)  # nothing restarts it by itself
    container.reload()
    assert container.status == "running"
    container.kill(signal="SIGUSR1")
    agent_runs(2)  # the nemesis's "start the agent again"
    started = time.monotonic()
    container.stop(timeout=20)
    assert container.wait(timeout=30)["StatusCode"] == 0, _diagnostics(container)
    assert time.monotonic() - started < 10


def _agent_yaml(ip: str) -> str:
    return f"""
scope: chaos-image-test
name: n1
restapi: {{listen: "0.0.0.0:8008", connect_address: "{ip}:8008"}}
etcd3: {{hosts: ["127.0.0.1:2379"]}}
bootstrap:
  dcs: {{ttl: {TTL_S}, loop_wait: 2, retry_timeout: 3}}
postgresql:
  listen: "0.0.0.0:5432"
  connect_address: "{ip}:5432"
  data_dir: /var/lib/pgha/data
  os_user: postgres
  authentication:
    superuser: {{username: postgres, password: chaos-su}}
    replication: {{username: replicator, password: chaos-repl}}
watchdog: {{mode: required, device: /run/pgha/watchdog.sock, safety_margin: 5}}
log: {{history: /var/log/pgha/history.jsonl, dir: /var/log/pgha}}
"""


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def _wait_primary(container: Any, ip: str, timeout_s: float = 120.0) -> float:
    """How long until the node's /primary answers 200 (its container must keep running)."""
    started = time.monotonic()

    def primary() -> bool:
        if _status(f"http://{ip}:8008/primary") == 200:
            return True
        container.reload()
        assert container.status == "running", _diagnostics(container)
        return False

    details = functools.partial(_diagnostics, container)
    wait_for("/primary 200", primary, timeout_s, every_s=0.5, details=details)
    return time.monotonic() - started


@pytest.fixture
def one_node(chaos_image: str, docker_client: Any, chaos_network: Any) -> tuple[Any, str]:
    network, subnet, run_id = chaos_network
    ip = str(subnet[10])
    node = {
        "name": "n1",
        "etcd": {"name": "n1", "initial_cluster": f"n1=http://{ip}:2380", "state": "new",
                 "client_port": 2379, "peer_port": 2380, "pre_vote": True},
        "agent": "pgha", "agent_config": "/etc/pgha/agent.yaml",
        "faketime": None, "softdog": True,
    }  # fmt: skip
    files = {"node.json": json.dumps(node).encode(), "agent.yaml": _agent_yaml(ip).encode()}
    container = _create_node(docker_client, chaos_image, network, run_id, ip, files)
    return container, ip  # chaos_network removes the container


def test_one_node_bootstraps_reboots_and_is_reset_by_the_softdog(one_node: Any) -> None:
    container, ip = one_node
    container.start()
    bootstrap_s = _wait_primary(container, ip)

    # A clean stop (SIGTERM to PID 1: agent, then etcd, then the softdog) and a reboot: the data
    # directory survives, stale pid files do not stop it, and the node leads again.
    container.stop(timeout=30)
    assert container.wait(timeout=40)["StatusCode"] == 0, _diagnostics(container)
    container.start()
    reboot_s = _wait_primary(container, ip)
    history = _read_file(container, "/var/log/pgha/history.jsonl")
    assert history.strip(), "the agent writes its history"

    # Freeze the agent: the softdog fires and the supervisor exits 137 (the machine resets)
    # before the leader key could expire.
    agent_pid = int(_read_file(container, "/run/pgha/agent.pid"))
    code, out = container.exec_run(["kill", "-STOP", str(agent_pid)])
    assert code == 0, out
    frozen = time.monotonic()
    status = container.wait(timeout=3 * TTL_S)["StatusCode"]
    reset_s = time.monotonic() - frozen
    assert status == 137, _diagnostics(container)
    assert reset_s < TTL_S, _diagnostics(container)
    events = [json.loads(line) for line in _read_file(container, "/var/log/pgha/softdog.jsonl")
              .splitlines()]  # fmt: skip
    fired = [event for event in events if event["event"] == "fired"]
    assert len(fired) == 1
    assert agent_pid in fired[0]["killed"]
    print(f"\nbootstrap {bootstrap_s:.1f} s, reboot {reboot_s:.1f} s, reset {reset_s:.1f} s")


def _patroni_yaml(ip: str) -> str:
    return f"""
scope: chaos-image-patroni
name: n1
restapi: {{listen: "0.0.0.0:8008", connect_address: "{ip}:8008"}}
etcd3: {{hosts: ["127.0.0.1:2379"]}}
bootstrap:
  dcs: {{ttl: 20, loop_wait: 2, retry_timeout: 3}}
postgresql:
  listen: "0.0.0.0:5432"
  connect_address: "{ip}:5432"
  data_dir: /var/lib/pgha/data
  bin_dir: /usr/lib/postgresql/15/bin
  authentication:
    superuser: {{username: postgres, password: chaos-su}}
    replication: {{username: replicator, password: chaos-repl}}
  pg_hba: ["local all all trust", "host all all 0.0.0.0/0 scram-sha-256"]
watchdog: {{mode: "off"}}
"""


def test_patroni_peer_runs_as_postgres_under_the_supervisor(
    chaos_image: str, docker_client: Any, chaos_network: Any
) -> None:
    network, subnet, run_id = chaos_network
    ip = str(subnet[10])
    node = {
        "name": "n1", "etcd": {"name": "n1", "initial_cluster": f"n1=http://{ip}:2380"},
        "agent": "patroni", "agent_config": "/etc/pgha/patroni.yaml",
        "faketime": {"offset_s": -5.0, "drift": 1.0}, "softdog": False,
    }  # fmt: skip
    files = {"node.json": json.dumps(node).encode(), "patroni.yaml": _patroni_yaml(ip).encode()}
    container = _create_node(docker_client, chaos_image, network, run_id, ip, files)
    container.start()
    _wait_primary(container, ip, timeout_s=60)
    agent_pid = _read_file(container, "/run/pgha/agent.pid").strip()
    code, out = container.exec_run(["ps", "-o", "user=,args=", "-p", agent_pid])
    assert code == 0
    assert out.decode().split()[:2] == ["postgres", "/opt/patroni/venv/bin/python3"], out
    container.stop(timeout=30)
    assert container.wait(timeout=40)["StatusCode"] == 0, _diagnostics(container)


# ---------------------------------------------------------------- removal and node.json


def test_remove_images_removes_the_labelled_images(docker_client: Any) -> None:
    marker = f"test-{time.monotonic_ns()}"
    changes = [f"LABEL {LABEL}=1", f"LABEL {LABEL}.test={marker}"]
    for tag in ("one", "two"):
        docker_client.api.import_image_from_data(
            _tar({"hello.txt": b"hi\n"}), repository="pgha-chaos-test", tag=f"{marker}-{tag}",
            changes=changes,
        )  # fmt: skip
    removed = remove_images(label=f"{LABEL}.test={marker}")
    assert sorted(removed) == [f"pgha-chaos-test:{marker}-one", f"pgha-chaos-test:{marker}-two"]
    assert docker_client.images.list(filters={"label": f"{LABEL}.test={marker}"}) == []


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"name": "n1", "agent": "postgres"}, "agent"),
        ({"name": "n1", "agent": "pgha", "faketime": {"offset_s": 1.0, "drift": 0.0}}, "drift"),
    ],
)
def test_node_json_is_checked(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        parse_node(raw)
