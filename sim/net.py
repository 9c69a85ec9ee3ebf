# The network: hosts (database nodes, etcd members, clients, the load balancer) as a networkx graph
# whose edges carry latency distributions; datacenters add inter-datacenter latency. Faults block
# directed pairs (partitions: isolate, groups, one-way, bridge), drop a share of packets (loss) or
# add latency. A host that is down drops everything sent to or from it; a paused host (SIGSTOP)
# holds requests until it resumes. A host can always reach itself. Latency is lognormal with the
# configured median and 99th percentile, drawn from the network's own random stream.
"""Simulated network: latency, loss, partitions, and request/response calls."""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any

import networkx as nx
import simpy

from sim.world import World

Z99 = 2.3263478740408408  # the standard normal's 99th percentile


@dataclass(frozen=True, slots=True)
class Latency:
    """A one-way latency distribution: lognormal with this median and 99th percentile."""

    median_s: float
    p99_s: float

    @property
    def sigma(self) -> float:
        return math.log(self.p99_s / self.median_s) / Z99 if self.p99_s > self.median_s else 0.0


class Unreachable(Exception):
    """No answer within the timeout (dropped, partitioned, down, or too slow)."""


class Network:
    """Hosts, links and faults; `call` runs a handler at the destination and returns its answer."""

    def __init__(self, world: World, latency: Latency) -> None:
        self.world = world
        self.env: simpy.Environment = world.env
        self.graph: nx.Graph = nx.Graph()
        self.default_latency = latency
        self.inter_dc_latency: Latency | None = None
        self._rng = world.rng("net")
        self._blocked: dict[tuple[str, str], set[int]] = {}  # (src, dst) -> fault ids
        self._loss: dict[str, tuple[float, int]] = {}  # host -> (rate, fault id)
        self._extra: dict[str, tuple[Latency, int]] = {}  # host -> (latency, fault id)
        self.down: set[str] = set()
        self._paused: dict[str, simpy.Event] = {}
        self.listeners: list[Callable[[], None]] = []  # told after every change of reachability

    # ---------------------------------------------------------------- topology

    def add_host(self, name: str, datacenter: str | None = None) -> None:
        self.graph.add_node(name, dc=datacenter)

    @property
    def hosts(self) -> list[str]:
        return list(self.graph.nodes)

    def _latency(self, src: str, dst: str) -> Latency:
        extra = self._extra.get(src) or self._extra.get(dst)
        if extra is not None:
            return extra[0]
        dcs = self.graph.nodes[src].get("dc"), self.graph.nodes[dst].get("dc")
        if self.inter_dc_latency is not None and dcs[0] != dcs[1]:
            return self.inter_dc_latency
        return self.default_latency

    # ---------------------------------------------------------------- faults

    def _changed(self) -> None:
        for listener in self.listeners:
            listener()

    def block(self, pairs: Iterable[tuple[str, str]], fault_id: int) -> None:
        """Drop every message from `src` to `dst` for each pair, until `unblock(fault_id)`."""
        for src, dst in pairs:
            if src != dst:
                self._blocked.setdefault((src, dst), set()).add(fault_id)
        self._changed()

    def unblock(self, fault_id: int) -> None:
        for key in list(self._blocked):
            ids = self._blocked[key]
            ids.discard(fault_id)
            if not ids:
                del self._blocked[key]
        self._changed()

    def heal_all(self) -> None:
        self._blocked.clear()
        self._changed()

    def set_down(self, host: str, down: bool) -> None:
        """A host whose machine is off (or back on)."""
        if down:
            self.down.add(host)
        else:
            self.down.discard(host)
        self._changed()

    def set_loss(self, hosts: Iterable[str], rate: float, fault_id: int) -> None:
        for host in hosts:
            self._loss[host] = (rate, fault_id)

    def set_latency(self, hosts: Iterable[str], latency: Latency, fault_id: int) -> None:
        for host in hosts:
            self._extra[host] = (latency, fault_id)

    def clear(self, fault_id: int) -> None:
        """Undo loss and latency faults with this id."""
        for table in (self._loss, self._extra):
            for host in [h for h, (_, fid) in table.items() if fid == fault_id]:
                del table[host]

    def pause(self, host: str) -> None:
        self._paused.setdefault(host, self.env.event())
        self._changed()

    def resume(self, host: str) -> None:
        event = self._paused.pop(host, None)
        if event is not None:
            event.succeed()
        self._changed()

    def is_paused(self, host: str) -> bool:
        return host in self._paused

    # ---------------------------------------------------------------- delivery

    def connected(self, src: str, dst: str) -> bool:
        """Whether a message from src to dst can get through (ignoring random loss)."""
        if src == dst:
            return src not in self.down
        return (src, dst) not in self._blocked and src not in self.down and dst not in self.down

    def delay(self, src: str, dst: str) -> float | None:
        """Sample a one-way delay, or None if this message is dropped."""
        if not self.connected(src, dst):
            return None
        if src == dst:
            return 0.0
        for host in (src, dst):
            loss = self._loss.get(host)
            if loss is not None and self._rng.random() < loss[0]:
                return None
        lat = self._latency(src, dst)
        if lat.sigma == 0.0:
            return lat.median_s
        return lat.median_s * math.exp(self._rng.gauss(0.0, lat.sigma))

    def wait_resumed(self, host: str) -> Generator[simpy.Event, Any, None]:
        """Block while `host` is paused (its processes are SIGSTOPped)."""
        while host in self._paused:
            yield self._paused[host]

    def call(
        self,
        src: str,
        dst: str,
        handler: Callable[[], Generator[simpy.Event, Any, Any]],
        timeout_s: float,
    ) -> Generator[simpy.Event, Any, Any]:
        """Send a request, run `handler` at `dst`, and return its answer.

        Raises:
            Unreachable: no answer within `timeout_s`.
            Exception: whatever the handler raised, delivered back to the caller.
        """
        reply = self.env.event()
        there = self.delay(src, dst)
        if there is not None:
            self.env.process(self._serve(src, dst, handler, there, reply))
        timer = self.env.timeout(timeout_s)
        yield reply | timer
        if not reply.triggered:
            raise Unreachable(f"{src} -> {dst}")
        outcome = reply.value
        if isinstance(outcome, _Raised):
            raise outcome.error
        return outcome

    def _serve(
        self,
        src: str,
        dst: str,
        handler: Callable[[], Generator[simpy.Event, Any, Any]],
        there: float,
        reply: simpy.Event,
    ) -> Generator[simpy.Event, Any, None]:
        if there:
            yield self.env.timeout(there)
        yield from self.wait_resumed(dst)
        if dst in self.down:
            return
        try:
            value: Any = yield from handler()
        except Exception as error:  # delivered to the caller, as a remote error would be
            value = _Raised(error)
        back = self.delay(dst, src)
        if back is None:
            return
        if back:
            yield self.env.timeout(back)
        if not reply.triggered:
            reply.succeed(value)


@dataclass(frozen=True, slots=True)
class _Raised:
    error: Exception


def instant(value: Any) -> Callable[[], Generator[simpy.Event, Any, Any]]:
    """A handler that answers `value` at once (no time passes at the destination)."""

    def handler() -> Generator[simpy.Event, Any, Any]:
        return value
        yield  # pragma: no cover - makes this a generator

    return handler
