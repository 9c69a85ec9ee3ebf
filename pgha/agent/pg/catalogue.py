# PostgreSQL's own catalogue of settings, read from the installed server rather than kept as a
# hand-written table: every parameter's name, type, context, unit, bounds and enum values, as the
# `pg_settings` view of the binaries in `bin_dir` reports them.
#
# Where it comes from (measured on PostgreSQL 15): `postgres --describe-config` is fast (~10 ms)
# and runs even as root, but it gives neither units (work_mem's bounds 64 .. 2147483647 are in kB,
# shared_buffers' in 8 kB blocks, and it does not say so) nor enum values (wal_level's
# minimal/replica/logical), and without both a value such as '1GB' or 'hot_standby' cannot be
# judged. `pg_settings` has both, but needs a server with a catalog. So the catalogue is read once
# from a throw-away cluster: initdb into a private temporary directory (~0.8 s), one query in
# single-user mode (`postgres --single`, no socket, no port), and the directory is removed. The
# result is kept in memory per bin_dir and on disk (the user's cache directory, keyed by the
# `postgres` binary's path, size, mtime and inode), so an agent or `pgha ctl` starts in
# milliseconds after the first time. When that cannot run (no OS user to run initdb as, no space),
# `--describe-config` gives a partial catalogue (names, types, contexts, bounds in unknown units)
# and the validator checks what it can. Safety rules: nothing here raises into a caller's
# configuration check (a catalogue that cannot be read is None, with the reason logged); a cache
# file is used only when it parses completely, and is written atomically.
"""The settings catalogue of the installed PostgreSQL: read, cached, and the process's choice."""

from __future__ import annotations

import contextlib
import csv
import enum
import hashlib
import io
import json
import logging
import math
import os
import pwd
import re
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgha.agent.pg.exec import OsUser, run

log = logging.getLogger(__name__)

DEFAULT_BIN_DIR = "/usr/lib/postgresql/15/bin"
CACHE_FORMAT = 1
PROGRAM_TIMEOUT_S = 30.0
SCRATCH_TIMEOUT_S = 120.0
RETRY_AFTER_FAILURE_S = 60.0
_ENUM_SEP = "\x1f"  # joins enum values in the CSV export (they may hold spaces, never this)
_QUERY = (
    "COPY (SELECT name, context, vartype, unit, min_val, max_val, "
    f"array_to_string(enumvals, chr({ord(_ENUM_SEP)})) FROM pg_settings ORDER BY name) "
    "TO '{path}' WITH (FORMAT csv)\n"
)
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\S+)")


class VarType(enum.Enum):
    """`pg_settings.vartype`."""

    BOOL = "bool"
    INTEGER = "integer"
    REAL = "real"
    STRING = "string"
    ENUM = "enum"


@dataclass(frozen=True, slots=True, kw_only=True)
class Setting:
    """One parameter as the server describes it.

    `unit`: the base unit of a number ("kB", "8kB", "ms", "s", ...), "" when it has none, None
    when unknown (a partial catalogue). `enumvals`: None when unknown. Bounds are in `unit`.
    """

    name: str
    vartype: VarType
    context: str
    unit: str | None = ""
    min_val: float | None = None
    max_val: float | None = None
    enumvals: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Catalogue:
    """Every parameter of one installation, by lower-case name (PostgreSQL ignores case).

    `complete`: read from `pg_settings` (units and enum values known); False: from
    `--describe-config` only. `pkglibdir`: where `$libdir` libraries are (None: unknown).
    """

    settings: Mapping[str, Setting]
    version: str
    pkglibdir: str | None
    complete: bool

    def get(self, name: str) -> Setting | None:
        """The parameter called `name` (any case), or None."""
        return self.settings.get(name.lower())


class CatalogueError(Exception):
    """The catalogue could not be read; the message says why (never a password: none is used)."""


# ---------------------------------------------------------------- parsing the server's output


def _bound(text: str) -> float | None:
    try:
        return float(text) if text.strip() else None
    except ValueError:
        return None


def parse_pg_settings(text: str) -> dict[str, Setting]:
    """The CSV export of `pg_settings` (see _QUERY) as settings by lower-case name."""
    out: dict[str, Setting] = {}
    for row in csv.reader(io.StringIO(text)):
        if len(row) != 7:
            raise CatalogueError(f"unexpected pg_settings row with {len(row)} fields")
        name, context, vartype, unit, low, high, enumvals = row
        try:
            kind = VarType(vartype)
        except ValueError:
            raise CatalogueError(f"unknown vartype {vartype!r} of {name}") from None
        out[name.lower()] = Setting(
            name=name,
            vartype=kind,
            context=context,
            unit=unit,
            min_val=_bound(low),
            max_val=_bound(high),
            enumvals=tuple(enumvals.split(_ENUM_SEP)) if kind is VarType.ENUM else None,
        )
    if not out:
        raise CatalogueError("pg_settings gave no rows")
    return out


