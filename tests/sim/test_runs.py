"""Whole simulated runs: determinism, exact virtual times, and each bundled scenario's verdict."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from pgha.cli import main, sim_run
from pgha.history import HistoryWriter, read_history
from pgha.scenario import load_scenario, parse_scenario
from sim.postgres import PgTiming
from sim.run import build, run_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml")) + sorted(
    (ROOT / "scenarios" / "chaos").glob("*.yaml")
)

# The verdict each bundled scenario is expected to give (exit code of `pgha sim run`).
EXPECTED_EXIT = {"agent-pause-no-watchdog": 1}


def history_bytes(text: str, seed: int | None = None) -> str:
    buffer = io.StringIO()
    writer = HistoryWriter(buffer)
    run_scenario(parse_scenario(text), seed=seed, recorder=writer)
    return buffer.getvalue()


CRASH = """
name: crash
seed: 3
duration: 2m
cluster: {nodes: 3, etcd: 3}
network: {latency: {median: 1ms, p99: 1ms}}
workload: {rate: 10/s, via: haproxy}
faults:
  - {at: 45s, kill: primary, for: 30s}
"""


def test_same_seed_gives_a_byte_identical_history() -> None:
    first, second = history_bytes(CRASH), history_bytes(CRASH)
    assert first == second
    assert len(first.splitlines()) > 1000


def test_another_seed_changes_the_history() -> None:
    assert history_bytes(CRASH, seed=3) != history_bytes(CRASH, seed=4)


def _events(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in history_bytes(text).splitlines()]


def test_primary_crash_timeline_in_exact_virtual_time() -> None:
    # Every message takes exactly 1 ms, so every time is exact. An etcd request costs 4 ms through
    # a follower (node -> member -> leader, a majority round trip, back) and 2 ms to the leader.
    events = _events(CRASH)
    at = {(e["kind"], e.get("node"), e.get("event") or e.get("role")): e["t"] for e in events}
    # n1 wins the initialize race, initdb takes 2 s and the start 1 s: primary at 3.012 s; it
    # claims initialize (4 ms), races (4 ms) and holds the lock at 3.028 s.
    assert at[("pg_role", "n1", "primary")] == 3.012
    assert at[("lock", "n1", "acquired")] == 3.028
    # The machine dies at 45 s. Its last keepalive reached etcd's leader at 40.035 s (the member
    # update closing the cycle that started at 40.02 s): the lease, and the lock, expire at
    # 70.035 s exactly, ttl later.
    assert at[("lock", "n1", "expired")] == 70.035
    # n3 is woken by its watch 5 ms later, probes the peers (the dead one answers nothing for
    # 2 s), races and wins at 72.048 s, and the 0.5 s promotion makes it primary at 72.552 s.
    assert at[("lock", "n3", "acquired")] == 72.048
    assert at[("pg_role", "n3", "primary")] == 72.552
    assert ("lock", "n2", "acquired") not in at


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_each_bundled_scenario_gives_its_expected_verdict(path: Path, tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = sim_run(path, out=tmp_path, stdout=out, stderr=err)
    assert code == EXPECTED_EXIT.get(path.stem, 0), out.getvalue() + err.getvalue()
    assert (tmp_path / "report.html").stat().st_size > 10_000
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["verdict"] in ("pass", "fail")
    assert read_history(tmp_path / "history.jsonl")[-1].kind == "run_end"


def test_bad_scenario_exits_2_naming_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nduration: 5 minutes\n")
    err = io.StringIO()
    assert sim_run(bad, out=tmp_path / "out", stderr=err) == 2
    message = err.getvalue()
    assert f"{bad}:2:" in message
    assert "duration" in message
    assert "Traceback" not in message


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "run", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_the_issue_example_runs_as_written() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "issue-example.yaml")
    assert [f.kind.value for f in scenario.faults] == ["kill", "partition", "pause", "clock"]


# Found by the proof sweep (tests/explore/test_proof.py) on the real engine: in synchronous mode,
# with the replica n3 stalled and n2's machine killed, the primary's commits were checked against
# a synchronous_standby_names that named standbys but waited for none, and `max()` of no acks
# crashed the simulation.
SYNC_NONE_TO_WAIT_FOR = """
name: sync-none-to-wait-for
seed: 7
duration: 3m
cluster: {nodes: 3, etcd: 3}
config: {ttl: 30, loop_wait: 10, retry_timeout: 10, synchronous_mode: true}
workload: {rate: 10/s, via: direct}
faults:
  - {at: 41.2s, pause: {node: n3, what: agent}, for: 81.5s}
  - {at: 85.7s, pause: {node: n3, what: postgres}, for: 94.3s}
  - {at: 88.2s, kill: n2, for: 40.8s}
