# Two worlds apply a scenario's faults: the simulator (sim/faults.py, in virtual time) and the chaos
# harness's nemesis (chaos/nemesis.py, on real containers). Both record each fault as really
# applied (docs/history.md, "Faults, as really applied"): the hosts it hit when it fired, or why it
# was skipped, never silently dropped; and `for` undoes it on those same hosts. This module is the
# port they share, as the agent's ports are shared by the real agent and the simulated node:
#
#   FaultWorld   what a world offers: apply a fault now, end one, heal everything at the end
#   Applied      a fault in force: its id and spec, the hosts it hit, when, and how to undo it
#   Skipped      a fault that could not be applied, and why
#   appliers     a world's table of one applier per kind, checked against the registry of kinds
#
# An applier gets the world, the kind's own parameters (typed: no `Any`) and the Firing (the
# fault's id and spec), and returns an Applied or raises Skip. Times are the world's own clock:
# simulated seconds in the simulator, the host's monotonic clock in the chaos harness.
"""The fault world port: FaultWorld, the result of applying a fault, and applier tables."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol, TypeVar

from pgha.scenario import (
    FAULT_KINDS,
    NETWORK_KINDS,
    FaultKind,
    FaultParams,
    FaultSpec,
    WorldName,
    kind_of,
)

# Undoes a fault on the hosts it hit; returns the time the undo was in force on all of them, or
# None when the world's clock does not move while it undoes (the simulator: it is now).
Undo = Callable[[], float | None]


class Skip(Exception):
    """The fault cannot be applied now (the message says why): it is recorded as skipped."""


@dataclass(eq=False, kw_only=True)
class Applied:
    """A fault that was applied: its id and spec, the hosts it hit, when it was in force on all
    of them, and how to undo it (None: nothing to undo). `ended_at` is set once it is undone."""

    id: int
    spec: FaultSpec
    hosts: tuple[str, ...]
    at: float
    undo: Undo | None
    ended_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Skipped:
    """A fault that could not be applied when it fired, and why."""

    id: int
    spec: FaultSpec
    reason: str


FaultResult = Applied | Skipped


@dataclass(frozen=True, slots=True, kw_only=True)
class Firing:
    """The fault being applied: its id (network rules and operator events are keyed by it)."""

    id: int
    spec: FaultSpec

    def applied(self, hosts: tuple[str, ...], undo: Undo | None, *, at: float) -> Applied:
        """The result of applying it: the hosts it hit, how to undo it, when it was in force."""
        return Applied(id=self.id, spec=self.spec, hosts=hosts, at=at, undo=undo)

    def skipped(self, reason: str) -> Skipped:
        """The result of not applying it."""
        return Skipped(id=self.id, spec=self.spec, reason=reason)


class FaultWorld(Protocol):
    """A world faults are applied in (sim.faults.FaultInjector, chaos.nemesis.Nemesis)."""

    active: list[Applied]  # faults in force that the end of the run (or a heal) undoes

    def apply(self, spec: FaultSpec) -> FaultResult:
        """Resolve the targets now, apply the fault, record its start or why it was skipped."""
        ...

    def end(self, applied: Applied) -> float | None:
        """Undo one fault now and record its end; None when it had ended already."""
        ...

    def heal_everything(self) -> float:
        """The end of the run: undo every active fault and heal the machines and the network;
        returns when that was in force."""
        ...


def end_network_faults(world: FaultWorld) -> None:
    """`heal`: every partition, loss and latency fault still active ends now."""
    for applied in list(world.active):
        if applied.spec.kind in NETWORK_KINDS:
            world.end(applied)


def end_kills_on(world: FaultWorld, hosts: Iterable[str]) -> None:
    """`restart`: a kill still in force on these machines ends here."""
    machines = set(hosts)
    for applied in list(world.active):
        if applied.spec.kind is FaultKind.KILL and machines & set(applied.hosts):
            world.end(applied)


# ---------------------------------------------------------------- applier tables

W = TypeVar("W")
P = TypeVar("P", bound=FaultParams)
Applier = Callable[[W, Firing], Applied]


def on(
    params_type: type[P], apply: Callable[[W, P, Firing], Applied]
) -> tuple[FaultKind, Applier[W]]:
    """The applier of the kind whose parameters are `params_type`, typed by them."""

    def applier(world: W, firing: Firing) -> Applied:
        params = firing.spec.params
        if not isinstance(params, params_type):
            raise TypeError(f"{firing.spec.kind.value} takes {params_type.__name__}")
        return apply(world, params, firing)

    return kind_of(params_type), applier


def appliers(
    world: WorldName, *entries: tuple[FaultKind, Applier[W]]
) -> Mapping[FaultKind, Applier[W]]:
    """A world's table: one applier for every kind the registry says it applies, and none for a
    kind it names as unsupported there (with the reason)."""
    table = dict(entries)
    expected = {kind for kind, entry in FAULT_KINDS.items() if entry.applied_in(world)}
    if len(table) != len(entries) or set(table) != expected:
        missing = [kind.value for kind in FAULT_KINDS if kind in expected and kind not in table]
        extra = [kind.value for kind in FAULT_KINDS if kind in table and kind not in expected]
        raise RuntimeError(f"{world} appliers: missing {missing}, unexpected {extra} (or twice)")
    return MappingProxyType({kind: table[kind] for kind in FAULT_KINDS if kind in table})
