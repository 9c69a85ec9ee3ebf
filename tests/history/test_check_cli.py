"""`pgha check HISTORY`: re-checking and re-rendering an existing history (issue 12, item 3)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pgha.cli import main

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "primary-crash.yaml"
REPORT_FILES = ("summary.json", "junit.xml", "report.html")


@dataclass(frozen=True)
class SimRun:
    """What `pgha sim run` left in its output directory, and what it printed."""

    out: Path
    stdout: str

    @property
    def history(self) -> Path:
        return self.out / "history.jsonl"

    def summary(self) -> dict[str, Any]:
        return _summary(self.out)


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory: pytest.TempPathFactory) -> SimRun:
    out = tmp_path_factory.mktemp("sim")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # capsys is function-scoped
        assert main(["sim", "run", str(SCENARIO), "--out", str(out)]) == 0
    return SimRun(out, printed.getvalue())


@pytest.fixture
def run_dir(sim_run: SimRun, tmp_path: Path) -> Path:
    """A private copy of the simulated run's directory (history and reports)."""
    copy = tmp_path / "run"
    shutil.copytree(sim_run.out, copy)
    return copy


def _summary(directory: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((directory / "summary.json").read_text())
    return loaded


def _failed(directory: Path) -> list[str]:
    return [c["name"] for c in _summary(directory)["checks"] if not c["ok"]]


def _names(directory: Path) -> list[str]:
    return [c["name"] for c in _summary(directory)["checks"]]


def _check(*argv: str | Path) -> int:
    return main(["check", *map(str, argv)])


def _edit(history: Path, target: Path, change: Callable[[list[dict[str, Any]]], None]) -> Path:
    events = [json.loads(line) for line in history.read_text().splitlines()]
    change(events)
    lines = (json.dumps(e, sort_keys=True, separators=(",", ":")) for e in events)
    target.write_text("".join(line + "\n" for line in lines))
    return target


# ---------------------------------------------------------------- the same verdict again


def test_a_recheck_gives_the_sim_runs_verdict_summary_and_junit(
    sim_run: SimRun, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = run_dir / "history.jsonl"
    before = history.read_bytes()
    junit = (run_dir / "junit.xml").read_bytes()
    (run_dir / "summary.json").unlink()
    (run_dir / "report.html").unlink()
    assert _check(history) == 0
    printed = capsys.readouterr()
    assert printed.err == ""
    assert history.read_bytes() == before
    # the history's own directory is the default output, with the same summary and JUnit
    assert (run_dir / "report.html").stat().st_size > 10_000
    expected = sim_run.summary() | {"history": str(history)}
    assert _summary(run_dir) == expected
    assert (run_dir / "junit.xml").read_bytes() == junit
    # the same check and metric lines; the headline says it was a re-check of the file
    ours, theirs = printed.out.splitlines(), sim_run.stdout.splitlines()
    assert ours[1:-1] == theirs[1:-1]
    assert "PASS" in ours[0]
    assert "re-check" in ours[0]
    assert str(history) in ours[0]
    assert "simulated in" not in ours[0]


def test_a_directory_stands_for_its_history(run_dir: Path, tmp_path: Path) -> None:
    assert _check(run_dir, "--out", tmp_path / "out", "--show-decisions") == 0
    assert _summary(tmp_path / "out")["history"] == str(run_dir / "history.jsonl")


def test_the_reports_go_to_out_and_the_history_stays_byte_identical(
    run_dir: Path, tmp_path: Path
) -> None:
    history = run_dir / "history.jsonl"
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    out = tmp_path / "deep" / "out"
    assert _check(history, "--out", out, "--set", "failover_within=1s") == 1
    assert all((out / name).stat().st_size > 0 for name in REPORT_FILES)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before


# ---------------------------------------------------------------- other checks


def test_set_can_break_a_check_and_switch_it_off(
    sim_run: SimRun, run_dir: Path, tmp_path: Path
) -> None:
    assert _check(run_dir, "--out", tmp_path / "a", "--set", "failover_within=1s") == 1
    assert _failed(tmp_path / "a") == ["failover_within"]
    assert _names(tmp_path / "a") == _names(sim_run.out)  # the history's other checks stay
    junit = (tmp_path / "a" / "junit.xml").read_text()
    assert 'failures="1"' in junit
    assert 'type="failover_within"' in junit

    assert _check(run_dir, "--out", tmp_path / "b", "--set", "failover_within=null") == 0
    assert "failover_within" not in _names(tmp_path / "b")


def _drop_acknowledged(count: int) -> Callable[[list[dict[str, Any]]], None]:
    """Remove the `count` earliest acknowledged writes from every final read."""

    def change(events: list[dict[str, Any]]) -> None:
        acked = [e["id"] for e in events if e["kind"] == "ok" and e.get("op") == "write"]
        dropped = set(acked[:count])
        for e in events:
            if e["kind"] == "final_read":
                e["ids"] = [i for i in e["ids"] if i not in dropped]

    return change


def test_lost_writes_are_judged_by_the_bound_set(run_dir: Path, tmp_path: Path) -> None:
    edited = _edit(run_dir / "history.jsonl", tmp_path / "lossy.jsonl", _drop_acknowledged(5))
    assert _check(edited, "--out", tmp_path / "own") == 0  # the scenario's bound: 50
    assert _summary(tmp_path / "own")["summary"]["lost_writes"] == 5

    assert _check(edited, "--out", tmp_path / "strict", "--set", "max_lost_writes=null") == 1
    assert _failed(tmp_path / "strict") == ["no_lost_acknowledged_writes"]
    assert _summary(tmp_path / "strict")["summary"]["lost_writes"] == 5

    assert _check(edited, "--out", tmp_path / "bound", "--set", "max_lost_writes=5") == 0
    assert _summary(tmp_path / "bound")["summary"]["lost_writes"] == 5
    assert _check(edited, "--out", tmp_path / "tight", "--set", "max_lost_writes=4") == 1


SCENARIO_WITH_CHECKS = """\
name: another
duration: 5m
cluster: {nodes: 3, etcd: 3}
workload: {rate: 10/s, via: nowhere}  # not valid, but only checks: is read
checks:
  no_split_brain: true
  failover_within: 1s
  eventually_healthy: null
"""


def test_checks_from_a_whole_scenario(sim_run: SimRun, run_dir: Path, tmp_path: Path) -> None:
    assert _check(run_dir, "--out", tmp_path / "same", "--checks", SCENARIO) == 0
    assert _summary(tmp_path / "same")["checks"] == sim_run.summary()["checks"]

    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO_WITH_CHECKS)
    assert _check(run_dir, "--out", tmp_path / "other", "--checks", scenario) == 1
    assert _names(tmp_path / "other") == [
        "no_split_brain",
        "no_lost_acknowledged_writes",
        "failover_within",
    ]
    assert _failed(tmp_path / "other") == ["failover_within"]


@pytest.mark.parametrize(
    "text",
    [
        "checks:\n  failover_within: 1s\n  eventually_healthy: null\n",
        "failover_within: 1s\neventually_healthy: null\n",
    ],
    ids=["checks-section", "bare-mapping"],
)
def test_checks_from_a_checks_only_file(run_dir: Path, tmp_path: Path, text: str) -> None:
    checks = tmp_path / "checks.yaml"
    checks.write_text(text)
    assert _check(run_dir, "--out", tmp_path / "out", "--checks", checks) == 1
    assert _failed(tmp_path / "out") == ["failover_within"]
    assert "eventually_healthy" not in _names(tmp_path / "out")
    # --set overrides single keys of the file's section
    assert (
        _check(run_dir, "--out", tmp_path / "o2", "--checks", checks, "--set", "failover_within=2m")
        == 0
    )
    assert _names(tmp_path / "o2") == _names(tmp_path / "out")


def test_a_history_without_run_start_gets_the_default_checks(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def drop_run_start(events: list[dict[str, Any]]) -> None:
        events[:] = [e for e in events if e["kind"] != "run_start"]

    edited = _edit(run_dir / "history.jsonl", tmp_path / "agent.jsonl", drop_run_start)
    assert _check(edited, "--out", tmp_path / "out") == 0
    assert _names(tmp_path / "out") == ["no_split_brain", "no_lost_acknowledged_writes"]
    headline = capsys.readouterr().out.splitlines()[0]
    assert headline.startswith("agent.jsonl")
    assert "seed" not in headline


# ---------------------------------------------------------------- bad input: exit 2


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


# Each: the arguments after the history (given the tmp dir), and what the message must name.
BAD_OPTIONS: dict[str, tuple[Callable[[Path], list[str]], Callable[[Path], list[str]]]] = {
    "unknown-set-key": (
        lambda d: ["--set", "failover_withn=1s"],
        lambda d: ["--set", "failover_withn", "failover_within"],
    ),
    "bad-set-value": (
        lambda d: ["--set", "failover_within=soon"],
        lambda d: ["--set", "failover_within=soon", "duration"],
    ),
    "negative-bound": (
        lambda d: ["--set", "max_lost_writes=-1"],
        lambda d: ["--set", "max_lost_writes", "integer"],
    ),
    "set-without-value": (lambda d: ["--set", "max_lost_writes"], lambda d: ["--set", "KEY=VALUE"]),
    "set-not-boolean": (
        lambda d: ["--set", "no_split_brain=maybe"],
        lambda d: ["no_split_brain", "true or false"],
    ),
    "checks-bad-value": (
        lambda d: ["--checks", str(_write(d / "c.yaml", "checks:\n  max_lost_writes: many\n"))],
        lambda d: [f"{d / 'c.yaml'}:2:", "checks.max_lost_writes"],
    ),
    "checks-unknown-key": (
        lambda d: ["--checks", str(_write(d / "c.yaml", "checks:\n  no_split_brian: true\n"))],
        lambda d: [f"{d / 'c.yaml'}:2:", "no_split_brain"],
    ),
    "checks-bad-yaml": (
        lambda d: ["--checks", str(_write(d / "c.yaml", "checks:\n  a: [1,\n"))],
        lambda d: [f"{d / 'c.yaml'}:"],
    ),
    "checks-missing": (
        lambda d: ["--checks", str(d / "missing.yaml")],
        lambda d: ["--checks", str(d / "missing.yaml")],
    ),
    "out-under-a-file": (
        lambda d: ["--out", str(_write(d / "plain", "") / "out")],
        lambda d: [str(d / "plain" / "out")],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_OPTIONS))
def test_bad_options_exit_2_naming_the_option_or_file(
    case: str, run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    options, named = BAD_OPTIONS[case]
    argv = options(tmp_path)
    assert _check(run_dir / "history.jsonl", *argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("pgha: ")
    assert "Traceback" not in err
    for fragment in named(tmp_path):
        assert fragment in err


def _break_line(n: int, text: str) -> Callable[[list[str]], None]:
    def change(lines: list[str]) -> None:
        lines[n - 1] = text

    return change


def _time_back(lines: list[str]) -> None:
    event = json.loads(lines[99])
    event["t"] = 0.0
    lines[99] = json.dumps(event)


def _first(lines: list[str], kind: str) -> int:
    return next(i for i, line in enumerate(lines) if f'"kind":"{kind}"' in line)


def _duplicate_ok(lines: list[str]) -> None:
    first_ok = _first(lines, "ok")
    lines.insert(first_ok + 1, lines[first_ok])


def _ok_then_fail(lines: list[str]) -> None:
    ok = json.loads(lines[_first(lines, "ok")])
    fail = {"t": ok["t"], "kind": "fail", "node": ok["node"], "op": "write", "id": ok["id"]}
    lines.insert(_first(lines, "ok") + 1, json.dumps(fail | {"error": "refused"}))


def _ok_without_invoke(lines: list[str]) -> None:
    del lines[_first(lines, "invoke")]


def _no_final_read(lines: list[str]) -> None:
    del lines[_first(lines, "final_read")]


@pytest.mark.parametrize(
    ("change", "line"),
    [
        pytest.param(_break_line(50, '{"t": 1.0, broken'), 50, id="malformed-json"),
        pytest.param(_break_line(60, "[1, 2]"), 60, id="not-an-object"),
        pytest.param(_break_line(70, '{"kind": "ok"}'), 70, id="no-time"),
        pytest.param(_time_back, 100, id="time-going-back"),
        # a history that contradicts itself (the checker finds it; the line is its business)
        pytest.param(_duplicate_ok, None, id="duplicated-ok"),
        pytest.param(_ok_then_fail, None, id="ok-and-fail"),
        pytest.param(_ok_without_invoke, None, id="ok-without-invoke"),
        pytest.param(_no_final_read, None, id="missing-final-read"),
    ],
)
def test_a_bad_history_exits_2_naming_its_line_and_writes_nothing(
    change: Callable[[list[str]], None],
    line: int | None,
    run_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = (run_dir / "history.jsonl").read_text().splitlines()
    change(lines)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    before = bad.read_bytes()
    assert _check(bad, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(rf"{re.escape(str(bad))}:{line or '[0-9]+'}\b", err), err
    assert not (tmp_path / "out").exists()
    assert bad.read_bytes() == before


def test_a_missing_history_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _check(tmp_path / "nope.jsonl") == 2
    err = capsys.readouterr().err
    assert "nope.jsonl" in err
    assert "Traceback" not in err
    assert _check(tmp_path) == 2  # a directory without history.jsonl
    assert str(tmp_path) in capsys.readouterr().err
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b'{"t": 0, "kind": "run_start"}\n\xff\xfe\x00\n')
    assert _check(binary) == 2
    err = capsys.readouterr().err
    assert str(binary) in err
    assert "Traceback" not in err


def test_a_report_file_never_overwrites_the_history(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A history that happens to be called summary.json, checked into its own directory.
    history = tmp_path / "summary.json"
    shutil.copy(run_dir / "history.jsonl", history)
    before = history.read_bytes()
    assert _check(history) == 2
    assert str(history) in capsys.readouterr().err
    assert history.read_bytes() == before
    linked = tmp_path / "elsewhere"
    linked.mkdir()
    (linked / "junit.xml").symlink_to(history)
    assert _check(history, "--out", linked) == 2
    assert history.read_bytes() == before


# ---------------------------------------------------------------- without the simulator


def test_without_matplotlib_summary_and_junit_are_written_the_same(
    sim_run: SimRun, run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.delitem(sys.modules, "pgha.report", raising=False)
    history = run_dir / "history.jsonl"
    out = tmp_path / "out"
    assert _check(history, "--out", out) == 0
    captured = capsys.readouterr()
    assert "pgha[sim]" in captured.err
    assert "summary.json" in captured.out.splitlines()[-1]
    assert not (out / "report.html").exists()
    assert _summary(out) == sim_run.summary() | {"history": str(history)}
    assert (out / "junit.xml").read_bytes() == (sim_run.out / "junit.xml").read_bytes()

    assert _check(history, "--out", tmp_path / "lean", "--set", "failover_within=1s") == 1
    monkeypatch.undo()
    assert _check(history, "--out", tmp_path / "full", "--set", "failover_within=1s") == 1
    for name in ("summary.json", "junit.xml"):
        assert (tmp_path / "lean" / name).read_bytes() == (tmp_path / "full" / name).read_bytes()


def test_check_imports_neither_sim_nor_chaos(run_dir: Path, tmp_path: Path) -> None:
    program = textwrap.dedent(
        f"""
        import sys
        from pgha.cli import main
        code = main(["check", {str(run_dir)!r}, "--out", {str(tmp_path / "out")!r}])
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("sim", "chaos"))
        print(code, loaded)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.splitlines()[-1] == "0 []"
