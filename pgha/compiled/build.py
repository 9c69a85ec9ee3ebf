# Building the compiled modules (issue 15). Which modules: the ones the simulator and the explorer
# spend their time in, measured (docs/design.md, "The compiled build"): the engine, the shared
# loop (with its events and status), executor, health answers and history, the checkers the
# explorer feeds on every event, and the simulator's model; not the package faces (`__init__.py`,
# which re-export), the notebooks' sim/analysis.py, nor the explorer (sim/explore: pools, pickling,
# Hypothesis; its own code is under 2% of an exploration's time). One mypyc group: calls between
# these modules are native C calls.
#
# The build runs in a child process (`python -m pgha.compiled.build ROOT WORK ...`), its output in
# WORK/build.log: mypyc type-checks with the project's mypy settings (pyproject.toml), writes one C
# file per module into WORK and setuptools compiles them there, --jobs at a time; nothing is
# written into the source tree. The parent hashes
# the sources before and after (a source edited meanwhile fails the build instead of being recorded
# with the wrong hash), writes the manifest last and puts the new build in place of the old.
"""`pgha compile`'s build: the compiled modules of a checkout, their sources and the manifest."""

from __future__ import annotations

import ast
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any

from pgha.compiled import FORMAT, MANIFEST, SUFFIX

PATTERNS = (
    "pgha/engine/*.py",
    "pgha/loop.py",
    "pgha/events.py",
    "pgha/status.py",
    "pgha/executor.py",
    "pgha/health.py",
    "pgha/history.py",
    "pgha/checks/*.py",
    "sim/*.py",
    "sim/postgres/*.py",
)
SKIPPED = frozenset({"sim/analysis.py"})  # the notebooks' simulate and sweep: not a hot path
PACKAGES = ("pgha", "sim", "chaos")  # the project's packages: their imports are sources too
GROUP = "pgha_compiled"  # mypyc's shared library is the module pgha_compiled__mypyc
LOG = "build.log"


class BuildError(Exception):
    """The build failed; the message says why (and where its log is)."""


def compiled_files(root: str) -> list[str]:
    """The files to compile, relative to `root`, sorted."""
    found = {
        os.path.relpath(path, root)
        for pattern in PATTERNS
        for path in glob.glob(os.path.join(root, pattern))
    }
    return sorted(f for f in found if os.path.basename(f) != "__init__.py" and f not in SKIPPED)


def module_name(path: str) -> str:
    """`sim/postgres/wal.py` -> `sim.postgres.wal` (a package face is the package)."""
    parts = path.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_closure(root: str, files: Iterable[str]) -> list[str]:
    """`files` and every project source they import, directly or not, with the package faces
    Python runs on the way (all imports count: in functions, for type checking only, relative)."""
    todo, seen = list(files), set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        name = module_name(path)
        with open(os.path.join(root, path), "rb") as file:
            tree = ast.parse(file.read(), path)
        for imported in _imports(tree, name, path.endswith("__init__.py")):
            todo.extend(_files_of(root, imported))
    return sorted(seen)


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def _files_of(root: str, module: str) -> list[str]:
    """The project files importing `module` runs: each package face on the way, and its own."""
    parts, files = module.split("."), []
    for depth in range(1, len(parts) + 1):
        base = "/".join(parts[:depth])
        for candidate in (f"{base}/__init__.py", f"{base}.py"):
            if os.path.isfile(os.path.join(root, candidate)):
                files.append(candidate)
    return files


def hashes(root: str, paths: Iterable[str]) -> dict[str, str]:
    """The sha256 of each file (paths relative to `root`)."""
    out = {}
    for path in paths:
        with open(os.path.join(root, path), "rb") as file:
            out[path] = sha256(file.read()).hexdigest()
    return out


# ---------------------------------------------------------------- the build


def build(root: str, directory: str, *, jobs: int = 1, opt_level: str = "3") -> dict[str, Any]:
    """Compile `root`'s hot modules into `directory` (replacing what is there), `jobs` C files at
    a time; the manifest.

    Raises BuildError (with the log's path) when the build fails or a source changed meanwhile.
    """
    files = compiled_files(root)
    sources = hashes(root, source_closure(root, files))
    work = directory + ".work"
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    started = time.monotonic()
    _compile(root, work, files, opt_level, jobs)
    if hashes(root, sources) != sources:
        raise BuildError("a source changed during the build: run `pgha compile` again")
    lib = os.path.join(work, "lib")
    manifest = {
        "format": FORMAT,
        "suffix": SUFFIX,
        "root": root,
        "python": sys.version,
        "mypy": _mypy_version(),
        "built": datetime.now(UTC).isoformat(timespec="seconds"),
        "build_s": round(time.monotonic() - started, 1),
        "jobs": jobs,
        "compiled": files,
        "modules": _extensions(lib, files),
        "sources": sources,
    }
    os.replace(os.path.join(work, LOG), os.path.join(lib, LOG))
    with open(os.path.join(lib, MANIFEST), "w", encoding="utf-8") as out:
        json.dump(manifest, out, indent=1, sort_keys=True)
    _swap(lib, directory)
    shutil.rmtree(work, ignore_errors=True)
    return manifest


