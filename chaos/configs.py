# What each container of a chaos run is told, rendered from the scenario alone: the addresses of
# every host (a fixed layout in the run's subnet, so files are written before anything starts), each
# node's node.json for the supervisor (chaos/node_init.py), the pgha agent's agent.yaml, Patroni's
# patroni.yaml for the peer mode, and the command of an etcd member on a host of its own. Safety
# rule protected: the watchdog's timeout stays longer than loop_wait + retry_timeout (a loop that
# lost etcd can still demote before it fires) and shorter than ttl (it fires before the lock can
# pass to another node), so the emulated watchdog fences a frozen primary and never a healthy one.
"""Per-run layout and per-node configuration files of the Docker world."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any

import yaml

from pgha.engine.config import DynamicConfig, SyncMode, WatchdogMode
from pgha.engine.values import Tags
from pgha.scenario import EtcdPlacement, FaultKind, Scenario

SCOPE = "pgha-chaos"
NAMESPACE = "/service/"
PG_PORT = 5432
API_PORT = 8008
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
WRITE_PORT = 5000  # HAProxy: the primary
READ_PORT = 5001  # HAProxy: the replicas
PG_BIN = "/usr/lib/postgresql/15/bin"
DATA_ROOT = "/var/lib/pgha"  # the data disk (a volume of its own where disk_full is applied)
DATA_DIR = f"{DATA_ROOT}/data"
SOCKET_DIR = "/tmp"
RUN_DIR = "/run/pgha"
LOG_DIR = "/var/log/pgha"
NODE_JSON = "/etc/pgha/node.json"
AGENT_YAML = "/etc/pgha/agent.yaml"
PATRONI_YAML = "/etc/pgha/patroni.yaml"
WATCHDOG_SOCKET = f"{RUN_DIR}/watchdog.sock"
FAKETIME_RC = f"{RUN_DIR}/faketime.rc"
HISTORY_FILE = f"{LOG_DIR}/history.jsonl"
HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"
ETCD_DATA_DIR = "/var/lib/etcd/member-data"

# Test credentials of a throw-away cluster on a private Docker network (never real secrets).
SUPERUSER = ("postgres", "chaos-superuser")
REPLICATION = ("replicator", "chaos-replication")
REST_AUTH = ("chaos", "chaos-rest")
DATABASE = "postgres"

AGENTS = ("pgha", "patroni")
FIRST_NODE_OFFSET = 10  # node i gets host number 10 + i (n1 = .11); haproxy .2; the host .1
FIRST_ETCD_OFFSET = 100  # etcd member j on a host of its own gets 100 + j (etcd1 = .101)

# Cluster-wide PostgreSQL settings of both agents (the same, so the comparison is fair). Both run
# replicas with hot_standby on, and pg_rewind works from data checksums (initdb below).
PARAMETERS: Mapping[str, Any] = MappingProxyType(
    {
        "max_connections": 100,
        "shared_buffers": "64MB",
        "wal_keep_size": "256MB",
        "max_wal_senders": 10,
        "max_replication_slots": 10,
    }
)
INITDB: tuple[Any, ...] = ({"encoding": "UTF8"}, "data-checksums")


# ---------------------------------------------------------------- layout


@dataclass(frozen=True, slots=True, kw_only=True)
class Layout:
    """Where every host of one run lives: names, containers and addresses in the run's subnet."""

    run_id: str
    subnet: str
    gateway: str  # the Docker host as the containers see it (the workload and the nemesis)
    haproxy_ip: str
    host_ips: Mapping[str, str]  # every host: database nodes, etcd members on hosts of their own
    nodes: tuple[str, ...]
    etcd_hosts: Mapping[str, str]  # etcd member -> the host it runs on (itself, or node i)

    @property
    def network(self) -> str:
        """The Docker network's name."""
        return f"pgha-{self.run_id}"

    def container(self, host: str) -> str:
        """The container of a host (a node, an etcd host, or `haproxy`)."""
        return f"pgha-{self.run_id}-{host}"

    def ip(self, host: str) -> str:
        """The address of a host, of an etcd member (its host's) or of `haproxy`."""
        if host == "haproxy":
            return self.haproxy_ip
        return self.host_ips[self.etcd_hosts.get(host, host)]

    @property
    def own_etcd_hosts(self) -> tuple[str, ...]:
        """etcd members that run in containers of their own."""
        return tuple(m for m, h in self.etcd_hosts.items() if h == m)

    def etcd_endpoints(self) -> list[str]:
        """`ip:2379` of every etcd member, in member order."""
        return [f"{self.ip(member)}:{ETCD_CLIENT_PORT}" for member in self.etcd_hosts]

    def initial_cluster(self) -> str:
        """etcd's `--initial-cluster`: `etcd1=http://ip:2380,...`."""
        return ",".join(
            f"{member}=http://{self.ip(member)}:{ETCD_PEER_PORT}" for member in self.etcd_hosts
        )


