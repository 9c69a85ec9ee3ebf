"""The PostgreSQL parameter validator (pg_params) against the real catalogue and the real server.

Every verdict on a number, boolean or enum is compared with PostgreSQL's own: the value is written
to a postgresql.conf exactly as the agent writes it (pg_conf.quote) and `postgres -C` reads it
(~20 ms, no data directory needed). Libraries are checked against `pg_config --pkglibdir`, which
is what a server start loads them from.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgha.agent.pg import catalogue as pg_catalogue
from pgha.agent.pg import conf as pg_conf
from pgha.agent.pg import params as pg_params
from pgha.agent.pg.catalogue import Catalogue
from pgha.agent.pg.exec import OsUser, run
from tests.agent.conftest import OS_USER, PG_BIN, give_to_os_user

pytestmark = pytest.mark.agent


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    pg_catalogue.use(PG_BIN, OS_USER)
    found = pg_catalogue.active()
    assert found is not None
    assert found.complete
    return found


class Server:
    """`postgres -C` on a postgresql.conf holding one parameter: does PostgreSQL take it?"""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pgha-pgconf-"))
        self.dir.chmod(0o700)
        give_to_os_user(self.dir)
        self.user = OsUser.of(OS_USER)

    def accepts(self, name: str, value: pg_params.ParamValue) -> bool:
        conf = self.dir / "postgresql.conf"
        conf.write_text(f"{name} = {pg_conf.quote(value)}\n")
        give_to_os_user(conf)
        argv = [f"{PG_BIN}/postgres", "-D", str(self.dir), "-C", "work_mem"]
        return run(self.user, argv, timeout_s=20).ok


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    found = Server()
    yield found
    shutil.rmtree(found.dir, ignore_errors=True)


# ---------------------------------------------------------------- verdicts, checked by the server

CASES: list[tuple[str, pg_params.ParamValue, bool]] = [
    # integers with memory units (work_mem: kB, 64 kB .. 2147483647 kB)
    ("work_mem", "-7 parsecs", False),
    ("work_mem", "4MB", True),
    ("work_mem", "1.5MB", True),
    ("work_mem", "64kB", True),
    ("work_mem", "63kB", False),
    ("work_mem", "65535B", True),  # 63.999 kB, rounded to 64
    ("work_mem", " 100 kB ", True),
    ("work_mem", "100 KB", False),  # units are case-sensitive
    ("work_mem", "0x100", True),
    ("work_mem", "010", False),  # octal 8: below the minimum
    ("work_mem", "09", False),  # octal 0, then garbage
    ("work_mem", "1e3", True),
    ("work_mem", "2TB", False),
    ("work_mem", "1TB", True),
    ("work_mem", "4MBx", False),
    ("work_mem", "4 M B", False),
    ("work_mem", "", False),
    ("work_mem", 4096, True),
    ("work_mem", 99999999999999999999, False),
    ("work_mem", True, False),
    ("shared_buffers", "16MB", True),  # 8 kB blocks, at least 16 of them
    ("shared_buffers", "64kB", False),
    ("shared_buffers", 16, True),
    ("max_connections", 50, True),
    ("max_connections", 0, False),
    ("max_connections", "5ms", False),  # a unit where none is taken
    ("max_connections", 4.6, True),  # rounded
    # time units (checkpoint_timeout: s, 30 s .. 1 d)
    ("checkpoint_timeout", "5min", True),
    ("checkpoint_timeout", "1.5min", True),
    ("checkpoint_timeout", "29501ms", True),  # rounds to 30 s
    ("checkpoint_timeout", "29499ms", False),
    ("checkpoint_timeout", "25h", False),
    ("checkpoint_timeout", "1d", True),
    ("checkpoint_timeout", "10 parsecs", False),
    ("log_min_duration_statement", -1, True),
    ("log_min_duration_statement", "250ms", True),
    ("wal_receiver_timeout", "1min", True),
    # reals (random_page_cost: 0 .. DBL_MAX; vacuum_cost_delay: ms, 0 .. 100)
    ("random_page_cost", "1.1", True),
    ("random_page_cost", 4, True),
    ("random_page_cost", "-1", False),
    ("random_page_cost", "1e400", False),
    ("random_page_cost", "inf", False),
    ("random_page_cost", "nan", False),
    ("random_page_cost", "1e308", True),
    ("vacuum_cost_delay", "1500us", True),
    ("vacuum_cost_delay", "2s", False),
    ("checkpoint_completion_target", 0.9, True),
    ("checkpoint_completion_target", 1.5, False),
    # booleans
    ("fsync", "off", True),
    ("fsync", "of", True),
    ("fsync", "o", False),
    ("fsync", "TR", True),
    ("fsync", "y", True),
    ("fsync", "1", True),
    ("fsync", "2", False),
    ("fsync", "true ", False),
    ("fsync", False, True),
    ("fsync", "maybe", False),
    # enums
    ("wal_level", "logical", True),
    ("wal_level", "REPLICA", True),
    ("wal_level", "replic", False),
    ("wal_level", "parsecs", False),
    ("synchronous_commit", "remote_apply", True),
    ("synchronous_commit", "true", True),  # hidden boolean spellings of on/off enums
    ("synchronous_commit", "t", False),  # but no prefixes
    ("synchronous_commit", True, True),
    ("huge_pages", "try", True),
    ("log_min_messages", "WARNING", True),
    ("log_min_messages", "loud", False),
    ("transaction_isolation", "repeatable read", True),
    ("password_encryption", "md5", True),
    # names
    ("pg_stat_statements.max", 1000, True),
    ("auto_explain.log_min_duration", "10s", True),
    ("work_men", "4MB", False),
    ("block_size", 8192, False),  # read-only
    ("server_version", "99", False),
]


@pytest.mark.parametrize(("name", "value", "taken"), CASES)
def test_each_verdict_is_the_servers(
    catalogue: Catalogue, server: Server, name: str, value: pg_params.ParamValue, taken: bool
) -> None:
    problem = pg_params.check(catalogue, name, value)
    assert (problem is None) is taken, problem
    assert server.accepts(name, value) is taken


_UNITS = st.sampled_from(["", "B", "kB", "MB", "GB", "TB", "us", "ms", "s", "min", "h", "d", "x"])
_NUMBERS = st.one_of(
    st.integers(-(2**40), 2**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True, width=64).map(repr),
    st.sampled_from(["0x1F", "0x", "007", "08", ".5", "5.", "1e", "1e-3", "-0", "+7", "1e999"]),
)
_VALUES = st.builds(
    lambda n, sp, u, trail: f"{n}{sp}{u}{trail}",
    _NUMBERS,
    st.sampled_from(["", " ", "\t", "  "]),
    _UNITS,
    st.sampled_from(["", " ", "\t"]),
)
_NUMERIC = ["work_mem", "shared_buffers", "checkpoint_timeout", "max_connections"]
_NUMERIC += ["random_page_cost", "vacuum_cost_delay", "log_rotation_age", "wal_writer_delay"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(_NUMERIC), text=_VALUES)
def test_generated_numbers_get_the_servers_verdict(
    catalogue: Catalogue, server: Server, name: str, text: str
) -> None:
    taken = pg_params.check(pg_catalogue.active(), name, text) is None
    assert taken is server.accepts(name, text), (name, text)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(["fsync", "wal_level", "synchronous_commit", "huge_pages"]),
    text=st.text(alphabet="aeflnorstuyAFNOT01 _", max_size=6),
)
def test_generated_words_get_the_servers_verdict(
    catalogue: Catalogue, server: Server, name: str, text: str
) -> None:
    taken = pg_params.check(pg_catalogue.active(), name, text) is None
    assert taken is server.accepts(name, text), (name, text)


# ---------------------------------------------------------------- messages


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "work_mem",
            "-7 parsecs",
            "postgresql.parameters.work_mem: expected an integer with a memory unit "
            "(B, kB, MB, GB, TB) between 64 kB and 2147483647 kB, got '-7 parsecs'",
        ),
        (
            "checkpoint_timeout",
            "10",
            "postgresql.parameters.checkpoint_timeout: expected an integer with a time unit "
            "(us, ms, s, min, h, d) between 30 s and 1 d, got '10'",
        ),
        (
            "random_page_cost",
            "-1",
            "postgresql.parameters.random_page_cost: expected a number of at least 0, got '-1'",
        ),
        (
            "fsync",
            "maybe",
            "postgresql.parameters.fsync: expected a boolean (on, off, true, false, yes, no, "
            "1, 0), got 'maybe'",
        ),
        (
            "wal_level",
            "hot_standy",
            "postgresql.parameters.wal_level: expected one of minimal, replica, logical, "
            "got 'hot_standy'",
        ),
        (
            "work_men",
            "4MB",
            "postgresql.parameters.work_men: expected a parameter of PostgreSQL 15",
        ),
        (
            "shared_preload_libraries",
            "pg_stat_statementz",
            "postgresql.parameters.shared_preload_libraries: expected libraries installed in "
            "/usr/lib/postgresql/15/lib (as <name>.so), got 'pg_stat_statementz', which is not "
            "installed there; did you mean 'pg_stat_statements'?",
        ),
        (
            "port",
            5433,
            "postgresql.parameters.port: expected a parameter pgha does not set itself, "
            "got 'port'; pgha sets it from postgresql.listen",
        ),
        (
            "block_size",
            8192,
            "postgresql.parameters.block_size: expected a parameter that can be set, got a "
            "read-only one (fixed by the build or initdb)",
        ),
    ],
)
def test_messages_name_the_parameter_and_what_is_allowed(
    catalogue: Catalogue, name: str, value: pg_params.ParamValue, message: str
) -> None:
    problem = pg_params.check(catalogue, name, value)
    assert problem is not None
    assert problem.message().startswith(message)
    if name == "work_men":
        assert problem.hint == "did you mean 'work_mem'?"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("application_name", "hunter2\nx"),  # control characters: refused, not shown
        ("shared_preload_libraries", "pg_stat_statements, 'hunter2'"),
        ("unknown_param", "hunter2"),
        ("restore_command", "hunter2\x00"),
    ],
)
def test_string_values_are_never_shown(catalogue: Catalogue, name: str, secret: str) -> None:
    problem = pg_params.check(catalogue, name, secret)
    assert problem is not None
    assert "hunter2" not in problem.message()


# ---------------------------------------------------------------- libraries and lists


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("", []),
        ("  ", []),
        ("a", ["a"]),
        ("a, b ,c", ["a", "b", "c"]),
        ('"a b", c', ["a b", "c"]),
        ('"a""b"', ['a"b']),
        ("a,,b", None),
        ("a,", None),
        (",a", None),
        ('"a', None),
        ('"a" b', None),
    ],
)
def test_library_lists_split_as_postgresql_splits_them(text: str, names: list[str] | None) -> None:
    assert pg_params.split_list(text) == names


@pytest.mark.parametrize(
    ("name", "value", "taken"),
    [
        ("shared_preload_libraries", "pg_stat_statements", True),
        ("shared_preload_libraries", "pg_stat_statements.so", True),
        ("shared_preload_libraries", "$libdir/auto_explain", True),
        ("shared_preload_libraries", "/usr/lib/postgresql/15/lib/auto_explain.so", True),
        ("shared_preload_libraries", "pg_stat_statements,auto_explain", True),
        ("shared_preload_libraries", "", True),
        ("shared_preload_libraries", "pg_stat_statements,nope", False),
        ("shared_preload_libraries", "/nowhere/lib.so", False),
        ("session_preload_libraries", "auto_explain", True),
        ("session_preload_libraries", "pg_stat_statementz", False),
        ("local_preload_libraries", "auto_explain", False),  # looked for in $libdir/plugins
    ],
)
def test_libraries_must_be_installed(
    catalogue: Catalogue, name: str, value: str, taken: bool
) -> None:
    assert (pg_params.check(catalogue, name, value) is None) is taken


# ---------------------------------------------------------------- managed parameters


def test_every_parameter_the_agent_owns_is_refused_at_the_doors() -> None:
    assert set(pg_conf._AGENT_OWNED) | {"cluster_name"} == set(pg_params.MANAGED)
    for name in pg_params.MANAGED:
        assert pg_params.managed(name, "x") is not None, name
        assert pg_params.managed(name.upper(), "x") is not None, name


@pytest.mark.parametrize(("value", "refused"), [("on", False), (True, False), ("off", True)])
def test_always_on_parameters_may_say_on(value: pg_params.ParamValue, refused: bool) -> None:
    for name in pg_params.ALWAYS_ON:
        assert (pg_params.managed(name, value) is not None) is refused


# ---------------------------------------------------------------- without a catalogue


@pytest.mark.parametrize(
    ("name", "value", "taken"),
    [
        ("work_mem", "-7 parsecs", True),  # not judged without the catalogue
        ("whatever", 1, True),
        ("port", 1, False),
        ("bad name", 1, False),
        ("work_mem", None, False),
        ("work_mem", [1], False),
        ("work_mem", "a\nb", False),
        ("log_line_prefix", "%m\t[%p] ", True),  # a tab is fine
    ],
)
def test_without_a_catalogue_only_the_form_is_checked(
    name: str, value: object, taken: bool
) -> None:
    assert (pg_params.check(None, name, value) is None) is taken


# ---------------------------------------------------------------- values read from the DCS


def test_refused_values_from_the_dcs_are_left_out_with_one_warning(
    catalogue: Catalogue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pgha.agent.pg.params")
    raw = {
        "work_mem": "-7 parsecs",
        "shared_preload_libraries": "pg_stat_statementz",
        "maintenance_work_mem": "20MB",
        "port": 1,
        "hot_standby": "on",
        "nested": {"a": 1},
    }
    for _ in range(3):  # every rendering of postgresql.conf
        assert pg_params.usable(catalogue, raw) == {"maintenance_work_mem": "20MB"}
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 4, warned  # work_mem, shared_preload_libraries, port, nested: once each
    assert any("postgresql.parameters.work_mem: expected an integer" in w for w in warned)
    caplog.clear()
    pg_params.usable(catalogue, {**raw, "work_mem": "-8 parsecs"})  # a new bad value: said again
    assert [r.getMessage() for r in caplog.records if "work_mem" in r.getMessage()] != []
    assert len(caplog.records) == 1
    caplog.clear()
    pg_params.usable(catalogue, {})  # another rendering without parameters forgets nothing
    pg_params.usable(catalogue, {**raw, "work_mem": "-8 parsecs"})
    assert caplog.records == []
    pg_params.usable(catalogue, {"work_mem": "8MB"})
    pg_params.usable(catalogue, {"work_mem": "-8 parsecs"})  # bad again after a good one
    assert len(caplog.records) == 1


def test_the_rendered_conf_leaves_out_what_postgresql_would_refuse(catalogue: Catalogue) -> None:
    from pgha.agent.pg.settings import PgSettings

    settings = PgSettings(name="n1", data_dir="/nonexistent", bin_dir=PG_BIN)
    dynamic = {"parameters": {"work_mem": "-7 parsecs", "maintenance_work_mem": "20MB"}}
    params = pg_conf.parameters(settings, pg_conf.ConfInputs(dynamic=dynamic))
    assert params["maintenance_work_mem"] == "20MB"
    assert "work_mem" not in params
