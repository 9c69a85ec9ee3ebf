# Safety rule: only the primary that holds the lock manages replication slots, one per other
# member, so a replica that falls behind keeps the WAL it still needs, and no other node creates
# or drops slots it does not own (Patroni keeps member slots on the leader only). The slots are
# reconciled with the member list of the last read, so a member that left loses its slot.
"""Which members the running primary keeps a physical replication slot for."""

from __future__ import annotations

from pgha.engine.values import ClusterView


def member_slots(
    view: ClusterView | None, *, name: str, running: bool, holds_lock: bool, pg_is_primary: bool
) -> tuple[str, ...] | None:
    """The members to keep a slot for, or None when this node must leave slots alone."""
    if view is None or not (running and holds_lock and pg_is_primary):
        return None
    return tuple(member.name for member in view.members if member.name != name)
