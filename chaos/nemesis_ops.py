# The nemesis's hands: each primitive does one real thing to the containers (docker kill / start /
# pause, a signal to a process found by its pid file, a rewrite of the iptables chains or of the
# libfaketime rc file, a full disk, an operator's REST request) and returns the host monotonic time
# at which it was in force. They know nothing of scenarios or roles (chaos/nemesis.py resolves
# targets and records faults). Safety rule protected: signals go to the pids in the node's own pid
# files, never to processes found by name, so a pause of "the agent" can never freeze PostgreSQL
# or another node's processes; and a rebooted container gets its network rules and clock back
# before anything else can happen on it.
"""Primitive fault actions on the containers of a ChaosCluster."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chaos import disks
from chaos.configs import DATA_DIR, FAKETIME_RC, SOCKET_DIR, SUPERUSER
from chaos.netrules import RULES_ENV, SYNC_SCRIPT, Rule, restore_input

if TYPE_CHECKING:
    from chaos.cluster import ChaosCluster

MAX_ANSWER_B = 64 * 1024  # an operator request's answer is read up to this size
REST_TIMEOUT_S = 30.0  # a switchover waits for the new leader before answering
PSQL_TIMEOUT_S = 3


@dataclass(frozen=True, slots=True)
class RestAnswer:
    """An agent's answer to a POST: when it was sent and answered, the status (None: no
    answer, `timed_out` when the wait ran out), and the body."""

    sent: float
    answered: float
    status: int | None
    body: bytes = b""
    timed_out: bool = False


def _read_quietly(error: urllib.error.HTTPError) -> bytes:
    try:
        return error.read(MAX_ANSWER_B)
    except OSError:
        return b""


class ActionError(RuntimeError):
    """A primitive could not be applied (the message says why; no secrets)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClockState:
    """A node's wall clock: `offset_s` ahead of true time at `set_mono`, drifting since."""

    offset_s: float
    drift_ppm: float
    set_mono: float

    def offset_at(self, now_mono: float) -> float:
        """The offset at `now_mono`."""
        return self.offset_s + self.drift_ppm * 1e-6 * (now_mono - self.set_mono)


def rc_line(offset_s: float) -> str:
    """libfaketime's rc content for a fixed offset at rate 1 (drift is applied by rewriting)."""
    return f"{offset_s:+.6f} x1\n"


