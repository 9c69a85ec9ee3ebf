# Why the checks are parsed with the scenario's parser: `--checks FILE` and `--set key=value` take
# the keys and value syntax of a scenario's `checks:` section, so they go through the very code
# that reads that section (`pgha.scenario._sections.checks`), with its file:line errors. The
# history's own checks (run_start) are turned into such a section too when `--set` needs a base.
# Without matplotlib (the `sim` extra) pgha.report cannot be imported; summary.json and junit.xml
# are then written here, in the same form (tests/history/test_check_cli.py keeps them equal).
"""``pgha check HISTORY``: re-check and re-render a history that already exists.

A history written by ``pgha sim run``, ``pgha chaos run`` or an agent's ``log.history`` is read
again in one streaming pass and judged by the checks its ``run_start`` names (defaults when it
names none), or by the ``checks:`` section of ``--checks FILE``, with single keys changed by
``--set key=value``. summary.json, junit.xml and report.html are written again (into the history's
directory unless ``--out``; the history itself is never written), and the verdict lines of ``pgha
sim run`` are printed. Exit codes: 0 every check holds, 1 a check broke, 2 bad input (the message
names the file and line, or the option). Imports neither :mod:`sim` nor :mod:`chaos`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from pgha.checks import CheckReport
    from pgha.history import Event
    from pgha.located.tree import Node
    from pgha.scenario import ChecksSpec

EXIT_OK, EXIT_VIOLATION, EXIT_BAD_INPUT = 0, 1, 2  # as `pgha sim run`
EXIT_INTERRUPTED = 130
HISTORY_NAME = "history.jsonl"  # what a directory given as HISTORY must hold
REPORT_FILES = ("summary.json", "junit.xml", "report.html")
HTML_HINT = "the HTML report needs matplotlib: pip install 'pgha[sim]'"


class CheckInputError(ValueError):
    """Bad input to ``pgha check``; the message names the file and line, or the option."""


CHECK_DESCRIPTION = (
    "Re-check a history (from `pgha sim run`, `pgha chaos run` or an agent's log.history) and "
    "write its summary.json, junit.xml and report.html again. Exit code 0: every check holds; "
    "1: a check broke; 2: bad input."
)


def add_parser(commands: Any) -> None:
    """Add ``check`` to the ``pgha`` command's subparsers."""
    check = commands.add_parser(
        "check", help="re-check and re-render an existing history", description=CHECK_DESCRIPTION
    )
    check.add_argument(
        "history",
        type=Path,
        metavar="HISTORY",
        help=f"a history, or a directory with {HISTORY_NAME}",
    )
    check.add_argument(
        "--checks",
        type=Path,
        metavar="FILE",
        help="use the checks: section of FILE (a scenario, or a checks: mapping) instead of the "
        "checks the history names",
    )
    check.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one check, as in a scenario's checks: section (repeatable), e.g. "
        "failover_within=45s, max_lost_writes=1000, eventually_healthy=null",
    )
    check.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="output directory (default: the history's own)",
    )
    check.add_argument(
        "--show-decisions", action="store_true", help="mark engine decisions on the timeline"
    )


def run(args: argparse.Namespace) -> int:
    """``pgha check`` with the parsed arguments of :func:`add_parser`."""
    return check_history(
        args.history,
        checks=args.checks,
        overrides=args.overrides,
        out=args.out,
        decisions=args.show_decisions,
    )


