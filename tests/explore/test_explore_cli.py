"""`pgha sim explore` and `pgha sim variants`: exit codes, messages, files, progress."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from pgha.cli import main, sim_explore, sim_run, sim_variants
from pgha.scenario import load_scenario
from sim.explore import Progress
from tests.explore.explore_texts import CALM, NO_WATCHDOG, ROOT, write


def explore(path: Path, **options: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = sim_explore(path, stdout=out, stderr=err, **options)
    return code, out.getvalue(), err.getvalue()


def test_a_violation_exits_1_and_writes_each_failure_out(tmp_path: Path) -> None:
    path = write(tmp_path, NO_WATCHDOG)
    code, out, err = explore(path, budget="12", workers=1, out=tmp_path / "out", keep=1)
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("explore no-watchdog (the real engine, seeds from 1): 12 schedules")
    assert "failed" in lines[0]
    assert "no_split_brain" in lines[1]
    assert "shrunk" in lines[1]
    assert lines[2].startswith("    reproduce: pgha sim run ")
    summary = json.loads((tmp_path / "out" / "explore.json").read_text())
    assert summary["schedules"] == 12
    assert summary["failing_seeds"]
    (failure,) = summary["failures"]
    assert failure["reproduced"] is True
    assert failure["shrunk_faults"] <= failure["faults"]
    repro = load_scenario(failure["reproducer"])
    assert repro.explore is None
    assert repro.seed == failure["seed"]
    assert "12 schedules" in err  # the progress line, plain (not a terminal)


def test_nothing_broken_exits_0(tmp_path: Path) -> None:
    code, out, _ = explore(write(tmp_path, CALM), budget="3", workers=1, out=tmp_path / "o")
    assert code == 0
    assert out.startswith("explore calm (the real engine, seeds from 0): 3 schedules in ")
    assert out.rstrip().endswith("0 failed")


def test_a_time_budget_stops_the_sweep(tmp_path: Path) -> None:
    code, out, _ = explore(write(tmp_path, CALM), budget="1s", workers=1, out=tmp_path / "o")
    assert code == 0
    assert " schedules in 1." in out


def test_the_hypothesis_search_from_the_command_line(tmp_path: Path) -> None:
    path = write(tmp_path, NO_WATCHDOG)
    code, out, _ = explore(path, budget="40", seed=1, search="hypothesis", out=tmp_path / "h")
    assert code == 1
    assert "shrunk by Hypothesis" in out
    assert (tmp_path / "h" / "explore.json").exists()


NO_EXPLORE = "name: plain\nduration: 1m\n"
TYPO = "name: t\nduration: 1m\nexplore: {faults: [kil]}\n"
BAD_PARAM = "name: t\nduration: 1m\nexplore: {faults: [kill], params: {pause_len: [1s, 2s]}}\n"


@pytest.mark.parametrize(
    ("text", "options", "message"),
    [
        (NO_EXPLORE, {}, "no 'explore:' section"),
        (TYPO, {}, "scenario.yaml:3: explore.faults[0]: expected one of kill"),
        (BAD_PARAM, {}, "explore.params.pause_len: unknown parameter"),
        (CALM, {"budget": "soon"}, "--budget: expected a number of schedules"),
        (CALM, {"variant": "nope"}, "unknown engine variant 'nope'"),
        (CALM, {"workers": 0}, "--workers and --keep take a number >= 1"),
        (CALM, {"dask": "tcp://127.0.0.1:1"}, "cannot reach a Dask scheduler"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    options: dict[str, object],
    message: str,
) -> None:
    monkeypatch.setattr("sim.explore.pools.DASK_CONNECT_TIMEOUT", "1s")
    if "dask" in options:
        pytest.importorskip("distributed")
    code, out, err = explore(write(tmp_path, text), out=tmp_path / "o", **options)
    assert code == 2
    assert err.startswith("pgha: ")
    assert message in err
    assert "Traceback" not in err
    assert out == ""


def test_a_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "explore", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml:1: <file>: expected a readable UTF-8 file" in capsys.readouterr().err


def test_the_command_line_parses_every_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, CALM)
    argv = ["sim", "explore", str(path), "--budget", "2", "--seed", "5", "--workers", "2"]
    argv += ["--out", str(tmp_path / "o"), "--keep", "1", "--search", "sweep"]
    assert main(argv) == 0
    assert "seeds from 5): 2 schedules" in capsys.readouterr().out


def test_variants_are_listed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "variants"]) == 0
    out = capsys.readouterr().out
    assert "watchdog-not-armed\n    " in out
    assert "    bug: bug zoo 13" in out


def test_sim_variants_writes_where_it_is_told() -> None:
    out = io.StringIO()
    assert sim_variants(stdout=out) == 0
    assert out.getvalue().count("    bug: ") >= 8


def test_sim_run_runs_an_engine_variant(tmp_path: Path) -> None:
    path = ROOT / "scenarios" / "variants" / "watchdog-not-armed.yaml"
    out, err = io.StringIO(), io.StringIO()
    assert sim_run(path, out=tmp_path / "real", stdout=out, stderr=err) == 0
    assert sim_run(path, out=tmp_path / "bad", variant="watchdog-not-armed", stdout=out) == 1
    assert sim_run(path, out=tmp_path / "x", variant="nope", stdout=out, stderr=err) == 2
    assert "unknown engine variant 'nope'" in err.getvalue()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_updates_one_line_on_a_terminal() -> None:
    now = [0.0]
    screen = Terminal()
    progress = Progress(screen, "explore x", clock=lambda: now[0])
    for runs in range(1, 4):
        now[0] += 1.0
        progress.update(runs, runs - 1)
    progress.close()
    text = screen.getvalue()
    assert text.count("\r") == 4
    assert text.endswith("explore x: 3 schedules, 2 failures, 1.0 schedules/s, 3 s\n")


def test_progress_prints_plain_lines_elsewhere() -> None:
    now = [0.0]
    log = io.StringIO()
    progress = Progress(log, "explore x", every_s=5.0, clock=lambda: now[0])
    for runs in range(1, 12):
        now[0] += 1.0
        progress.update(runs, 0)
    progress.close()
    assert log.getvalue().splitlines() == [
        "explore x: 5 schedules, 0 failures, 1.0 schedules/s, 5 s",
        "explore x: 10 schedules, 0 failures, 1.0 schedules/s, 10 s",
        "explore x: 11 schedules, 0 failures, 1.0 schedules/s, 11 s",
    ]
