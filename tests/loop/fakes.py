"""Hand-written protocol fakes that record every port call, for executor and loop unit tests.

Each fake implements one protocol of `pgha.ports` exactly (mypy checks it where `Ports` is built),
appends `(method, args)` to a shared call list, and returns what the test configured.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pgha.engine.actions import Callback, DemoteMode
from pgha.engine.values import (
    ClusterView,
    FailsafeHeartbeat,
    Failure,
    HistoryEntry,
    LockResult,
    MemberRole,
    PeerStatus,
    PostgresState,
    SyncStandbyNames,
)
from pgha.ports import ActionFailed, DcsError, Ports

Call = tuple[str, tuple[object, ...]]


class FakeClock:
    """A clock that advances `step` seconds after every monotonic read."""

    def __init__(self, calls: list[Call], now: float = 100.0, step: float = 0.0) -> None:
        self.calls = calls
        self.now = now
        self.step = step

    def now_mono(self) -> float:
        self.calls.append(("now_mono", ()))
        now = self.now
        self.now += self.step
        return now

    def now_wall(self) -> float:
        return 1_700_000_000.0 + self.now


class RecordingDcs:
    """The Dcs port; `raising` names the methods that raise DcsError."""

    def __init__(self, calls: list[Call]) -> None:
        self.calls = calls
        self.raising: set[str] = set()
        self.view = ClusterView()
        self.initialize_won = True
        self.lock_result = LockResult.OK
        self.cas_won = True
        self.on_read: list[FakeClock] = []  # clocks to move forward by 5 s on a read

    def _call(self, name: str, *args: object) -> None:
        self.calls.append((name, args))
        if name in self.raising:
            raise DcsError(name)

    def read_cluster(self) -> ClusterView:
        self._call("read_cluster")
        for clock in self.on_read:
            clock.now += 5.0
        return self.view

    def acquire_initialize(self) -> bool:
        self._call("acquire_initialize")
        return self.initialize_won

    def write_initialize(self, sysid: str) -> None:
        self._call("write_initialize", sysid)

    def delete_initialize(self) -> None:
        self._call("delete_initialize")

    def write_config(self) -> None:
        self._call("write_config")

    def acquire_lock(self) -> LockResult:
        self._call("acquire_lock")
        return self.lock_result

    def renew_lock(self, version: int) -> LockResult:
        self._call("renew_lock", version)
        return self.lock_result

    def release_lock(self, version: int | None) -> None:
        self._call("release_lock", version)

    def expire_leader_key(self, version: int) -> bool:
        self._call("expire_leader_key", version)
        return self.cas_won

    def write_sync(
        self, leader: str | None, standbys: frozenset[str], quorum: int, version: int | None
    ) -> bool:
        self._call("write_sync", leader, standbys, quorum, version)
        return self.cas_won

    def write_status(self, optime_lsn: int) -> None:
        self._call("write_status", optime_lsn)

    def write_failsafe(self, members: tuple[str, ...]) -> None:
        self._call("write_failsafe", members)

    def append_history(self, entry: HistoryEntry) -> None:
        self._call("append_history", entry)

    def clear_failover(self, version: int) -> bool:
        self._call("clear_failover", version)
        return self.cas_won

    def update_member(self, role: MemberRole) -> None:
        self._call("update_member", role)


class RecordingPostgres:
    """The Postgres port; `failing` maps a method name to the Failure it raises."""

    def __init__(self, calls: list[Call]) -> None:
        self.calls = calls
        self.pg = PostgresState()
        self.failing: dict[str, Failure | None] = {}

    def _call(self, name: str, *args: object) -> None:
        self.calls.append((name, args))
        if name in self.failing:
            raise ActionFailed(self.failing[name])

    def state(self) -> PostgresState:
        self._call("state")
        return self.pg

    def bootstrap(self) -> None:
        self._call("bootstrap")

    def create_replica(self, source: str | None) -> None:
        self._call("create_replica", source)

    def start(self, as_primary: bool) -> None:
        self._call("start", as_primary)

    def stop(self, immediate: bool) -> None:
        self._call("stop", immediate)

    def demote(self, mode: DemoteMode) -> None:
        self._call("demote", mode)

    def promote(self) -> None:
        self._call("promote")

    def follow(self, leader: str | None) -> None:
        self._call("follow", leader)

    def rewind(self, source: str) -> None:
        self._call("rewind", source)

    def reinit(self, source: str) -> None:
        self._call("reinit", source)

    def set_sync_standby_names(self, value: SyncStandbyNames) -> None:
        self._call("set_sync_standby_names", value)


class RecordingWatchdog:
    def __init__(self, calls: list[Call]) -> None:
        self.calls = calls
        self.usable = True

    def available(self) -> bool:
        self.calls.append(("available", ()))
        return self.usable

    def arm(self, timeout_s: float) -> bool:
        self.calls.append(("arm", (timeout_s,)))
        return self.usable

    def kick(self) -> None:
        self.calls.append(("kick", ()))

    def disable(self) -> None:
        self.calls.append(("disable", ()))


class RecordingPeers:
    def __init__(self, calls: list[Call]) -> None:
        self.calls = calls
        self.heartbeat: FailsafeHeartbeat | None = None

    def fetch_status(self, names: tuple[str, ...]) -> tuple[PeerStatus, ...]:
        self.calls.append(("fetch_status", (names,)))
        return tuple(PeerStatus(name=n, wal_lsn=7) for n in names)

    def post_failsafe(self, names: tuple[str, ...]) -> tuple[str, ...]:
        self.calls.append(("post_failsafe", (names,)))
        return names[:1]

    def last_failsafe_heartbeat(self) -> FailsafeHeartbeat | None:
        self.calls.append(("last_failsafe_heartbeat", ()))
        return self.heartbeat


class RecordingCallbacks:
    def __init__(self, calls: list[Call]) -> None:
        self.calls = calls

    def run(self, event: Callback, role: str) -> None:
        self.calls.append(("run", (event, role)))


@dataclass
class World:
    """The fakes, their shared call list, and the Ports bundle over them."""

    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.clock = FakeClock(self.calls)
        self.dcs = RecordingDcs(self.calls)
        self.postgres = RecordingPostgres(self.calls)
        self.watchdog = RecordingWatchdog(self.calls)
        self.peers = RecordingPeers(self.calls)
        self.callbacks = RecordingCallbacks(self.calls)
        self.ports = Ports(
            clock=self.clock,
            dcs=self.dcs,
            postgres=self.postgres,
            watchdog=self.watchdog,
            peers=self.peers,
            callbacks=self.callbacks,
        )

    def port_calls(self) -> list[Call]:
        """The calls other than clock reads."""
        return [c for c in self.calls if c[0] != "now_mono"]
