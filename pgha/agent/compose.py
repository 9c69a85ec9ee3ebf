# The composition root of the real agent: it turns one checked configuration file into the real
# ports (etcd, PostgreSQL, watchdog, peers' REST APIs, callbacks, the system clock), the REST API
# and the loop driver, and nothing else. The node's own watchdog settings override the cluster's
# (`WatchdogConfig.apply_to`): whether this machine has a watchdog is a local fact, never the DCS's.
"""Build a running agent from an AgentConfig."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pgha.agent.admin import FailsafeInbox
from pgha.agent.callbacks import CallbackResult, CallbackRunner
from pgha.agent.config.file import AgentConfig
from pgha.agent.config.model import PgBackRestConfig, ReplicaMethod, WatchdogConfig
from pgha.agent.etcd.admin import EtcdAdmin
from pgha.agent.etcd.dcs import EtcdDcs
from pgha.agent.etcd.session import EtcdSettings
from pgha.agent.peers import HttpPeers
from pgha.agent.pg.port import PgPort
from pgha.agent.pg.settings import CustomMethod, PgBackRestSettings, PgSettings
from pgha.agent.rest.api import RestApi
from pgha.agent.rest.common import RestSettings
from pgha.agent.runner import AgentHistory, CommandQueue, StatusBoard
from pgha.agent.watchdog.device import open_watchdog
from pgha.engine.config import WatchdogMode
from pgha.engine.values import (
    ClusterView,
    HistoryEntry,
    LocalConfig,
    LockResult,
    MemberRole,
)
from pgha.ports import Ports, Watchdog
from pgha.status import AgentStatus


class SystemClock:
    """The host's clocks: monotonic for every deadline, wall only for operators' schedules."""

    def now_mono(self) -> float:
        return time.monotonic()

    def now_wall(self) -> float:
        return time.time()


class LocalDcs:
    """The etcd port, with this node's own watchdog settings laid over every `/config` read."""

    def __init__(self, etcd: EtcdDcs, watchdog: WatchdogConfig) -> None:
        self.etcd = etcd
        self._watchdog = watchdog

    def read_cluster(self) -> ClusterView:
        view = self.etcd.read_cluster()
        return replace(view, config=self._watchdog.apply_to(view.config))

    def acquire_initialize(self) -> bool:
        return self.etcd.acquire_initialize()

    def write_initialize(self, sysid: str) -> None:
        self.etcd.write_initialize(sysid)

    def delete_initialize(self) -> None:
        self.etcd.delete_initialize()

    def write_config(self) -> None:
        self.etcd.write_config()

    def acquire_lock(self) -> LockResult:
        return self.etcd.acquire_lock()

    def renew_lock(self, version: int) -> LockResult:
        return self.etcd.renew_lock(version)

    def release_lock(self, version: int | None) -> None:
        self.etcd.release_lock(version)

    def expire_leader_key(self, version: int) -> bool:
        return self.etcd.expire_leader_key(version)

    def write_sync(
        self, leader: str | None, standbys: frozenset[str], quorum: int, version: int | None
    ) -> bool:
        return self.etcd.write_sync(leader, standbys, quorum, version)

    def write_status(self, optime_lsn: int) -> None:
        self.etcd.write_status(optime_lsn)

    def write_failsafe(self, members: tuple[str, ...]) -> None:
        self.etcd.write_failsafe(members)

    def append_history(self, entry: HistoryEntry) -> None:
        self.etcd.append_history(entry)

    def clear_failover(self, version: int) -> bool:
        return self.etcd.clear_failover(version)

    def update_member(self, role: MemberRole) -> None:
        self.etcd.update_member(role)


class WakingAdmin:
    """The REST API's ClusterAdmin: after an operator's write to `/failover` or `/config`, the
    local loop is woken, so a switchover or a configuration change is acted on at once instead
    of after the rest of a loop_wait."""

    def __init__(self, admin: EtcdAdmin, wake: threading.Event) -> None:
        self.admin = admin
        self._wake = wake

    def cluster(self) -> ClusterView:
        return self.admin.cluster()

    def member_documents(self) -> dict[str, dict[str, Any]]:
        return self.admin.member_documents()

    def raw_config(self) -> tuple[dict[str, Any], int | None]:
        return self.admin.raw_config()

    def replace_config(self, raw: Mapping[str, Any], version: int | None) -> bool:
        won = self.admin.replace_config(raw, version)
        self._wake.set()
        return won

    def write_failover(
        self, *, leader: str | None, candidate: str | None, scheduled_at_wall: float | None
    ) -> None:
        self.admin.write_failover(
            leader=leader, candidate=candidate, scheduled_at_wall=scheduled_at_wall
        )
        self._wake.set()

    def delete_failover(self) -> None:
        self.admin.delete_failover()
        self._wake.set()


