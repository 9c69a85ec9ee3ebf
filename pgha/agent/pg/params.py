# Checks a PostgreSQL parameter value the way the server will read it from postgresql.conf, against
# the installed server's own catalogue (catalogue.py), so that no value that would make
# PostgreSQL refuse to start (or skip a whole list, as a bad shared_preload_libraries does) is
# written: booleans as parse_bool takes them (prefixes of true/false/yes/no, on, off, 1, 0, any
# case), integers and reals as parse_int/parse_real read them (strtol with 0x and octal, strtod with
# fractions and exponents, a unit after optional spaces converted to the base unit and rounded as
# convert_to_base_unit does, then the range), enums without regard to case (with the hidden
# true/false/yes/no/1/0 of the enums that list on and off), read-only parameters refused, and every
# library of *_preload_libraries present in `pg_config --pkglibdir`.
# Safety rules: a string value is never shown in a message (parameters may hold secrets; a missing
# library is named, as a parameter is); a managed parameter is refused with where to set what it
# controls; without a catalogue only the form (name, type, no control characters) is checked.
"""Validation of PostgreSQL parameters: types, units, ranges, enums, libraries, managed names."""

from __future__ import annotations

import difflib
import hashlib
import logging
import math
import re
import sys
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from pgha.agent.pg.catalogue import Catalogue, Setting, VarType

log = logging.getLogger(__name__)

ParamValue = str | int | float | bool

# Parameters pgha sets itself (conf.py's _AGENT_OWNED and cluster_name), and what sets them.
MANAGED = {
    "port": "pgha sets it from postgresql.listen",
    "listen_addresses": "pgha sets it from postgresql.listen",
    "unix_socket_directories": "pgha sets it from postgresql.socket_dir",
    "data_directory": "pgha sets it from postgresql.data_dir",
    "config_file": "pgha writes postgresql.conf in postgresql.data_dir",
    "hba_file": "pgha writes pg_hba.conf in data_dir from pg_hba",
    "hot_standby": "pgha always sets it on",
    "wal_log_hints": "pgha always sets it on (pg_rewind needs it)",
    "synchronous_standby_names": "pgha sets it from synchronous_mode and synchronous_node_count",
    "primary_conninfo": "pgha points every replica at its upstream itself",
    "primary_slot_name": "pgha sets it from use_slots",
    "recovery_target_timeline": "pgha always follows the latest timeline",
    "cluster_name": "pgha sets it to the cluster's scope",
}
# Managed parameters whose only useful value is the one pgha writes: `on` is accepted (Patroni's
# own sample configurations set them), anything else refused.
ALWAYS_ON = frozenset({"hot_standby", "wal_log_hints"})