def parse_describe_config(text: str) -> dict[str, Setting]:
    """`postgres --describe-config`: name, context, group, VARTYPE, reset, min, max, texts...

    Bounds are in the parameter's base unit, which this output does not name (unit None);
    enum values are not listed (enumvals None).
    """
    kinds = {"BOOLEAN": VarType.BOOL, **{k.name: k for k in VarType}}
    out: dict[str, Setting] = {}
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) < 7 or fields[3] not in kinds:
            continue
        kind = kinds[fields[3]]
        numeric = kind in (VarType.INTEGER, VarType.REAL)
        out[fields[0].lower()] = Setting(
            name=fields[0],
            vartype=kind,
            context=fields[1],
            unit=None if numeric else "",
            min_val=_bound(fields[5]) if numeric else None,
            max_val=_bound(fields[6]) if numeric else None,
        )
    if not out:
        raise CatalogueError("postgres --describe-config gave no settings")
    return out


# ---------------------------------------------------------------- running the installed server


def _version(bin_dir: str) -> str:
    done = run(_AGENT, [f"{bin_dir}/postgres", "--version"], timeout_s=PROGRAM_TIMEOUT_S)
    found = _VERSION.search(done.stdout)
    if not done.ok or found is None:
        raise CatalogueError(f"cannot run {bin_dir}/postgres: {done.detail()}")
    return found.group(1)


def _pkglibdir(bin_dir: str) -> str | None:
    done = run(_AGENT, [f"{bin_dir}/pg_config", "--pkglibdir"], timeout_s=PROGRAM_TIMEOUT_S)
    path = done.stdout.strip()
    return path if done.ok and path.startswith("/") else None


def _scratch_settings(bin_dir: str, user: OsUser) -> dict[str, Setting]:
    """initdb a throw-away cluster, export pg_settings in single-user mode, remove it."""
    with tempfile.TemporaryDirectory(prefix="pgha-catalogue-") as tmp:
        root = Path(tmp)
        user.chown(root)
        data, export = root / "data", root / "settings.csv"
        initdb = [f"{bin_dir}/initdb", "-D", str(data), "-N", "-A", "trust", "-U", "postgres"]
        initdb += ["--locale=C", "-E", "UTF8"]
        done = run(user, initdb, timeout_s=SCRATCH_TIMEOUT_S)
        if not done.ok:
            raise CatalogueError(f"initdb of a scratch cluster failed: {done.detail()}")
        single = [f"{bin_dir}/postgres", "--single", "-F", "-D", str(data), "postgres"]
        query = _QUERY.replace("{path}", str(export).replace("'", "''"))
        done = run(user, single, timeout_s=SCRATCH_TIMEOUT_S, stdin_text=query)
        try:
            text = export.read_text()
        except OSError:
            raise CatalogueError(f"reading pg_settings failed: {done.detail()}") from None
    return parse_pg_settings(text)


def _describe_config(bin_dir: str) -> dict[str, Setting]:
    done = run(_AGENT, [f"{bin_dir}/postgres", "--describe-config"], timeout_s=PROGRAM_TIMEOUT_S)
    if not done.ok:
        raise CatalogueError(f"postgres --describe-config failed: {done.detail()}")
    return parse_describe_config(done.stdout)


_AGENT = OsUser(None, None, None, None)  # --version, --describe-config, pg_config: any user


def scratch_user(os_user: str | None) -> OsUser | None:
    """Who may run initdb: `os_user` (or `postgres`) when we are root; else ourselves."""
    if os.geteuid() != 0:
        return _AGENT
    try:
        return OsUser.of(os_user or "postgres")
    except KeyError:
        return None


# ---------------------------------------------------------------- the cache on disk


def default_cache_dir() -> Path | None:
    """`$XDG_CACHE_HOME/pgha` or `~/.cache/pgha` (None when there is no home)."""
    base = os.environ.get("XDG_CACHE_HOME")
    try:
        root = Path(base) if base else Path(pwd.getpwuid(os.geteuid()).pw_dir) / ".cache"
    except KeyError:
        return None
    return root / "pgha"


def _cache_key(bin_dir: str) -> str:
    binary = Path(bin_dir) / "postgres"
    stat = binary.stat()
    identity = f"{CACHE_FORMAT}|{binary.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ino}"
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


def _to_json(catalogue: Catalogue) -> str:
    rows = [
        [s.name, s.vartype.value, s.context, s.unit, s.min_val, s.max_val, s.enumvals]
        for s in catalogue.settings.values()
    ]
    document = {"format": CACHE_FORMAT, "version": catalogue.version, "rows": rows}
    return json.dumps({**document, "pkglibdir": catalogue.pkglibdir})


