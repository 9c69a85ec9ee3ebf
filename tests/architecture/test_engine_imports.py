"""Architecture rules for the pure decision engine (pgha/engine).

The engine takes values and returns decisions: no I/O, no clock, no randomness, no project imports
but its own modules. These tests read the engine's source (AST only, nothing is imported) and fail
on any import outside the allow-list, on the use of I/O or dynamic-code builtins, and on modules or
functions that grew too large. They fail, rather than pass vacuously, when the engine has no source.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
ENGINE_DIR = REPO_ROOT / "pgha" / "engine"
ENGINE_PACKAGE = "pgha.engine"

# The standard library's value modules; nothing that reads a clock, a file, the network or entropy.
ALLOWED_STDLIB = frozenset(
    {
        "__future__",
        "collections.abc",
        "dataclasses",
        "enum",
        "functools",
        "itertools",
        "math",
        "typing",
    }
)
FORBIDDEN_BUILTINS = frozenset({"open", "print", "eval", "exec", "__import__"})

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 40


def _is_allowed(module: str) -> bool:
    in_engine = module == ENGINE_PACKAGE or module.startswith(ENGINE_PACKAGE + ".")
    return in_engine or module in ALLOWED_STDLIB


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str | None:
    """Absolute name of `from <level dots><target> import ...` in `module`; None if it escapes."""
    package_parts = module.split(".") if is_package else module.split(".")[:-1]
    if level - 1 >= len(package_parts):
        return None
    base = package_parts[: len(package_parts) - (level - 1)]
    return ".".join([*base, target] if target else base)


def forbidden_imports(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """Violations of the engine's rules in `source`, the text of the module named `module`.

    `is_package` says that `source` is the package's `__init__.py` (relative imports then resolve
    from `module` itself). Each violation names the module and line and the offending import or
    builtin.
    """
    violations: list[str] = []
    for node in ast.walk(ast.parse(source)):
        where = f"{module}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            violations.extend(
                f"{where}: imports {alias.name}"
                for alias in node.names
                if not _is_allowed(alias.name)
            )
        elif isinstance(node, ast.ImportFrom):
            target = node.module
            if node.level:
                target = _resolve_relative(module, is_package, node.level, node.module)
                if target is None:
                    dots = "." * node.level
                    violations.append(f"{where}: relative import {dots}{node.module or ''} escapes")
                    continue
            assert target is not None
            for alias in node.names:
                imported = f"{target}.{alias.name}"
                if not (_is_allowed(target) or _is_allowed(imported)):
                    violations.append(f"{where}: imports {imported}")
        elif (
            isinstance(node, ast.Name)
            and isinstance(node.ctx, ast.Load)
            and node.id in FORBIDDEN_BUILTINS
        ):
            violations.append(f"{where}: uses builtin {node.id}")
    return violations


def oversized(
    source: str,
    module: str,
    max_module_lines: int = MAX_MODULE_LINES,
    max_function_lines: int = MAX_FUNCTION_LINES,
) -> list[str]:
    """Modules longer than `max_module_lines` and functions longer than `max_function_lines`.

    A function's length runs from its `def` line to the end of its body (docstring included,
    decorators excluded): end_lineno - lineno + 1.
    """
    offenders: list[str] = []
    module_lines = len(source.splitlines())
    if module_lines > max_module_lines:
        offenders.append(f"{module}: {module_lines} lines > {max_module_lines}")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            length = node.end_lineno - node.lineno + 1
            if length > max_function_lines:
                offenders.append(
                    f"{module}:{node.lineno}: {node.name}() {length} lines > {max_function_lines}"
                )
    return offenders


def _module_name(path: Path) -> tuple[str, bool]:
    relative = path.relative_to(REPO_ROOT).with_suffix("")
    parts = relative.parts
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def engine_sources() -> list[tuple[str, bool, str]]:
    """(module name, is package, source) for every .py file under pgha/engine; fails if none."""
    assert ENGINE_DIR.is_dir(), f"{ENGINE_DIR} does not exist: the architecture rules check nothing"
    paths = sorted(ENGINE_DIR.rglob("*.py"))
    assert paths, f"no .py files under {ENGINE_DIR}: the architecture rules check nothing"
    return [(*_module_name(path), path.read_text(encoding="utf-8")) for path in paths]


# ---------------------------------------------------------------- the rules, on the real engine


def test_engine_imports_only_its_own_modules_and_value_stdlib() -> None:
    violations = [
        violation
        for module, is_package, source in engine_sources()
        for violation in forbidden_imports(source, module, is_package=is_package)
    ]
    assert not violations, "engine purity violations:\n" + "\n".join(violations)


def test_engine_modules_and_functions_are_small() -> None:
    offenders = [
        offender for module, _, source in engine_sources() for offender in oversized(source, module)
    ]
    assert not offenders, "engine size limits exceeded:\n" + "\n".join(offenders)


# ---------------------------------------------------------------- the checkers catch violations


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import time", "imports time"),
        ("import random", "imports random"),
        ("import os.path", "imports os.path"),
        ("from datetime import datetime", "imports datetime"),
        ("from collections import deque", "imports collections"),
        ("from pgha.agent import x", "imports pgha.agent.x"),
        ("from pgha import cli", "imports pgha.cli"),
        ("import sim", "imports sim"),
        ("from chaos.nemesis import kill", "imports chaos.nemesis"),
        ("from .. import cli", "imports pgha.cli"),
        ("from .. import engine, cli", "imports pgha.cli"),
        ("from ..agent.dcs import Etcd", "imports pgha.agent.dcs"),
        ("from .... import x", "escapes"),
        ("def f():\n    import socket\n", "imports socket"),
        ("open('f')", "uses builtin open"),
        ("print('x')", "uses builtin print"),
        ("eval('1')", "uses builtin eval"),
        ("exec('1')", "uses builtin exec"),
        ("__import__('os')", "uses builtin __import__"),
        ("log = print", "uses builtin print"),
    ],
)
def test_checker_reports_violation(source: str, expected: str) -> None:
    violations = forbidden_imports(source, "pgha.engine.x")
    assert len(violations) == 1
    assert expected in violations[0]
    assert violations[0].startswith("pgha.engine.x:")


@pytest.mark.parametrize(
    "source",
    [
        "from __future__ import annotations",
        "import enum",
        "from dataclasses import dataclass, field",
        "from typing import Protocol",
        "from collections.abc import Mapping",
        "import collections.abc",
        "from collections import abc",
        "import math, itertools, functools",
        "from . import rules",
        "from .rules import Rule",
        "from pgha.engine.rules import Rule",
        "from pgha import engine",
        "import pgha.engine.roles",
        "result.open()",
    ],
)
def test_checker_accepts_allowed_source(source: str) -> None:
    assert forbidden_imports(source, "pgha.engine.x") == []


def test_checker_resolves_relative_imports_from_package_init() -> None:
    assert forbidden_imports("from . import rules", "pgha.engine", is_package=True) == []
    assert forbidden_imports("from .roles import Role", "pgha.engine", is_package=True) == []
    violations = forbidden_imports("from . import cli", "pgha.engine", is_package=False)
    assert violations == ["pgha.engine:1: imports pgha.cli"]
    assert forbidden_imports("from .. import rules", "pgha.engine.sub", is_package=True) == []
    violations = forbidden_imports("from ... import cli", "pgha.engine.sub", is_package=True)
    assert violations == ["pgha.engine.sub:1: imports pgha.cli"]


def test_size_checker_reports_long_module_and_function() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(39))
    fits = f"def fits():\n{body}\n"  # def line + 39 body lines = 40
    too_long = f"async def too_long():\n{body}\n    return x0\n"  # 41 lines
    assert oversized(fits, "pgha.engine.m") == []
    assert oversized(too_long, "pgha.engine.m") == ["pgha.engine.m:1: too_long() 41 lines > 40"]
    method_body = "\n".join(f"        x{i} = {i}" for i in range(39))
    method = f"class C:\n    def m(self):\n        '''Doc.'''\n{method_body}\n"  # 41 lines
    assert [o.split(": ", 1)[1] for o in oversized(method, "pgha.engine.m")] == [
        "m() 41 lines > 40"
    ]
    long_module = "x = 1\n" * 501
    assert oversized(long_module, "pgha.engine.m") == ["pgha.engine.m: 501 lines > 500"]
    assert oversized("x = 1\n" * 500, "pgha.engine.m") == []