def plan_layout(scenario: Scenario, run_id: str, subnet: str) -> Layout:
    """Addresses for every host of `scenario` in `subnet` (a /24 or larger)."""
    net = ipaddress.ip_network(subnet)
    nodes = scenario.node_names
    own = scenario.etcd_placement is EtcdPlacement.OWN_HOSTS
    needed = FIRST_ETCD_OFFSET + len(scenario.etcd) if own else FIRST_NODE_OFFSET + len(nodes)
    if len(nodes) >= FIRST_ETCD_OFFSET - FIRST_NODE_OFFSET or net.num_addresses < needed + 2:
        raise ValueError(f"{subnet} is too small for {len(nodes)} nodes and the etcd members")
    ips = {name: str(net[FIRST_NODE_OFFSET + i]) for i, name in enumerate(nodes, start=1)}
    if own:
        etcd_hosts = {member: member for member in scenario.etcd}
        for j, member in enumerate(scenario.etcd, start=1):
            ips[member] = str(net[FIRST_ETCD_OFFSET + j])
    else:
        etcd_hosts = dict(zip(scenario.etcd, nodes, strict=False))
    return Layout(
        run_id=run_id,
        subnet=str(net),
        gateway=str(net[1]),
        haproxy_ip=str(net[2]),
        host_ips=MappingProxyType(ips),
        nodes=nodes,
        etcd_hosts=MappingProxyType(etcd_hosts),
    )


# ---------------------------------------------------------------- node.json


def uses_faketime(scenario: Scenario) -> bool:
    """True when some clock is skewed: then every node's agent and PostgreSQL get libfaketime."""
    return bool(scenario.clocks) or any(f.kind is FaultKind.CLOCK for f in scenario.faults)


def drift_rate(drift_ppm: float) -> float:
    """libfaketime's clock rate for a drift in ppm (1.0 = exact, 1.0001 = 100 ppm fast)."""
    return 1.0 + drift_ppm * 1e-6


def watchdog_on(scenario: Scenario) -> bool:
    """False only when the scenario switches the watchdog off."""
    return scenario.config.watchdog_mode is not WatchdogMode.OFF


def node_json(scenario: Scenario, layout: Layout, node: str, *, agent: str) -> dict[str, Any]:
    """The supervisor's node.json (the contract of chaos/node_init.py)."""
    if agent not in AGENTS:
        raise ValueError(f"agent must be one of {AGENTS}, got {agent!r}")
    member = next((m for m, host in layout.etcd_hosts.items() if host == node != m), None)
    etcd = None
    if member is not None:
        etcd = {
            "name": member,
            "initial_cluster": layout.initial_cluster(),
            "state": "new",
            "client_port": ETCD_CLIENT_PORT,
            "peer_port": ETCD_PEER_PORT,
            "pre_vote": scenario.network.etcd_pre_vote,
            "token": f"pgha-{layout.run_id}",
            "host": layout.ip(node),
            "data_dir": ETCD_DATA_DIR,  # off the data disk: disk_full hits PostgreSQL only
        }
    faketime = None
    if uses_faketime(scenario):
        clock = scenario.clocks.get(node)
        faketime = {
            "offset_s": clock.offset_s if clock else 0.0,
            "drift": drift_rate(clock.drift_ppm if clock else 0.0),
        }
    return {
        "name": node,
        "etcd": etcd,
        "agent": agent,
        "agent_config": AGENT_YAML if agent == "pgha" else PATRONI_YAML,
        "faketime": faketime,
        "softdog": agent == "pgha" and watchdog_on(scenario),
    }


# ---------------------------------------------------------------- the dynamic configuration


