# The real PostgreSQL port: the engine's long actions (bootstrap, clone, start, stop, demote,
# promote, follow, rewind, reinit, synchronous_standby_names) on the node's own server, with the
# semantics of the simulator's PostgreSQL (sim/postgres/), so the engine sees the same world in
# both.
# Safety rules: every failure of a long action is an ActionFailed carrying the engine's Failure
# (never an unexpected exception), with a detail that has every configured password scrubbed out;
# a promotion runs the pre_promote callback first and is abandoned when it refuses; a demotion
# always stops the server before it starts again as a replica of nobody; reinit never wipes the data
# directory before the source is known to be reachable; a server that starts in recovery gets the
# hot-standby parameters at least at its control file's values (kept while it stays a replica).
"""PgPort: pgha.ports.Postgres on a real PostgreSQL, plus the agent's own maintenance calls."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import psycopg

from pgha.agent.pg import backrest, clone, conf, ctl, rewind, slots, sql
from pgha.agent.pg.exec import OsUser, run, wipe_data_dir
from pgha.agent.pg.settings import ApplyResult, ConnTarget, PgSettings, parse_conn_url
from pgha.agent.pg.state import Known, PmStatus, controldata, parse_ssn, postmaster, read
from pgha.engine.actions import DemoteMode
from pgha.engine.values import Failure, PgRun, PostgresState, SyncStandbyNames
from pgha.ports import ActionFailed

log = logging.getLogger(__name__)

_RECOVERABLE = (
    clone.CloneError,
    ctl.ControlError,
    rewind.RewindError,
    psycopg.Error,
    OSError,
)


class PgPort:
    """The node's own PostgreSQL (implements pgha.ports.Postgres). Used from one thread."""

    def __init__(
        self,
        settings: PgSettings,
        *,
        conn_url_of: Callable[[str], str | None],
        pre_promote: Callable[[], bool],
        dynamic: Callable[[], Mapping[str, Any]],
        on_callback: Callable[[str, str], object] = lambda name, role: None,
    ) -> None:
        self._s = settings
        self._user = OsUser.of(settings.os_user)
        self._conn_url_of = conn_url_of
        self._pre_promote = pre_promote
        self._dynamic = dynamic
        self._on_callback = on_callback  # (callback name, role): on_start / on_stop
        self._last_dynamic: Mapping[str, Any] = {}
        self._following = conf.read_following(settings)
        self._upstream: ConnTarget | None = None
        self._ssn = parse_ssn(conf.read_parameter(settings, "synchronous_standby_names") or "")
        self._managed_slots: set[str] = set()
        self.clones: list[str] = []  # the method of every replica created, in order
        self._replica_tl: int | None = None  # see pg_state.Known
        self._floors: dict[str, int] = {}  # control-file values, from the last start in recovery
        self._raised: dict[str, int] = {}  # the parameters those floors raise now

    # ------------------------------------------------------------ observation

    def state(self) -> PostgresState:
        """The server's state now (bounded, never raises)."""
        known = Known(following=self._following, ssn=self._ssn, replica_tl=self._replica_tl)
        state = read(self._s, self._user, known)
        if state.run is PgRun.RUNNING and state.in_recovery:
            self._replica_tl = state.timeline
        return state

    # ------------------------------------------------------------ long actions

    def bootstrap(self) -> None:
        """initdb, write the configuration, start as a primary, create the agent's roles."""
        data = Path(self._s.data_dir)
        if data.is_dir() and any(data.iterdir()):  # never wipe what this agent did not create
            raise ActionFailed(Failure.BOOTSTRAP, "the data directory is not empty")
        try:
            clone.initdb(self._s, self._user)
            conf.keep_initdb_conf(self._s)
            self._following, self._upstream = None, None
            self._write_conf(standby=False)
            ctl.start(self._s, self._user)
            if not ctl.wait_ready(self._s, self._s.pg_ctl_timeout_s):
                raise ctl.ControlError("the new primary does not accept connections")
            sql.create_roles(self._s)
        except _RECOVERABLE as error:
            self._discard()
            raise self._failed(Failure.BOOTSTRAP, error) from error
        self._on_callback("on_start", "primary")

    def create_replica(self, source: str | None) -> None:
        """Clone with the configured methods (empty data directory on failure), then start.

        The data directory is emptied before each method, unless that method has keep_data.
        """
        target = self._resolve(source)
        try:
            self._stop(immediate=True)
        except ctl.ControlError as error:  # never wipe under a running server
            raise self._failed(Failure.CREATE_REPLICA, error) from error
        try:
            method = clone.create_replica(self._s, self._user, target)
            log.info("replica created with %s", method)
            self.clones.append(method)
            self._following, self._upstream = (source, target) if target else (None, None)
            self._write_conf(standby=True)
        except _RECOVERABLE as error:
            wipe_data_dir(Path(self._s.data_dir))
            raise self._failed(Failure.CREATE_REPLICA, error) from error
        self._start(as_primary=False, failure=Failure.START)

    def start(self, as_primary: bool) -> None:
        """Start the server as a primary or a replica (no-op when it is up)."""
        self._start(as_primary=as_primary, failure=Failure.START)

    def demote(self, mode: DemoteMode) -> None:
        """Stop as `mode` says (graceful: CHECKPOINT first) and leave it stopped, following
        nobody; the engine starts it again as a replica (StartPostgres) after the safepoint."""
        immediate = mode in (DemoteMode.IMMEDIATE, DemoteMode.IMMEDIATE_NOLOCK)
        if mode is DemoteMode.GRACEFUL:
            self._checkpoint()
        try:
            self._stop(immediate=immediate)
        except ctl.ControlError as error:
            raise self._failed(Failure.STOP, error) from error
        self._following, self._upstream = None, None

    def promote(self) -> None:
        """pre_promote, then pg_promote(wait): returns once the server left recovery."""
        if not self._in_recovery():
            return
        if not self._run_pre_promote():
            raise ActionFailed(Failure.PROMOTE, "the pre_promote callback refused the promotion")
        try:
            ctl.promote(self._s)
            self._following, self._upstream, self._floors = None, None, {}
            self._write_conf(standby=None)
        except _RECOVERABLE as error:
            raise self._failed(Failure.PROMOTE, error) from error

    def follow(self, leader: str | None) -> None:
        """Point primary_conninfo at `leader` (None: nobody) and reload a running server."""
        target = self._resolve(leader)
        if leader is not None and target is None:
            log.warning("follow: no connection URL known for %s yet", leader)
        self._following, self._upstream = (leader, target) if target else (None, None)
        try:
            changed = self._write_conf(standby=None)
            if changed and ctl.is_up(self._s):
                ctl.reload(self._s, self._user)
        except _RECOVERABLE as error:
            raise self._failed(None, error) from error

    def rewind(self, source: str) -> None:
        """Stop, pg_rewind from `source`, then start as its replica.

        A source that does not answer, before pg_rewind or after it failed, is REWIND_SOURCE (the
        engine tries again, as Patroni's Rewind.execute does); a failure against a source that
        answers is REWIND.
        """
        target = self._resolve(source)
        if target is None or not self._answers(target):
            raise ActionFailed(Failure.REWIND_SOURCE, f"rewind source {source} is not reachable")
        if not clone.data_present(self._s):
            raise ActionFailed(Failure.REWIND, "no data directory")
        try:
            self._stop(immediate=False)
            rewind.rewind(self._s, self._user, target)
            self._following, self._upstream = source, target
            self._write_conf(standby=True)
        except _RECOVERABLE as error:
            blame = Failure.REWIND if self._answers(target) else Failure.REWIND_SOURCE
            raise self._failed(blame, error) from error
        self._start(as_primary=False, failure=Failure.START)

    def reinit(self, source: str) -> None:
        """Stop (immediate), wipe the data directory and clone again from `source`.

        Nothing is stopped or wiped unless the source answers (or a method needs none).
        """
        if not self._source_usable(self._resolve(source)):
            raise ActionFailed(Failure.CREATE_REPLICA, f"source {source} is not reachable")
        self.create_replica(source)

    def set_sync_standby_names(self, value: SyncStandbyNames) -> None:
        """Write synchronous_standby_names into the managed conf, reload and check with SHOW."""
        self._ssn = value
        try:
            changed = self._write_conf(standby=None)
            if postmaster(self._s)[0] is not PmStatus.READY:
                return
            if changed:
                ctl.reload_and_wait(self._s, self._user)
            shown = self._show("synchronous_standby_names")
        except _RECOVERABLE as error:
            raise self._failed(None, error) from error
        if conf.render_ssn(parse_ssn(shown)) != conf.render_ssn(value):
            raise ActionFailed(None, "synchronous_standby_names was not applied")

    # ------------------------------------------------------------ maintenance (the agent's own)

    def apply_dynamic(self) -> ApplyResult:
        """Rewrite the files from the dynamic configuration; reload when anything changed."""
        try:
            changed = self._write_conf(standby=None)
            if postmaster(self._s)[0] is not PmStatus.READY:
                return ApplyResult(changed=changed, pending_restart=False)
            if changed:
                ctl.reload_and_wait(self._s, self._user)
            with sql.local(self._s) as conn:
                row = sql.one(conn, "SELECT count(*) FROM pg_settings WHERE pending_restart")
        except _RECOVERABLE as error:
            raise self._failed(None, error) from error
        pending = bool(row and row[0]) or bool(self._raised)  # as Patroni: the control file's
        return ApplyResult(changed=changed, pending_restart=pending)  # values are in use

    def reload(self) -> None:
        """Rewrite the configuration files and reload a running server."""
        try:
            self._write_conf(standby=None)
            if ctl.is_up(self._s):
                ctl.reload_and_wait(self._s, self._user)
        except _RECOVERABLE as error:
            raise self._failed(None, error) from error

    def restart(self) -> None:
        """Fast stop and start again in the same role (on_restart, not on_stop/on_start)."""
        as_primary = not self.state().in_recovery
        try:
            ctl.stop(self._s, self._user, immediate=False)
        except ctl.ControlError as error:
            raise self._failed(Failure.STOP, error) from error
        self._start(as_primary=as_primary, failure=Failure.START, announce=False)

    def stop(self, immediate: bool) -> None:
        """Stop the server (fast, escalating to immediate; or immediate)."""
        try:
            self._stop(immediate=immediate)
        except ctl.ControlError as error:
            raise self._failed(Failure.STOP, error) from error

    def sync_slots(self, members: Collection[str]) -> bool:
        """On a primary: a physical slot for every other member, and none for departed ones."""
        wanted = slots.member_slots(self._s.name, members)
        self._managed_slots |= wanted
        if not conf.use_slots(self._s, self._dynamic_config()):
            wanted = set()
        return slots.sync(self._s, wanted, self._managed_slots)

    def stanza_create(self) -> None:
        """pgbackrest stanza-create for this (running primary) cluster."""
        done = backrest.stanza_create(self._s, self._user)
        if not done.ok:
            raise ActionFailed(None, self._scrub(done.detail()))

    def backup(self, kind: str = "full") -> None:
        """pgbackrest backup of this (running primary) cluster."""
        done = backrest.backup(self._s, self._user, kind)
        if not done.ok:
            raise ActionFailed(None, self._scrub(done.detail()))

    # ------------------------------------------------------------ helpers

    def _start(self, *, as_primary: bool, failure: Failure, announce: bool = True) -> None:
        if ctl.is_up(self._s):
            return
        if not clone.data_present(self._s):
            raise ActionFailed(failure, "no data directory")
        self._replica_tl = None
        try:
            self._write_conf(standby=not as_primary)
            ctl.start(self._s, self._user)
        except _RECOVERABLE as error:
            raise self._failed(failure, error) from error
        if announce:
            self._on_callback("on_start", "primary" if as_primary else "replica")

    def _stop(self, *, immediate: bool) -> None:
        """Stop the server if it is up (on_stop after a real stop); raises ctl.ControlError."""
        role = None if not ctl.is_up(self._s) else self._role()
        self._replica_tl = None
        ctl.stop(self._s, self._user, immediate=immediate)
        if role is not None:
            self._on_callback("on_stop", role)

    def _role(self) -> str:
        return "replica" if self.state().in_recovery else "primary"

    def _write_conf(self, *, standby: bool | None) -> bool:
        # Write the managed files; standby None leaves the signal file as it is.
        if self._following is not None and self._upstream is None:
            self._upstream = self._resolve(self._following)
        if standby is not None:
            self._floors = self._recovery_floors() if standby else {}
        inputs = conf.ConfInputs(
            following=self._following,
            upstream=self._upstream,
            ssn=self._ssn,
            dynamic=self._dynamic_config(),
            floors=self._floors,
        )
        self._note_raised(inputs, announce=bool(standby))
        changed = conf.write_all(self._s, self._user, inputs)
        if standby is not None:
            conf.set_standby_signal(self._s, self._user, standby=standby)
        return changed

    def _recovery_floors(self) -> dict[str, int]:
        # About to start in recovery: PostgreSQL refuses to run a standby with a hot-standby
        # parameter below the value its control file recorded from the primary.
        fields = controldata(self._s, self._user)
        return {} if fields is None else conf.recovery_floors(fields)

    def _note_raised(self, inputs: conf.ConfInputs, *, announce: bool) -> None:
        configured = conf.configured_parameters(self._s, inputs, warn=False)
        self._raised = conf.raised_to_floors(configured, inputs.floors)
        for name, value in sorted(self._raised.items()) if announce else ():
            log.info(
                "%s: the control file says %d, more than the configured %s: starting the replica"
                " with %d (pending restart)",
                name,
                value,
                configured.get(name, "default"),
                value,
            )

    def _dynamic_config(self) -> Mapping[str, Any]:
        # The last good dynamic section: a failed read must not look like "no parameters".
        try:
            self._last_dynamic = dict(self._dynamic() or {})
        except Exception:
            log.exception("reading the dynamic configuration failed; using the last one")
        return self._last_dynamic

    def _resolve(self, member: str | None) -> ConnTarget | None:
        if member is None:
            return None
        try:
            url = self._conn_url_of(member)
        except Exception:
            log.exception("looking up the connection URL of %s failed", member)
            return None
        return parse_conn_url(url) if url else None

    def _source_usable(self, target: ConnTarget | None) -> bool:
        # A running source, or a method that needs none (pgBackRest or a custom one, no_leader).
        if clone.works_without_source(self._s):
            return True
        return target is not None and self._answers(target)

    def _answers(self, target: ConnTarget) -> bool:
        argv = [self._s.program("pg_isready"), "-h", target.host, "-p", str(target.port), "-t", "3"]
        return run(self._user, argv, timeout_s=10).ok

    def _in_recovery(self) -> bool:
        try:
            with sql.local(self._s) as conn:
                row = sql.one(conn, "SELECT pg_is_in_recovery()")
        except psycopg.Error as error:
            raise self._failed(Failure.PROMOTE, error) from error
        return bool(row and row[0])

    def _run_pre_promote(self) -> bool:
        try:
            return bool(self._pre_promote())
        except Exception:
            log.exception("the pre_promote callback failed")
            return False

    def _checkpoint(self) -> None:
        # Before a graceful demotion: the shutdown checkpoint then has little left to write.
        try:
            with sql.local(self._s) as conn:
                row = sql.one(conn, "SELECT pg_is_in_recovery()")
                if row is not None and not row[0]:
                    sql.execute(conn, "SET statement_timeout = 0")
                    sql.execute(conn, "CHECKPOINT")
        except psycopg.Error as error:
            log.warning("CHECKPOINT before demotion failed: %s", sql.error_detail(error))

    def _show(self, name: str) -> str:
        with sql.local(self._s) as conn:
            row = sql.one(conn, "SELECT current_setting(%s)", (name,))
        return str(row[0]) if row else ""

    def _discard(self) -> None:
        # After a failed bootstrap: stop whatever started and leave an empty data directory.
        try:
            ctl.stop(self._s, self._user, immediate=True)
        except ctl.ControlError:
            log.exception("could not stop PostgreSQL after a failed bootstrap")
            return
        wipe_data_dir(Path(self._s.data_dir))

    def _scrub(self, text: str) -> str:
        return self._s.scrub(text)

    def _failed(self, failure: Failure | None, error: BaseException) -> ActionFailed:
        if isinstance(error, psycopg.Error):
            detail = sql.error_detail(error)
        else:
            detail = f"{type(error).__name__}: {error}"
        log.warning("%s failed: %s", failure.value if failure else "action", self._scrub(detail))
        return ActionFailed(failure, self._scrub(detail))
