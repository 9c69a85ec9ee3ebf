# The lifecycle of one chaos run's containers with the Docker SDK: a network with an explicit
# subnet, etcd members (in the node containers or in containers of their own), the database nodes
# (the supervisor chaos/node_init.py as PID 1, its node.json and agent configuration put in before
# the start), HAProxy, and the waiting until the cluster is healthy. Everything is labelled
# `pgha.chaos=1` and `pgha.chaos.run=<run id>`, so `down()` and `down_all()` find it even after a
# crash of the harness (the Docker calls themselves are chaos/docker_objects.py's). Safety rule
# protected: a run is only started on a healthy cluster (etcd healthy, exactly one node answering
# /primary, HAProxy routing to it, every replica streaming), so a fault never hits a cluster that
# was still bootstrapping.
"""A chaos run's cluster: its hosts and addresses, bringing it up, its health, its containers."""

from __future__ import annotations

import contextlib
import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chaos import disks
from chaos.configs import (
    API_PORT,
    DATA_DIR,
    DATABASE,
    ETCD_CLIENT_PORT,
    HAPROXY_CFG,
    HISTORY_FILE,
    NODE_JSON,
    PG_PORT,
    READ_PORT,
    REST_AUTH,
    RUN_DIR,
    SUPERUSER,
    WRITE_PORT,
    Layout,
    etcd_command,
    node_files,
    plan_layout,
)
from chaos.docker_objects import (
    LABEL,
    LABEL_HOST,
    LABEL_ROLE,
    LABEL_RUN,
    SUBNET_POOL,
    create_container,
    free_subnets,
    image_file,
    ipam,
    remove_labelled,
    untar_one,
)
from chaos.haproxy import (
    HAPROXY_COMMAND,
    STATS_PORT,
    parse_stats,
    render_haproxy_cfg,
    settled_view,
)
from pgha.scenario import FaultKind, Scenario

NODE_COMMAND = ["/opt/pgha/venv/bin/python", "-m", "chaos.node_init", NODE_JSON]
HTTP_TIMEOUT_S = 1.0
PROCESSES = ("agent", "etcd", "softdog", "postgres")


class ClusterError(RuntimeError):
    """The cluster could not be created or did not become healthy in time."""


def new_run_id() -> str:
    """A short, unique run id usable in container names."""
    return f"r{secrets.token_hex(3)}"


