# What the agent observes of its own PostgreSQL each cycle: from the server when it accepts
# connections, from postmaster.pid while it starts or stops, from pg_controldata when it is down.
# Safety rules: reading never raises and is bounded (connect and statement timeouts, a timeout on
# pg_controldata), so the loop always gets an observation; a primary's timeline comes from its
# current WAL file name, which is right immediately after a promotion (pg_control's is not until the
# first checkpoint), and a stopped server's position comes from where it is known to be consistent.
"""Read PostgresState: from SQL when up, postmaster.pid when starting, pg_controldata when down."""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from pgha.agent.pg import sql
from pgha.agent.pg.exec import OsUser, run
from pgha.agent.pg.settings import PgSettings
from pgha.engine.values import PgRun, PostgresState, Standby, SyncStandbyNames, SyncState

log = logging.getLogger(__name__)

CONTROLDATA_TIMEOUT_S = 10.0
CLEAN_STATES = frozenset({"shut down", "shut down in recovery"})
RECOVERY_STATES = frozenset({"shut down in recovery", "in archive recovery"})


class PmStatus(enum.Enum):
    """The postmaster, from postmaster.pid: absent/dead, starting, stopping, or accepting."""

    DOWN = "down"
    STARTING = "starting"
    STOPPING = "stopping"
    READY = "ready"


def parse_lsn(text: str | None) -> int | None:
    """'16/B374D848' -> int; None for None or text that is no LSN."""
    if not text or "/" not in text:
        return None
    high, _, low = text.strip().partition("/")
    try:
        return (int(high, 16) << 32) + int(low, 16)
    except ValueError:
        return None


_SSN = re.compile(r"^\s*(?:(FIRST|ANY)\s+)?(\d+)\s*\((.*)\)\s*$", re.IGNORECASE | re.DOTALL)


def _ssn_names(text: str) -> list[str]:
    names, current, quoted, i = [], "", False, 0
    while i < len(text):
        char = text[i]
        if char == '"' and quoted and text[i + 1 : i + 2] == '"':
            current, i = current + '"', i + 2
            continue
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            names.append(current.strip())
            current = ""
        else:
            current += char
        i += 1
    names.append(current.strip())
    return [n for n in names if n]


def parse_ssn(text: str) -> SyncStandbyNames:
    """synchronous_standby_names as PostgreSQL reads it (FIRST n (...), ANY n (...), a list, *)."""
    text = text.strip()
    if not text:
        return SyncStandbyNames()
    match = _SSN.match(text)
    kind, count, body = (
        (match.group(1), int(match.group(2)), match.group(3)) if match else (None, 1, text)
    )
    names = _ssn_names(body)
    if names == ["*"]:
        return SyncStandbyNames(star=True)
    quorum = kind is not None and kind.upper() == "ANY"
    return SyncStandbyNames(count=count, names=frozenset(names), quorum=quorum)


def postmaster(settings: PgSettings) -> tuple[PmStatus, int | None]:
    """The postmaster's status and pid from postmaster.pid (DOWN when the pid is not alive)."""
    try:
        lines = (Path(settings.data_dir) / "postmaster.pid").read_text().splitlines()
        pid = abs(int(lines[0]))  # negative: a single-user backend
    except (OSError, ValueError, IndexError):
        return PmStatus.DOWN, None
    if not postgres_alive(pid):
        return PmStatus.DOWN, None
    status = lines[7].strip() if len(lines) > 7 else "starting"
    if status in ("ready", "standby"):
        return PmStatus.READY, pid
    return (PmStatus.STOPPING if status == "stopping" else PmStatus.STARTING), pid


def postgres_alive(pid: int) -> bool:
    """A live postgres process: not gone, not a zombie nobody reaped, not a reused pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    name, _, rest = stat.partition("(")[2].rpartition(")")
    return rest.split()[:1] != ["Z"] and name.startswith(("postgres", "postmaster"))


def controldata(settings: PgSettings, user: OsUser) -> dict[str, str] | None:
    """pg_controldata's fields (None when it fails)."""
    argv = [settings.program("pg_controldata"), "-D", settings.data_dir]
    done = run(user, argv, timeout_s=CONTROLDATA_TIMEOUT_S, env={"LC_ALL": "C", "LANG": "C"})
    if not done.ok:
        log.warning("pg_controldata failed: %s", done.detail())
        return None
    fields = {}
    for line in done.stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def timeline_start_lsn(settings: PgSettings, timeline: int | None) -> int:
    """Where `timeline` began: the switch LSN on the last line of its history file (0 for TL 1)."""
    if timeline is None or timeline <= 1:
        return 0
    path = Path(settings.data_dir) / "pg_wal" / f"{timeline:08X}.history"
    try:
        lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    except OSError:
        return 0
    entries = [parts for parts in lines if len(parts) >= 2 and not parts[0].startswith("#")]
    return (parse_lsn(entries[-1][1]) or 0) if entries else 0


def rewind_tool(settings: PgSettings) -> bool:
    """pg_rewind is installed."""
    return os.access(settings.program("pg_rewind"), os.X_OK)


@dataclass(frozen=True, slots=True, kw_only=True)
class Known:
    """What the port itself keeps: the member it follows, the ssn it last wrote, and the highest
    timeline this running replica was seen on (`replica_tl`, None after any start or stop).

    A replica whose WAL receiver stopped (its primary died) has no `received_tli` any more, and
    its checkpoint timeline lags until the next restartpoint; without the remembered timeline it
    would look like a replica of the old timeline that must be rewound.
    """

    following: str | None
    ssn: SyncStandbyNames
    replica_tl: int | None = None


