# Safety rule: a failsafe heartbeat (a primary's POST /failsafe while the DCS is down) makes the
# receiver treat the sender as the leader for ttl (docs/patroni-rules.md §2.10), so a node that is,
# or may become, the leader itself must refuse it: two nodes must never both believe they lead. A
# node refuses while its PostgreSQL runs as primary (Patroni answers 500) and while it holds the
# leader lock by its own deadline (it may be promoting: PostgreSQL not yet primary). One rule for
# every world: the agent's REST API and the simulator both ask this function.
"""Whether a node accepts a failsafe heartbeat from another primary."""

from __future__ import annotations

from enum import Enum


class HeartbeatRefusal(Enum):
    """Why a failsafe heartbeat was refused."""

    RUNNING_AS_PRIMARY = "this node's PostgreSQL runs as primary"
    HOLDS_LOCK = "this node holds the leader lock"


def heartbeat_refusal(*, pg_is_primary: bool, holds_lock: bool) -> HeartbeatRefusal | None:
    """None: accept the heartbeat; else why it is refused (the lock first: it is the stronger
    claim, and a promoting node holds it before its PostgreSQL is primary)."""
    if holds_lock:
        return HeartbeatRefusal.HOLDS_LOCK
    if pg_is_primary:
        return HeartbeatRefusal.RUNNING_AS_PRIMARY
    return None