def _compile(root: str, work: str, files: list[str], opt_level: str, jobs: int) -> None:
    log_path = os.path.join(work, LOG)
    command = [sys.executable, "-m", "pgha.compiled.build", root, work, opt_level, str(jobs)]
    command += files
    env = {**os.environ, "PGHA_COMPILED": "0"}
    with open(log_path, "w", encoding="utf-8") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=root, env=env)
    if done.returncode != 0:
        with open(log_path, encoding="utf-8", errors="replace") as log:
            tail = "".join(log.readlines()[-15:])
        raise BuildError(f"mypyc failed (exit {done.returncode}); log: {log_path}\n{tail}")


def _extensions(lib: str, files: list[str]) -> dict[str, str]:
    """Module name -> extension file (relative to the build) of every compiled module and of the
    group's shared library; BuildError if one is missing."""
    names = [module_name(f) for f in files] + [f"{GROUP}__mypyc"]
    modules = {name: name.replace(".", "/") + SUFFIX for name in names}
    missing = [f for f in modules.values() if not os.path.isfile(os.path.join(lib, f))]
    if missing:
        raise BuildError(f"the build made no {missing[0]}")
    return modules


def _swap(new: str, directory: str) -> None:
    """Put `new` in place of `directory`: a process importing meanwhile sees no build, or one."""
    old = directory + ".old"
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(directory):
        os.replace(directory, old)
    os.replace(new, directory)
    shutil.rmtree(old, ignore_errors=True)


def _mypy_version() -> str:
    from mypy.version import __version__

    return __version__


def missing_tools() -> list[str]:
    """What the build needs and this machine lacks: mypy (mypyc), setuptools, the Python
    headers, a C compiler."""
    import importlib.util
    import sysconfig

    lacking = [
        f"{name} (pip install -e '.[compile]')"
        for name in ("mypy", "setuptools")
        if importlib.util.find_spec(name) is None
    ]
    include = sysconfig.get_paths()["include"]
    if not os.path.isfile(os.path.join(include, "Python.h")):
        lacking.append(f"the Python headers ({include}/Python.h; Debian: python3-dev)")
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        lacking.append(f"a C compiler ({compiler}; Debian: gcc)")
    return lacking


# ---------------------------------------------------------------- the child process


def _child(root: str, work: str, opt_level: str, jobs: int, files: list[str]) -> None:
    """mypyc and setuptools, in `root` (for pyproject.toml's mypy settings), output into `work`.

    One C file per module (multi_file), compiled `jobs` at a time: on two cores a third of the
    wall time of one big file, and half its CPU time (gcc's optimizer grows faster than the file),
    for the same speed of the compiled code (measured)."""
    from mypyc.build import mypycify
    from setuptools import Distribution

    extensions = mypycify(
        files,
        opt_level=opt_level,
        group_name=GROUP,
        target_dir=os.path.join(work, "c"),
        multi_file=True,
    )
    command = _parallel_build_ext(jobs)(Distribution({"name": GROUP, "ext_modules": extensions}))
    command.build_lib = os.path.join(work, "lib")
    command.build_temp = os.path.join(work, "temp")
    command.ensure_finalized()
    command.run()


def _parallel_build_ext(jobs: int) -> Any:
    """setuptools' build_ext, compiling the C files of one extension `jobs` at a time."""
    from setuptools.command.build_ext import build_ext

    class ParallelBuildExt(build_ext):  # type: ignore[misc]
        def build_extension(self, ext: Any) -> None:
            if hasattr(self.compiler, "_setup_compile") and jobs > 1:
                self.compiler.compile = _parallel_compile(self.compiler, jobs)
            super().build_extension(ext)

    return ParallelBuildExt


def _parallel_compile(compiler: Any, jobs: int) -> Any:
    """`compiler.compile` (distutils' signature), `jobs` files at a time through the compiler's
    own per-file step, as pybind11's ParallelCompile does."""
    from concurrent.futures import ThreadPoolExecutor

    def compile_all(
        sources: list[str],
        output_dir: str | None = None,
        macros: Any = None,
        include_dirs: Any = None,
        debug: int = 0,
        extra_preargs: Any = None,
        extra_postargs: Any = None,
        depends: Any = None,
    ) -> list[str]:
        macros, objects, extra_postargs, pp_opts, build = compiler._setup_compile(
            output_dir, macros, include_dirs, sources, depends, extra_postargs
        )
        cc_args = compiler._get_cc_args(pp_opts, debug, extra_preargs)

        def one(obj: str) -> None:
            source, extension = build[obj]
            compiler._compile(obj, source, extension, cc_args, extra_postargs, pp_opts)

        with ThreadPoolExecutor(jobs) as pool:
            list(pool.map(one, objects))
        return list(objects)

    return compile_all


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:])
