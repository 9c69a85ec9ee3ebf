"""Histories as DataFrames and back: exact round trips, column meaning, and bad input."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pgha.analysis import (
    HistoryError,
    events_from_frame,
    load_history,
    save_history,
)
from pgha.history import Event, read_history
from pgha.scenario import ScenarioError, load_scenario
from sim.analysis import simulate
from tests.analysis.runs import ROOT, Run


def test_round_trip_gives_identical_bytes_and_frame(crash_run: Run, tmp_path: Path) -> None:
    frame = load_history(crash_run.history)
    copy = tmp_path / "copy.jsonl"
    save_history(frame, copy)
    assert copy.read_bytes() == crash_run.history.read_bytes()
    pd.testing.assert_frame_equal(load_history(copy), frame)


def test_events_from_frame_are_the_events_read(crash_run: Run) -> None:
    events = read_history(crash_run.history)
    assert events_from_frame(load_history(crash_run.history)) == events


def test_columns_rows_and_missing_values(crash_run: Run) -> None:
    frame = load_history(crash_run.history)
    events = read_history(crash_run.history)
    assert list(frame.columns[:3]) == ["t", "kind", "node"]
    assert len(frame) == len(events)
    assert frame.attrs["source"] == str(crash_run.history)
    assert frame["t"].dtype == "float64"
    assert frame["t"].tolist() == [e.t for e in events]
    run_start = frame[frame.kind == "run_start"].iloc[0]
    assert run_start["node"] is None  # no node: None
    assert run_start["id"] is pd.NA  # a field the event lacks (nullable int column)
    assert math.isnan(run_start["timeout"])  # ... NaN in a float column
    assert run_start["config"] == {"ttl": 30, "loop_wait": 10, "retry_timeout": 10}  # nested
    stopped = frame[(frame.kind == "pg_role") & (frame.role == "stopped")].iloc[0]
    assert stopped["timeline"] is None  # a JSON null stays None, distinct from absent
    ok = frame[frame.kind == "ok"]
    assert ok["id"].dtype == "Int64"
    assert set(ok["served_by"]) <= {"n1", "n2", "n3"}


def test_accepts_events_and_frames(crash_run: Run) -> None:
    events = read_history(crash_run.history)[:200]
    from_events = load_history(events)
    assert from_events.attrs["source"] == "<events>"
    assert len(from_events) == 200
    again = load_history(from_events)
    pd.testing.assert_frame_equal(again, from_events)
    assert again is not from_events


def test_simulate_gives_the_events_pgha_sim_run_writes(crash_run: Run) -> None:
    frame = simulate(crash_run.scenario)
    assert frame.attrs["source"].startswith("simulate(")
    pd.testing.assert_frame_equal(frame, load_history(crash_run.history), check_flags=False)


def test_simulate_takes_text_and_parsed_scenarios() -> None:
    text = (ROOT / "scenarios" / "primary-crash.yaml").read_text(encoding="utf-8")
    text = text.replace("duration: 4m", "duration: 70s").replace("for: 90s", "for: 5s")
    from_text = simulate(text, seed=4)
    from_value = simulate(load_scenario(ROOT / "scenarios" / "primary-crash.yaml"), seed=4)
    assert from_text.t.iloc[-1] == pytest.approx(70 + 60)  # duration + settle
    assert from_value.t.iloc[-1] == pytest.approx(240 + 60)
    assert from_text[from_text.kind == "run_start"].iloc[0]["seed"] == 4


def test_missing_file_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(HistoryError, match=r"nope\.jsonl: no such history file"):
        load_history(missing)


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"t": 0.0, "kind": "run_start"}\n{"t": 1.0, "kind": \n', encoding="utf-8")
    with pytest.raises(HistoryError, match=r"bad\.jsonl:2: not valid JSON"):
        load_history(str(bad))


def test_other_inputs_are_refused() -> None:
    with pytest.raises(TypeError, match="item 1 is a str, expected a pgha Event"):
        load_history([Event(0.0, "run_start"), "oops"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="expected a path"):
        load_history(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"missing column\(s\) \['kind'\]"):
        events_from_frame(pd.DataFrame({"t": [0.0]}))


def test_save_refuses_times_out_of_order(crash_run: Run, tmp_path: Path) -> None:
    frame = load_history(crash_run.history).iloc[::-1]
    with pytest.raises(HistoryError, match="earlier than the previous event"):
        save_history(frame, tmp_path / "reversed.jsonl")


def test_simulate_refuses_bad_scenario_and_variant(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"missing\.yaml"):
        simulate(tmp_path / "missing.yaml")
    with pytest.raises(ScenarioError, match="duration"):
        simulate("name: x\ncluster: {nodes: 3}\n")
    with pytest.raises(ValueError, match=r"unknown engine variant 'nope'.*wall-clock-lease"):
        simulate(ROOT / "scenarios" / "primary-crash.yaml", variant="nope")


def test_pgha_imports_without_pandas_and_analysis_says_what_to_install() -> None:
    blocker = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'pandas':\n"
        "            raise ModuleNotFoundError('No module named pandas', name='pandas')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import pgha, pgha.history, pgha.checks\n"
        "try:\n"
        "    import pgha.analysis\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", blocker], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert "pip install 'pgha[notebooks]'" in done.stdout
    assert "pandas" in done.stdout
