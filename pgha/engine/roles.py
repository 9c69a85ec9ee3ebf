# Safety rule: a node's role changes only along the edges below; anything else is a bug in the rules
# and raises instead of being clamped. In particular a replica never becomes PRIMARY without passing
# through PROMOTING (after winning the race as CANDIDATE, or proving by compare-and-set a lock it
# still holds), and a PRIMARY never becomes a replica without DEMOTING. (Style anchors, lesson 5:
# roles and transitions are data, as in h11.)
"""Roles an agent believes it has, and the table of allowed transitions."""

from __future__ import annotations

import enum
from collections.abc import Mapping


class Role(enum.Enum):
    """What the agent believes its node is, and is steering it to be."""

    UNINITIALIZED = "uninitialized"  # no data directory yet
    BOOTSTRAPPING = "bootstrapping"  # won the initialize race, running initdb
    CLONING = "cloning"  # creating a replica (basebackup, pgBackRest, reinit)
    STOPPED = "stopped"  # data present, PostgreSQL down
    STARTING = "starting"  # PostgreSQL starting, or up in a role the agent has not taken on
    REPLICA = "replica"  # PostgreSQL in recovery
    CANDIDATE = "candidate"  # racing for the leader lock
    PROMOTING = "promoting"  # holds the lock, promotion issued
    PRIMARY = "primary"  # holds the lock, PostgreSQL read-write
    DEMOTING = "demoting"  # stopping read-write service
    REWINDING = "rewinding"  # pg_rewind in progress


_R = Role

TRANSITIONS: Mapping[Role, frozenset[Role]] = {
    _R.UNINITIALIZED: frozenset({_R.BOOTSTRAPPING, _R.CLONING, _R.STOPPED, _R.STARTING}),
    _R.BOOTSTRAPPING: frozenset(
        {_R.CANDIDATE, _R.UNINITIALIZED, _R.STOPPED, _R.CLONING, _R.DEMOTING, _R.REPLICA}
    ),
    _R.CLONING: frozenset({_R.STARTING, _R.REPLICA, _R.STOPPED, _R.UNINITIALIZED}),
    _R.STOPPED: frozenset(
        {_R.STARTING, _R.REPLICA, _R.REWINDING, _R.CLONING, _R.UNINITIALIZED, _R.DEMOTING}
    ),
    _R.STARTING: frozenset(
        {_R.REPLICA, _R.PRIMARY, _R.STOPPED, _R.DEMOTING, _R.CANDIDATE, _R.REWINDING, _R.CLONING}
    ),
    # REPLICA -> PROMOTING: a node that still holds the lock after demoting offline (etcd had
    # no leader, so the lease did not run out) proves it by compare-and-set and promotes again.
    _R.REPLICA: frozenset(
        {_R.CANDIDATE, _R.PROMOTING, _R.REWINDING, _R.CLONING, _R.STOPPED, _R.STARTING, _R.DEMOTING}
    ),
    _R.CANDIDATE: frozenset(
        {_R.PROMOTING, _R.PRIMARY, _R.REPLICA, _R.STOPPED, _R.DEMOTING, _R.STARTING}
    ),
    _R.PROMOTING: frozenset({_R.PRIMARY, _R.DEMOTING, _R.STOPPED, _R.REPLICA, _R.CANDIDATE}),
    _R.PRIMARY: frozenset({_R.DEMOTING, _R.STOPPED, _R.CANDIDATE}),  # re-take a vanished lock
    _R.DEMOTING: frozenset({_R.REPLICA, _R.STOPPED, _R.STARTING, _R.REWINDING, _R.CLONING}),
    _R.REWINDING: frozenset({_R.STARTING, _R.REPLICA, _R.CLONING, _R.STOPPED}),
}

# Roles in which the agent lets PostgreSQL accept writes.
WRITABLE_ROLES = frozenset({Role.PRIMARY, Role.PROMOTING})


class IllegalTransitionError(Exception):
    """A rule asked for a role change the table does not allow."""

    def __init__(self, old: Role, new: Role) -> None:
        super().__init__(old, new)  # the arguments, so that the error can be copied and pickled
        self.old = old
        self.new = new

    def __str__(self) -> str:
        return f"illegal role transition {self.old.value} -> {self.new.value}"


def check_transition(old: Role, new: Role) -> Role:
    """Return `new` if `old -> new` is allowed (staying put always is).

    Raises:
        IllegalTransitionError: the table has no such edge.
    """
    if old is not new and new not in TRANSITIONS[old]:
        raise IllegalTransitionError(old, new)
    return new
