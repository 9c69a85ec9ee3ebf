"""Issue 12's reproducers, end to end through `pgha sim run`: each wrong verdict of the old checker
(a missed split-brain, outages counted for replicas refusing direct writes, refused operator
requests leaving no trace) and what the checker says now."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pgha.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, text: str, *args: str) -> tuple[int, dict[str, Any], str]:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(text)
    out = tmp_path / "out"
    code = main(["sim", "run", str(scenario), "--out", str(out), *args])
    summary = json.loads((out / "summary.json").read_text())
    return code, summary, str(out / "history.jsonl")


def _check(summary: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in summary["checks"] if c["name"] == name)


def test_an_old_primary_retaking_the_lock_is_a_split_brain_even_with_a_loss_bound(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 1: n2 (timeline 1) and n1 (timeline 2) reign in turn, then n2 resumes timeline 1 and
    n1's branch is thrown away. A loss bound must not hide the split-brain."""
    found = ROOT / "scenarios/variants/found/stale-primary-retakes-lock.yaml"
    text = found.read_text().replace("max_lost_writes: null", "max_lost_writes: 1000")
    code, summary, _ = _run(tmp_path, text, "--engine-variant", "stale-primary-retakes-lock")
    assert code == 1
    split = _check(summary, "no_split_brain")
    assert not split["ok"]
    [v] = split["violations"]
    assert v["detail"]["reason"] == "interleaved_reigns"
    assert v["detail"]["timelines"] == {"n1": 2, "n2": 1}
    assert v["detail"]["stale_acks"] > 0
    assert _check(summary, "no_lost_acknowledged_writes")["ok"]  # within the bound
    lost = _check(summary, "no_lost_acknowledged_writes")["metrics"]["lost_by_reign"]
    assert [(r["node"], r["timeline"]) for r in lost] == [("n1", 2)]
    assert summary["summary"]["split_brain_s"] > 20.0
    assert "interleaved_reigns" in capsys.readouterr().out


DIRECT = """
name: direct-partition
seed: 3
duration: 6m
cluster: {nodes: 3, etcd: 3}
config: {ttl: 30, loop_wait: 10, retry_timeout: 10}
workload: {rate: 10/s, via: direct, clients: 3}
faults:
  - {at: 60s, partition: {groups: [[n1], [n2, n3, etcd1, etcd2, etcd3]]}, for: 45s}
checks: {max_lost_writes: 1000}
"""


def test_replicas_refusing_direct_writes_are_no_outage(tmp_path: Path) -> None:
    """Item 4: clients write straight to every node; only the primary accepts. The cluster is
    unavailable only while no path acknowledges: around the failover (the old checker: 255 s in
    1,143 periods of a 420 s run)."""
    code, summary, _ = _run(tmp_path, DIRECT)
    assert code == 0
    s = summary["summary"]
    assert s["client_paths"] == ["n1", "n2", "n3"]
    assert s["unavailable_periods"] <= 3
    assert 5.0 < s["unavailability_s"] < 40.0  # the failover gap, not the replicas' refusals
    assert s["longest_unavailability_s"] <= s["failover_times_s"][0] + 1.0


REFUSED = """
name: refused-switchover
seed: 9
duration: 3m
cluster: {nodes: 3, etcd: 3}
config: {synchronous_mode: true}
workload: {rate: 10/s, via: haproxy}
faults:
  - {at: 60s, switchover: {leader: primary, candidate: n3}}
  - {at: 90s, switchover: {leader: primary, candidate: n2}}
checks: {operator_requests_succeed: OPTION}
"""


@pytest.mark.parametrize(("required", "code"), [(True, 1), (False, 0)])
def test_a_refused_switchover_is_reported_and_can_be_required(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], required: bool, code: int
) -> None:
    """Item 5: in synchronous mode n3 is no sync standby; the cluster refuses the switchover to
    it and accepts the one to n2."""
    text = REFUSED.replace("OPTION", "true" if required else "false")
    got, summary, _ = _run(tmp_path, text)
    assert got == code
    s = summary["summary"]
    assert (s["operator_requests"], s["operator_requests_refused"]) == (2, 1)
    first, second = s["operator_outcomes"]
    assert (first["outcome"], first["error"], first["status"]) == (
        "refused",
        "candidate_not_sync",
        412,
    )
    assert second["outcome"] == "accepted"
    out = capsys.readouterr().out
    assert "candidate_not_sync" in out  # the verdict names the refusal either way
    names = [c["name"] for c in summary["checks"]]
    assert ("operator_requests_succeed" in names) is required
    if required:
        [v] = _check(summary, "operator_requests_succeed")["violations"]
        assert v["detail"]["reason"] == "operator_request_refused"


def test_an_agent_log_without_client_writes_is_checked(tmp_path: Path) -> None:
    """An agent's `log.history` has no run_start, no client writes and no final reads: nothing
    to lose, nothing contradicts itself."""
    history = tmp_path / "history.jsonl"
    history.write_text(
        '{"kind":"agent_start","node":"n1","pid":12,"scope":"demo","t":0.0}\n'
        '{"kind":"agent_role","node":"n1","reason":"bootstrap","role":"primary","t":1.5}\n'
        '{"kind":"agent_stop","node":"n1","paused":false,"t":9.0}\n'
    )
    assert main(["check", str(history), "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["summary"]["lost_writes"] == 0
    assert [c["name"] for c in summary["checks"]] == [
        "no_split_brain",
        "no_lost_acknowledged_writes",
    ]


def test_the_summary_says_which_checks_were_applied(tmp_path: Path) -> None:
    code, summary, history = _run(tmp_path, DIRECT)
    assert code == 0
    assert summary["checks_applied"]["max_lost_writes"] == 1000
    assert summary["checks_applied"]["failover_within_s"] is None
    out = tmp_path / "again"
    assert main(["check", history, "--set", "failover_within=1s", "--out", str(out)]) == 1
    again = json.loads((out / "summary.json").read_text())
    assert again["checks_applied"]["failover_within_s"] == 1.0
    assert again["run"]["checks"] == summary["run"]["checks"]  # the history's own, as written
