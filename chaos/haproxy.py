# HAProxy in front of the database nodes, as Patroni's documentation sets it up: writes go to the
# one node whose agent answers 200 on `OPTIONS /primary`, reads to the nodes answering `/replica`.
# Safety rule protected: a node that stops answering `/primary` is marked down after `fall` failed
# checks `check_interval` apart (the scenario's workload.haproxy; Patroni's documented inter 3s
# fall 3 rise 2 by default) and its client sessions are shut, so clients of an old primary are cut
# off rather than left writing to it. The simulator's HAProxy uses the same three numbers.
"""Rendering haproxy.cfg for a chaos run."""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Mapping

from chaos.configs import API_PORT, PG_PORT, READ_PORT, WRITE_PORT
from pgha.scenario import HAProxySpec

STATS_PORT = 7000


def _interval(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def _backend(
    name: str, port: int, check_path: str, backends: Mapping[str, str], checks: HAProxySpec
) -> list[str]:
    lines = [
        f"listen {name}",
        f"    bind *:{port}",
        f"    option httpchk OPTIONS {check_path}",
        "    http-check expect status 200",
        f"    default-server inter {_interval(checks.check_interval_s)} fall {checks.fall} "
        f"rise {checks.rise} "
        "on-marked-down shutdown-sessions",
    ]
    lines += [
        f"    server {node} {ip}:{PG_PORT} maxconn 100 check port {API_PORT}"
        for node, ip in backends.items()
    ]
    return lines


def render_haproxy_cfg(backends: Mapping[str, str], checks: HAProxySpec | None = None) -> str:
    """haproxy.cfg for `backends` (node name -> IP): writes 5000, reads 5001, stats 7000.

    `checks` (the scenario's workload.haproxy) sets inter, fall and rise; a check gives up after
    1 s, as the simulator's does."""
    checks = checks or HAProxySpec()
    lines = [
        "global",
        "    maxconn 1000",
        "",
        "defaults",
        "    mode tcp",
        "    log global",
        "    retries 1",
        "    timeout connect 2s",
        "    timeout client 30m",
        "    timeout server 30m",
        "    timeout check 1s",
        "",
        "listen stats",
        "    mode http",
        f"    bind *:{STATS_PORT}",
        "    stats enable",
        "    stats uri /",
        "",
        *_backend("primary", WRITE_PORT, "/primary", backends, checks),
        "",
        *_backend("replicas", READ_PORT, "/replica", backends, checks),
    ]
    return "\n".join(lines) + "\n"


HAPROXY_COMMAND = ["haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]


def parse_stats(text: str, backend: str, nodes: Collection[str]) -> dict[str, str]:
    """From the stats page's CSV: each node's status in `backend` (UP, DOWN, "UP 1/2", ...)."""
    rows = list(csv.reader(io.StringIO(text)))
    header = [name.lstrip("# ") for name in rows[0]] if rows else []
    if "status" not in header:
        return {}
    status = header.index("status")
    return {
        row[1]: row[status]
        for row in rows[1:]
        if len(row) > status and row[0] == backend and row[1] in nodes
    }


def settled_view(
    backend: str, servers: Mapping[str, str], primary: str | None, hidden: Collection[str]
) -> dict[str, str]:
    """What HAProxy must show once its checks caught up: in `primary` only the primary is UP; in
    `replicas` every node but the primary and the `noloadbalance` (hidden) ones. HAProxy starts
    every server UP until checks fail, so a run must not start before this view is reached."""

    def up(node: str) -> bool:
        if backend == "primary":
            return node == primary
        return node != primary and node not in hidden

    return {node: "UP" if up(node) else "DOWN" for node in servers}
