# The clients of the cluster, Jepsen style: each writes unique integer ids at a steady rate, one
# write at a time, through HAProxy (client -> haproxy -> backend) or straight to its own database
# node, and records `invoke` and then `ok`, `fail` (definitely not applied) or `info` (outcome
# unknown) per docs/history.md. These events are what `no_lost_acknowledged_writes` and
# `no_split_brain` are checked on, so a write is only `ok` once the reply reached the client, and
# only `fail` when the simulator knows the write never reached PostgreSQL's WAL.
#
# Speed: one SimPy process per client loops over its writes; a write is a few timeouts (one per
# network hop) and no process of its own. The client's timeout is a deadline passed down the path;
# only a commit that blocks (synchronous standbys, a paused server) waits on an event for it.
"""Simulated clients writing unique ids through HAProxy or directly."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, Literal, NamedTuple

import simpy

from sim.haproxy import SimHAProxy
from sim.net import Network
from sim.postgres import SimPostgres, WriteRejected, WriteUnknown
from sim.world import SimEnvironment, World

# WriteUnknown reasons as the client reports them.
_UNKNOWN_ERRORS = {"timeout": "timeout", "aborted": "connection_reset"}


class WriteResult(NamedTuple):
    """How one write ended, as the client records it."""

    kind: Literal["ok", "fail", "info"]
    error: str | None = None
    served_by: str | None = None
    timeline: int | None = None
    lsn: int | None = None
    final: bool = False  # known at the client now: no reply hop follows
    epoch: int = 0  # the HAProxy backend's epoch when the session was forwarded


_UNREACHABLE = WriteResult("fail", "unreachable", final=True)
Steps = Generator[Any, Any, WriteResult]
_FROM_HAPROXY = ("no_backend", "connection_reset", "unreachable")  # HAProxy answers these


class Workload:
    """Clients c1..cN writing ids 1, 2, 3 ... (one global counter) at `rate_per_s` in total.

    Client i writes through HAProxy (`via="haproxy"`) or to `nodes[i % len(nodes)]` (`"direct"`).
    `clients=None` means one client through HAProxy, or one per node when direct.
    """

    def __init__(
        self,
        world: World,
        net: Network,
        *,
        rate_per_s: float,
        via: Literal["haproxy", "direct"],
        nodes: list[str],
        pg_of: Callable[[str], SimPostgres | None],
        haproxy: SimHAProxy | None = None,
        clients: int | None = None,
        timeout_s: float = 5.0,
        jitter: float = 0.2,
    ) -> None:
        if via == "haproxy" and haproxy is None:
            raise ValueError("via haproxy needs a SimHAProxy")
        self.world = world
        self.env: SimEnvironment = world.env
        self.net = net
        self.rate_per_s = rate_per_s
        self.via = via
        self.nodes = list(nodes)
        self.pg_of = pg_of
        self.haproxy = haproxy if via == "haproxy" else None
        default = 1 if via == "haproxy" else len(self.nodes)
        self.clients = [f"c{i + 1}" for i in range(clients if clients is not None else default)]
        self.timeout_s = timeout_s
        self.jitter = jitter
        self._rng = world.rng("workload")
        self._last_id = 0
        self.counts: dict[str, int] = {"invoke": 0, "ok": 0, "fail": 0, "info": 0}
        for client in self.clients:
            if client not in net.graph:
                net.add_host(client)

    def start(self, until_s: float) -> None:
        """Start the clients; no write is invoked at or after `until_s` (simulated time)."""
        for i, client in enumerate(self.clients):
            self.env.process(self._client(i, client, until_s))

    # ------------------------------------------------------------ one client

    def _client(self, index: int, client: str, until_s: float) -> Generator[Any, Any, None]:
        interval = len(self.clients) / self.rate_per_s
        hap = self.haproxy
        target = "haproxy" if hap is not None else self.nodes[index % len(self.nodes)]
        env, uniform = self.env, self._rng.uniform
        due = env.now + interval * index / len(self.clients)
        while due < until_s:
            now = env.now
            if due > now and not env.skip(due - now):
                yield env.timeout(due - now)
            began = float(env.now)
            write_id, deadline = self._invoke(client, target)
            if hap is not None:
                outcome = yield from self._through_haproxy(hap, client, write_id, deadline)
            else:
                outcome = yield from self._direct(client, target, write_id, deadline)
            self._complete(client, write_id, outcome)
            spread = uniform(1.0 - self.jitter, 1.0 + self.jitter)
            due = max(began + interval * spread, float(env.now))

    def _invoke(self, client: str, target: str) -> tuple[int, float]:
        self._last_id += 1
        self.counts["invoke"] += 1
        self.world.record("invoke", client, op="write", id=self._last_id, target=target)
        return self._last_id, self.env.now + self.timeout_s

    def _complete(self, client: str, write_id: int, outcome: WriteResult) -> None:
        kind = outcome.kind
        self.counts[kind] += 1
        if kind == "ok":
            self.world.record(
                kind,
                client,
                op="write",
                id=write_id,
                served_by=outcome.served_by,
                timeline=outcome.timeline,
                lsn=outcome.lsn,
            )
            return
        known = {"served_by": outcome.served_by} if outcome.served_by else {}
        self.world.record(kind, client, op="write", id=write_id, error=outcome.error, **known)

    # ------------------------------------------------------------ paths
    # Each network hop is one timeout yielded right here (no generator per hop: this is the
    # per-write hot path). A lost or late message ends the write at the client's deadline.

    def _direct(self, client: str, node: str, write_id: int, deadline: float) -> Steps:
        env = self.env
        arrival = self._travel(((client, node),), deadline)
        if arrival is None:
            yield env.timeout(self._until(deadline))
            return _UNREACHABLE
        if not env.skip(arrival):
            yield env.timeout(arrival)
        outcome = yield from self._execute(node, write_id, deadline, None)
        wait, outcome = self._answer(outcome, ((node, client),), deadline)
        if wait is not None and not env.skip(wait):
            yield env.timeout(wait)
        return outcome

    def _through_haproxy(
        self, hap: SimHAProxy, client: str, write_id: int, deadline: float
    ) -> Steps:
        env = self.env
        arrival = self._travel(((client, hap.name),), deadline)
        if arrival is None:
            yield env.timeout(self._until(deadline))
            return _UNREACHABLE
        if not env.skip(arrival):
            yield env.timeout(arrival)
        backend = hap.route()
        hops: tuple[tuple[str, str], ...] = ((hap.name, client),)
        if backend is None:
            outcome = WriteResult("fail", "no_backend")
        else:
            outcome = yield from self._backend(hap, backend, write_id, deadline)
            if outcome.error not in _FROM_HAPROXY:
                hops = ((backend, hap.name), *hops)
        wait, outcome = self._answer(outcome, hops, deadline)
        if wait is not None and not env.skip(wait):
            yield env.timeout(wait)
        if outcome.kind == "ok" and backend is not None and hap.epoch(backend) != outcome.epoch:
            return WriteResult("info", "connection_reset", backend)
        return outcome

    def _backend(self, hap: SimHAProxy, backend: str, write_id: int, deadline: float) -> Steps:
        # HAProxy forwards the session to `backend`; `on-marked-down shutdown-sessions` cuts it.
        env = self.env
        epoch = hap.epoch(backend)
        arrival = self._travel(((hap.name, backend),), deadline)
        if arrival is None:
            yield env.timeout(self._until(deadline))
            return _UNREACHABLE
        if not env.skip(arrival):
            yield env.timeout(arrival)
        if hap.epoch(backend) != epoch:  # cut before the query reached the server
            return WriteResult("fail", "connection_reset", backend)
        return (yield from self._execute(backend, write_id, deadline, hap.killed(backend), epoch))

    def _execute(
        self, node: str, write_id: int, deadline: float, abort: simpy.Event | None, epoch: int = 0
    ) -> Steps:
        pg = self.pg_of(node)
        if pg is None:
            return WriteResult("fail", "refused", node, epoch=epoch)
        try:
            timeline, lsn = yield from pg.write(write_id, deadline_t=deadline, abort=abort)
        except WriteRejected as rejected:
            error = "refused" if rejected.reason == "down" else rejected.reason
            return WriteResult("fail", error, node, epoch=epoch)
        except WriteUnknown as unknown:
            error = _UNKNOWN_ERRORS.get(unknown.reason, "connection_lost")
            return WriteResult("info", error, node, final=unknown.reason == "timeout", epoch=epoch)
        return WriteResult("ok", None, node, timeline, lsn, epoch=epoch)

    # ------------------------------------------------------------ network hops

    def _travel(self, hops: tuple[tuple[str, str], ...], deadline: float) -> float | None:
        """How long a message sent now along `hops` takes to arrive (None: lost or late)."""
        total, delay = 0.0, self.net.delay
        for src, dst in hops:
            hop = delay(src, dst)
            if hop is None:
                return None
            total += hop
        if self.env.now + total > deadline:
            return None
        return total

    def _answer(
        self, outcome: WriteResult, hops: tuple[tuple[str, str], ...], deadline: float
    ) -> tuple[float | None, WriteResult]:
        # What to wait for until the client knows `outcome`: the reply's trip, or, when the reply
        # is lost, the deadline (and then only a write known not to be applied stays `fail`).
        if outcome.final or outcome is _UNREACHABLE:
            return None, outcome
        back = self._travel(hops, deadline)
        if back is not None:
            return back, outcome
        lost = (
            outcome if outcome.kind == "fail" else WriteResult("info", "timeout", outcome.served_by)
        )
        return self._until(deadline), lost

    def _until(self, deadline: float) -> float:
        return max(deadline - self.env.now, 0.0)
