# The nemesis applies a scenario's faults to real containers at their times, and records each as
# really applied (docs/history.md, "Faults, as really applied"): targets such as `primary` are
# resolved when the fault fires, from what PostgreSQL itself says on each node; `for:` undoes the
# fault on the same hosts it hit; a fault that cannot be applied now is recorded as skipped with
# the reason, and one this world can never apply (latency without netem) is named by
# `unsupported()` before the run starts. It also plays the machine room: a node whose softdog
# reset it (the container exited by itself) boots again after REBOOT_S, as in the simulator.
"""Applying and undoing scenario faults on a ChaosCluster."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from chaos import disks
from chaos.nemesis_faults import APPLY
from chaos.nemesis_ops import ActionError, Ops, Skip
from chaos.netrules import loss_rules
from pgha.events import jsonable
from pgha.scenario import EtcdPlacement, FaultKind, FaultSpec, Scenario, Target, TargetRole

REBOOT_S = 30.0  # a machine reset by its watchdog boots again after this long (sim/node.py)
WATCH_INTERVAL_S = 0.5
CLOCK_REWRITE_S = 1.0
DEFAULT_LATENCY = (0.001, 0.010)

Undo = Callable[[], float]


class FaultLog(Protocol):
    """Where fault events go (chaos.history.EventLog has this method)."""

    def record_at(
        self, t_mono: float, kind: str, node: str | None = None, /, **fields: Any
    ) -> None:
        """Record one event that happened at host monotonic time `t_mono`."""


@dataclass
class Applied:
    """A fault that was applied: its id, hosts, when, and how to undo it."""

    id: int
    spec: FaultSpec
    hosts: tuple[str, ...]
    start_mono: float
    undo: Undo | None
    end_mono: float | None = None


def unsupported(scenario: Scenario, *, loop_devices: bool | None = None) -> list[str]:
    """Every part of `scenario` the Docker world cannot apply, one sentence each (empty: all
    can). `loop_devices` says whether disk_full can be applied (default: probe this machine)."""
    disk_ok = disks.loop_devices_available() if loop_devices is None else loop_devices
    own_etcd = set(scenario.etcd) if scenario.etcd_placement is EtcdPlacement.OWN_HOSTS else set()
    out: list[str] = []
    net = scenario.network
    if (net.latency.median_s, net.latency.p99_s) > DEFAULT_LATENCY or net.inter_dc_latency:
        out.append("network latency: the kernel has no netem; run it in the simulator")
    for host in sorted(own_etcd & set(scenario.clocks)):
        out.append(f"clocks.{host}: etcd ignores libfaketime, its clock cannot be skewed")
    for i, spec in enumerate(scenario.faults):
        where = f"faults[{i}] (line {spec.line})"
        if spec.kind is FaultKind.LATENCY:
            out.append(f"{where}: latency needs netem, which this kernel lacks")
        elif spec.kind is FaultKind.DISK_FULL and not disk_ok:
            out.append(f"{where}: disk_full needs root and loop devices on the Docker host")
        elif spec.kind is FaultKind.CLOCK and set(_target_names(spec)) & own_etcd:
            out.append(f"{where}: etcd ignores libfaketime, its clock cannot be skewed")
    return out


def _target_names(spec: FaultSpec) -> tuple[str, ...]:
    target = getattr(spec.params, "target", None)
    return target.names if isinstance(target, Target) else ()


class Nemesis:
    """Faults on one ChaosCluster: `apply`/`end` one, or `start` the scenario's schedule."""

    def __init__(
        self,
        cluster: Any,
        *,
        log: FaultLog | None = None,
        seed: int | None = None,
        reboot_after_s: float = REBOOT_S,
    ) -> None:
        self.cluster = cluster
        self.scenario: Scenario = cluster.scenario
        self.ops = Ops(cluster)
        self.log = log
        self.reboot_after_s = reboot_after_s
        self._rng = random.Random(f"{self.scenario.seed if seed is None else seed}/faults")
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self.records: list[dict[str, Any]] = []  # every event, as written to the history
        self.active: list[Applied] = []
        self.down_by_fault: set[str] = set()  # machines a fault killed: not the watcher's to boot
        self._boots: dict[str, float] = {}  # host -> when the watcher boots it again
        self._last_primary: dict[str, bool] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.operators: list[threading.Thread] = []  # switchover / failover requests in flight
        self.t0_mono = time.monotonic()  # the run's start (set by `start`): scheduled switchovers

    # ---------------------------------------------------------------- recording

    def _record(self, t_mono: float, kind: str, node: str | None = None, **fields: Any) -> None:
        event = {"t": t_mono, "kind": kind, **({"node": node} if node else {}), **fields}
        with self._lock:
            self.records.append(event)
        if self.log is not None:
            self.log.record_at(t_mono, kind, node, **fields)

    def _record_fault(
        self,
        phase: str,
        t_mono: float,
        spec: FaultSpec,
        fid: int,
        hosts: Sequence[str],
        **extra: Any,
    ) -> None:
        params = {k: v for k, v in jsonable(spec.params).items() if v is not None}
        label = spec.label_for(tuple(hosts))
        self._record(
            t_mono, "fault", phase=phase, fault=spec.kind.value, targets=list(hosts),
            params=params, id=fid, label=label, **extra,
        )  # fmt: skip

    # ---------------------------------------------------------------- one fault

    def apply(self, spec: FaultSpec) -> Applied | None:
        """Resolve the targets now, apply the fault, record its start (or why it was skipped)."""
        fid = next(self._ids)
        try:
            hosts, undo, t_applied = APPLY[spec.kind](self, spec, fid)
        except (Skip, ActionError) as error:
            self._record_fault("skipped", time.monotonic(), spec, fid, (), error=str(error))
            return None
        except Exception as error:  # a Docker API error: the run goes on, the fault is skipped
            why = f"{type(error).__name__}: {str(error)[:200]}"
            self._record_fault("skipped", time.monotonic(), spec, fid, (), error=why)
            return None
        applied = Applied(id=fid, spec=spec, hosts=hosts, start_mono=t_applied, undo=undo)
        if spec.kind not in (FaultKind.SWITCHOVER, FaultKind.FAILOVER):  # recorded when answered
            self._record_fault("start", t_applied, spec, fid, hosts)
        if undo is not None and spec.undone_at_end:  # written data stays without `for`
            with self._lock:
                self.active.append(applied)
        return applied

    def end(self, applied: Applied) -> float | None:
        """Undo one fault now and record its end; None when it had ended already."""
        with self._lock:
            if applied.end_mono is not None or applied.undo is None:
                return None
            applied.end_mono = -1.0  # claimed: a concurrent end() does nothing
            if applied in self.active:
                self.active.remove(applied)
        try:
            t_end = applied.undo()
        except Exception as error:  # recorded: the fault may not be fully undone
            t_end = time.monotonic()
            self._record_fault(
                "end", t_end, applied.spec, applied.id, applied.hosts, error=str(error)
            )
        else:
            self._record_fault("end", t_end, applied.spec, applied.id, applied.hosts)
        applied.end_mono = t_end
        return t_end

    def heal_everything(self, *, keep_baseline: bool = True) -> float:
        """The end of the run: undo every active fault, boot every machine that is down, resume
        every frozen container, and leave only the scenario's baseline loss (if any)."""
        for applied in reversed(list(self.active)):
            self.end(applied)
        with self._lock:
            self._boots.clear()
            self.down_by_fault.clear()
        hosts = list(self.cluster.hosts)
        with ThreadPoolExecutor(max_workers=max(1, len(hosts) + 1)) as pool:
            list(pool.map(self.ops.start_machine, [*hosts, "haproxy"]))
        with self.ops._lock:
            for fid in [f for f in self.ops.rules if f != 0 or not keep_baseline]:
                del self.ops.rules[fid]
        return self.ops.sync_rules([*hosts, "haproxy"])

    # ---------------------------------------------------------------- targets

    def resolve(self, target: Target, *, etcd: bool = False) -> tuple[str, ...]:
        """Host names (or etcd members, with `etcd`) of a target, resolved now."""
        if target.role is None:
            return target.names if etcd else tuple(self.cluster.host_of(n) for n in target.names)
        found = RESOLVE[target.role](self, etcd)
        if found is None:
            raise Skip(f"no {target.role.value} right now")
        return (found if etcd else self.cluster.host_of(found),)

    def nodes(self, target: Target) -> tuple[str, ...]:
        """A target that must be database nodes."""
        hosts = self.resolve(target)
        missing = [h for h in hosts if h not in self.cluster.node_names]
        if missing:
            raise Skip(f"{', '.join(missing)} is not a database node")
        return hosts

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

    def _primary(self, _: bool) -> str | None:
        answers = self.roles()
        for node in self.cluster.node_names:  # a frozen node keeps the role it was seen in
            if answers[node] is True or (answers[node] is None and self._frozen_primary(node)):
                return str(node)
        return None

    def _frozen_primary(self, node: str) -> bool:
        return self.ops.is_running(node) and self._last_primary.get(node, False)

    def _replica(self, _: bool) -> str | None:
        answers = self.roles()
        up = [n for n in sorted(answers) if answers[n] is not True and self.ops.is_running(n)]
        return self._rng.choice(up) if up else None

    def _sync_standby(self, etcd: bool) -> str | None:
        nodes = list(self.cluster.node_names)
        with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            codes = list(pool.map(lambda n: self.cluster.rest_status(n, "/sync"), nodes))
        standbys = sorted(n for n, code in zip(nodes, codes, strict=True) if code == 200)
        return self._rng.choice(standbys) if standbys else self._replica(etcd)

    def _etcd_leader(self, _: bool) -> str | None:
        return etcd_leader(self.cluster)

    def _random(self, etcd: bool) -> str | None:
        pool: list[str] = sorted(self.cluster.etcd_names if etcd else self.cluster.node_names)
        return self._rng.choice(pool)

    # ---------------------------------------------------------------- the schedule

    def start(self, faults: Sequence[FaultSpec], t0_mono: float) -> None:
        """Apply `faults` at t0 + at (each undone `for` after it was applied) in a thread, watch
        for machines reset by their watchdog, and keep drifting clocks; `stop()` ends both."""
        self.t0_mono = t0_mono
        if self.scenario.network.loss:
            rules = loss_rules(self.cluster.hosts, self.scenario.network.loss)
            self.ops.set_rules(0, rules)
        now = time.monotonic()
        for node, clock in self.scenario.clocks.items():  # the scenario's clocks, from t0
            if node in self.cluster.node_names:
                offset = clock.offset_s + clock.drift_ppm * 1e-6 * (now - t0_mono)
                self.ops.set_clock(node, offset, clock.drift_ppm)
        self._stop.clear()
        for target, name in ((self._schedule, "faults"), (self._watch, "watch")):
            thread = threading.Thread(
                target=target, args=(faults, t0_mono), name=f"nemesis-{name}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        """Stop the schedule and the watcher (active faults stay: see heal_everything)."""
        self._stop.set()
        for thread in [*self._threads, *self.operators]:
            thread.join()
        self._threads.clear()
        self.operators.clear()

    def _schedule(self, faults: Sequence[FaultSpec], t0_mono: float) -> None:
        queue: list[tuple[float, int, Callable[[], None]]] = []
        seq = itertools.count()
        for spec in faults:
            heapq.heappush(queue, (t0_mono + spec.at_s, next(seq), self._firing(spec, queue, seq)))
        while queue and not self._stop.is_set():
            when, _, action = queue[0]
            if self._stop.wait(max(0.0, when - time.monotonic())):
                return
            heapq.heappop(queue)
            action()

    def _firing(self, spec: FaultSpec, queue: list[Any], seq: Any) -> Callable[[], None]:
        def fire() -> None:
            applied = self.apply(spec)
            if applied is not None and spec.for_s is not None and applied.undo is not None:
                when = applied.start_mono + spec.for_s
                heapq.heappush(queue, (when, next(seq), lambda: self._end_quietly(applied)))

        return fire

    def _end_quietly(self, applied: Applied) -> None:
        self.end(applied)

    def _watch(self, _faults: Sequence[FaultSpec], _t0: float) -> None:
        last_clock = 0.0
        while not self._stop.wait(WATCH_INTERVAL_S):
            self.watch_once()
            if time.monotonic() - last_clock >= CLOCK_REWRITE_S:
                last_clock = time.monotonic()
                for node in self.ops.drifting():
                    with contextlib.suppress(Exception):  # a node that is down: set at boot
                        self.ops.write_clock(node)

    def watch_once(self) -> None:
        """Boot the nodes whose watchdog reset them, REBOOT_S after the reset was seen."""
        for node in self.cluster.node_names:
            with self._lock:
                skip = node in self.down_by_fault
                boot_at = self._boots.get(node)
            if skip:
                continue
            if boot_at is not None:
                if time.monotonic() >= boot_at:
                    with self._lock:
                        self._boots.pop(node, None)
                    self._record(self.ops.start_machine(node), "machine", node, event="boot")
            elif not self.ops.is_running(node):
                seen = time.monotonic()
                with self._lock:
                    self._boots[node] = seen + self.reboot_after_s
                self._record(seen, "machine", node, event="reset")


def etcd_leader(cluster: Any) -> str | None:
    """The etcd member that leads now (asked over HTTP: /v3/maintenance/status), or None."""
    import json
    import urllib.request

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


RESOLVE: dict[TargetRole, Callable[[Nemesis, bool], str | None]] = {
    TargetRole.PRIMARY: Nemesis._primary,
    TargetRole.REPLICA: Nemesis._replica,
    TargetRole.SYNC_STANDBY: Nemesis._sync_standby,
    TargetRole.ETCD_LEADER: Nemesis._etcd_leader,
    TargetRole.RANDOM: Nemesis._random,
}