def api_url(cfg: AgentConfig) -> str:
    return f"http://{cfg.restapi.connect_address}/patroni"


def conn_url(cfg: AgentConfig) -> str:
    return f"postgres://{cfg.postgresql.connect_address}/postgres"


def etcd_settings(cfg: AgentConfig, retry_timeout_s: float | None = None) -> EtcdSettings:
    """Where the cluster's keys are; calls are bounded by `retry_timeout_s` (default: the
    bootstrap configuration's) until a `/config` has been read."""
    if retry_timeout_s is None:
        retry_timeout_s = cfg.bootstrap.dynamic.retry_timeout_s
    return EtcdSettings(
        hosts=tuple((h.host, h.port) for h in cfg.etcd.hosts),
        scope=cfg.scope,
        namespace=cfg.namespace,
        username=cfg.etcd.username,
        password=cfg.etcd.password,
        retry_timeout_s=retry_timeout_s,
    )


def pg_settings(cfg: AgentConfig) -> PgSettings:
    """The PostgreSQL port's settings from the `postgresql` section."""
    pg = cfg.postgresql
    backrest = pg.pgbackrest
    auth = pg.authentication
    return PgSettings(
        name=cfg.name,
        data_dir=pg.data_dir,
        bin_dir=pg.bin_dir,
        listen_host=pg.listen.host,
        listen_port=pg.listen.port,
        connect_host=pg.connect_address.host,
        connect_port=pg.connect_address.port,
        superuser=auth.superuser,
        replication=auth.replication,
        rewind=auth.rewind,
        parameters=dict(pg.parameters),
        pg_hba=pg.pg_hba,
        create_replica_methods=pg.create_replica_methods,
        basebackup_options=pg.basebackup,
        pgbackrest=_backrest(backrest),
        custom_methods={name: _custom(m) for name, m in pg.replica_methods.items()},
        archive_via_pgbackrest=backrest is not None and backrest.archive,
        initdb_options=cfg.bootstrap.initdb or ("--data-checksums",),
        pg_ctl_timeout_s=pg.pg_ctl_timeout_s,
        os_user=pg.os_user,
        socket_dir=pg.socket_dir,
        log_file=str(Path(cfg.log.dir) / "postgresql.log") if cfg.log.dir else None,
        cluster_name=cfg.scope,
    )


def _backrest(backrest: PgBackRestConfig | None) -> PgBackRestSettings | None:
    if backrest is None or backrest.stanza is None:
        return None
    return PgBackRestSettings(
        stanza=backrest.stanza,
        config_path=backrest.config,
        repo_path=backrest.repo_path,
        no_leader=backrest.no_leader,
        keep_data=backrest.keep_data,
        no_params=backrest.no_params,
        command=tuple(backrest.command),
    )


def _custom(method: ReplicaMethod) -> CustomMethod:
    return CustomMethod(
        name=method.name,
        command=method.command,
        options=method.options,
        keep_data=method.keep_data,
        no_leader=method.no_leader,
        no_params=method.no_params,
    )


def _member(status: AgentStatus, name: str, attribute: str) -> str | None:
    view = status.cluster
    member = None if view is None else view.member(name)
    value = None if member is None else getattr(member, attribute)
    return value or None


@dataclass(slots=True)
class Parts:
    """Everything a running agent is made of."""

    cfg: AgentConfig
    local: LocalConfig
    ports: Ports
    dcs: LocalDcs
    pg: PgPort
    callbacks: CallbackRunner
    rest: RestApi
    admin: EtcdAdmin
    board: StatusBoard
    commands: CommandQueue
    history: AgentHistory
    wake: threading.Event
    member_extras: dict[str, Any]  # more fields of the member key (`pending_restart`)


def _watchdog(cfg: AgentConfig) -> Watchdog:
    device = None if cfg.watchdog.mode is WatchdogMode.OFF else cfg.watchdog.device
    return open_watchdog(device)


def _callback_commands(cfg: AgentConfig) -> dict[str, tuple[str, ...]]:
    names = ("on_start", "on_stop", "on_restart", "on_reload", "on_role_change", "pre_promote")
    found = {name: cfg.postgresql.callbacks.command(name) for name in names}
    return {name: argv for name, argv in found.items() if argv}


def _history_and_callbacks(
    cfg: AgentConfig, clock: SystemClock
) -> tuple[AgentHistory, CallbackRunner]:
    history = AgentHistory(
        Path(cfg.log.history) if cfg.log.history else None, cfg.name, clock.now_mono
    )

    def record(result: CallbackResult) -> None:
        history.record(
            "callback",
            callback=result.name,
            outcome=result.outcome,
            exit_code=result.exit_code,
            duration_s=result.duration_s,
        )

    callbacks = CallbackRunner(
        _callback_commands(cfg),
        scope=cfg.scope,
        timeout_s=cfg.postgresql.callback_timeout_s,
        on_result=record,
        os_user=cfg.postgresql.os_user,
    )
    return history, callbacks