class Ops:
    """Primitives on one cluster; thread-safe (one lock for the rule and clock tables)."""

    def __init__(self, cluster: ChaosCluster) -> None:
        self.cluster = cluster
        self._lock = threading.RLock()
        self.rules: dict[int, dict[str, list[Rule]]] = {}  # fault id -> host -> rules
        self.clocks: dict[str, ClockState] = {}

    # ---------------------------------------------------------------- machines

    def kill_machine(self, host: str) -> float:
        """docker kill: the machine dies at once (PostgreSQL, agent, co-located etcd)."""
        self._container(host).kill()
        return time.monotonic()

    def start_machine(self, host: str) -> float:
        """docker start (a boot), then its network rules and clock are put back."""
        container = self._container(host)
        container.reload()
        if container.status == "paused":
            container.unpause()
        elif container.status != "running":
            container.start()
        applied = time.monotonic()
        self.sync_rules([host])
        return applied

    def pause_machine(self, host: str) -> float:
        """docker pause: the cgroup freezer stops every process of the machine."""
        self._container(host).pause()
        return time.monotonic()

    def resume_machine(self, host: str) -> float:
        """docker unpause."""
        container = self._container(host)
        container.reload()
        if container.status == "paused":
            container.unpause()
        applied = time.monotonic()
        self.sync_rules([host])  # rules changed while it was frozen
        return applied

    def is_running(self, host: str) -> bool:
        """True when the host's container runs (paused counts as running)."""
        container = self._container(host)
        container.reload()
        return container.status in ("running", "paused")

    def _container(self, host: str) -> Any:
        return self.cluster.client.containers.get(self.cluster.layout.container(host))

    # ---------------------------------------------------------------- processes

    def signal(self, node: str, process: str, signal_name: str) -> float:
        """Send SIGnal_name to `process` (agent, etcd, softdog) from its pid file on `node`."""
        pid = self.cluster.pid(node, process)
        if pid is None:
            raise ActionError(f"no {process} running on {node}")
        code, output = self.cluster.exec(node, ["kill", f"-{signal_name}", str(pid)])
        if code != 0:
            raise ActionError(f"kill -{signal_name} {process} on {node}: {output.strip()[:200]}")
        return time.monotonic()

    def signal_postgres(self, node: str, signal_name: str) -> float:
        """Signal the postmaster and all its children at once (STOP, CONT or KILL)."""
        script = (
            f'pm=$(head -n 1 {DATA_DIR}/postmaster.pid 2>/dev/null) && [ -n "$pm" ] '
            f'&& kill -0 "$pm" && kill -{signal_name} "$pm" $(pgrep -P "$pm")'
        )
        code, output = self.cluster.exec(node, ["sh", "-c", script])
        if code != 0:
            raise ActionError(f"no PostgreSQL running on {node} ({output.strip()[:200]})")
        return time.monotonic()

    def start_process(self, node: str, process: str) -> float:
        """Ask the node's supervisor to start the agent (SIGUSR1) or etcd (SIGUSR2) again."""
        signal_name = {"agent": "SIGUSR1", "etcd": "SIGUSR2"}[process]
        self._container(node).kill(signal=signal_name)
        return time.monotonic()

    def is_primary(self, node: str) -> bool | None:
        """What the node's PostgreSQL says (asked locally, past any partition); None: no answer."""
        argv = [
            "timeout", str(PSQL_TIMEOUT_S), "psql", "-h", SOCKET_DIR, "-U", SUPERUSER[0],
            "-d", "postgres", "-Atc", "select pg_is_in_recovery()",
        ]  # fmt: skip
        env = {"PGPASSWORD": SUPERUSER[1], "PGCONNECT_TIMEOUT": str(PSQL_TIMEOUT_S)}
        try:
            code, output = self.cluster.exec(node, argv, env=env)
        except Exception:  # paused or stopped container
            return None
        answer = output.strip()
        if code != 0 or answer not in ("t", "f"):
            return None
        return answer == "f"

    # ---------------------------------------------------------------- network

    def set_rules(self, fault_id: int, rules: Mapping[str, list[Rule]]) -> float:
        """Put a fault's rules in force (on every host it touches, in parallel)."""
        with self._lock:
            self.rules[fault_id] = {host: list(r) for host, r in rules.items()}
        return self.sync_rules(list(rules))

    def clear_rules(self, fault_id: int) -> float:
        """Remove exactly the rules of one fault."""
        with self._lock:
            hosts = list(self.rules.pop(fault_id, {}))
        return self.sync_rules(hosts)

    def rules_for(self, host: str) -> list[Rule]:
        """Every rule the host must hold now (faults in the order they were applied)."""
        with self._lock:
            return [rule for fid in sorted(self.rules) for rule in self.rules[fid].get(host, [])]

    def sync_rules(self, hosts: Sequence[str]) -> float:
        """Rewrite the hosts' chains from the active faults; returns when all are in force.
        A host that is down or frozen gets its rules when it boots or resumes."""

        def one(host: str) -> None:
            text = restore_input(self.rules_for(host))
            try:
                code, output = self.cluster.exec(
                    host, ["sh", "-c", SYNC_SCRIPT], env={RULES_ENV: text}
                )
            except Exception:  # not running: start_machine syncs it later
                return
            if code != 0:
                raise ActionError(f"iptables on {host}: {output.strip()[:300]}")

        with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
            list(pool.map(one, hosts))
        return time.monotonic()

    # ---------------------------------------------------------------- clocks

    def set_clock(self, node: str, offset_s: float, drift_ppm: float) -> float:
        """Set the node's wall clock offset (seconds ahead of true time) and drift from now."""
        now = time.monotonic()
        with self._lock:
            self.clocks[node] = ClockState(offset_s=offset_s, drift_ppm=drift_ppm, set_mono=now)
        return self.write_clock(node)

    def clock_of(self, node: str, now_mono: float) -> tuple[float, float]:
        """(offset, drift_ppm) of the node's clock now (0, 0 when never set)."""
        with self._lock:
            state = self.clocks.get(node)
        return (0.0, 0.0) if state is None else (state.offset_at(now_mono), state.drift_ppm)

    def write_clock(self, node: str) -> float:
        """Rewrite the node's rc file with the offset its clock has now (atomically)."""
        now = time.monotonic()
        offset, _ = self.clock_of(node, now)
        script = f'printf "%s" "$1" > {FAKETIME_RC}.tmp && mv -f {FAKETIME_RC}.tmp {FAKETIME_RC}'
        code, output = self.cluster.exec(node, ["sh", "-c", script, "sh", rc_line(offset)])
        if code != 0:
            raise ActionError(f"clock of {node}: {output.strip()[:200]}")
        return time.monotonic()

    def drifting(self) -> list[str]:
        """Nodes whose clock drifts (their rc file needs rewriting as time passes)."""
        with self._lock:
            return [node for node, state in self.clocks.items() if state.drift_ppm]

    # ---------------------------------------------------------------- disk

    def fill_disk(self, node: str) -> float:
        """Fill the node's data file system (a loop-device volume) until writes fail."""
        if not self.cluster.data_volumes:
            raise ActionError("the cluster was created without data volumes (no disk_full)")
        code, output = self.cluster.exec(node, ["sh", "-c", disks.FILL_SCRIPT])
        if code != 0:
            raise ActionError(f"filling the disk of {node}: {output.strip()[:200]}")
        return time.monotonic()

    def free_disk(self, node: str) -> float:
        """Delete the filler files."""
        self.cluster.exec(node, ["sh", "-c", disks.FREE_SCRIPT])
        return time.monotonic()

    # ---------------------------------------------------------------- operator requests

    def rest_post(self, node: str, path: str, body: Mapping[str, Any]) -> tuple[float, int | None]:
        """POST a JSON body with the REST credentials; (time sent, status or None)."""
        answer = self.rest_answer(node, path, body)
        return answer.sent, answer.status

    def rest_answer(
        self, node: str, path: str, body: Mapping[str, Any] | None, method: str = "POST"
    ) -> RestAnswer:
        """Send a JSON body (None: none) with the REST credentials: POST, or `method` (PATCH
        /config, GET /config); the whole answer, and when it came."""
        user, password = self.cluster.rest_auth
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request = urllib.request.Request(
            self.cluster.rest_url(node) + path,
            data=None if body is None else json.dumps(dict(body)).encode(),
            method=method,
            headers={"Content-Type": "application/json", "Authorization": f"Basic {token}"},
        )
        sent = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=REST_TIMEOUT_S) as response:
                status, text = int(response.status), response.read(MAX_ANSWER_B)
        except urllib.error.HTTPError as error:
            status, text = int(error.code), _read_quietly(error)
        except OSError as error:
            timed_out = isinstance(error, TimeoutError) or isinstance(
                getattr(error, "reason", None), TimeoutError
            )
            return RestAnswer(sent, time.monotonic(), None, timed_out=timed_out)
        return RestAnswer(sent, time.monotonic(), status, text)
