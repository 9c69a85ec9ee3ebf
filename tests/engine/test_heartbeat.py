"""The failsafe heartbeat rule, as a table (the agent's REST API and the simulator both use it)."""

from __future__ import annotations

import pytest

from pgha.engine.heartbeat import HeartbeatRefusal, heartbeat_refusal


@pytest.mark.parametrize(
    ("pg_is_primary", "holds_lock", "refusal"),
    [
        (False, False, None),  # a replica: the sender is its leader for ttl
        (True, False, HeartbeatRefusal.RUNNING_AS_PRIMARY),  # Patroni answers 500
        (False, True, HeartbeatRefusal.HOLDS_LOCK),  # promoting: the lock came first
        (True, True, HeartbeatRefusal.HOLDS_LOCK),
    ],
)
def test_heartbeat_refusal(
    pg_is_primary: bool, holds_lock: bool, refusal: HeartbeatRefusal | None
) -> None:
    assert heartbeat_refusal(pg_is_primary=pg_is_primary, holds_lock=holds_lock) is refusal
