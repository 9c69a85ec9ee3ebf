"""`pgha chaos run` end to end: a short primary crash against real containers through
`chaos.cli.main`, judged by the simulator's checkers and set beside the simulator's prediction; and
bad input refused before anything starts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chaos.cli import main
from pgha.history import read_history

PRIMARY_CRASH = """
name: chaos-primary-crash
description: The primary's container is killed at 15 s and booted again 20 s later.
seed: 3
duration: 60s
cluster: {nodes: 3, etcd: 3}
config: {ttl: 10, loop_wait: 2, retry_timeout: 2}
workload: {rate: 5/s, via: haproxy}
faults:
  - {at: 15s, kill: primary, for: 20s}
checks:
  no_split_brain: true
  no_lost_acknowledged_writes: true
  max_lost_writes: 10
  failover_within: 25s
  eventually_healthy: 40s
"""


def _write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------- bad input: nothing starts


def test_missing_file_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "nope.yaml" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_invalid_scenario_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, PRIMARY_CRASH.replace("kill: primary", "kil: primary"))
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "faults[0]" in err
    assert "Traceback" not in err


def test_fault_without_netem_is_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = PRIMARY_CRASH.replace(
        "kill: primary, for: 20s", "latency: {targets: primary, median: 50ms}, for: 20s"
    )
    path = _write(tmp_path, text)
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "latency" in err
    assert "netem" in err
    assert not (tmp_path / "out").exists()


def test_no_docker_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    path = _write(tmp_path, PRIMARY_CRASH)
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    assert main(["down"]) == 2
    err = capsys.readouterr().err
    assert err.count("cannot reach Docker") == 2
    assert "Traceback" not in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run"]) == 2
    assert main(["run", "x.yaml", "--peer", "stolon"]) == 2
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err


# ---------------------------------------------------------------- a real run


def _labelled(client: Any, run_id: str) -> list[Any]:
    return list(client.containers.list(all=True, filters={"label": f"pgha.chaos.run={run_id}"}))


@pytest.mark.chaos
def test_primary_crash_end_to_end(
    tmp_path: Path, docker_client: Any, chaos_image: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, PRIMARY_CRASH)
    out = tmp_path / "report"
    code = main(["run", str(path), "--out", str(out), "--compare-sim"])
    printed = capsys.readouterr()
    assert code == 0, printed.out + printed.err[-5000:]
    assert "PASS" in printed.out
    for name in ("history.jsonl", "summary.json", "junit.xml", "report.html"):
        assert (out / name).stat().st_size > 0, name
    document = json.loads((out / "summary.json").read_text())
    assert (document["verdict"], document["run"]["world"]) == ("pass", "chaos")
    checks = {c["name"]: c["ok"] for c in document["checks"]}
    assert checks == {
        "no_split_brain": True,
        "no_lost_acknowledged_writes": True,
        "failover_within": True,
        "eventually_healthy": True,
    }
    summary = document["summary"]
    assert summary["faults_applied"] == 1
    assert summary["faults_skipped"] == 0
    assert 200 <= summary["writes_invoked"] <= 320  # 5/s for 60 s, less the stalled writes
    assert summary["writes_acknowledged"] >= 150
    assert summary["lost_writes"] <= 10
    (failover,) = summary["failovers"]
    assert failover["outcome"] == "failover"
    assert failover["new_primary"] not in failover["old_primaries"]
    assert 5.0 <= failover["failover_s"] <= 25.0  # the lease (ttl 10) must run out first
    assert summary["final_primary"] in ("n1", "n2", "n3")
    chaos = document["chaos"]
    assert chaos["workload"]["invoke"] == summary["writes_invoked"]
    assert sorted(chaos["agent_events"]) == ["n1", "n2", "n3"]
    assert all(n > 0 for n in chaos["agent_events"].values())
    events = read_history(out / "history.jsonl")
    assert events[0].kind == "run_start"
    assert events[-1].kind == "run_end"
    kinds = {e.kind for e in events}
    assert {"pg_role", "writable", "agent_role", "decision", "fault", "final_read"} <= kinds
    (start,) = [e for e in events if e.kind == "fault" and e.get("phase") == "start"]
    (end,) = [e for e in events if e.kind == "fault" and e.get("phase") == "end"]
    assert start.t == pytest.approx(15.0, abs=2.0)
    assert end.t - start.t == pytest.approx(20.0, abs=2.0)
    (row,) = document["compare_sim"]  # the simulator's prediction beside the measurement
    assert (row["fault_id"], row["fault"], row["measured_outcome"]) == (1, "kill", "failover")
    assert row["measured_s"] == pytest.approx(failover["failover_s"], abs=0.01)
    assert 5.0 <= row["predicted_s"] <= 25.0
    assert "sim vs real" in printed.out
    assert (out / "sim" / "summary.json").is_file()
    # etcd dropped the killed primary's leader key once its lease ran out (the DCS side)
    old_primary = failover["old_primaries"][0]
    expired = next(e for e in events if e.kind == "lock" and e.get("event") == "expired")
    assert expired.node == old_primary
    assert start.t + 5.0 <= expired.t <= failover["t_first_ok"]
    assert _labelled(docker_client, chaos["run_id"]) == []  # torn down
