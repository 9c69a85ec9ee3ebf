"""The compiled build's guard and command without a build (fast: nothing is compiled here).

Without a usable build nothing changes but a line on stderr when one was asked for; a manifest
that is unreadable, of another format or for another Python is not used; the sources a build
depends on are the compiled files and everything they import of the project; a test session that
asks for the compiled build fails when it is not there. tests/compiled/test_compiled_build.py
tests a real build.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pgha import compiled
from pgha.compiled import build as builder
from pgha.compiled.cli import main as compile_main
from pgha.engine.values import Tags
from tests.compiled.helpers import PROBE, ROOT, env_for, python

NO_BUILD = "no compiled build in"


def probe(cache: Path, mode: str | None) -> tuple[dict[str, Any], str]:
    done = python(["-c", PROBE], cache, mode)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def test_without_a_build_nothing_changes_and_nothing_is_said(tmp_path: Path) -> None:
    for mode in (None, "auto"):
        seen, err = probe(tmp_path, mode)
        assert seen["active"] is False
        assert NO_BUILD in seen["reason"]
        assert all(f.endswith(".py") for f in seen["files"].values())
        assert err == ""


def test_asking_for_a_missing_build_says_why_once(tmp_path: Path) -> None:
    seen, err = probe(tmp_path, "1")
    assert seen["active"] is False
    assert err.count("\n") == 1
    assert err.startswith("pgha: PGHA_COMPILED=1: running pure Python: no compiled build in ")


def test_pgha_compiled_0_needs_no_look_at_the_cache(tmp_path: Path) -> None:
    seen, err = probe(tmp_path / "missing", "0")
    assert seen["active"] is False
    assert seen["reason"] == "PGHA_COMPILED=0 forces pure Python"
    assert err == ""


def test_without_a_build_the_guard_imports_almost_nothing(tmp_path: Path) -> None:
    # The cost of `import pgha` without a build: an environment lookup and one failed open; no
    # JSON parser, no hashing.
    code = "import sys, pgha; print(sorted({'json', 'hashlib'} & set(sys.modules)))"
    done = python(["-c", code], tmp_path, None)
    assert done.stdout.strip() == "[]", done.stderr


def write_manifest(cache: Path, manifest: object) -> Path:
    directory = Path(compiled.build_dir(compiled.ROOT, str(cache)))
    directory.mkdir(parents=True)
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    (directory / compiled.MANIFEST).write_text(text)
    return directory


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        ("{not json", "unreadable manifest"),
        ({"format": 0}, "a manifest of another format"),
        ({"format": compiled.FORMAT, "suffix": compiled.SUFFIX}, "a malformed manifest"),
        (
            {"format": compiled.FORMAT, "suffix": ".cpython-27.so", "modules": {}, "sources": {}},
            "for another Python",
        ),
        (
            {
                "format": compiled.FORMAT,
                "suffix": compiled.SUFFIX,
                "modules": {"x": "x.so"},
                "sources": {"pgha/__init__.py": "0" * 64},
            },
            "the build is incomplete",
        ),
    ],
)
def test_a_build_that_cannot_be_used_is_not(tmp_path: Path, manifest: object, reason: str) -> None:
    directory = write_manifest(tmp_path, manifest)
    modules, why = compiled.check(str(directory))
    assert modules == {}
    assert reason in why
    seen, _ = probe(tmp_path, None)
    assert seen["active"] is False
    assert reason in seen["reason"]


def test_a_changed_or_missing_source_is_stale(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    sources = builder.hashes(str(tmp_path), ["a.py", "b.py"])
    assert compiled.stale_sources(sources, str(tmp_path)) == []
    (tmp_path / "a.py").write_text("x = 1  # edited\n")
    (tmp_path / "b.py").unlink()
    assert compiled.stale_sources(sources, str(tmp_path)) == ["a.py", "b.py"]


def test_the_build_depends_on_what_it_compiles_and_everything_that_imports() -> None:
    files = builder.compiled_files(str(ROOT))
    assert {
        "sim/net.py",
        "pgha/engine/rules.py",
        "pgha/history.py",
        "pgha/checks/_facts.py",
    } <= set(files)
    assert not [f for f in files if f.endswith("__init__.py") or f.startswith("sim/explore/")]
    assert "sim/analysis.py" not in files
    sources = builder.source_closure(str(ROOT), files)
    assert set(files) <= set(sources)
    # imported, not compiled: its types and constants are built into the compiled code
    assert {"pgha/scenario/_model.py", "pgha/__init__.py", "sim/postgres/__init__.py"} <= set(
        sources
    )
    assert "pgha/cli.py" not in sources
    assert not [s for s in sources if s.startswith(("chaos/", "sim/explore/"))]


def test_each_checkout_and_python_has_its_own_build_directory(tmp_path: Path) -> None:
    one = compiled.build_dir("/src/pgha", str(tmp_path))
    other = compiled.build_dir("/src/other/pgha", str(tmp_path))
    assert one != other
    assert Path(one).parent == tmp_path
    assert Path(one).name.startswith("pgha-")
    assert compiled.SUFFIX.split(".")[1] in Path(one).name  # cpython-311-...


def test_status_and_clean_without_a_build(tmp_path: Path) -> None:
    status = python(["-m", "pgha", "compile", "--status"], tmp_path, None)
    assert status.returncode == 1
    assert "present: no" in status.stdout
    assert f"active: no: {NO_BUILD}" in status.stdout
    clean = python(["-m", "pgha", "compile", "--clean"], tmp_path, None)
    assert clean.returncode == 0
    assert clean.stdout.startswith("nothing to remove")


def test_clean_removes_the_build_and_what_a_failed_build_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(compiled.DIR_ENV, str(tmp_path))
    directory = Path(compiled.build_dir())
    (directory.parent / (directory.name + ".work")).mkdir(parents=True)
    directory.mkdir()
    assert compile_main(["--clean"]) == 0
    assert not directory.exists()
    assert not (directory.parent / (directory.name + ".work")).exists()
    assert capsys.readouterr().out.startswith(f"removed {directory}, ")


def test_a_missing_tool_is_named_and_nothing_is_built(tmp_path: Path) -> None:
    env = env_for(tmp_path, None)
    env["PATH"] = str(tmp_path)  # no C compiler on it
    done = subprocess.run(
        [sys.executable, "-m", "pgha", "compile"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "pgha compile: missing a C compiler (" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_command_is_listed() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pgha", "--help"], capture_output=True, text=True, check=True
    )
    assert "compile" in done.stdout


def test_a_session_that_asks_for_the_compiled_build_fails_without_it(tmp_path: Path) -> None:
    # (PGHA_COMPILED=1 in a test session: CI's compiled leg; tests/conftest.py)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--co", "-q", __file__],
        cwd=ROOT,
        env=env_for(tmp_path, "1"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    assert "PGHA_COMPILED=1, but the compiled build is not active: no compiled build" in done.stderr


def test_a_frozen_value_is_rebuilt_as_unpickling_does() -> None:
    # The reducer the guard registers for compiled frozen dataclasses (their own __setstate__
    # assigns each field, which a frozen class refuses); on a pure class it works the same way.
    tags = Tags(nofailover=True, failover_priority=3)
    state = {name: getattr(tags, name) for name in Tags.__dataclass_fields__}
    assert compiled._rebuild_frozen(Tags, state) == tags
    assert pickle.loads(pickle.dumps(tags)) == tags
