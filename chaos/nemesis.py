# The nemesis applies a scenario's faults to real containers at their times, and records each as
# really applied (docs/history.md, "Faults, as really applied"): targets such as `primary` are
# resolved when the fault fires by the planner shared with the simulator (pgha/faults), from what
# PostgreSQL itself says on each node (chaos/nemesis_view.py); `for:` undoes the fault on the same
# hosts it hit; a fault that cannot be applied now is recorded as skipped with the reason, and one
# this world can never apply (a kind the registry marks unsupported here, such as latency without
# netem) is named by `unsupported()` before the run starts. The nemesis is this world's
# pgha.faults.FaultWorld; its appliers (chaos/nemesis_faults.py) see it as a NemesisWorld. It also
# plays the machine room: a node whose softdog reset it (the container exited by itself) boots
# again after REBOOT_S, as in the simulator.
"""Applying and undoing scenario faults on a ChaosCluster."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

from chaos import disks
from chaos.nemesis_faults import APPLY
from chaos.nemesis_ops import ActionError, Ops
from chaos.nemesis_view import ContainerView
from chaos.netrules import loss_rules
from pgha.events import jsonable
from pgha.faults import Applied, FaultResult, Firing, Resolver, Skip, Skipped
from pgha.scenario import FAULT_KINDS, EtcdPlacement, FaultKind, FaultSpec, Scenario, Target

if TYPE_CHECKING:
    from chaos.cluster import ChaosCluster

REBOOT_S = 30.0  # a machine reset by its watchdog boots again after this long (sim/node.py)
WATCH_INTERVAL_S = 0.5
CLOCK_REWRITE_S = 1.0
DEFAULT_LATENCY = (0.001, 0.010)
Action = tuple[float, int, Callable[[], None]]  # (when, sequence, what): the schedule's queue


class FaultLog(Protocol):
    """Where fault events go (chaos.history.EventLog has this method)."""

    def record_at(
        self, t_mono: float, kind: str, node: str | None = None, /, **fields: Any
    ) -> None:
        """Record one event that happened at host monotonic time `t_mono`."""


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
        never = FAULT_KINDS[spec.kind].unsupported.get("chaos")
        if never is not None:
            out.append(f"{where}: {never}")
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
        cluster: ChaosCluster,
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
        rng = random.Random(f"{self.scenario.seed if seed is None else seed}/faults")
        self.resolver = Resolver(ContainerView(cluster, self.ops), rng)
        self._ids = itertools.count(1)
        self.lock = threading.RLock()
        self.records: list[dict[str, Any]] = []  # every event, as written to the history
        self.active: list[Applied] = []
        self.down_by_fault: set[str] = set()  # machines a fault killed: not the watcher's to boot
        self.boots: dict[str, float] = {}  # host -> when the watcher boots it again
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.operators: list[threading.Thread] = []  # switchover / failover requests in flight
        self.t0_mono = time.monotonic()  # the run's start (set by `start`): scheduled switchovers

    # ---------------------------------------------------------------- recording

    def record(
        self, t_mono: float, kind: str, node: str | None = None, /, **fields: object
    ) -> None:
        """Record one history event that happened at host monotonic time `t_mono`."""
        event = {"t": t_mono, "kind": kind, **({"node": node} if node else {}), **fields}
        with self.lock:
            self.records.append(event)
        if self.log is not None:
            self.log.record_at(t_mono, kind, node, **fields)

    def record_fault(
        self,
        phase: str,
        t_mono: float,
        spec: FaultSpec,
        fid: int,
        hosts: Sequence[str],
        **extra: object,
    ) -> None:
        """Record a fault's start, end or skip."""
        params = {k: v for k, v in jsonable(spec.params).items() if v is not None}
        label = spec.label_for(tuple(hosts))
        self.record(
            t_mono, "fault", phase=phase, fault=spec.kind.value, targets=list(hosts),
            params=params, id=fid, label=label, **extra,
        )  # fmt: skip

    # ---------------------------------------------------------------- one fault

    def apply(self, spec: FaultSpec) -> FaultResult:
        """Resolve the targets now, apply the fault, record its start (or why it was skipped)."""
        firing = Firing(id=next(self._ids), spec=spec)
        try:
            applied = self._apply(firing)
        except (Skip, ActionError) as error:
            return self._skipped(firing, str(error))
        except Exception as error:  # a Docker API error: the run goes on, the fault is skipped
            return self._skipped(firing, f"{type(error).__name__}: {str(error)[:200]}")
        if spec.kind not in (FaultKind.SWITCHOVER, FaultKind.FAILOVER):  # recorded when answered
            self.record_fault("start", applied.at, spec, firing.id, applied.hosts)
        if applied.undo is not None and spec.undone_at_end:  # written data stays without `for`
            with self.lock:
                self.active.append(applied)
        return applied

    def _apply(self, firing: Firing) -> Applied:
        never = FAULT_KINDS[firing.spec.kind].unsupported.get("chaos")
        if never is not None:
            raise Skip(f"{never} (run it in the simulator)")
        return APPLY[firing.spec.kind](self, firing)

    def _skipped(self, firing: Firing, reason: str) -> Skipped:
        self.record_fault("skipped", time.monotonic(), firing.spec, firing.id, (), error=reason)
        return firing.skipped(reason)

    def end(self, applied: Applied) -> float | None:
        """Undo one fault now and record its end; None when it had ended already."""
        with self.lock:
            if applied.ended_at is not None or applied.undo is None:
                return None
            applied.ended_at = -1.0  # claimed: a concurrent end() does nothing
            if applied in self.active:
                self.active.remove(applied)
        try:
            done = applied.undo()
        except Exception as error:  # recorded: the fault may not be fully undone
            t_end = time.monotonic()
            self.record_fault(
                "end", t_end, applied.spec, applied.id, applied.hosts, error=str(error)
            )
        else:
            t_end = time.monotonic() if done is None else done
            self.record_fault("end", t_end, applied.spec, applied.id, applied.hosts)
        applied.ended_at = t_end
        return t_end

    def heal_everything(self, *, keep_baseline: bool = True) -> float:
        """The end of the run: undo every active fault, boot every machine that is down, resume
        every frozen container, and leave only the scenario's baseline loss (if any)."""
        for applied in reversed(list(self.active)):
            self.end(applied)
        with self.lock:
            self.boots.clear()
            self.down_by_fault.clear()
        hosts = list(self.cluster.hosts)
        with ThreadPoolExecutor(max_workers=max(1, len(hosts) + 1)) as pool:
            list(pool.map(self.ops.start_machine, [*hosts, "haproxy"]))
        with self.ops._lock:
            for fid in [f for f in self.ops.rules if f != 0 or not keep_baseline]:
                del self.ops.rules[fid]
        return self.ops.sync_rules([*hosts, "haproxy"])

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
        queue: list[Action] = []
        seq = itertools.count()
        for spec in faults:
            heapq.heappush(queue, (t0_mono + spec.at_s, next(seq), self._firing(spec, queue, seq)))
        while queue and not self._stop.is_set():
            when, _, action = queue[0]
            if self._stop.wait(max(0.0, when - time.monotonic())):
                return
            heapq.heappop(queue)
            action()

    def _firing(
        self, spec: FaultSpec, queue: list[Action], seq: Iterator[int]
    ) -> Callable[[], None]:
        def fire() -> None:
            applied = self.apply(spec)
            if isinstance(applied, Applied) and spec.for_s is not None and applied.undo is not None:
                when = applied.at + spec.for_s
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
            with self.lock:
                skip = node in self.down_by_fault
                boot_at = self.boots.get(node)
            if skip:
                continue
            if boot_at is not None:
                if time.monotonic() >= boot_at:
                    with self.lock:
                        self.boots.pop(node, None)
                    self.record(self.ops.start_machine(node), "machine", node, event="boot")
            elif not self.ops.is_running(node):
                seen = time.monotonic()
                with self.lock:
                    self.boots[node] = seen + self.reboot_after_s
                self.record(seen, "machine", node, event="reset")