_SPACE = " \t\n\v\f\r"
_BOOL_WORDS = (("true", True), ("false", False), ("yes", True), ("no", False))
_ENUM_BOOLS = frozenset({"true", "false", "yes", "no", "1", "0"})
# Sizes in bytes and in microseconds, largest first as in PostgreSQL's tables (the order matters:
# a fraction is rounded to a whole number of the next smaller unit).
MEMORY_UNITS = (("TB", 1024.0**4), ("GB", 1024.0**3), ("MB", 1024.0**2), ("kB", 1024.0), ("B", 1.0))
TIME_UNITS = (("d", 864e8), ("h", 36e8), ("min", 6e7), ("s", 1e6), ("ms", 1e3), ("us", 1.0))
BASE_UNITS = {"B": 1.0, "kB": 1024.0, "8kB": 8192.0, "MB": 1024.0**2, "ms": 1e3, "s": 1e6}
BASE_UNITS["min"] = 6e7
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
LONG_MAX = 2**63 - 1
HUGE = 1e300  # a bound printed as 1.79769e+308 is DBL_MAX: no upper bound in practice
_WS = "[ \\t\\n\\v\\f\\r]*"
_STRTOL = re.compile(_WS + r"[+-]?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
_HEX_FLOAT = r"0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?"
_STRTOD = (
    re.compile(_WS + r"[+-]?" + _HEX_FLOAT),
    re.compile(_WS + r"[+-]?(?:infinity|inf|nan)", re.IGNORECASE),
    re.compile(_WS + r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"),
)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # a tab is fine
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_CUSTOM = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
_SHOWN_LIBRARY = re.compile(r"[A-Za-z0-9_.$/+-]{1,200}")
LIBRARY_PARAMS = {  # where a library named without a slash is looked for, under $libdir
    "shared_preload_libraries": "",
    "session_preload_libraries": "",
    "local_preload_libraries": "plugins",
}
DLSUFFIX = ".so"
BOOL_TEXT = "a boolean (on, off, true, false, yes, no, 1, 0)"


@dataclass(frozen=True, slots=True)
class ParamProblem:
    """Why a value is refused, as a configuration error says it: expected, got, a hint."""

    name: str
    expected: str
    got: str
    hint: str = ""

    def message(self, prefix: str = "postgresql.parameters") -> str:
        """`prefix.name: expected X, got Y; hint` (the REST API's and pgha ctl's words)."""
        text = f"{prefix}.{self.name}: expected {self.expected}, got {self.got}"
        return f"{text}; {self.hint}" if self.hint else text


def as_text(value: str | int | float | bool) -> str:
    """The value as postgresql.conf holds it (as pg_conf.quote writes it: booleans on/off)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def suggest(word: str, choices: Collection[str]) -> str:
    """A "did you mean" hint for `word` among `choices`, or ""."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


# ---------------------------------------------------------------- numbers as PostgreSQL reads them


def _nonzero_mantissa(number: str) -> bool:
    digits = number.lstrip("+-")
    if digits[:2].lower() == "0x":
        return any(c not in "0." for c in re.split("[pP]", digits[2:])[0])
    return any(c in "123456789" for c in re.split("[eE]", digits)[0])


def strtod(text: str) -> tuple[float, int] | None:
    """C's strtod: the value and where it stopped; None for no number or out of range (ERANGE)."""
    for pattern in _STRTOD:
        found = pattern.match(text)
        if found is None:
            continue
        number = found.group().lstrip(_SPACE)
        try:
            value = float.fromhex(number) if "x" in number.lower() else float(number)
        except OverflowError:
            return None
        overflow = math.isinf(value) and "inf" not in number.lower()
        tiny = abs(value) < sys.float_info.min and _nonzero_mantissa(number)
        return None if overflow or tiny else (value, found.end())
    return None


def read_integer(text: str) -> tuple[float, str] | None:
    """parse_int's number: strtol (base 0), or strtod after '.', 'e' or an overflow; the rest."""
    found = _STRTOL.match(text)
    value, end, overflow = 0.0, 0, False
    if found is not None:
        digits = found.group().lstrip(_SPACE)
        sign, digits = (-1, digits[1:]) if digits[:1] == "-" else (1, digits.lstrip("+"))
        base = 16 if digits[:2].lower() == "0x" else 8 if digits[:1] == "0" else 10
        number = sign * int(digits, base)
        value, end, overflow = float(number), found.end(), abs(number) > LONG_MAX
    if found is None or overflow or text[end : end + 1] in (".", "e", "E"):
        parsed = strtod(text)
        if parsed is None:
            return None
        value, end = parsed
    return value, text[end:].lstrip(_SPACE)


def read_real(text: str) -> tuple[float, str] | None:
    """parse_real's number (strtod) and the rest."""
    parsed = strtod(text)
    return None if parsed is None else (parsed[0], text[parsed[1] :].lstrip(_SPACE))


def _table(base: str) -> tuple[tuple[str, float], ...]:
    return TIME_UNITS if base in ("ms", "s", "min") else MEMORY_UNITS


def to_base_unit(value: float, unit_text: str, base: str) -> float | None:
    """convert_to_base_unit: `value` in `unit_text` (then only spaces) as a number of `base`."""
    unit = unit_text.rstrip(_SPACE)
    names = [name for name, _ in _table(base)]
    if unit not in names:
        return None
    index = names.index(unit)
    table = _table(base)
    converted = value * table[index][1] / BASE_UNITS[base]
    if index + 1 < len(table):  # "30.1GB": rounded to a whole number of MB
        step = table[index + 1][1] / BASE_UNITS[base]
        converted = _rint(converted / step) * step
    return converted


def _rint(value: float) -> float:
    return float(round(value)) if math.isfinite(value) else value


def _is_any_unit(unit_text: str) -> bool:
    return unit_text.rstrip(_SPACE) in {name for name, _ in (*MEMORY_UNITS, *TIME_UNITS)}


# ---------------------------------------------------------------- describing what is allowed


def show_amount(value: float, base: str) -> str:
    """A bound in the largest unit that holds it exactly: 30 s, 1 d, 128 kB, 0.001."""
    if base not in BASE_UNITS:
        return f"{value:g}"
    amount = value * BASE_UNITS[base]
    for name, size in _table(base):
        if amount != 0 and amount % size == 0:
            return f"{int(amount // size)} {name}"
    return f"{value:g} {base}"


def _range_text(setting: Setting) -> str:
    low, high = setting.min_val, setting.max_val
    if low is None or high is None:
        return ""
    if setting.unit is None:
        return f" from {low:g} to {high:g} in its base unit"
    if high > HUGE:
        return f" of at least {show_amount(low, setting.unit)}"
    return f" between {show_amount(low, setting.unit)} and {show_amount(high, setting.unit)}"


def expected_number(setting: Setting) -> str:
    """What an integer or real parameter takes, e.g. an integer with a memory unit (...) ..."""
    kind = "an integer" if setting.vartype is VarType.INTEGER else "a number"
    if setting.unit is None:
        unit = " (with a unit if it has one)"
    elif setting.unit:
        table = _table(setting.unit)
        family = "time" if table is TIME_UNITS else "memory"
        unit = f" with a {family} unit ({', '.join(name for name, _ in reversed(table))})"
    else:
        unit = ""
    return f"{kind}{unit}{_range_text(setting)}"


# ---------------------------------------------------------------- one value, by type


def _number_ok(setting: Setting, text: str) -> bool:
    """PostgreSQL takes `text` for this integer or real parameter."""
    integer = setting.vartype is VarType.INTEGER
    parsed = read_integer(text) if integer else read_real(text)
    if parsed is None or math.isnan(parsed[0]):
        return False
    value, rest = parsed
    if rest and setting.unit is None:
        return _is_any_unit(rest)  # the base unit is unknown: no conversion, no range check
    if rest:
        converted = to_base_unit(value, rest, setting.unit) if setting.unit else None
        if converted is None:
            return False
        value = converted
    if integer:
        value = _rint(value)
        if not INT_MIN <= value <= INT_MAX:
            return False
    low, high = setting.min_val, setting.max_val
    if math.isinf(value) or (low is not None and value < low):
        return False
    return high is None or high > HUGE or value <= high


def parse_bool(text: str) -> bool | None:
    """PostgreSQL's parse_bool: a prefix of true/false/yes/no, on, of(f), 1 or 0, any case."""
    lowered = text.lower()
    if lowered in ("1", "0"):
        return lowered == "1"
    if lowered[:1] == "o":
        if len(lowered) < 2:
            return None
        return True if "on".startswith(lowered) else False if "off".startswith(lowered) else None
    for word, meaning in _BOOL_WORDS:
        if lowered and word.startswith(lowered):
            return meaning
    return None


def _enum_ok(setting: Setting, text: str) -> bool:
    allowed = {value.lower() for value in setting.enumvals or ()}
    if setting.enumvals is None or text.lower() in allowed:
        return True
    return {"on", "off"} <= allowed and text.lower() in _ENUM_BOOLS


def split_list(text: str) -> list[str] | None:
    """SplitDirectoriesString(',') : names, "quoted" ones unquoted; None for a malformed list."""
    names: list[str] = []
    rest = text.lstrip(_SPACE)
    while rest:
        if rest[0] == '"':
            found = re.match(r'"((?:[^"]|"")*)"', rest)
            if found is None:
                return None
            names.append(found.group(1).replace('""', '"'))
            rest = rest[found.end() :].lstrip(_SPACE)
        else:
            name, _, _ = rest.partition(",")
            if not name.strip(_SPACE):
                return None
            names.append(name.rstrip(_SPACE))
            rest = rest[len(name) :]
        if rest[:1] == ",":
            rest = rest[1:].lstrip(_SPACE)
            if not rest:
                return None
        elif rest:
            return None
    return names


def _library_found(library: str, libdir: str, subdir: str) -> bool:
    if "/" in library:
        if library.startswith("$libdir"):
            library = libdir + library[len("$libdir") :]
        if not library.startswith("/"):
            return True  # relative to the data directory: only the server can tell
        path = Path(library)
    else:
        path = Path(libdir, subdir, library)
    return path.is_file() or path.with_name(path.name + DLSUFFIX).is_file()


def _libraries(setting: Setting, text: str, libdir: str) -> ParamProblem | None:
    names = split_list(text)
    if names is None:
        return ParamProblem(
            setting.name, "a comma-separated list of library names", "a malformed list"
        )
    subdir = LIBRARY_PARAMS[setting.name.lower()]
    for library in names:
        if _library_found(library, libdir, subdir):
            continue
        shown = repr(library) if _SHOWN_LIBRARY.fullmatch(library) else "a library"
        installed = [p.name[: -len(DLSUFFIX)] for p in Path(libdir, subdir).glob("*" + DLSUFFIX)]
        return ParamProblem(
            setting.name,
            f"libraries installed in {Path(libdir, subdir)} (as <name>{DLSUFFIX})",
            f"{shown}, which is not installed there",
            suggest(library, installed),
        )
    return None


def _check_value(catalogue: Catalogue, setting: Setting, text: str) -> ParamProblem | None:
    name, kind = setting.name, setting.vartype
    if setting.context == "internal":
        return ParamProblem(
            name, "a parameter that can be set", "a read-only one (fixed by the build or initdb)"
        )
    if kind is VarType.BOOL and parse_bool(text) is None:
        return ParamProblem(name, BOOL_TEXT, repr(text))
    if kind in (VarType.INTEGER, VarType.REAL) and not _number_ok(setting, text):
        return ParamProblem(name, expected_number(setting), repr(text))
    if kind is VarType.ENUM and not _enum_ok(setting, text):
        allowed = setting.enumvals or ()
        return ParamProblem(
            name, f"one of {', '.join(allowed)}", repr(text), suggest(text.lower(), allowed)
        )
    if kind is VarType.STRING and name.lower() in LIBRARY_PARAMS and catalogue.pkglibdir:
        return _libraries(setting, text, catalogue.pkglibdir)
    return None


# ---------------------------------------------------------------- a parameter


def _form(name: str, value: object) -> ParamProblem | None:
    if not NAME.fullmatch(name):
        return ParamProblem(name, "a parameter name (letters, digits, '_' and '.')", repr(name))
    if value is None or not isinstance(value, str | int | float | bool):
        return ParamProblem(name, "a string, number or boolean", f"a {type(value).__name__}")
    if isinstance(value, str) and _CONTROL.search(value):
        return ParamProblem(
            name, "a value without control characters", "one with a newline, tab or the like"
        )
    return None


def managed(name: str, value: str | int | float | bool) -> ParamProblem | None:
    """Refuse a parameter pgha sets itself (`on` for hot_standby and wal_log_hints is fine)."""
    key = name.lower()
    if key not in MANAGED:
        return None
    if key in ALWAYS_ON and parse_bool(as_text(value)) is True:
        return None
    return ParamProblem(name, "a parameter pgha does not set itself", repr(name), MANAGED[key])


def check(catalogue: Catalogue | None, name: str, value: object) -> ParamProblem | None:
    """Why PostgreSQL (or pgha) would not take `name = value` in postgresql.conf; None: fine.

    `catalogue` None: only the form (name, type, no control characters) and managed names.
    """
    problem = _form(name, value)
    if problem is not None:
        return problem
    assert isinstance(value, str | int | float | bool)  # _form checked it
    problem = managed(name, value)
    if problem is not None or catalogue is None:
        return problem
    setting = catalogue.get(name)
    if setting is None:
        if _CUSTOM.fullmatch(name):
            return None  # an extension's parameter (prefix.name): the server takes any value
        return ParamProblem(
            name,
            f"a parameter of PostgreSQL {catalogue.version} (an extension's has a dot, "
            "e.g. pg_stat_statements.max)",
            "an unknown name",
            suggest(name.lower(), catalogue.settings),
        )
    return _check_value(catalogue, setting, as_text(value))


# ---------------------------------------------------------------- values read from the DCS

_WARNED: dict[str, str] = {}  # parameter -> identity of the refused value last logged
_WARNED_LOCK = threading.Lock()


def usable(
    catalogue: Catalogue | None, raw: Mapping[object, object], source: str = "/config"
) -> dict[str, ParamValue]:
    """The parameters of `raw` that PostgreSQL takes (and pgha does not set itself).

    Each refused one is logged once per value (not on every rendering of postgresql.conf): a
    value written past the doors (etcdctl) must never keep the server from starting. A
    parameter seen again with a good value is forgotten, so a bad one later is said again.
    """
    out: dict[str, ParamValue] = {}
    refused: dict[str, tuple[str, str]] = {}
    for key, value in raw.items():
        name = str(key)
        problem = check(catalogue, name, value)
        if problem is not None:
            digest = hashlib.sha256(repr(value).encode()).hexdigest()
            refused[name] = (problem.message(), digest)
        elif name.lower() not in MANAGED and isinstance(value, str | int | float | bool):
            out[name] = value
    with _WARNED_LOCK:
        for name in out:
            _WARNED.pop(name, None)
        for name, (message, digest) in refused.items():
            if _WARNED.get(name) != digest:
                log.warning("ignoring %s (from %s): PostgreSQL would refuse it", message, source)
                _WARNED[name] = digest
    return out
