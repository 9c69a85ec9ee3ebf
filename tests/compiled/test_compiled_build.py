"""A real compiled build (`pgha compile`; made once per session, tests/compiled/conftest.py).

Its modules are imported from the build, every one of them; PGHA_COMPILED=0 forces pure Python;
the same seed writes a byte-identical history compiled and pure; an exploration (worker processes,
shrinking, reproducers) gives the same verdict; frozen compiled values copy and pickle; one edited
source, compiled or only imported by compiled code, turns the whole build off until it matches
again; `pgha compile --status`, the no-op rebuild and `--clean` on a copy of the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pgha import compiled
from tests.compiled.helpers import PROBE, ROOT, env_for, python

pytestmark = [pytest.mark.compiled, pytest.mark.slow]

# Every module of the build, where it came from.
ALL_MODULES = """
import importlib, json, sys
from pgha import compiled
names = json.loads(sys.argv[1])
print(json.dumps({n: importlib.import_module(n).__file__ for n in names}))
"""


def manifest(cache: Path, tree: Path = ROOT) -> dict[str, Any]:
    found = compiled.read_manifest(compiled.build_dir(str(tree), str(cache)))
    assert found is not None
    return found


def probe(cache: Path, mode: str | None, tree: Path = ROOT) -> tuple[dict[str, Any], str]:
    done = python(["-c", PROBE], cache, mode, tree)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def test_every_compiled_module_is_imported_from_the_build(cache: Path) -> None:
    names = [compiled_name(path) for path in manifest(cache)["compiled"]]
    assert len(names) > 40
    done = python(["-c", ALL_MODULES, json.dumps(names)], cache, "1")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    files = json.loads(done.stdout)
    directory = compiled.build_dir(compiled.ROOT, str(cache))
    assert all(f.startswith(directory) and f.endswith(compiled.SUFFIX) for f in files.values())
    seen, _ = probe(cache, None)  # unset: a fresh build is used too
    assert seen["active"] is True
    assert seen["files"]["sim.net"].endswith(compiled.SUFFIX)


def compiled_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def test_pgha_compiled_0_forces_pure_python(cache: Path) -> None:
    seen, err = probe(cache, "0")
    assert seen["active"] is False
    assert seen["reason"] == "PGHA_COMPILED=0 forces pure Python"
    assert all(f.startswith(str(ROOT)) and f.endswith(".py") for f in seen["files"].values())
    assert err == ""


@pytest.mark.parametrize(
    ("scenario", "seed"),
    [
        ("issue-example.yaml", 3),
        ("sync-failover.yaml", 11),
        ("rejoin-rewind.yaml", 7),
        ("agent-pause-no-watchdog.yaml", 1),  # fails: split-brain
    ],
)
def test_the_same_seed_writes_the_same_history(
    cache: Path, tmp_path: Path, scenario: str, seed: int
) -> None:
    runs = {}
    for mode in ("1", "0"):
        out = tmp_path / mode
        args = ["-m", "pgha", "sim", "run", f"scenarios/{scenario}", "--seed", str(seed)]
        done = python([*args, "--out", str(out)], cache, mode)
        assert done.returncode in (0, 1), done.stderr
        runs[mode] = (done.returncode, (out / "history.jsonl").read_bytes())
    assert runs["1"][0] == runs["0"][0]
    assert runs["1"][1] == runs["0"][1]
    assert len(runs["1"][1]) > 10_000


@pytest.mark.parametrize("variant", [None, "watchdog-not-armed"])
def test_an_exploration_finds_the_same(cache: Path, tmp_path: Path, variant: str | None) -> None:
    # Two worker processes (values pickled both ways), shrinking, reproducers written and re-run.
    found = {}
    for mode in ("1", "0"):
        out = tmp_path / mode
        args = ["-m", "pgha", "sim", "explore", "scenarios/variants/watchdog-not-armed.yaml"]
        args += ["--budget", "6", "--seed", "0", "--workers", "2", "--keep", "1"]
        args += ["--out", str(out), *(["--engine-variant", variant] if variant else [])]
        done = python(args, cache, mode)
        assert done.returncode == (1 if variant else 0), done.stdout + done.stderr
        summary = json.loads((out / "explore.json").read_text())
        del summary["wall_s"]
        written = {p.name: p.read_bytes() for p in sorted(out.glob("*.yaml"))}
        reproducers = {k: v.replace(bytes(out), b"OUT") for k, v in written.items()}
        text = json.dumps(summary).replace(str(out), "OUT")
        found[mode] = (text, reproducers)
    assert found["1"] == found["0"]
    assert bool(found["1"][1]) is bool(variant)


FROZEN = """
import copy, dataclasses, json, pickle
from pgha.engine.values import Tags
from pgha.engine.state import NodeState
from sim.variants import VARIANTS, WallClockState
values = [Tags(nofailover=True), NodeState(name="n1"), *VARIANTS.values()]
values.append(WallClockState(name="n2", lock_deadline_wall=3.0))
same = [pickle.loads(pickle.dumps(v)) == v and copy.copy(v) == v and copy.deepcopy(v) == v
        for v in values]
