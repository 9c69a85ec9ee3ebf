"""The CI chaos suite: scenarios/chaos/ against real containers, with every check passing.

Each runs `pgha chaos run FILE --compare-sim` (about 75 s of scenario plus bring-up and settling)
and is judged by the same checkers as the simulator: no split-brain, acknowledged writes kept (all
of them in synchronous mode; within the file's bound otherwise), failover within the file's bound.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chaos.cli import main
from pgha.history import read_history

pytestmark = pytest.mark.chaos

SUITE = sorted((Path(__file__).resolve().parents[2] / "scenarios" / "chaos").glob("*.yaml"))


@pytest.mark.parametrize("path", SUITE, ids=lambda p: p.stem)
def test_chaos_scenario_passes_every_check(
    path: Path, tmp_path: Path, chaos_image: str, docker_client: Any
) -> None:
    del chaos_image, docker_client  # built and reachable before the run starts
    out = tmp_path / path.stem
    code = main(["run", str(path), "--out", str(out), "--compare-sim"])
    summary = json.loads((out / "summary.json").read_text())
    failed = [c for c in summary.get("checks", []) if not c.get("ok", True)]
    assert code == 0, json.dumps(failed or summary, indent=1)[:4000]
    assert (out / "report.html").exists()
    assert (out / "junit.xml").exists()
    events = read_history(out / "history.jsonl")
    kinds = {event.kind for event in events}
    assert {"run_start", "fault", "invoke", "ok", "final_read", "run_end"} <= kinds
    oks = [event for event in events if event.kind == "ok"]
    assert len(oks) > 200  # 10 writes/s for 75 s, minus the failover
    faults = [event for event in events if event.kind == "fault"]
    assert faults  # the fault was really applied (start and end recorded)
