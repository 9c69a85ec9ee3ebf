"""Real agents stopped with SIGTERM: the engine's shutdown (pgha/engine/shutdown.py) end to end.

A primary's agent stops PostgreSQL, then releases the leader key, so a replica takes over within a
loop or two instead of waiting for ttl; in pause it leaves PostgreSQL and the key alone.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.agent.cluster import running_cluster
from tests.agent.test_agent_operations import leader_key, pause, settled

pytestmark = pytest.mark.agent

TTL_S, LOOP_WAIT_S = 10, 2


def test_sigterm_stops_postgres_then_releases_the_key(workdir: Path) -> None:
    with running_cluster(workdir) as cluster:
        old = settled(cluster)
        node = cluster.nodes[old]
        assert node.agent is not None
        stopped_at = time.monotonic()
        cluster.kill_agent(old, signal.SIGTERM)  # waits for the agent to exit
        assert node.agent.returncode == 0
        assert node.postmaster_pid() is None  # PostgreSQL stopped, not left running
        assert leader_key(cluster) != old.encode()  # released, not left to expire
        history = [event["kind"] for event in node.history()]
        assert history[-1] == "agent_stop"
        new = cluster.wait_for_primary(TTL_S, not_=old)
        # Well before ttl: the key was released, so the next loop of a replica takes it.
        assert time.monotonic() - stopped_at < TTL_S, new


def test_sigterm_in_pause_leaves_postgres_and_the_key(workdir: Path) -> None:
    with running_cluster(workdir) as cluster:
        primary = settled(cluster)
        pause(cluster, through=primary)
        cluster.kill_agent(primary, signal.SIGTERM)
        assert cluster.nodes[primary].postmaster_pid() is not None  # still running, unmanaged
        assert cluster.query(primary, "SELECT pg_is_in_recovery()") == [(False,)]
        assert leader_key(cluster) == primary.encode()  # kept: it expires after ttl on its own
