# The containers' answers to the planner (pgha.faults.ClusterView), read when a target needs them:
# which node PostgreSQL itself says is primary (asked locally on each node, past any partition; a
# frozen node keeps the role it was last seen in), the replicas that run, the synchronous standbys
# (the agents' `/sync` health check) and the etcd leader (etcd's own status endpoint). etcd
# members are named as the scenario names them; a member's host is the cluster's business.
"""What the Docker world answers when the planner resolves a fault's targets."""

from __future__ import annotations

import json
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chaos.cluster import ChaosCluster
    from chaos.nemesis_ops import Ops


class ContainerView:
    """A ClusterView of one ChaosCluster, asked through the nemesis's primitives."""

    def __init__(self, cluster: ChaosCluster, ops: Ops) -> None:
        self.cluster = cluster
        self.ops = ops
        self._lock = threading.Lock()
        self._last_primary: dict[str, bool] = {}

    def nodes(self) -> tuple[str, ...]:
        return self.cluster.node_names

    def etcd_members(self) -> tuple[str, ...]:
        return self.cluster.etcd_names

    def host_of(self, name: str) -> str:
        return self.cluster.host_of(name)

    def member(self, name: str) -> str:
        return name

    def roles(self) -> dict[str, bool | None]:
        """Each node's PostgreSQL: primary (True), replica (False) or no answer (None)."""
        names = list(self.cluster.node_names)
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            answers = dict(zip(names, pool.map(self.ops.is_primary, names), strict=True))
        with self._lock:
            for node, answer in answers.items():
                if answer is not None:
                    self._last_primary[node] = answer
        return answers

    def primary(self) -> str | None:
        answers = self.roles()
        for node in self.cluster.node_names:  # a frozen node keeps the role it was seen in
            if answers[node] is True or (answers[node] is None and self._frozen_primary(node)):
                return str(node)
        return None

    def _frozen_primary(self, node: str) -> bool:
        return self.ops.is_running(node) and self._last_primary.get(node, False)

    def replicas(self) -> list[str]:
        answers = self.roles()
        return [n for n in sorted(answers) if answers[n] is not True and self.ops.is_running(n)]

    def sync_standbys(self) -> list[str]:
        nodes = list(self.cluster.node_names)
        with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            codes = list(pool.map(lambda n: self.cluster.rest_status(n, "/sync"), nodes))
        return [n for n, code in zip(nodes, codes, strict=True) if code == 200]

    def etcd_leader(self) -> str | None:
        return etcd_leader(self.cluster)


def etcd_leader(cluster: ChaosCluster) -> str | None:
    """The etcd member that leads now (asked over HTTP: /v3/maintenance/status), or None."""

    def status(member: str) -> str | None:
        url = f"http://{cluster.ip(member)}:2379/v3/maintenance/status"
        request = urllib.request.Request(url, data=b"{}", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=1.0) as response:
                body = json.loads(response.read())
        except (OSError, ValueError):
            return None
        leads = str(body.get("header", {}).get("member_id")) == str(body.get("leader"))
        return member if leads else None

    members = list(cluster.etcd_names)
    with ThreadPoolExecutor(max_workers=len(members)) as pool:
        leaders = [m for m in pool.map(status, members) if m is not None]
    return leaders[0] if leaders else None
