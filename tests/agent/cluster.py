"""A real cluster on loopback for the agent tests: etcd members, agents, PostgreSQL, softdogs.

`AgentCluster` writes one agent configuration file per node, starts a softdog emulation per node
(the watchdog device of that node's agent) and `pgha agent` (as the test's user; when that is root,
PostgreSQL's programs run as `postgresql.os_user: postgres`), and offers
the operations the tests need: wait for a primary, write and read rows, kill, freeze and restart
agents and PostgreSQL. Every process it starts is stopped by pid at `stop()`; nothing else is.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml

from tests.agent.conftest import OS_USER, PG_BIN, free_port, give_to_os_user
from tests.agent.etcd_cluster import EtcdCluster
from tests.probes import wait_for

SUPERUSER = ("postgres", "super-secret-pw")
REPLICATION = ("replicator", "repl-secret-pw")
REST_AUTH = ("admin", "rest-secret-pw")


def http(
    method: str,
    url: str,
    body: object = None,
    auth: tuple[str, str] | None = None,
    timeout_s: float = 5,
) -> tuple[int, Any]:
    """One HTTP request; (status, parsed JSON or text). Connection errors give (0, error)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if auth is not None:
        import base64

        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, _parse(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _parse(error.read())
    except (urllib.error.URLError, OSError) as error:
        return 0, str(error)


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


@dataclass
class Node:
    """One database node: its directories, ports and processes."""

    name: str
    root: Path
    pg_port: int
    api_port: int
    agent: subprocess.Popen[bytes] | None = None
    softdog: subprocess.Popen[bytes] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        return self.root / "agent.yaml"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def history_path(self) -> Path:
        return self.root / "history.jsonl"

    @property
    def watchdog_socket(self) -> Path:
        return self.root / "watchdog.sock"

    @property
    def agent_pid_file(self) -> Path:
        return self.root / "agent.pid"

    def dsn(self, dbname: str = "postgres") -> str:
        user, password = SUPERUSER
        return (
            f"host=127.0.0.1 port={self.pg_port} dbname={dbname} user={user} "
            f"password={password} connect_timeout=3"
        )

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def get(self, path: str) -> tuple[int, Any]:
        return http("GET", self.api_url + path)

    def history(self) -> list[dict[str, Any]]:
        if not self.history_path.exists():
            return []
        lines = self.history_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]