print(json.dumps(["__mypyc_attrs__" in vars(Tags), all(same), len(values)]))
"""


def test_compiled_frozen_values_copy_and_pickle(cache: Path) -> None:
    done = python(["-c", FROZEN], cache, "1")
    assert done.returncode == 0, done.stderr
    native, same, count = json.loads(done.stdout)
    assert native is True  # Tags is a compiled (native) class here
    assert same is True
    assert count > 5


@pytest.mark.parametrize("edited", ["sim/net.py", "pgha/scenario/_model.py"])
def test_one_edited_source_turns_the_whole_build_off(
    copied: tuple[Path, Path], edited: str
) -> None:
    tree, cache = copied
    seen, err = probe(cache, "1", tree)
    assert seen["active"] is True, seen["reason"]
    path = tree / edited
    original = path.read_bytes()
    path.write_bytes(original + b"# edited\n")
    try:
        seen, err = probe(cache, "1", tree)
        assert seen["active"] is False
        assert seen["reason"].startswith(f"stale: {edited} changed since the build")
        assert all(f.startswith(str(tree)) and f.endswith(".py") for f in seen["files"].values())
        assert err == f"pgha: PGHA_COMPILED=1: running pure Python: {seen['reason']}\n"
        seen, err = probe(cache, None, tree)  # not asked for: silent
        assert (seen["active"], err) == (False, "")
    finally:
        path.write_bytes(original)
    seen, _ = probe(cache, "1", tree)
    assert seen["active"] is True


def test_a_package_of_another_tree_is_not_shadowed(
    copied: tuple[Path, Path], tmp_path: Path
) -> None:
    # sim from another tree (first on sys.path), pgha from the built one: only pgha is compiled.
    tree, cache = copied
    other = tmp_path / "other"
    shutil.copytree(tree / "sim", other / "sim")
    env = env_for(cache, "1", tree)
    env["PYTHONPATH"] = f"{other}{os.pathsep}{tree}"
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    files = json.loads(done.stdout)["files"]
    assert files["sim.net"] == str(other / "sim" / "net.py")
    assert files["pgha.engine.rules"].endswith(compiled.SUFFIX)


def test_status_rebuild_and_clean(copied: tuple[Path, Path]) -> None:
    tree, cache = copied
    status = python(["-m", "pgha", "compile", "--status"], cache, None, tree)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "fresh: yes\nactive: yes\n" in status.stdout
    again = python(["-m", "pgha", "compile"], cache, None, tree)
    assert again.returncode == 0
    assert "is fresh: nothing to do" in again.stdout
    (tree / "sim" / "world.py").write_text("# replaced\n")
    status = python(["-m", "pgha", "compile", "--status"], cache, None, tree)
    assert status.returncode == 1
    assert "fresh: no: changed since the build: sim/world.py\n" in status.stdout
    assert "active: no: stale: sim/world.py changed since the build" in status.stdout
    clean = python(["-m", "pgha", "compile", "--clean"], cache, None, tree)
    assert clean.returncode == 0
    assert clean.stdout.startswith(f"removed {compiled.build_dir(str(tree), str(cache))}")
    status = python(["-m", "pgha", "compile", "--status"], cache, None, tree)
    assert (status.returncode, "present: no" in status.stdout) == (1, True)
