# Safety rule: a stopping agent gives up the leader key only once its PostgreSQL is known to be
# stopped. Releasing it earlier lets another node promote while this one may still accept writes;
# when the stop fails the key stays (it expires after ttl) and the watchdog stays armed, so a
# server that cannot be stopped is reset before anyone else can take the lock (Patroni's
# `Ha.shutdown`: "PostgreSQL shutdown failed, leader key not removed"). In pause the agent touches
# neither PostgreSQL nor the key: it only disarms the watchdog, since nothing will kick it now.
"""What a stopping agent does, in two steps: stop PostgreSQL, then (if it stopped) let go."""

from __future__ import annotations

from dataclasses import dataclass

from pgha.engine.actions import (
    Action,
    DisableWatchdog,
    ReleaseLock,
    StopPostgres,
    UpdateMember,
)
from pgha.engine.values import MemberRole


@dataclass(frozen=True, slots=True, kw_only=True)
class Stopping:
    """What the shutdown decision reads.

    `holds_leader_key`: the leader key names this node (by its last read of the cluster).
    `postgres_stopped`: None before the stop was tried, then whether it succeeded.
    """

    paused: bool
    holds_leader_key: bool
    postgres_stopped: bool | None = None


def shutdown_actions(stopping: Stopping) -> tuple[Action, ...]:
    """The next actions of a shutdown; the driver runs them, then asks again with the stop's
    result, until the answer is empty or has no StopPostgres."""
    if stopping.paused:
        return (DisableWatchdog(),)
    if stopping.postgres_stopped is None:
        return (StopPostgres(immediate=False),)
    if not stopping.postgres_stopped:
        return ()  # the key expires by itself; the watchdog keeps guarding the server
    if not stopping.holds_leader_key:
        return (DisableWatchdog(),)
    # Disarmed first (Patroni disables it at the stop's safe point): a DCS error on the way to
    # releasing the key then cannot leave a watchdog armed that nobody will kick.
    return (DisableWatchdog(), UpdateMember(role=MemberRole.REPLICA), ReleaseLock(version=None))