def http_status(url: str, *, method: str = "GET", timeout_s: float = HTTP_TIMEOUT_S) -> int | None:
    """The HTTP status of one request, or None when there is no answer."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (OSError, ValueError):
        return None


class ChaosCluster:
    """The containers of one run: network, etcd, database nodes and HAProxy."""

    def __init__(
        self,
        client: Any,
        scenario: Scenario,
        *,
        run_id: str,
        image: str,
        agent: str = "pgha",
        subnet: str | None = None,
        data_volumes: bool | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.scenario = scenario
        self.run_id = run_id
        self.image = image
        self.agent = agent
        self._subnet = subnet
        self._layout: Layout | None = None
        wants_disk = any(f.kind is FaultKind.DISK_FULL for f in scenario.faults)
        self.data_volumes = wants_disk if data_volumes is None else data_volumes
        self.progress = progress or (lambda message: None)

    # ---------------------------------------------------------------- names and addresses

    @property
    def layout(self) -> Layout:
        """Addresses and container names (known once `up()` has created the network)."""
        if self._layout is None:
            raise ClusterError("the cluster has no network yet: call up() first")
        return self._layout

    @property
    def node_names(self) -> tuple[str, ...]:
        """The database nodes."""
        return self.scenario.node_names

    @property
    def etcd_names(self) -> tuple[str, ...]:
        """The etcd members."""
        return self.scenario.etcd

    @property
    def hosts(self) -> tuple[str, ...]:
        """Every host of the scenario: the nodes, then etcd members on hosts of their own."""
        return (*self.node_names, *self.layout.own_etcd_hosts)

    def host_of(self, name: str) -> str:
        """The host a name lives on (an etcd member on a node lives on that node)."""
        return self.layout.etcd_hosts.get(name, name)

    def ip(self, name: str) -> str:
        """The IP of a node, an etcd member (its host's) or `haproxy`."""
        return self.layout.ip(name)

    def container_name(self, name: str) -> str:
        """The Docker name of the container `name` runs in."""
        return self.layout.container(self.host_of(name))

    def dsn(self, name: str, *, connect_timeout_s: int = 3) -> str:
        """A libpq connection string for the superuser on `name`'s PostgreSQL."""
        return self._dsn(self.ip(name), PG_PORT, connect_timeout_s)

    def haproxy_dsn(self, *, read: bool = False, connect_timeout_s: int = 3) -> str:
        """A connection string through HAProxy: the primary (5000) or the replicas (5001)."""
        port = READ_PORT if read else WRITE_PORT
        return self._dsn(self.layout.haproxy_ip, port, connect_timeout_s)

    def _dsn(self, host: str, port: int, timeout_s: int) -> str:
        user, password = SUPERUSER
        return (
            f"host={host} port={port} user={user} password={password} dbname={DATABASE} "
            f"connect_timeout={timeout_s} application_name=pgha-chaos"
        )

    def rest_url(self, name: str) -> str:
        """The base URL of `name`'s agent REST API."""
        return f"http://{self.ip(name)}:{API_PORT}"

    @property
    def rest_auth(self) -> tuple[str, str]:
        """(user, password) of the agents' REST API for requests that change something."""
        return REST_AUTH

    def _labels(self, role: str, host: str) -> dict[str, str]:
        return {LABEL: "1", LABEL_RUN: self.run_id, LABEL_ROLE: role, LABEL_HOST: host}

    # ---------------------------------------------------------------- up

    def up(self, *, timeout_s: float = 180.0) -> None:
        """Create and start everything, then wait until the cluster is healthy."""
        self._create_network()
        owner = self._postgres_owner() if self.data_volumes else (0, 0)
        for member in self.layout.own_etcd_hosts:
            cmd = etcd_command(self.scenario, self.layout, member)
            self._create(member, role="etcd", command=cmd, files={})
        for node in self.node_names:
            files = node_files(self.scenario, self.layout, node, agent=self.agent)
            volume = self._data_volume(node, owner) if self.data_volumes else None
            self._create(node, role="node", command=NODE_COMMAND, files=files, volume=volume)
        backends = {node: self.ip(node) for node in self.node_names}
        workload = self.scenario.workload
        checks = workload.haproxy if workload is not None else None
        haproxy_cfg = {HAPROXY_CFG: render_haproxy_cfg(backends, checks).encode()}
        self._create("haproxy", role="haproxy", command=HAPROXY_COMMAND, files=haproxy_cfg)
        for host in (*self.layout.own_etcd_hosts, *self.node_names, "haproxy"):
            self.client.containers.get(self.layout.container(host)).start()
        self.progress(f"started {len(self.node_names)} nodes; waiting for a healthy cluster")
        self.wait_healthy(timeout_s=timeout_s)

    def _create_network(self) -> None:
        candidates = [self._subnet] if self._subnet else free_subnets(self.client)
        for subnet in candidates[:20]:
            layout = plan_layout(self.scenario, self.run_id, subnet)
            ipam_pool = ipam(subnet, layout.gateway)
            try:
                self.client.networks.create(
                    layout.network,
                    driver="bridge",
                    ipam=ipam_pool,
                    labels={LABEL: "1", LABEL_RUN: self.run_id},
                )
            except Exception as error:  # a concurrent run took this subnet: try the next
                if self._subnet or "overlap" not in str(error).lower():
                    raise
                continue
            self._layout = layout
            return
        raise ClusterError(f"no free /24 subnet in {SUBNET_POOL}")

    def _postgres_owner(self) -> tuple[int, int]:
        labels = {LABEL: "1", LABEL_RUN: self.run_id}
        passwd = image_file(self.client, self.image, "/etc/passwd", labels).decode()
        for line in passwd.splitlines():
            parts = line.split(":")
            if parts[0] == "postgres":
                return int(parts[2]), int(parts[3])
        raise ClusterError("the image has no postgres user")

    def _data_volume(self, node: str, owner: tuple[int, int]) -> str:
        labels = {LABEL: "1", LABEL_RUN: self.run_id}
        return disks.create_data_volume(
            self.client, run_id=self.run_id, node=node, owner=owner, labels=labels
        )

    def _create(
        self,
        host: str,
        *,
        role: str,
        command: Sequence[str],
        files: Mapping[str, bytes],
        volume: str | None = None,
    ) -> None:
        create_container(
            self.client,
            self.image,
            self.layout,
            host,
            labels=self._labels(role, host),
            command=command,
            files=files,
            volume=volume,
        )

    # ---------------------------------------------------------------- health

    def wait_healthy(self, *, timeout_s: float = 120.0) -> None:
        """Wait until etcd is healthy, one node is primary, every other node a streaming replica
        and HAProxy routes writes to the primary. Raises ClusterError with the state at timeout."""
        deadline = time.monotonic() + timeout_s
        self._wait("etcd to be healthy", self._etcd_healthy, deadline)
        self._wait("exactly one primary and streaming replicas", self._roles_settled, deadline)
        self._wait("HAProxy to route writes to the primary", self._haproxy_routes, deadline)

    def _wait(self, what: str, check: Callable[[], str | None], deadline: float) -> None:
        problem: str | None = "not checked yet"
        while time.monotonic() < deadline:
            problem = check()
            if problem is None:
                return
            time.sleep(0.5)
        raise ClusterError(f"timed out waiting for {what}: {problem}")

    def _parallel(self, fn: Callable[[str], Any], names: Sequence[str]) -> dict[str, Any]:
        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            return dict(zip(names, pool.map(fn, names), strict=True))

    def _etcd_healthy(self) -> str | None:
        def health(member: str) -> int | None:
            return http_status(f"http://{self.ip(member)}:{ETCD_CLIENT_PORT}/health")

        answers = self._parallel(health, list(self.etcd_names))
        bad = [member for member, status in answers.items() if status != 200]
        return f"no healthy answer from {', '.join(bad)}" if bad else None

    def rest_status(self, name: str, path: str, *, method: str = "GET") -> int | None:
        """The status of `name`'s agent answering `path` (None: no answer)."""
        return http_status(self.rest_url(name) + path, method=method)

    def primaries(self) -> list[str]:
        """The nodes whose agent answers 200 on /primary right now."""
        answers = self._parallel(lambda n: self.rest_status(n, "/primary"), self.node_names)
        return [node for node, status in answers.items() if status == 200]

    def primary(self) -> str | None:
        """The one node answering /primary, or None when none or several do."""
        found = self.primaries()
        return found[0] if len(found) == 1 else None

    def _roles_settled(self) -> str | None:
        hidden = {spec.name for spec in self.scenario.nodes if spec.tags.noloadbalance}

        def role(node: str) -> str:
            if self.rest_status(node, "/primary") == 200:
                return "primary"
            check = "/health" if node in hidden else "/replica"  # noloadbalance: /replica is 503
            return "replica" if self.rest_status(node, check) == 200 else "not ready"

        roles = self._parallel(role, self.node_names)
        primaries = [n for n, r in roles.items() if r == "primary"]
        if len(primaries) == 1 and all(r != "not ready" for r in roles.values()):
            return None
        return ", ".join(f"{n}: {r}" for n, r in roles.items())

    def haproxy_servers(self, backend: str = "primary") -> dict[str, str]:
        """HAProxy's view of a backend (`primary` or `replicas`): node -> UP, DOWN, "UP 1/2"...
        Empty when HAProxy does not answer."""
        url = f"http://{self.layout.haproxy_ip}:{STATS_PORT}/;csv"
        try:
            with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
                text = response.read().decode()
        except (OSError, ValueError):
            return {}
        return parse_stats(text, backend, self.node_names)

    def _haproxy_routes(self) -> str | None:
        import psycopg

        # HAProxy starts every server UP until its checks fail: wait until its view settled.
        primary = self.primary()
        hidden = {spec.name for spec in self.scenario.nodes if spec.tags.noloadbalance}
        for backend in ("primary", "replicas"):
            servers = self.haproxy_servers(backend)
            if not servers or servers != settled_view(backend, servers, primary, hidden):
                return f"HAProxy's {backend} backend: {servers or 'no answer'}"
        try:
            with psycopg.connect(self.haproxy_dsn(), autocommit=True) as conn:
                row = conn.execute("select pg_is_in_recovery()").fetchone()
        except psycopg.Error as error:
            return type(error).__name__
        return None if row is not None and row[0] is False else "routed to a replica"

    # ---------------------------------------------------------------- containers

    def container(self, name: str) -> Any:
        """The Docker container `name` runs in (a node, an etcd member or `haproxy`)."""
        return self.client.containers.get(self.container_name(name))

    def state(self, name: str) -> str:
        """The container's status: running, paused, exited, ..."""
        return str(self.container(name).status)

    def exec(
        self,
        name: str,
        argv: Sequence[str],
        *,
        user: str = "",
        env: Mapping[str, str] | None = None,
    ) -> tuple[int, str]:
        """Run `argv` in `name`'s container; (exit code, stdout and stderr)."""
        code, output = self.container(name).exec_run(
            list(argv), user=user, environment=dict(env or {})
        )
        return int(code if code is not None else -1), output.decode(errors="replace")

    def pid(self, name: str, process: str) -> int | None:
        """The pid (in the container) of `process` on `name`: agent, etcd, softdog (from
        /run/pgha/<process>.pid) or postgres (the postmaster); None when not running.
        An etcd member on a host of its own is its container's PID 1. Read from the container's
        file system, so a paused container answers too."""
        if process not in PROCESSES:
            raise ValueError(f"process must be one of {PROCESSES}, got {process!r}")
        if self.state(name) not in ("running", "paused"):
            return None
        if process == "etcd" and name in self.layout.own_etcd_hosts:
            return 1
        path = f"{DATA_DIR}/postmaster.pid" if process == "postgres" else f"{RUN_DIR}/{process}.pid"
        lines = (self.read_file(name, path) or b"").decode(errors="replace").splitlines()
        text = lines[0].strip() if lines else ""
        return int(text) if text.isdigit() else None

    def read_file(self, name: str, path: str) -> bytes | None:
        """A file of `name`'s container (running or not), or None when it does not exist."""
        try:
            chunks, _ = self.container(name).get_archive(path)
            return untar_one(chunks)
        except Exception as error:
            if "404" in str(error) or "not found" in str(error).lower():
                return None
            raise

    def read_agent_history(self, name: str) -> list[dict[str, Any]]:
        """The agent's JSON Lines history of `name` (a torn last line is skipped)."""
        raw = self.read_file(name, HISTORY_FILE) or b""
        events = []
        for line in raw.decode(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                item = json.loads(line)
                if isinstance(item, dict):
                    events.append(item)
        return events

    def logs(self, name: str) -> str:
        """The container's own output (the supervisor's, etcd's or HAProxy's)."""
        return bytes(self.container(name).logs(stdout=True, stderr=True)).decode(errors="replace")

    # ---------------------------------------------------------------- down

    def down(self) -> None:
        """Remove every container, network and volume of this run."""
        remove_labelled(self.client, {LABEL_RUN: self.run_id})
        with contextlib.suppress(OSError):
            disks.disk_dir(self.run_id).rmdir()