def _from_json(text: str) -> Catalogue:
    document: Any = json.loads(text)
    if document.get("format") != CACHE_FORMAT:
        raise ValueError("another cache format")
    settings: dict[str, Setting] = {}
    for name, vartype, context, unit, low, high, enumvals in document["rows"]:
        if not all(isinstance(x, str) for x in (name, context, unit)):
            raise ValueError("a malformed row")
        settings[name.lower()] = Setting(
            name=name,
            vartype=VarType(vartype),
            context=context,
            unit=unit,
            min_val=None if low is None else float(low),
            max_val=None if high is None else float(high),
            enumvals=None if enumvals is None else tuple(str(v) for v in enumvals),
        )
    pkglibdir = document.get("pkglibdir")
    if not settings or not isinstance(document["version"], str):
        raise ValueError("no settings")
    return Catalogue(
        settings=settings,
        version=document["version"],
        pkglibdir=pkglibdir if isinstance(pkglibdir, str) else None,
        complete=True,
    )


def _cached(cache_dir: Path | None, key: str) -> Catalogue | None:
    if cache_dir is None:
        return None
    try:
        return _from_json((cache_dir / f"catalogue-{key}.json").read_text())
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _store(cache_dir: Path | None, key: str, catalogue: Catalogue) -> None:
    if cache_dir is None:
        return
    try:
        cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".catalogue-")
        with os.fdopen(fd, "w") as handle:
            handle.write(_to_json(catalogue))
        os.replace(tmp, cache_dir / f"catalogue-{key}.json")
    except OSError as error:
        log.debug("cannot cache the settings catalogue in %s: %s", cache_dir, error)
        with contextlib.suppress(OSError, UnboundLocalError):
            os.unlink(tmp)


# ---------------------------------------------------------------- reading


def read_catalogue(bin_dir: str, user: OsUser | None, cache_dir: Path | None) -> Catalogue:
    """The catalogue of the PostgreSQL in `bin_dir` (see the module comment for the sources).

    Raises:
        CatalogueError: not even `postgres --describe-config` could be run.
    """
    try:
        key = _cache_key(bin_dir)
    except OSError as error:
        raise CatalogueError(f"no PostgreSQL server in {bin_dir}: {error.strerror}") from None
    cached = _cached(cache_dir, key)
    if cached is not None:
        return cached
    version, pkglibdir = _version(bin_dir), _pkglibdir(bin_dir)
    reason = "no operating-system user to run initdb as"
    if user is not None:
        try:
            settings = _scratch_settings(bin_dir, user)
        except CatalogueError as error:
            reason = str(error)
        else:
            found = Catalogue(
                settings=settings, version=version, pkglibdir=pkglibdir, complete=True
            )
            _store(cache_dir, key, found)
            return found
    log.warning("PostgreSQL's pg_settings could not be read (%s): using --describe-config", reason)
    settings = _describe_config(bin_dir)
    return Catalogue(settings=settings, version=version, pkglibdir=pkglibdir, complete=False)


# ---------------------------------------------------------------- the process's catalogue


@dataclass(slots=True)
class _Registry:
    """Which installation `active()` describes, what was read, and what failed (and when)."""

    bin_dir: str = DEFAULT_BIN_DIR
    os_user: str | None = None
    found: dict[str, Catalogue] = field(default_factory=dict)
    failed: dict[str, tuple[float, str]] = field(default_factory=dict)


_REGISTRY = _Registry()
_LOCK = threading.Lock()


def use(bin_dir: str, os_user: str | None) -> None:
    """Make `bin_dir` the installation `active()` describes (the agent's `postgresql.bin_dir`)."""
    with _LOCK:
        _REGISTRY.bin_dir, _REGISTRY.os_user = bin_dir, os_user


def active() -> Catalogue | None:
    """The catalogue of the active installation (default: Debian's PostgreSQL 15), read once.

    None when it cannot be read; the reason is logged once and given by `unavailable()`. A
    failure is retried after a minute (the binaries may be installed meanwhile).
    """
    with _LOCK:
        reg = _REGISTRY
        if reg.bin_dir in reg.found:
            return reg.found[reg.bin_dir]
        failed_at = reg.failed.get(reg.bin_dir, (-math.inf, ""))[0]
        if time.monotonic() - failed_at < RETRY_AFTER_FAILURE_S:
            return None
        try:
            found = read_catalogue(reg.bin_dir, scratch_user(reg.os_user), default_cache_dir())
        except CatalogueError as error:
            log.warning("PostgreSQL's settings catalogue is not available: %s", error)
            reg.failed[reg.bin_dir] = (time.monotonic(), str(error))
            return None
        reg.failed.pop(reg.bin_dir, None)
        reg.found[reg.bin_dir] = found
        return found


def unavailable() -> str:
    """Why the active installation has no catalogue ("" when it has one or was not read)."""
    with _LOCK:
        return _REGISTRY.failed.get(_REGISTRY.bin_dir, (0.0, ""))[1]
