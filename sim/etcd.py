# etcd as the DCS, modelled at the level that matters for split-brain: a cluster of members with a
# raft leader and terms; a leader exists only while it reaches a majority of live members, and a new
# one is elected an election timeout after the old one lost its majority. Writes (transactions,
# leases) and linearizable reads go through the leader and need a majority round trip; a member cut
# off from the leader has no answer for them and the request hangs until the client gives up.
# Serializable reads are answered by any member from its own, possibly stale, copy. Leases belong to
# the leader: they expire on its clock, do not expire while there is no leader, and are reset to
# their full TTL when a new leader is elected (as etcd does: docs/design.md, "What real etcd and
# Patroni did here"). With pre-vote off, a member that was isolated keeps raising its term and
# forces an election when it rejoins; with pre-vote on it does not.
"""A simulated etcd v3 cluster: leader, terms, majority commit, leases, stale reads, watches."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

import simpy

from sim.net import Network, Unreachable
from sim.world import World


@dataclass(slots=True)
class Entry:
    """One key: its value and revisions (etcd's create_revision and mod_revision)."""

    value: Any
    create_rev: int
    mod_rev: int
    lease: int | None = None


@dataclass(slots=True)
class Lease:
    id: int
    ttl_s: float
    expiry: float  # true time, on the leader's (simulated) clock
    keys: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a read returns: the keys, the revision and the raft term of the answering member."""

    kv: dict[str, Entry]
    revision: int
    term: int


@dataclass(slots=True)
class Member:
    name: str
    term: int = 1
    stale: Snapshot | None = None  # its frozen copy while cut off from the leader
    isolated_since: float | None = None  # pre-vote off: campaigning alone since then


Op = Callable[["EtcdCluster"], Any]  # a write applied by the leader; may raise CompareFailed


class CompareFailed(Exception):
    """A transaction's compare did not hold (not an error of the DCS)."""


class EtcdCluster:
    """The members, the committed key space, and leadership as a function of reachability."""

    def __init__(
        self,
        world: World,
        net: Network,
        names: Iterable[str],
        *,
        pre_vote: bool = True,
        election_timeout_s: float = 1.0,
    ) -> None:
        self.world, self.net, self.env = world, net, world.env
        self.members = {name: Member(name) for name in names}
        self.pre_vote = pre_vote
        self.election_timeout_s = election_timeout_s
        self.kv: dict[str, Entry] = {}
        self.revision = 1
        self.leader_key_rev = 0  # the revision of the latest change of the leader key
        self.leases: dict[int, Lease] = {}
        self._next_lease = 1
        self.leader: str | None = None
        self.term = 1
        self.changed: simpy.Event = self.env.event()
        self._electing = False
        self._rng = world.rng("etcd")
        self.stopped: set[str] = set()  # member processes killed (their hosts may be up)
        self.key_watchers: list[Callable[[str], None]] = []
        self.on_expired: list[Callable[[str, Any], None]] = []
        net.listeners.append(self.reevaluate)
        # The cluster was up before the run: it starts with a leader, chosen by the seed.
        self.leader = self._rng.choice(sorted(self.members))
        self.term = 2
        self._snapshots()

    # ---------------------------------------------------------------- reachability

    @property
    def quorum(self) -> int:
        return len(self.members) // 2 + 1

    def healthy(self, name: str) -> bool:
        return (
            name not in self.stopped and name not in self.net.down and not self.net.is_paused(name)
        )

    def stop(self, name: str) -> None:
        """The member's process dies (its data survives, as etcd's does on disk)."""
        self.stopped.add(name)
        self.reevaluate()

    def start(self, name: str) -> None:
        self.stopped.discard(name)
        self.reevaluate()

    def _refuse_if_stopped(self, member: str) -> None:
        if member in self.stopped:
            raise Unreachable(f"etcd member {member} is not running")

    def linked(self, a: str, b: str) -> bool:
        return self.net.connected(a, b) and self.net.connected(b, a)

    def _reach(self, name: str) -> list[str]:
        return [m for m in self.members if self.healthy(m) and self.linked(name, m)]

    def _has_majority(self, name: str) -> bool:
        return self.healthy(name) and len(self._reach(name)) >= self.quorum

    def current(self, name: str) -> bool:
        """The member is live and connected to a leader that has a majority."""
        leader = self.leader
        return leader is not None and self.healthy(name) and self.linked(name, leader)

    # ---------------------------------------------------------------- leadership

    def reevaluate(self) -> None:
        """Called after every change of reachability: keep, lose or elect a leader."""
        self._disruption()
        if self.leader is not None and not self._has_majority(self.leader):
            self._lose_leader()
        self._snapshots()
        if self.leader is None and not self._electing:
            self._electing = True
            self.env.process(self._elect())
        self._wake()

    def _wake(self) -> None:
        changed, self.changed = self.changed, self.env.event()
        changed.succeed()

    def _lose_leader(self) -> None:
        self.leader = None

    def _disruption(self) -> None:
        # Pre-vote off: a member that campaigned alone comes back with a higher term, and the
        # leader steps down for it (etcd 3.4's default, seen here as a needless leader change).
        now = self.env.now
        for member in self.members.values():
            alone = self.healthy(member.name) and not self._has_majority(member.name)
            if alone and member.isolated_since is None:
                member.isolated_since = now
            elif not alone and member.isolated_since is not None:
                rounds = int((now - member.isolated_since) / self.election_timeout_s)
                member.isolated_since = None
                if not self.pre_vote and rounds > 0 and self.leader is not None:
                    self.term = max(self.term, member.term + rounds)
                    self._lose_leader()

    def _snapshots(self) -> None:
        for member in self.members.values():
            if self.current(member.name):
                member.stale = None
                member.term = self.term
            elif member.stale is None:
                member.stale = Snapshot(dict(self.kv), self.revision, member.term)

    def _elect(self) -> Generator[simpy.Event, Any, None]:
        while self.leader is None:
            jitter = self._rng.uniform(0.0, self.election_timeout_s)
            yield self.env.timeout(self.election_timeout_s + jitter)
            candidates = sorted(m for m in self.members if self._has_majority(m))
            if candidates:
                self.term += 1
                self.leader = self._rng.choice(candidates)
                self._reset_leases()
                self.world.record("etcd_leader", node=self.leader, term=self.term)
        self._electing = False
        self._snapshots()
        self._wake()

    # ---------------------------------------------------------------- leases

    def _reset_leases(self) -> None:
        for lease in self.leases.values():
            self._schedule(lease, self.env.now + lease.ttl_s)

    def _schedule(self, lease: Lease, expiry: float) -> None:
        # A timer with a callback, not a process: every keepalive schedules one.
        lease.expiry = expiry
        timer = self.env.timeout(max(0.0, expiry - self.env.now))
        timer.callbacks.append(lambda _: self._expire(lease.id, expiry))

    def _expire(self, lease_id: int, expiry: float) -> None:
        lease = self.leases.get(lease_id)
        if lease is None or lease.expiry != expiry or self.leader is None:
            return  # renewed, revoked, or no leader to expire it (reset when one is elected)
        self.revoke(lease_id)

    def grant(self, ttl_s: float) -> int:
        lease = Lease(self._next_lease, ttl_s, self.env.now + ttl_s)
        self._next_lease += 1
        self.leases[lease.id] = lease
        self._schedule(lease, lease.expiry)
        return lease.id

    def keepalive(self, lease_id: int) -> bool:
        lease = self.leases.get(lease_id)
        if lease is None:
            return False
        self._schedule(lease, self.env.now + lease.ttl_s)
        return True

    def revoke(self, lease_id: int) -> None:
        lease = self.leases.pop(lease_id, None)
        if lease is None:
            return
        for key in sorted(lease.keys):
            entry = self.kv.get(key)
            if entry is not None and entry.lease == lease_id:
                self.delete(key)
                for hook in self.on_expired:
                    hook(key, entry.value)

    # ---------------------------------------------------------------- the key space

    def put(self, key: str, value: Any, lease: int | None = None) -> int:
        self.revision += 1
        old = self.kv.get(key)
        create = old.create_rev if old is not None else self.revision
        if old is not None and old.lease is not None and old.lease in self.leases:
            self.leases[old.lease].keys.discard(key)
        self.kv[key] = Entry(value, create, self.revision, lease)
        if lease is not None and lease in self.leases:
            self.leases[lease].keys.add(key)
        self._notify(key)
        return self.revision

    def delete(self, key: str) -> bool:
        if self.kv.pop(key, None) is None:
            return False
        self.revision += 1
        self._notify(key)
        return True

    def _notify(self, key: str) -> None:
        if key == "leader":
            self.leader_key_rev = self.revision
        for watcher in self.key_watchers:
            watcher(key)

    # ---------------------------------------------------------------- serving requests

    def _wait_current(self, member: str, deadline: float) -> Generator[simpy.Event, Any, None]:
        # A member without a leader holds the request; the client gives up at its deadline.
        while not self.current(member):
            if self.env.now >= deadline:
                raise Unreachable(f"etcd member {member} has no leader")
            yield self.changed | self.env.timeout(deadline - self.env.now)

    def _majority_rtt(self, leader: str) -> float | None:
        # The leader commits once the fastest majority (itself included) acknowledged.
        net, stopped, paused = self.net, self.stopped, self.net.is_paused
        rtts = [0.0]
        for other in self.members:
            # `healthy(other)`, inlined: this runs for every write and linearizable read.
            if other == leader or other in stopped or other in net.down or paused(other):
                continue
            there, back = net.delay(leader, other), net.delay(other, leader)
            if there is not None and back is not None:
                rtts.append(there + back)
        rtts.sort()
        return rtts[self.quorum - 1] if len(rtts) >= self.quorum else None

    def _via_leader(self, member: str, deadline: float) -> Generator[simpy.Event, Any, str]:
        # Forward to the leader and get a majority round trip; hang while that is impossible.
        net, env = self.net, self.env
        while True:
            if not self.current(member):
                yield from self._wait_current(member, deadline)
            leader = self.leader
            assert leader is not None  # a leader is current
            there, back = net.delay(member, leader), net.delay(leader, member)
            rtt = self._majority_rtt(leader)
            if rtt is not None and there is not None and back is not None:
                delay = rtt + (there + back)
                if env.now + delay > deadline:
                    break  # the commit would come after the client gave up
                if delay and not env.skip(delay):
                    yield env.timeout(delay)
                if self.current(member) and self.leader == leader:
                    return leader
            elif env.now + self.election_timeout_s / 10 >= deadline:
                break
            else:
                yield env.timeout(self.election_timeout_s / 10)  # lost on the way: retransmit
        if deadline > env.now:
            yield env.timeout(deadline - env.now)
        raise Unreachable(f"etcd member {member}: no commit before the deadline")

    def serve_write(
        self, member: str, op: Op, deadline: float
    ) -> Generator[simpy.Event, Any, tuple[Any, int]]:
        """Apply `op` through the leader; returns (op's result, raft term)."""
        self._refuse_if_stopped(member)
        yield from self._via_leader(member, deadline)
        return op(self), self.term

    def serve_read(
        self, member: str, deadline: float, *, linearizable: bool
    ) -> Generator[simpy.Event, Any, Snapshot]:
        """A range read of everything: current through the leader, or the member's own copy."""
        self._refuse_if_stopped(member)
        if linearizable:
            yield from self._via_leader(member, deadline)
            return Snapshot(dict(self.kv), self.revision, self.term)
        state = self.members[member]
        if state.stale is not None:
            return state.stale
        return Snapshot(dict(self.kv), self.revision, self.term)