def read(settings: PgSettings, user: OsUser, known: Known) -> PostgresState:
    """The node's PostgreSQL now. Never raises."""
    try:
        return _read(settings, user, known)
    except Exception:  # an observation must always be produced
        log.exception("reading PostgreSQL's state failed")
        return PostgresState(run=PgRun.STOPPED, following=known.following, ssn=known.ssn)


def _read(settings: PgSettings, user: OsUser, known: Known) -> PostgresState:
    data = Path(settings.data_dir)
    if not (data / "PG_VERSION").exists():
        return PostgresState(data_present=False, in_recovery=False, following=known.following)
    status, _ = postmaster(settings)
    if status is PmStatus.READY:
        with contextlib.suppress(psycopg.Error):
            return _from_server(settings, known)
    run_state = PgRun.STOPPED if status is PmStatus.DOWN else PgRun.STARTING
    return _from_controldata(settings, user, known, run_state)


def _from_controldata(
    settings: PgSettings, user: OsUser, known: Known, run_state: PgRun
) -> PostgresState:
    fields = controldata(settings, user) or {}
    cluster = fields.get("Database cluster state", "")
    recovery = cluster in RECOVERY_STATES or (Path(settings.data_dir) / "standby.signal").exists()
    timeline, lsn = _controldata_position(fields, in_recovery=cluster in RECOVERY_STATES)
    hints = fields.get("wal_log_hints setting") == "on"
    checksums = fields.get("Data page checksum version", "0") not in ("0", "")
    return PostgresState(
        sysid=fields.get("Database system identifier"),
        run=run_state,
        in_recovery=recovery,
        timeline=timeline,
        wal_lsn=lsn,
        timeline_start_lsn=timeline_start_lsn(settings, timeline),
        clean_shutdown=cluster in CLEAN_STATES,
        following=known.following,
        ssn=known.ssn,
        rewind_possible=(hints or checksums) and rewind_tool(settings),
    )


def _controldata_position(fields: dict[str, str], *, in_recovery: bool) -> tuple[int | None, int]:
    # A replica is consistent up to its minimum recovery point; a primary (clean or crashed) to its
    # latest checkpoint record (a clean shutdown's checkpoint is the end of its WAL).
    checkpoint = parse_lsn(fields.get("Latest checkpoint location")) or 0
    checkpoint_tl = _int(fields.get("Latest checkpoint's TimeLineID"))
    min_recovery = parse_lsn(fields.get("Minimum recovery ending location")) or 0
    min_recovery_tl = _int(fields.get("Min recovery ending loc's timeline"))
    if in_recovery and min_recovery and min_recovery_tl:
        return max(min_recovery_tl, checkpoint_tl or 0), max(min_recovery, checkpoint)
    return checkpoint_tl, checkpoint


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None


_STATE_QUERY = """
SELECT pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END,
       pg_last_wal_receive_lsn()::text,
       pg_last_wal_replay_lsn()::text,
       (SELECT received_tli FROM pg_stat_wal_receiver),
       (SELECT timeline_id FROM pg_control_checkpoint()),
       (SELECT min_recovery_end_timeline FROM pg_control_recovery()),
       (SELECT system_identifier FROM pg_control_system())::text,
       current_setting('synchronous_standby_names'),
       current_setting('wal_log_hints') = 'on' OR current_setting('data_checksums') = 'on'
"""
_STANDBYS_QUERY = """
SELECT application_name, sync_state, flush_lsn::text FROM pg_stat_replication
 WHERE state = 'streaming' AND application_name <> '' ORDER BY application_name
"""


def _from_server(settings: PgSettings, known: Known) -> PostgresState:
    with sql.local(settings) as conn:
        row = sql.one(conn, _STATE_QUERY)
        standby_rows = sql.rows(conn, _STANDBYS_QUERY)
    if row is None:
        raise psycopg.OperationalError("no state row")
    in_recovery, primary_tl, current, received, replayed = row[:5]
    received_tl, checkpoint_tl, min_recovery_tl, sysid, ssn_text, hints = row[5:]
    if in_recovery:
        seen = (received_tl, checkpoint_tl, min_recovery_tl, known.replica_tl, 1)
        timeline = max(t for t in seen if t)
        lsn = max(parse_lsn(received) or 0, parse_lsn(replayed) or 0)
    else:
        timeline, lsn = primary_tl, parse_lsn(current) or 0
    return PostgresState(
        sysid=sysid,
        run=PgRun.RUNNING,
        in_recovery=bool(in_recovery),
        timeline=timeline,
        wal_lsn=lsn,
        timeline_start_lsn=timeline_start_lsn(settings, timeline),
        clean_shutdown=False,
        following=known.following,
        ssn=parse_ssn(ssn_text or ""),
        standbys=tuple(_standby(r) for r in standby_rows),
        rewind_possible=bool(hints) and rewind_tool(settings),
    )


def _standby(row: sql.Row) -> Standby:
    name, sync_state, flush = row
    try:
        state = SyncState(sync_state)
    except ValueError:
        state = SyncState.ASYNC
    return Standby(name=name, sync_state=state, flush_lsn=parse_lsn(flush) or 0)
