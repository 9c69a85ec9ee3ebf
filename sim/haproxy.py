# The load balancer of a Patroni cluster, as the usual haproxy.cfg sets it up: each backend's
# `/primary` REST endpoint is health-checked every `inter`, a backend goes DOWN after `fall` failed
# checks in a row and UP after `rise` good ones, and `on-marked-down shutdown-sessions` cuts the
# sessions of a backend that goes DOWN. Writes go to the first UP backend. This is what the clients
# of a real deployment see during a failover: the gap between the old primary going away and
# HAProxy noticing the new one, and the writes it still sends to a primary that is being demoted.
"""Simulated HAProxy: active health checks with fall/rise, routing, session shutdown."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import simpy

from sim.net import Network
from sim.world import SimEnvironment, World

Probe = Callable[[str], Generator[Any, Any, bool]]


class SimHAProxy:
    """Health checks and routing for one HAProxy host.

    Health follows HAProxy's counter: it runs from 0 to rise + fall - 1, and the server is UP
    while it is at least `rise`. A failed check lowers it by one, and to 0 (DOWN) once it is below
    `rise`; a good check raises it by one, and to the top (fully UP) once it reaches `rise`.
    Servers start UP with health = rise (HAProxy's default `init-state up`), so the first failed
    check marks a server DOWN; from fully UP it takes `fall` failures, from DOWN `rise` successes.
    """

    def __init__(
        self,
        world: World,
        net: Network,
        name: str,
        backends: list[str],
        probe: Probe,
        *,
        interval_s: float = 3.0,
        fall: int = 3,
        rise: int = 2,
        timeout_s: float = 1.0,
        phase_s: float | None = None,
    ) -> None:
        self.world = world
        self.phase_s = phase_s
        self.env: SimEnvironment = world.env
        self.net = net
        self.name = name
        self.backends = list(backends)
        self.probe = probe
        self.interval_s = interval_s
        self.fall = fall
        self.rise = rise
        self.timeout_s = timeout_s
        self._health = dict.fromkeys(self.backends, rise)
        self._up = dict.fromkeys(self.backends, True)
        self._epoch = dict.fromkeys(self.backends, 0)
        self._killed: dict[str, simpy.Event] = {}
        if name not in net.graph:
            net.add_host(name)

    def start(self) -> None:
        """Start one check loop per backend, spread over the first interval as HAProxy does.

        HAProxy started at some moment unrelated to the agents' loops and the faults: the phase
        of its checks is drawn per seed, so runs over many seeds see every phase, as real runs
        do (a fixed phase would make every seed's first write after a promotion equally lucky).
        A `phase_s` given to the constructor fixes it.
        """
        if self.phase_s is None:
            self.phase_s = self.world.rng("haproxy").uniform(0.0, self.interval_s)
        for i, backend in enumerate(self.backends):
            offset = self.phase_s + self.interval_s * i / len(self.backends)
            self.env.process(self._check_loop(backend, offset))

    # ------------------------------------------------------------ what the clients see

    def route(self) -> str | None:
        """The backend a new session goes to: the first UP one in list order (None: no backend)."""
        return next((b for b in self.backends if self._up[b]), None)

    def is_up(self, backend: str) -> bool:
        return self._up[backend]

    def epoch(self, backend: str) -> int:
        """Counts the times `backend` was marked DOWN (its sessions were shut down)."""
        return self._epoch[backend]

    def killed(self, backend: str) -> simpy.Event:
        """An event that fires when `backend` is next marked DOWN."""
        event = self._killed.get(backend)
        if event is None:
            event = self._killed[backend] = self.env.event()
        return event

    # ------------------------------------------------------------ health checks

    def _check_loop(self, backend: str, offset: float) -> Generator[Any, Any, None]:
        # Checks start every interval_s (a slow check delays the next one, never overlaps it).
        if offset > 0:
            yield self.env.timeout(offset)
        while True:
            began = float(self.env.now)
            ok = yield from self._check(backend)
            self._account(backend, ok)
            wait = max(began + self.interval_s - self.env.now, 0.0)
            if not self.env.skip(wait):
                yield self.env.timeout(wait)

    def _check(self, backend: str) -> Generator[Any, Any, bool]:
        # The probe runs inline (no process per check): wire it with a network timeout of
        # timeout_s; an answer later than that, or an exception, counts as a failed check.
        began = float(self.env.now)
        try:
            ok = yield from self.probe(backend)
        except Exception:
            return False
        return bool(ok) and self.env.now - began <= self.timeout_s + 1e-9

    def _account(self, backend: str, ok: bool) -> None:
        health = self._health[backend]
        top = self.rise + self.fall - 1
        if ok:
            health = top if health + 1 >= self.rise else health + 1
        elif health > 0:
            health = health - 1 if health - 1 >= self.rise else 0
        self._health[backend] = health
        self._set_up(backend, health >= self.rise)

    def _set_up(self, backend: str, up: bool) -> None:
        if up == self._up[backend]:
            return
        self._up[backend] = up
        if not up:  # on-marked-down shutdown-sessions
            self._epoch[backend] += 1
            event = self._killed.pop(backend, None)
            if event is not None:
                event.succeed()