class AgentCluster:
    """N agents with PostgreSQL on loopback, on a real etcd cluster."""

    def __init__(
        self,
        workdir: Path,
        etcd: EtcdCluster,
        *,
        names: tuple[str, ...] = ("n1", "n2", "n3"),
        dcs: Mapping[str, Any] | None = None,
        watchdog_mode: str = "required",
        postgresql: Mapping[str, Any] | None = None,
        per_node: Mapping[str, Mapping[str, Any]] | None = None,
        existing_dirs: bool = False,
    ) -> None:
        self.workdir = workdir
        self.etcd = etcd
        self.scope = f"test-{workdir.name[-8:]}"
        # ttl 10 / loop_wait 2 / retry_timeout 2 and a watchdog margin of 2 s (timeout 8 s): a
        # loop that cannot reach etcd acts after 4 s, well before the watchdog would fire.
        self.dcs = {"ttl": 10, "loop_wait": 2, "retry_timeout": 2, **(dcs or {})}
        self.watchdog_mode = watchdog_mode
        self.postgresql = dict(postgresql or {})
        self.per_node = dict(per_node or {})
        self.nodes: dict[str, Node] = {}
        for name in names:
            root = workdir / name
            root.mkdir(mode=0o755, exist_ok=existing_dirs)
            give_to_os_user(root)
            self.nodes[name] = Node(name, root, free_port(), free_port())

    # ------------------------------------------------------------ configuration

    def config_for(self, node: Node) -> dict[str, Any]:
        hosts = [f"{host}:{port}" for host, port in self.etcd.endpoints]
        cfg: dict[str, Any] = {
            "scope": self.scope,
            "name": node.name,
            "pid_file": str(node.agent_pid_file),
            "restapi": {
                "listen": f"127.0.0.1:{node.api_port}",
                "connect_address": f"127.0.0.1:{node.api_port}",
                "authentication": {"username": REST_AUTH[0], "password": REST_AUTH[1]},
            },
            "etcd3": {"hosts": hosts},
            "bootstrap": {
                "dcs": {**self.dcs, "postgresql": {"parameters": {"max_connections": 50}}},
            },
            "postgresql": {
                "listen": f"127.0.0.1:{node.pg_port}",
                "connect_address": f"127.0.0.1:{node.pg_port}",
                "data_dir": str(node.data_dir),
                "bin_dir": PG_BIN,
                "socket_dir": str(node.root),
                "authentication": {
                    "superuser": {"username": SUPERUSER[0], "password": SUPERUSER[1]},
                    "replication": {"username": REPLICATION[0], "password": REPLICATION[1]},
                },
                "parameters": {"shared_buffers": "16MB"},
                **({"os_user": OS_USER} if OS_USER else {}),
                **self.postgresql,
            },
            "watchdog": {
                "mode": self.watchdog_mode,
                "device": str(node.watchdog_socket),
                "safety_margin": 2,
            },
            "log": {"level": "INFO", "history": str(node.history_path)},
        }
        return _merged(cfg, self.per_node.get(node.name, {}))

    def write_config(self, node: Node) -> None:
        node.config_path.write_text(yaml.safe_dump(self.config_for(node), sort_keys=False))
        give_to_os_user(node.config_path)

    # ------------------------------------------------------------ processes

    def start(self, only: tuple[str, ...] | None = None) -> AgentCluster:
        """Write every node's configuration; start the nodes in `only` (default: all)."""
        for node in self.nodes.values():
            self.write_config(node)
        for name in self.nodes if only is None else only:
            self.start_node(self.nodes[name])
        return self

    def start_node(self, node: Node) -> None:
        """Start the node's softdog emulation (if it has none running) and its agent."""
        if node.softdog is None or node.softdog.poll() is not None:
            self.start_softdog(node)
        self.start_agent(node)

    def start_softdog(self, node: Node) -> None:
        if self.watchdog_mode == "off":
            return
        log = (node.root / "softdog.out").open("ab")
        node.softdog = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pgha",
                "softdog",
                "--socket",
                str(node.watchdog_socket),
                "--kill-pidfile",
                str(node.agent_pid_file),
                "--kill-pidfile",
                str(node.data_dir / "postmaster.pid"),
                "--log",
                str(node.root / "softdog.jsonl"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for("the softdog socket", node.watchdog_socket.exists, 10)

    def start_agent(self, node: Node) -> None:
        log = (node.root / "agent.out").open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        node.agent = subprocess.Popen(
            [sys.executable, "-m", "pgha", "agent", "--config", str(node.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=node.root,
        )

    def kill_agent(self, name: str, sig: int = signal.SIGKILL) -> None:
        agent = self.nodes[name].agent
        assert agent is not None
        agent.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            agent.wait(timeout=60)

    def kill_postgres(self, name: str) -> None:
        """kill -9 the postmaster and every process of that PostgreSQL (a crash)."""
        pid = self.nodes[name].postmaster_pid()
        if pid is None:
            return
        for child in _descendants(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        for node in self.nodes.values():
            if node.agent is not None and node.agent.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    node.agent.send_signal(signal.SIGCONT)
                node.agent.terminate()
        for node in self.nodes.values():
            if node.agent is not None:
                try:
                    node.agent.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    node.agent.kill()
                    node.agent.wait()
            self.kill_postgres(node.name)
            if node.softdog is not None and node.softdog.poll() is None:
                node.softdog.terminate()
                node.softdog.wait(timeout=10)

    # ------------------------------------------------------------ observations

    def primary(self) -> str | None:
        """The one node whose /primary answers 200, or None (zero or several)."""
        leaders = [n for n, node in self.nodes.items() if node.get("/primary")[0] == 200]
        return leaders[0] if len(leaders) == 1 else None

    def wait_for_primary(self, timeout_s: float = 60, not_: str | None = None) -> str:
        def probe() -> str | None:
            name = self.primary()
            return None if name == not_ else name

        return wait_for("a primary", probe, timeout_s)

    def streaming_replicas(self, primary: str) -> set[str]:
        rows = self.query(primary, "SELECT application_name FROM pg_stat_replication")
        return {row[0] for row in rows}

    def query(self, name: str, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.nodes[name].dsn(), autocommit=True) as conn:
            cursor = conn.execute(sql, args)
            return list(cursor.fetchall()) if cursor.description else []

    def try_write(self, name: str, value: int, timeout_s: float = 5) -> bool:
        """Insert `value` on `name`; True when the commit was acknowledged.

        A commit still waiting for a synchronous standby after `timeout_s` is cancelled by the
        statement timeout; PostgreSQL then commits locally and only warns: that is not an
        acknowledgement, so such a write counts as not acknowledged.
        """
        warned: list[str] = []
        dsn = self.nodes[name].dsn() + f" options='-c statement_timeout={int(timeout_s * 1000)}'"
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.add_notice_handler(lambda notice: warned.append(notice.message_primary))
                conn.execute("CREATE TABLE IF NOT EXISTS t (id bigint PRIMARY KEY)")
                conn.execute("INSERT INTO t VALUES (%s)", (value,))
        except psycopg.Error:
            return False
        return not any("synchronous replication" in message for message in warned)

    def ids(self, name: str) -> set[int]:
        return {row[0] for row in self.query(name, "SELECT id FROM t")}

    def logs(self) -> str:
        """Each agent's exit code (None: running), output and watchdog events, for a failure."""
        parts = []
        for node in self.nodes.values():
            code = None if node.agent is None else node.agent.poll()
            parts.append(f"----- {node.name} agent exit code: {code}")
            out = node.root / "agent.out"
            if out.exists():
                parts.append(f"----- {node.name} agent.out (tail)\n{out.read_text()[-6000:]}")
            fired = node.root / "softdog.jsonl"
            if fired.exists():
                parts.append(f"----- {node.name} softdog.jsonl (tail)\n{fired.read_text()[-1500:]}")
        return "\n".join(parts)


def _merged(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `override` merged in, mapping by mapping."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


@contextlib.contextmanager
def running_cluster(
    workdir: Path, start_only: tuple[str, ...] | None = None, **options: Any
) -> Iterator[AgentCluster]:
    """A started etcd + agent cluster; everything stopped at exit, logs shown on failure."""
    with EtcdCluster.running(workdir / "etcd", size=3) as etcd:
        cluster = AgentCluster(workdir, etcd, **options)
        try:
            yield cluster.start(start_only)
        except BaseException:
            print(cluster.logs())
            raise
        finally:
            cluster.stop()
