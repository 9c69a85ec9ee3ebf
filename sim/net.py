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
from dataclasses import dataclass, field
from typing import Any, NoReturn

import networkx as nx
import simpy

from sim.world import SimEnvironment, World

Z99 = 2.3263478740408408  # the standard normal's 99th percentile
NV_MAGICCONST = 4 * math.exp(-0.5) / math.sqrt(2.0)  # as random.normalvariate's


@dataclass(frozen=True, slots=True)
class Latency:
    """A one-way latency distribution: lognormal with this median and 99th percentile."""

    median_s: float
    p99_s: float
    mu: float = field(init=False)
    sigma: float = field(init=False)

    def __post_init__(self) -> None:
        spread = self.p99_s > self.median_s > 0
        sigma = math.log(self.p99_s / self.median_s) / Z99 if spread else 0.0
        object.__setattr__(self, "sigma", sigma)
        object.__setattr__(self, "mu", math.log(self.median_s) if self.median_s > 0 else 0.0)


class Unreachable(Exception):
    """No answer within the timeout (dropped, partitioned, down, or too slow)."""


class Network:
    """Hosts, links and faults; `call` runs a handler at the destination and returns its answer."""

    def __init__(self, world: World, latency: Latency) -> None:
        self.world = world
        self.env: SimEnvironment = world.env
        self.graph: nx.Graph = nx.Graph()
        self.default_latency = latency
        self.inter_dc_latency: Latency | None = None
        self._rng = world.rng("net")
        self._random = self._rng.random
        self._blocked: dict[tuple[str, str], set[int]] = {}  # (src, dst) -> fault ids
        self._loss: dict[str, tuple[float, int]] = {}  # host -> (rate, fault id)
        self._extra: dict[str, tuple[Latency, int]] = {}  # host -> (latency, fault id)
        self.down: set[str] = set()
        self.down_fails_fast = False  # a request to a down host: fails at once, or times out
        self._paused: dict[str, simpy.Event] = {}
        self.listeners: list[Callable[[], None]] = []  # told after every change of reachability
        self._dc: dict[str, str | None] = {}

    # ---------------------------------------------------------------- topology

    def add_host(self, name: str, datacenter: str | None = None) -> None:
        self.graph.add_node(name, dc=datacenter)
        self._dc[name] = datacenter

    @property
    def hosts(self) -> list[str]:
        return list(self.graph.nodes)

    def _latency(self, src: str, dst: str) -> Latency:
        if self._extra:
            extra = self._extra.get(src) or self._extra.get(dst)
            if extra is not None:
                return extra[0]
        if self.inter_dc_latency is not None and self._dc[src] != self._dc[dst]:
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
        # The simulator's most frequent call (every hop of every request): cheap tests first.
        if src == dst:
            return None if src in self.down else 0.0
        down = self.down
        if down and (src in down or dst in down):
            return None
        if self._blocked and (src, dst) in self._blocked:
            return None
        if self._loss:
            for host in (src, dst):
                loss = self._loss.get(host)
                if loss is not None and self._rng.random() < loss[0]:
                    return None
        if self._extra or self.inter_dc_latency is not None:
            lat = self._latency(src, dst)
        else:
            lat = self.default_latency
        sigma = lat.sigma
        if sigma == 0.0:
            return lat.median_s
        # random.lognormvariate(lat.mu, sigma), inlined (two calls fewer): the same draws and
        # arithmetic as its normalvariate (Kinderman and Monahan), so the same numbers.
        random = self._random
        while True:
            u1 = random()
            u2 = 1.0 - random()
            z = NV_MAGICCONST * (u1 - 0.5) / u2
            if z * z / 4.0 <= -math.log(u2):
                return math.exp(lat.mu + z * sigma)

    def wait_resumed(self, host: str, deadline: float) -> Generator[simpy.Event, Any, None]:
        """Block while `host` is paused (SIGSTOP).

        Raises:
            Unreachable: still paused at `deadline`.
        """
        while host in self._paused:
            if self.env.now >= deadline:
                raise Unreachable(f"{host} is paused")
            yield self._paused[host] | self.env.timeout(deadline - self.env.now)

    def call(
        self,
        src: str,
        dst: str,
        handler: Callable[[float], Generator[simpy.Event, Any, Any]],
        timeout_s: float,
    ) -> Generator[simpy.Event, Any, Any]:
        """Send a request, run `handler(deadline)` at `dst`, and return its answer.

        The caller's own process carries the request (no process per call: this is the
        simulator's hot path). A handler must not block past `deadline` (it raises Unreachable
        instead). A lost request or answer costs the caller the whole timeout, as a real client
        waits for its socket timeout; the handler's effects stay applied when only the answer is
        lost.

        Raises:
            Unreachable: no answer within `timeout_s`.
            Exception: whatever the handler raised, as a remote error is delivered.
        """
        env = self.env
        deadline = env.now + timeout_s
        if self.down_fails_fast and dst in self.down and src not in self.down:
            yield from self._no_route(src, dst, timeout_s)
        there = self.delay(src, dst)
        if there is None or there > timeout_s:
            yield from self._give_up(deadline, src, dst)
        if there and not env.skip(there):
            yield env.timeout(there)
        if dst in self._paused:
            yield from self.wait_resumed(dst, deadline)
        if dst in self.down:
            yield from self._give_up(deadline, src, dst)
        try:
            value = yield from handler(deadline)
        except Unreachable:
            raise  # the handler gave up at the deadline
        except Exception as error:  # a remote error travels back like an answer
            yield from self._raise_back(dst, src, deadline, error)
        yield from self._travel_back(dst, src, deadline)
        return value

    def _no_route(
        self, src: str, dst: str, timeout_s: float
    ) -> Generator[simpy.Event, Any, NoReturn]:
        """No route to host: the address is gone, and the sender learns it in a round trip."""
        yield self.env.timeout(min(2 * self.default_latency.median_s, timeout_s))
        raise Unreachable(f"{src} -> {dst}: the host is down")

    def _raise_back(
        self, dst: str, src: str, deadline: float, error: Exception
    ) -> Generator[simpy.Event, Any, NoReturn]:
        """Carry the handler's `error` back to the caller like an answer, then raise it there."""
        yield from self._travel_back(dst, src, deadline)
        raise error from None

    def _travel_back(
        self, dst: str, src: str, deadline: float
    ) -> Generator[simpy.Event, Any, None]:
        back = self.delay(dst, src)
        if back is None or self.env.now + back > deadline:
            yield from self._give_up(deadline, src, dst)
        if back and not self.env.skip(back):
            yield self.env.timeout(back)

    def _give_up(self, deadline: float, src: str, dst: str) -> Generator[simpy.Event, Any, None]:
        if deadline > self.env.now:
            yield self.env.timeout(deadline - self.env.now)
        raise Unreachable(f"{src} -> {dst}")


def instant(value: Any) -> Callable[[float], Generator[simpy.Event, Any, Any]]:
    """A handler that answers `value` at once (no time passes at the destination)."""

    def handler(_deadline: float) -> Generator[simpy.Event, Any, Any]:
        return value
        yield  # pragma: no cover - makes this a generator

    return handler
