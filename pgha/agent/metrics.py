# The `GET /metrics` document: the agent's status as Prometheus gauges (text format 0.0.4), under
# pgha's own names and, for existing dashboards (PMM, Grafana), under Patroni's names too. It is a
# pure function of the published status and the request time. Safety rule: "primary" and "lock
# held" come from the local lock deadline, exactly as `/primary` does (never from a DCS read), so a
# dashboard never shows a node as primary that the load balancer would not send writes to.
"""Prometheus metrics of one agent, rendered from its status."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pgha.engine.config import SyncMode
from pgha.engine.values import PgRun
from pgha.health import fresh_view, is_leader, is_sync_standby
from pgha.status import AgentStatus

HELP: Mapping[str, str] = {
    "pgha_role": "The agent's role (in the role label); always 1",
    "pgha_primary": "1 if PostgreSQL runs read-write and the lock is held",
    "pgha_replica": "1 if PostgreSQL runs in recovery",
    "pgha_lock_held": "1 if the local lock deadline has not passed",
    "pgha_postgres_running": "1 if PostgreSQL is running",
    "pgha_timeline": "PostgreSQL timeline (0 when unknown)",
    "pgha_xlog_location": "WAL write position of a primary in bytes (0 otherwise)",
    "pgha_xlog_received_location": "WAL received by a replica in bytes (0 otherwise)",
    "pgha_xlog_replayed_location": "WAL replayed by a replica in bytes (0 otherwise)",
    "pgha_dcs_last_seen": "Epoch seconds of the last successful DCS read (0: never)",
    "pgha_dcs_reachable": "1 if the latest DCS read succeeded",
    "pgha_is_paused": "1 if the cluster is paused (maintenance mode)",
    "pgha_failsafe_active": "1 if failsafe mode is active",
    "pgha_watchdog_failed": "1 if a required watchdog is unusable",
    "pgha_cluster_unlocked": "1 if there is no leader key (or no fresh DCS view)",
    "pgha_sync_standby": "1 if this node is listed in the /sync key",
    "pgha_loop_age_seconds": "Seconds since the last loop cycle (-1: none yet)",
    "patroni_postgres_running": "Value is 1 if Postgres is running, 0 otherwise.",
    "patroni_primary": "Value is 1 if this node is the leader, 0 otherwise.",
    "patroni_master": "Value is 1 if this node is the leader, 0 otherwise.",
    "patroni_replica": "Value is 1 if this node is a replica, 0 otherwise.",
    "patroni_standby_leader": "Value is 1 if this node is the standby_leader, 0 otherwise.",
    "patroni_sync_standby": "Value is 1 if this node is a sync standby replica, 0 otherwise.",
    "patroni_quorum_standby": "Value is 1 if this node is a quorum standby replica, 0 otherwise.",
    "patroni_xlog_location": "Current location of the Postgres transaction log, 0 if this node "
    "is not the leader.",
    "patroni_xlog_received_location": "Current location of the received Postgres transaction "
    "log, 0 if this node is not a replica.",
    "patroni_xlog_replayed_location": "Current location of the replayed Postgres transaction "
    "log, 0 if this node is not a replica.",
    "patroni_xlog_paused": "Value is 1 if the Postgres xlog is paused, 0 otherwise.",
    "patroni_postgres_timeline": "Postgres timeline of this node (if running), 0 otherwise.",
    "patroni_dcs_last_seen": "Epoch timestamp when DCS was last contacted successfully.",
    "patroni_cluster_unlocked": "Value is 1 if the cluster is unlocked, 0 if locked.",
    "patroni_failsafe_mode_is_active": "Value is 1 if failsafe mode is active, 0 if inactive.",
    "patroni_is_paused": "Value is 1 if auto failover is disabled, 0 otherwise.",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class _Facts:
    """The facts both name families report, derived once per request."""

    running: bool
    primary: bool
    replica: bool
    lock_held: bool
    sync_standby: bool
    quorum_standby: bool
    unlocked: bool
    primary_lsn: int
    replica_lsn: int
    timeline: int


def _facts(status: AgentStatus, now_mono: float) -> _Facts:
    pg = status.postgres
    running = pg.data_present and pg.run is PgRun.RUNNING
    lock_held = is_leader(status, now_mono)
    view = fresh_view(status, now_mono)
    sync = is_sync_standby(status, view)
    quorum = status.config.synchronous_mode is SyncMode.QUORUM
    replica = running and pg.in_recovery
    return _Facts(
        running=running,
        primary=running and not pg.in_recovery and lock_held,
        replica=replica,
        lock_held=lock_held,
        sync_standby=sync and not quorum,
        quorum_standby=sync and quorum,
        unlocked=view is None or view.leader is None,
        primary_lsn=pg.wal_lsn if running and not pg.in_recovery else 0,
        replica_lsn=pg.wal_lsn if replica else 0,
        timeline=(pg.timeline or 0) if running else 0,
    )


def _pgha_values(status: AgentStatus, now_mono: float, facts: _Facts) -> dict[str, float]:
    last_loop = status.last_loop_mono
    return {
        "pgha_primary": facts.primary,
        "pgha_replica": facts.replica,
        "pgha_lock_held": facts.lock_held,
        "pgha_postgres_running": facts.running,
        "pgha_timeline": status.postgres.timeline or 0,
        "pgha_xlog_location": facts.primary_lsn,
        "pgha_xlog_received_location": facts.replica_lsn,
        "pgha_xlog_replayed_location": facts.replica_lsn,
        "pgha_dcs_last_seen": int(status.dcs_last_seen_wall or 0),
        "pgha_dcs_reachable": status.dcs_reachable,
        "pgha_is_paused": status.paused,
        "pgha_failsafe_active": status.failsafe_active,
        "pgha_watchdog_failed": status.watchdog_failed,
        "pgha_cluster_unlocked": facts.unlocked,
        "pgha_sync_standby": facts.sync_standby or facts.quorum_standby,
        "pgha_loop_age_seconds": -1 if last_loop is None else max(0.0, now_mono - last_loop),
    }


def _patroni_values(status: AgentStatus, facts: _Facts) -> dict[str, float]:
    return {
        "patroni_postgres_running": facts.running,
        "patroni_primary": facts.primary,
        "patroni_master": facts.primary,
        "patroni_replica": facts.replica,
        "patroni_standby_leader": 0,
        "patroni_sync_standby": facts.sync_standby,
        "patroni_quorum_standby": facts.quorum_standby,
        "patroni_xlog_location": facts.primary_lsn,
        "patroni_xlog_received_location": facts.replica_lsn,
        "patroni_xlog_replayed_location": facts.replica_lsn,
        "patroni_xlog_paused": 0,
        "patroni_postgres_timeline": facts.timeline,
        "patroni_dcs_last_seen": int(status.dcs_last_seen_wall or 0),
        "patroni_cluster_unlocked": facts.unlocked,
        "patroni_failsafe_mode_is_active": status.failsafe_active,
        "patroni_is_paused": status.paused,
    }


def _escape(value: str) -> str:
    """A label value as the text format wants it (backslash, quote and newline escaped)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def _gauge(name: str, labels: Mapping[str, str], value: float) -> str:
    text = ",".join(f'{key}="{_escape(item)}"' for key, item in labels.items())
    return f"# HELP {name} {HELP[name]}\n# TYPE {name} gauge\n{name}{{{text}}} {_number(value)}\n"


def render_metrics(status: AgentStatus, now_mono: float, scope: str) -> str:
    """The Prometheus text (format 0.0.4) for `status` at `now_mono`, labelled scope and name."""
    facts = _facts(status, now_mono)
    labels = {"scope": scope, "name": status.name}
    lines = [_gauge("pgha_role", {**labels, "role": status.role.value}, 1)]
    values = {**_pgha_values(status, now_mono, facts), **_patroni_values(status, facts)}
    lines += [_gauge(name, labels, value) for name, value in values.items()]
    return "".join(lines)