"""


def test_sync_commit_with_no_standby_to_wait_for_does_not_crash() -> None:
    assert len(history_bytes(SYNC_NONE_TO_WAIT_FOR).splitlines()) > 1000


FOUND = sorted((ROOT / "scenarios" / "variants" / "found").glob("*.yaml"))


@pytest.mark.parametrize("path", FOUND, ids=lambda p: p.stem)
def test_each_minimal_reproducer_breaks_its_variant_and_not_the_engine(
    path: Path, tmp_path: Path
) -> None:
    # Written by `pgha sim explore --engine-variant <name>` (issue 4's scenario library).
    variant_out, real_out = io.StringIO(), io.StringIO()
    variant = sim_run(path, out=tmp_path / "v", variant=path.stem, stdout=variant_out)
    assert variant == 1, variant_out.getvalue()
    assert sim_run(path, out=tmp_path / "r", stdout=real_out) == 0, real_out.getvalue()
    assert len(load_scenario(path).faults) <= 4


def test_the_scenario_library_has_a_reproducer_per_variant() -> None:
    from sim.variants import VARIANTS

    assert {p.stem for p in FOUND} == set(VARIANTS)


TUNED = """
name: tuned
seed: 5
duration: 1m
cluster: {nodes: 3, etcd: 3}
workload: {rate: 10/s, haproxy: {check_interval: 1s, fall: 2, rise: 1}}
postgres: {start: 150ms, stop: 100ms, checkpoint: 50ms, promote: 150ms}
"""


def test_the_scenario_sets_haproxy_checks_and_postgres_timings() -> None:
    sim = build(parse_scenario(TUNED))
    assert sim.haproxy is not None
    assert (sim.haproxy.interval_s, sim.haproxy.fall, sim.haproxy.rise) == (1.0, 2, 1)
    timing = sim.nodes["n1"].pg.timing
    assert (timing.start_s, timing.stop_fast_s, timing.checkpoint_s, timing.promote_s) == (
        0.15,
        0.1,
        0.05,
        0.15,
    )
    assert timing.crash_recovery_s == PgTiming().crash_recovery_s  # not given: the default


def test_haproxy_check_phase_is_drawn_per_seed() -> None:
    def phase(seed: int) -> float:
        sim = build(parse_scenario(TUNED), seed=seed)
        assert sim.haproxy is not None
        sim.haproxy.start()
        assert sim.haproxy.phase_s is not None
        assert 0.0 <= sim.haproxy.phase_s < sim.haproxy.interval_s
        return sim.haproxy.phase_s

    assert phase(1) == phase(1)  # seeded: the same seed, the same phase
    assert len({phase(seed) for seed in range(5)}) == 5  # every phase is explored over seeds


def _probe_s(down_hosts: str) -> float:
    text = f"""
name: probe
seed: 2
duration: 1m
cluster: {{nodes: 3, etcd: 3}}
config: {{ttl: 10, loop_wait: 2, retry_timeout: 2}}
network: {{latency: {{median: 1ms, p99: 1ms}}, down_hosts: {down_hosts}}}
faults:
  - {{at: 20s, kill: primary, for: 30s}}
"""
    events = _events(text)
    probes = [e for e in events if e.get("reason") == "probe_peers" and e["t"] > 20]
    races = [e for e in events if e.get("reason") == "race" and e["t"] > 20]
    return races[0]["t"] - probes[0]["t"]


def test_a_down_host_is_silent_or_unreachable_as_the_scenario_says() -> None:
    # The survivors probe every member before racing; the killed primary's REST API costs the
    # whole 2 s peer timeout when it is silent, one round trip when its address is gone.
    assert _probe_s("silent") == pytest.approx(2.0 + 0.002, abs=0.01)
    assert _probe_s("unreachable") < 0.02
