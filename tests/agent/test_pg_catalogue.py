"""The settings catalogue of the installed PostgreSQL (pg_catalogue): read from the real binaries.

One real read from a scratch cluster per module (~1 s); the disk cache, the `--describe-config`
fallback and the process's active catalogue are exercised on the same binaries.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgha.agent.pg import catalogue as pg_catalogue
from pgha.agent.pg.catalogue import Catalogue, CatalogueError, VarType, read_catalogue
from tests.agent.conftest import OS_USER, PG_BIN

pytestmark = pytest.mark.agent


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("catalogue-cache")


@pytest.fixture(scope="module")
def scratch(cache_dir: Path) -> Catalogue:
    """Read from a scratch cluster (the cache directory is empty), then cached there."""
    return read_catalogue(PG_BIN, pg_catalogue.scratch_user(OS_USER), cache_dir)


@pytest.fixture
def restore_active() -> Iterator[None]:
    yield
    pg_catalogue.use(PG_BIN, OS_USER)


def test_the_catalogue_is_pg_settings_of_the_installed_server(scratch: Catalogue) -> None:
    assert scratch.complete
    assert scratch.version.startswith("15.")
    assert scratch.pkglibdir is not None
    assert (Path(scratch.pkglibdir) / "plpgsql.so").is_file()
    work_mem = scratch.get("WORK_MEM")  # names are case-insensitive, as in PostgreSQL
    assert work_mem is not None
    assert (work_mem.vartype, work_mem.unit, work_mem.min_val) == (VarType.INTEGER, "kB", 64)
    shared_buffers = scratch.get("shared_buffers")
    assert shared_buffers is not None
    assert shared_buffers.unit == "8kB"
    wal_level = scratch.get("wal_level")
    assert wal_level is not None
    assert wal_level.enumvals == ("minimal", "replica", "logical")
    isolation = scratch.get("transaction_isolation")
    assert isolation is not None
    assert "repeatable read" in (isolation.enumvals or ())
    block_size = scratch.get("block_size")
    assert block_size is not None
    assert block_size.context == "internal"
    assert scratch.get("pg_stat_statements.max") is None


def test_a_second_read_comes_from_the_disk_cache(scratch: Catalogue, cache_dir: Path) -> None:
    (cached,) = cache_dir.glob("catalogue-*.json")
    assert cached.stat().st_mode & 0o777 == 0o600
    again = read_catalogue(PG_BIN, None, cache_dir)  # no user: a scratch cluster could not run
    assert again == scratch
    document = json.loads(cached.read_text())
    cached.write_text(json.dumps({**document, "version": "from-the-cache"}))
    assert read_catalogue(PG_BIN, None, cache_dir).version == "from-the-cache"
    cached.write_text(json.dumps({**document, "version": scratch.version}))


@pytest.mark.parametrize(
    "garbage",
    ["", "not json", "[]", '{"format": 1}', '{"format": 1, "version": "x", "rows": [[1]]}'],
)
def test_a_damaged_cache_file_is_read_again_from_the_server(
    tmp_path: Path, scratch: Catalogue, garbage: str
) -> None:
    read_catalogue(PG_BIN, None, tmp_path)  # no user: --describe-config, and nothing cached
    assert list(tmp_path.glob("catalogue-*.json")) == []
    key = pg_catalogue._cache_key(PG_BIN)
    (tmp_path / f"catalogue-{key}.json").write_text(garbage)
    found = read_catalogue(PG_BIN, None, tmp_path)
    assert not found.complete  # the damaged file was not used


def test_without_a_user_for_initdb_describe_config_gives_a_partial_catalogue(
    scratch: Catalogue,
) -> None:
    partial = read_catalogue(PG_BIN, None, None)
    assert not partial.complete
    assert partial.version == scratch.version
    assert set(partial.settings) < set(scratch.settings)
    work_mem = partial.get("work_mem")
    assert work_mem is not None
    assert (work_mem.unit, work_mem.min_val, work_mem.max_val) == (None, 64, 2147483647)
    wal_level = partial.get("wal_level")
    assert wal_level is not None
    assert wal_level.enumvals is None


def test_no_server_is_an_error_that_says_where(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="no PostgreSQL server in /nonexistent"):
        read_catalogue("/nonexistent", None, tmp_path)


@pytest.mark.parametrize(
    "text",
    ["", "a,b\n", "work_mem,user,bignum,kB,64,100,\n"],
)
def test_malformed_pg_settings_output_is_an_error(text: str) -> None:
    with pytest.raises(CatalogueError):
        pg_catalogue.parse_pg_settings(text)


def test_malformed_describe_config_output_is_an_error() -> None:
    with pytest.raises(CatalogueError):
        pg_catalogue.parse_describe_config("garbage\nmore\tgarbage\n")


def test_the_active_catalogue_follows_the_configured_bin_dir(restore_active: None) -> None:
    pg_catalogue.use(PG_BIN, OS_USER)
    found = pg_catalogue.active()
    assert found is not None
    assert found.complete
    assert pg_catalogue.active() is found  # read once
    pg_catalogue.use("/nonexistent/bin", OS_USER)
    assert pg_catalogue.active() is None
    assert "no PostgreSQL server in /nonexistent/bin" in pg_catalogue.unavailable()
