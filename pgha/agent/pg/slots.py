# Physical replication slots for the members, on the primary: one per other member, so a replica
# that falls behind does not lose the WAL it still needs. Safety rules: only slots named after
# members (the ones this agent manages) are ever dropped, never an operator's own slot; an active
# slot is never dropped; a replica keeps no member slots (they would hold WAL back forever).
"""Create and drop the members' physical replication slots."""

from __future__ import annotations

import logging
from collections.abc import Collection

import psycopg

from pgha.agent.pg import sql
from pgha.agent.pg.settings import PgSettings, slot_name

log = logging.getLogger(__name__)

_SLOTS = """
SELECT slot_name, active FROM pg_replication_slots WHERE slot_type = 'physical' AND NOT temporary
"""


def sync(settings: PgSettings, wanted: Collection[str], managed: Collection[str]) -> bool:
    """Make the slots among `managed` exactly `wanted` (slot names); False when SQL failed.

    On a replica every managed slot is dropped (nothing is created).
    """
    try:
        with sql.local(settings) as conn:
            recovery = sql.one(conn, "SELECT pg_is_in_recovery()")
            keep = set() if recovery is None or recovery[0] else set(wanted)
            existing: dict[str, bool] = dict(sql.rows(conn, _SLOTS))
            for name in sorted(keep - existing.keys()):
                sql.one(conn, "SELECT pg_create_physical_replication_slot(%s, true)", (name,))
            for name in sorted(set(managed) & existing.keys() - keep):
                if not existing[name]:
                    sql.one(conn, "SELECT pg_drop_replication_slot(%s)", (name,))
    except psycopg.Error as error:
        log.warning("replication slots not synced: %s", sql.error_detail(error))
        return False
    return True


def member_slots(me: str, members: Collection[str]) -> set[str]:
    """The slot names the primary `me` keeps for `members` (every member but itself)."""
    mine = slot_name(me)
    return {slot_name(m) for m in members if slot_name(m) != mine}