def check_history(
    file: Path,
    *,
    checks: Path | None = None,
    overrides: Sequence[str] = (),
    out: Path | None = None,
    decisions: bool = False,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """``pgha check``: re-check `file`, write the reports, print the verdict; the exit code."""
    from pgha.history import HistoryError
    from pgha.scenario import ScenarioError

    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    try:
        history = _history_path(file)
        spec = resolve_spec(history, checks, overrides)
        job = _Job(history, out if out is not None else history.parent, spec, decisions)
        job.check()
        page = job.write(stderr)
    except (CheckInputError, HistoryError, ScenarioError) as error:
        print(f"pgha: {error}", file=stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("\npgha: interrupted", file=stderr)
        return EXIT_INTERRUPTED
    print(job.verdict(page, _how(checks, overrides)), file=stdout)
    return EXIT_OK if job.report.ok else EXIT_VIOLATION


def _history_path(file: Path) -> Path:
    if not file.is_dir():
        return file
    if (file / HISTORY_NAME).is_file():
        return file / HISTORY_NAME
    raise CheckInputError(f"{file}: a directory without {HISTORY_NAME}: name the history file")


def _how(checks: Path | None, overrides: Sequence[str]) -> str:
    changed = [f"checks from {checks}"] if checks is not None else []
    changed += [f"--set {option}" for option in overrides]
    return f" ({', '.join(changed)})" if changed else ""


# ---------------------------------------------------------------- reading and checking


@dataclass
class _Job:
    """One re-check: the pass over the history, what it saw, the report, where it goes."""

    history: Path
    out: Path
    spec: ChecksSpec | None
    decisions: bool
    run_start: Mapping[str, Any] = field(default_factory=dict)
    t_first: float | None = None
    t_last: float = 0.0
    wall_s: float = 0.0
    _report: CheckReport | None = None

    @property
    def report(self) -> CheckReport:
        assert self._report is not None, "check() first"
        return self._report

    def check(self) -> None:
        from pgha.checks import run_checks

        started = time.perf_counter()
        self._report = run_checks(self._events(), self.spec, source=str(self.history))
        self.wall_s = time.perf_counter() - started

    def _events(self) -> Generator[Event, None, None]:
        for event in read_events(self.history):
            if event.kind == "run_start" and not self.run_start:
                self.run_start = dict(event.fields)
            if self.t_first is None:
                self.t_first = event.t
            self.t_last = event.t
            yield event

    def write(self, stderr: TextIO) -> Path:
        """Write the reports into `out`; the file to open (report.html, else summary.json)."""
        for name in REPORT_FILES:
            if _same_file(self.history, self.out / name):
                raise CheckInputError(
                    f"{self.out / name}: is the history itself: choose another --out"
                )
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CheckInputError(
                f"{self.out}: cannot create the output directory: {error.strerror}"
            ) from None
        try:
            return self._write_files(stderr)
        except OSError as error:
            raise CheckInputError(f"{error.filename}: cannot write: {error.strerror}") from None

    def _write_files(self, stderr: TextIO) -> Path:
        try:
            from pgha.report import write_report
        except ModuleNotFoundError as error:
            if not (error.name or "").startswith("matplotlib"):
                raise
            write_without_html(self.history, self.run_start, self.report, self.out)
            print(f"pgha: wrote summary.json and junit.xml only; {HTML_HINT}", file=stderr)
            return self.out / "summary.json"
        write_report(self.history, self.report, self.out, show_decisions=self.decisions)
        return self.out / "report.html"

    def verdict(self, page: Path, how: str) -> str:
        from pgha.cli_verdict import verdict

        name = self.run_start.get("scenario") or self.history.name
        seed = self.run_start.get("seed")
        span_s = self.t_last - (self.t_last if self.t_first is None else self.t_first)
        done = f"{span_s:.0f} s of history checked in {self.wall_s:.2f} s"
        return verdict(
            str(name),
            seed if isinstance(seed, int) else None,
            self.report,
            f"re-check of {self.history}{how}: {done}",
            page,
        )


def read_events(history: Path) -> Generator[Event, None, None]:
    """The events of `history`; an unreadable file is a CheckInputError naming it."""
    from pgha.history import iter_history

    try:
        yield from iter_history(history)
    except OSError as error:
        raise CheckInputError(f"{history}: cannot read the history: {error.strerror}") from None
    except UnicodeDecodeError:
        raise CheckInputError(f"{history}: not a history (not UTF-8 text)") from None


def _same_file(history: Path, target: Path) -> bool:
    try:
        return os.path.samefile(history, target)
    except OSError:  # the target does not exist yet: writing it cannot touch the history
        return False


# ---------------------------------------------------------------- which checks


def resolve_spec(history: Path, checks: Path | None, overrides: Sequence[str]) -> ChecksSpec | None:
    """The checks to run: None (the history's own), or `checks`' section with `overrides` set."""
    changes = dict(parse_override(option) for option in overrides)
    if checks is not None:
        base = checks_from_file(checks)
    elif changes:
        base = history_checks(history)
    else:
        return None
    return dataclasses.replace(base, **changes)


def _checks_keys() -> tuple[str, ...]:
    from pgha.scenario import ACCEPTED_KEYS

    return tuple(ACCEPTED_KEYS["checks"])


def _spec_field(key: str) -> str:
    """The ChecksSpec field a `checks:` key sets (`failover_within` sets `failover_within_s`)."""
    from pgha.scenario import ChecksSpec

    names = {f.name for f in dataclasses.fields(ChecksSpec)}
    for name in (key, f"{key}_s"):
        if name in names:
            return name
    raise CheckInputError(f"checks key {key!r}: no such field in this pgha's ChecksSpec")


def parse_override(option: str) -> tuple[str, Any]:
    """``--set key=value`` as (ChecksSpec field, value); the value in the scenario's syntax."""
    from pgha.located.errors import Problem
    from pgha.located.tree import ROOT, Node, compose, suggest
    from pgha.scenario import _sections

    keys = _checks_keys()
    key, sep, value = option.partition("=")
    key = key.strip()
    if not sep or key not in keys:
        hint = suggest(key, keys) if sep else ""
        raise CheckInputError(
            f"--set {option}: expected KEY=VALUE with KEY one of {', '.join(keys)}"
            + (f"; {hint}" if hint else "")
        )
    try:
        parsed = compose(value).value if value.strip() else None
        spec = _sections.checks(Node({key: Node(parsed, 1, key)}, 1, ROOT))
    except Problem as problem:
        raise CheckInputError(
            f"--set {option}: expected {problem.expected}, got {problem.got}"
        ) from None
    name = _spec_field(key)
    return name, getattr(spec, name)


def checks_from_file(path: Path) -> ChecksSpec:
    """The `checks:` section of a scenario file, or of a file holding only that section."""
    from pgha.located.errors import Problem
    from pgha.located.tree import compose
    from pgha.scenario import ScenarioError, _sections

    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as error:
        raise CheckInputError(f"--checks {source}: cannot read it: {error.strerror}") from None
    except UnicodeDecodeError:
        raise CheckInputError(f"--checks {source}: not a YAML file (not UTF-8 text)") from None
    try:
        return _sections.checks(_checks_node(compose(text)))
    except Problem as problem:
        raise problem.at(source, ScenarioError) from None


def _checks_node(root: Node) -> Node | None:
    from pgha.located.tree import Node, problem
    from pgha.scenario import ACCEPTED_KEYS

    if not isinstance(root.value, dict):
        raise problem(root, "a scenario, or a mapping with a checks: section")
    section = root.value.get("checks")
    if isinstance(section, Node):
        return section
    if set(root.value) & (set(ACCEPTED_KEYS["scenario"]) - set(_checks_keys())):
        return None  # a scenario without a checks: section runs the default checks
    return root  # the section's keys at the top level


def history_checks(history: Path) -> ChecksSpec:
    """The checks the history's `run_start` names, as the checker reads them
    (`pgha.checks.spec_from_history`: a key it leaves out is a check switched off); the
    defaults when it names none."""
    from pgha.checks import spec_from_history
    from pgha.history import HistoryError
    from pgha.scenario import ChecksSpec

    events = read_events(history)
    with contextlib.closing(events):
        start = next((e for e in events if e.kind == "run_start"), None)
    named = None if start is None else start.get("checks")
    if start is None or named is None:
        return ChecksSpec()
    if not isinstance(named, Mapping):
        raise CheckInputError(f"{history}:{start.line}: run_start.checks: expected a mapping")
    try:
        return spec_from_history(named)
    except HistoryError as error:
        raise CheckInputError(f"{history}:{start.line}: {error}") from None


# ---------------------------------------------------------------- without matplotlib


def write_without_html(
    history: Path, run_start: Mapping[str, Any], report: CheckReport, out: Path
) -> None:
    """summary.json and junit.xml as pgha.report writes them, for hosts without matplotlib."""
    from pgha.report_files import junit_xml_of, summary_of

    document = summary_of(run_start, report, history_name=os.fspath(history))
    (out / "summary.json").write_text(json.dumps(document, sort_keys=True, indent=2) + "\n")
    (out / "junit.xml").write_bytes(junit_xml_of(run_start, report))