def _num(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def safety_margin_s(cfg: DynamicConfig) -> float:
    """The scenario's margin (-1 made explicit: ttl // 2), lowered where needed so that the time
    ttl leaves after loop_wait + retry_timeout is at most half margin: the other half lets a loop
    that lost etcd demote PostgreSQL before the watchdog fires (measured: a demotion at ttl 10 /
    loop_wait 2 / retry_timeout 3 with a 1 s slack was reset by the watchdog mid-way)."""
    margin = float(cfg.ttl_s // 2) if cfg.safety_margin_s == -1 else cfg.safety_margin_s
    free_s = cfg.ttl_s - cfg.loop_wait_s - cfg.retry_timeout_s
    return float(max(0.0, min(margin, free_s / 2)))


_SYNC = {SyncMode.OFF: False, SyncMode.ON: True, SyncMode.QUORUM: "quorum"}


def dcs_section(scenario: Scenario, layout: Layout) -> dict[str, Any]:
    """`bootstrap.dcs`: Patroni's keys with the scenario's values (the same for both agents)."""
    cfg = scenario.config
    return {
        "ttl": _num(cfg.ttl_s),
        "loop_wait": _num(cfg.loop_wait_s),
        "retry_timeout": _num(cfg.retry_timeout_s),
        "maximum_lag_on_failover": cfg.maximum_lag_on_failover_b,
        "maximum_lag_on_syncnode": cfg.maximum_lag_on_syncnode_b,
        "primary_start_timeout": _num(cfg.primary_start_timeout_s),
        "synchronous_mode": _SYNC[cfg.synchronous_mode],
        "synchronous_mode_strict": cfg.synchronous_mode_strict,
        "synchronous_node_count": cfg.synchronous_node_count,
        "failsafe_mode": cfg.failsafe_mode,
        "check_timeline": cfg.check_timeline,
        "pause": cfg.pause,
        "postgresql": {
            "use_pg_rewind": cfg.use_pg_rewind,
            "remove_data_directory_on_rewind_failure": cfg.remove_data_directory_on_rewind_failure,
            "remove_data_directory_on_diverged_timelines": (
                cfg.remove_data_directory_on_diverged_timelines
            ),
            "parameters": dict(PARAMETERS),
            "pg_hba": pg_hba(layout),
        },
    }


def pg_hba(layout: Layout) -> list[str]:
    """Local socket access without a password; TCP (loopback and the run's subnet) with one."""
    return [
        "local all all trust",
        f"host replication {REPLICATION[0]} 127.0.0.1/32 scram-sha-256",
        "host all all 127.0.0.1/32 scram-sha-256",
        f"host replication {REPLICATION[0]} {layout.subnet} scram-sha-256",
        f"host all all {layout.subnet} scram-sha-256",
    ]


def tags_section(tags: Tags) -> dict[str, Any]:
    """The node's tags that differ from the defaults (both agents take Patroni's names)."""
    default = Tags()
    out: dict[str, Any] = {}
    for f in fields(Tags):
        value = getattr(tags, f.name)
        if value != getattr(default, f.name):
            out[f.name] = value
    return out


def _node_tags(scenario: Scenario, node: str) -> Tags:
    return next(spec.tags for spec in scenario.nodes if spec.name == node)


def _auth() -> dict[str, Any]:
    return {
        "superuser": {"username": SUPERUSER[0], "password": SUPERUSER[1]},
        "replication": {"username": REPLICATION[0], "password": REPLICATION[1]},
    }


def _rest(layout: Layout, node: str) -> dict[str, Any]:
    return {
        "listen": f"0.0.0.0:{API_PORT}",
        "connect_address": f"{layout.ip(node)}:{API_PORT}",
        "authentication": {"username": REST_AUTH[0], "password": REST_AUTH[1]},
    }


# ---------------------------------------------------------------- pgha's agent.yaml


def agent_config(scenario: Scenario, layout: Layout, node: str) -> dict[str, Any]:
    """pgha's agent.yaml for `node` (keys of docs/agent-config.md)."""
    ip = layout.ip(node)
    cfg = scenario.config
    return {
        "scope": SCOPE,
        "namespace": NAMESPACE,
        "name": node,
        "pid_file": f"{RUN_DIR}/agent.pid",
        "restapi": _rest(layout, node),
        "etcd3": {"hosts": layout.etcd_endpoints()},
        "bootstrap": {"dcs": dcs_section(scenario, layout), "initdb": list(INITDB)},
        "postgresql": {
            "listen": f"0.0.0.0:{PG_PORT}",
            "connect_address": f"{ip}:{PG_PORT}",
            "data_dir": DATA_DIR,
            "bin_dir": PG_BIN,
            "socket_dir": SOCKET_DIR,
            "os_user": "postgres",
            "authentication": _auth(),
        },
        "watchdog": {
            # The emulation always works, so `automatic` behaves as `required` would; off stays off.
            "mode": "required" if watchdog_on(scenario) else "off",
            "device": WATCHDOG_SOCKET,
            "safety_margin": _num(safety_margin_s(cfg)),
        },
        "tags": tags_section(_node_tags(scenario, node)),
        "log": {"level": "INFO", "history": HISTORY_FILE, "dir": LOG_DIR},
    }


# ---------------------------------------------------------------- Patroni's patroni.yaml


def patroni_config(
    scenario: Scenario, layout: Layout, node: str, *, watchdog_device: str | None = None
) -> dict[str, Any]:
    """Patroni 4.1.5's patroni.yaml for `node`: the same cluster, timing and PostgreSQL settings.

    Patroni's watchdog needs a real Linux watchdog device; it cannot use pgha's socket emulation,
    so it is off unless `watchdog_device` names a device present in the container.
    """
    ip = layout.ip(node)
    watchdog: dict[str, Any] = {"mode": "off"}
    if watchdog_device is not None and watchdog_on(scenario):
        margin = _num(safety_margin_s(scenario.config))
        watchdog = {"mode": "required", "device": watchdog_device, "safety_margin": margin}
    return {
        "scope": SCOPE,
        "namespace": NAMESPACE,
        "name": node,
        "restapi": _rest(layout, node),
        "etcd3": {"hosts": layout.etcd_endpoints()},
        "bootstrap": {"dcs": dcs_section(scenario, layout), "initdb": list(INITDB)},
        "postgresql": {
            "listen": f"0.0.0.0:{PG_PORT}",
            "connect_address": f"{ip}:{PG_PORT}",
            "data_dir": DATA_DIR,
            "bin_dir": PG_BIN,
            "pgpass": "/tmp/pgpass-patroni",
            "use_unix_socket": True,  # its own connections: the socket, as pgha's pg_ctl does
            "authentication": _auth(),
            # pgha's `pg_ctl -l` log file, written by PostgreSQL's own collector here.
            "parameters": {
                "unix_socket_directories": SOCKET_DIR,
                "logging_collector": "on",
                "log_directory": LOG_DIR,
                "log_filename": "postgresql.log",
            },
        },
        "watchdog": watchdog,
        "tags": tags_section(_node_tags(scenario, node)),
        "log": {"level": "INFO"},
    }


def differences(scenario: Scenario, *, agent: str) -> list[str]:
    """Where the containers do not run exactly what the scenario says, one sentence each."""
    cfg = scenario.config
    out: list[str] = []
    margin = cfg.ttl_s // 2 if cfg.safety_margin_s == -1 else cfg.safety_margin_s
    if agent == "pgha" and watchdog_on(scenario) and safety_margin_s(cfg) != margin:
        out.append(
            f"watchdog.safety_margin lowered from {margin:g} s to {safety_margin_s(cfg):g} s so "
            "the watchdog fires after loop_wait + retry_timeout"
        )
    if agent == "patroni" and watchdog_on(scenario):
        out.append(
            "Patroni runs without a watchdog: it needs a real /dev/watchdog and cannot use the "
            "softdog emulation (no softdog module in this kernel)"
        )
    if agent == "patroni" and cfg.ttl_s < 20:
        out.append(f"Patroni raises ttl {cfg.ttl_s:g} s to its minimum of 20 s")
    return out


# ---------------------------------------------------------------- etcd on a host of its own


def etcd_command(scenario: Scenario, layout: Layout, member: str) -> list[str]:
    """The command of an etcd member's own container (etcd 3.4)."""
    ip = layout.ip(member)
    return [
        "etcd",
        f"--name={member}",
        f"--data-dir={ETCD_DATA_DIR}",
        f"--listen-client-urls=http://0.0.0.0:{ETCD_CLIENT_PORT}",
        f"--advertise-client-urls=http://{ip}:{ETCD_CLIENT_PORT}",
        f"--listen-peer-urls=http://0.0.0.0:{ETCD_PEER_PORT}",
        f"--initial-advertise-peer-urls=http://{ip}:{ETCD_PEER_PORT}",
        f"--initial-cluster={layout.initial_cluster()}",
        "--initial-cluster-state=new",
        f"--initial-cluster-token=pgha-{layout.run_id}",
        f"--pre-vote={'true' if scenario.network.etcd_pre_vote else 'false'}",
        "--logger=zap",
    ]


# ---------------------------------------------------------------- files


def render_yaml(document: Mapping[str, Any]) -> str:
    """YAML text in the key order given."""
    return yaml.safe_dump(dict(document), sort_keys=False, default_flow_style=False)


def node_files(scenario: Scenario, layout: Layout, node: str, *, agent: str) -> dict[str, bytes]:
    """Every file the harness puts into a node container before it starts: path -> content."""
    files = {NODE_JSON: (json.dumps(node_json(scenario, layout, node, agent=agent)) + "\n")}
    if agent == "pgha":
        files[AGENT_YAML] = render_yaml(agent_config(scenario, layout, node))
    else:
        files[PATRONI_YAML] = render_yaml(patroni_config(scenario, layout, node))
    return {path: text.encode() for path, text in files.items()}
