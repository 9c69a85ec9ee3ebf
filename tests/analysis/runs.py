"""Real simulated runs on disk, written exactly as `pgha sim run` writes them (HistoryWriter,
summary.json), so the analysis tests read the same files a user would open in a notebook."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pgha.cli import sim_run

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"


@dataclass(frozen=True)
class Run:
    """One simulated run on disk: its history file and the summary the checkers wrote."""

    scenario: Path
    history: Path
    summary: dict[str, Any]


def simulated_run(tmp_path_factory: pytest.TempPathFactory, name: str) -> Run:
    out = tmp_path_factory.mktemp(name)
    scenario = SCENARIOS / f"{name}.yaml"
    sim_run(scenario, out=out, stdout=io.StringIO(), stderr=io.StringIO())
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return Run(scenario, out / "history.jsonl", summary["summary"])
