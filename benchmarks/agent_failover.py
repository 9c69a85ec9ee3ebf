"""Failover and switchover times of the real agent, on loopback processes.

Run from the repository root (needs etcd and PostgreSQL 15 installed, as `.ci/run` does):

    python benchmarks/agent_failover.py [--runs 5] [--timings 30/10/10,10/2/2]

For each timing (ttl / loop_wait / retry_timeout) it starts a 3-member etcd cluster and three agents
with PostgreSQL and the softdog emulation (tests/agent/cluster.py), then measures, `--runs` times:

- failover: from kill -9 of the primary's agent and PostgreSQL to the first acknowledged write on
  another node (a writer tries every other node every 50 ms); the killed node is then restarted and
  must rejoin before the next run;
- switchover: from `POST /switchover` to the first acknowledged write on the candidate.

It prints the median and worst of each, and checks the targets: every failover within
ttl + loop_wait, switchover median under 5 s. Exit 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.agent.cluster import REST_AUTH, AgentCluster, http, running_cluster, wait_for
from tests.agent.conftest import give_to_os_user


@dataclass(frozen=True)
class Timing:
    ttl_s: int
    loop_wait_s: int
    retry_timeout_s: int

    @property
    def label(self) -> str:
        return f"ttl {self.ttl_s} / loop_wait {self.loop_wait_s} / retry {self.retry_timeout_s}"

    @property
    def safety_margin_s(self) -> int:
        # watchdog timeout must outlast a loop that cannot reach etcd (loop_wait + retry_timeout)
        return min(5, self.ttl_s - self.loop_wait_s - self.retry_timeout_s - 2)


def settle(cluster: AgentCluster, timeout_s: float = 120) -> str:
    primary = cluster.wait_for_primary(timeout_s)
    others = set(cluster.nodes) - {primary}
    wait_for("replicas streaming", lambda: cluster.streaming_replicas(primary) == others, timeout_s)
    return primary


def first_ack(cluster: AgentCluster, names: list[str], value: int, timeout_s: float) -> str:
    def probe() -> str | None:
        return next((n for n in names if cluster.try_write(n, value, timeout_s=2)), None)

    return wait_for("a write on a new primary", probe, timeout_s, every_s=0.05)


def failover_once(cluster: AgentCluster, timing: Timing, value: int) -> float:
    old = settle(cluster)
    others = sorted(set(cluster.nodes) - {old})
    cluster.try_write(old, value)
    killed = time.monotonic()
    cluster.kill_agent(old)
    cluster.kill_postgres(old)
    first_ack(cluster, others, value + 1, timing.ttl_s * 3)
    took = time.monotonic() - killed
    cluster.start_node(cluster.nodes[old])
    settle(cluster)
    return took


def switchover_once(cluster: AgentCluster, value: int) -> float:
    old = settle(cluster)
    candidate = sorted(set(cluster.nodes) - {old})[value % 2]
    started = time.monotonic()
    url = cluster.nodes[old].api_url + "/switchover"
    body = {"leader": old, "candidate": candidate}
    code, message = http("POST", url, body, auth=REST_AUTH, timeout_s=120)
    if code != 200:
        raise RuntimeError(f"switchover refused: {code} {message}")
    first_ack(cluster, [candidate], value, 30)
    return time.monotonic() - started


def measure(timing: Timing, runs: int) -> tuple[list[float], list[float]]:
    workdir = Path(tempfile.mkdtemp(prefix="pgha-bench-"))
    workdir.chmod(0o755)
    give_to_os_user(workdir)
    dcs = {
        "ttl": timing.ttl_s,
        "loop_wait": timing.loop_wait_s,
        "retry_timeout": timing.retry_timeout_s,
    }
    margin = {"watchdog": {"safety_margin": timing.safety_margin_s}}
    per_node = dict.fromkeys(("n1", "n2", "n3"), margin)
    failovers: list[float] = []
    switchovers: list[float] = []
    try:
        with running_cluster(workdir, dcs=dcs, per_node=per_node) as cluster:
            for run in range(runs):
                failovers.append(failover_once(cluster, timing, 1000 * (run + 1)))
                print(f"  {timing.label}: failover {run + 1}: {failovers[-1]:.2f} s", flush=True)
            for run in range(runs):
                switchovers.append(switchover_once(cluster, 100_000 + run))
                print(
                    f"  {timing.label}: switchover {run + 1}: {switchovers[-1]:.2f} s", flush=True
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return failovers, switchovers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--timings", default="30/10/10,10/2/2")
    args = parser.parse_args()
    timings = [Timing(*map(int, t.split("/"))) for t in args.timings.split(",")]
    ok = True
    rows = []
    for timing in timings:
        failovers, switchovers = measure(timing, args.runs)
        target_s = timing.ttl_s + timing.loop_wait_s
        failover_ok = max(failovers) <= target_s
        switchover_ok = statistics.median(switchovers) < 5
        ok = ok and failover_ok and switchover_ok
        rows.append((timing, failovers, switchovers, target_s, failover_ok, switchover_ok))
    print()
    print(f"{'timing':38} {'failover median/worst (target)':36} {'switchover median/worst':24}")
    for timing, failovers, switchovers, target_s, failover_ok, switchover_ok in rows:
        failover = (
            f"{statistics.median(failovers):6.2f} / {max(failovers):6.2f} s (<= {target_s} s) "
            f"{'ok' if failover_ok else 'MISSED'}"
        )
        switchover = (
            f"{statistics.median(switchovers):5.2f} / {max(switchovers):5.2f} s "
            f"{'ok' if switchover_ok else 'MISSED'}"
        )
        print(f"{timing.label:38} {failover:36} {switchover}")
        ratio = statistics.median(failovers) / target_s
        print(f"{'':38} failover median / (ttl + loop_wait) = {ratio:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