def _rest_auth(cfg: AgentConfig) -> tuple[str, str] | None:
    auth = cfg.restapi.authentication
    return None if auth is None or auth.password is None else (auth.username, auth.password)


def _rest_settings(cfg: AgentConfig) -> RestSettings:
    auth = cfg.restapi.authentication
    return RestSettings(
        listen_host=cfg.restapi.listen.host,
        listen_port=cfg.restapi.listen.port,
        connect_url=f"http://{cfg.restapi.connect_address}",
        username=None if auth is None else auth.username,
        password=None if auth is None else auth.password,
        request_timeout_s=cfg.restapi.request_timeout_s,
        request_deadline_s=cfg.restapi.request_deadline_s,
        max_pending=cfg.restapi.max_pending,
        max_workers=cfg.restapi.max_workers,
    )


def _dcs_and_postgres(
    cfg: AgentConfig, board: StatusBoard, callbacks: CallbackRunner, extras: dict[str, Any]
) -> tuple[LocalDcs, PgPort]:
    # The DCS publishes PostgreSQL's state in the member key; PostgreSQL reads the dynamic
    # configuration the DCS last read: each needs the other, so one is late-bound.
    holder: list[PgPort] = []
    etcd = EtcdDcs(
        etcd_settings(cfg),
        name=cfg.name,
        api_url=api_url(cfg),
        conn_url=conn_url(cfg),
        tags=cfg.tags,
        bootstrap_config=dict(cfg.bootstrap.dcs_raw),
        postgres_state=lambda: holder[0].state(),
        member_extras=lambda: dict(extras),
    )
    dcs = LocalDcs(etcd, cfg.watchdog)
    pg = PgPort(
        pg_settings(cfg),
        conn_url_of=lambda name: _member(board.get(), name, "conn_url"),
        pre_promote=lambda: callbacks.run_named("pre_promote", "primary"),
        dynamic=lambda: _postgresql_section(dcs, cfg),
        on_callback=callbacks.run_named,
    )
    holder.append(pg)
    return dcs, pg


def build(cfg: AgentConfig) -> Parts:
    """Wire every part of the agent; nothing is started (no port bound, no process run)."""
    clock = SystemClock()
    history, callbacks = _history_and_callbacks(cfg, clock)
    board = StatusBoard(AgentStatus(name=cfg.name, tags=cfg.tags))
    wake = threading.Event()
    extras: dict[str, Any] = {}
    dcs, pg = _dcs_and_postgres(cfg, board, callbacks, extras)
    inbox = FailsafeInbox(clock.now_mono)
    peers = HttpPeers(
        name=cfg.name,
        api_url_of=lambda name: _member(board.get(), name, "api_url"),
        auth=_rest_auth(cfg),
        inbox=inbox,
    )
    ports = Ports(clock, dcs, pg, _watchdog(cfg), peers, callbacks)
    commands = CommandQueue(wake)
    admin = EtcdAdmin(etcd_settings(cfg))
    rest = RestApi(
        _rest_settings(cfg),
        status=board.get,
        config_error=dcs.etcd.last_config_error,
        now_mono=clock.now_mono,
        admin=WakingAdmin(admin, wake),
        commands=commands,
        inbox=inbox,
        name=cfg.name,
        scope=cfg.scope,
    )
    local = LocalConfig(
        name=cfg.name,
        tags=cfg.tags,
        api_url=api_url(cfg),
        conn_url=conn_url(cfg),
        replica_method_without_leader=_without_leader(cfg),
    )
    return Parts(
        cfg, local, ports, dcs, pg, callbacks, rest, admin, board, commands, history, wake, extras
    )


def _without_leader(cfg: AgentConfig) -> bool:
    pg = cfg.postgresql
    methods: Collection[str] = pg.create_replica_methods
    backrest = "pgbackrest" in methods and pg.pgbackrest is not None and pg.pgbackrest.no_leader
    custom = any(m.no_leader for name, m in pg.replica_methods.items() if name in methods)
    return backrest or custom


def _postgresql_section(dcs: LocalDcs, cfg: AgentConfig) -> Mapping[str, Any]:
    """The dynamic `postgresql` section: from `/config` once read, else the bootstrap one."""
    raw = dcs.etcd.raw_config_document() or dict(cfg.bootstrap.dcs_raw)
    section = raw.get("postgresql")
    return section if isinstance(section, Mapping) else {}
