# The scenario's smallest values, shared by the model and the parsers: a read-only mapping that
# pickles and hashes (a fault's JSON patch lives in one, and schedules are compared and hashed by
# the explorer), and a fault's target, which stays symbolic until the world resolves it.
"""Read-only mappings and fault targets."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

_V = TypeVar("_V")


class FrozenDict(dict[str, _V]):
    """A read-only dict. Unlike MappingProxyType it pickles (for worker processes) and passes
    `json.dumps` as it is; every method that would change it raises TypeError."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))

    def __hash__(self) -> int:  # type: ignore[override]
        # Read-only, so hashable by its items (values are hashable: mappings are FrozenDicts,
        # lists tuples).
        return hash(frozenset(self.items()))

    def _read_only(self) -> NoReturn:
        raise TypeError("a scenario's mappings are read-only")

    def __setitem__(self, key: str, value: _V) -> NoReturn:
        self._read_only()

    def __delitem__(self, key: str) -> NoReturn:
        self._read_only()

    def __ior__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        self._read_only()

    def clear(self) -> NoReturn:
        self._read_only()

    def pop(self, *args: Any) -> NoReturn:
        self._read_only()

    def popitem(self) -> NoReturn:
        self._read_only()

    def setdefault(self, *args: Any) -> NoReturn:
        self._read_only()

    def update(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._read_only()


# ---------------------------------------------------------------- targets


class TargetRole(enum.Enum):
    """A role resolved by the world when the fault fires."""

    PRIMARY = "primary"  # the node PostgreSQL really runs as primary on
    REPLICA = "replica"  # one replica, chosen with the run's seeded RNG
    SYNC_STANDBY = "sync_standby"  # a synchronous standby (a replica when there is none)
    ETCD_LEADER = "etcd_leader"  # the etcd member that currently leads (etcd and network faults)
    RANDOM = "random"  # one node (one etcd member for etcd faults), seeded


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """What a fault hits: host names, or one role; exactly one of the two."""

    names: tuple[str, ...] = ()
    role: TargetRole | None = None

    def __post_init__(self) -> None:
        if bool(self.names) == (self.role is not None):
            raise ValueError("a Target has either names or a role")

    @classmethod
    def named(cls, *names: str) -> Target:
        """A target of one or more host names."""
        return cls(names=names)

    @classmethod
    def of_role(cls, role: TargetRole) -> Target:
        """A target resolved from a role when the fault fires."""
        return cls(role=role)

    def __str__(self) -> str:
        return self.role.value if self.role is not None else ",".join(self.names)
