"""Running schedules: determinism, sweeps on every executor, shrinking, reproducers, Hypothesis."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

import sim.explore.engines
import sim.explore.pools
from pgha.cli import main
from pgha.scenario import (
    ClockFault,
    FaultKind,
    FaultSpec,
    KillFault,
    LatencyFault,
    Target,
    TargetRole,
    load_scenario,
    parse_scenario,
)
from sim.explore import (
    CRASHED,
    Budget,
    ExploreError,
    Pool,
    SweepResult,
    Trial,
    Verdict,
    check_variant,
    evaluator,
    run_schedule,
    schedule_for_seed,
    shrink,
    sweep,
    write_reproducer,
)
from sim.explore.hypothesis_search import cluster_machine, search
from tests.explore.explore_texts import CERTAIN, NO_WATCHDOG, ROOT

NOWD = parse_scenario(NO_WATCHDOG)
SURE = parse_scenario(CERTAIN)


def kill_primary(at_s: float, for_s: float) -> FaultSpec:
    target = Target.of_role(TargetRole.PRIMARY)
    return FaultSpec(at_s=at_s, kind=FaultKind.KILL, params=KillFault(target=target), for_s=for_s)


NOISE = (
    FaultSpec(
        at_s=40.0,
        kind=FaultKind.LATENCY,
        params=LatencyFault(targets=Target.named("n2"), median_s=0.01, p99_s=0.02),
        for_s=20.0,
    ),
    FaultSpec(
        at_s=50.0,
        kind=FaultKind.CLOCK,
        params=ClockFault(target=Target.named("n3"), jump_s=5.0),
    ),
    FaultSpec(
        at_s=85.0,
        kind=FaultKind.LATENCY,
        params=LatencyFault(targets=Target.named("etcd1"), median_s=0.05, p99_s=0.05),
        for_s=10.0,
    ),
)


def test_the_same_schedule_and_seed_give_the_same_outcome() -> None:
    faults = schedule_for_seed(NOWD, 3)
    first, second = run_schedule(NOWD, faults, 3), run_schedule(NOWD, faults, 3)
    assert first == second
    assert first.wall_s > 0


def test_a_certain_failure_is_found_with_its_time() -> None:
    outcome = run_schedule(SURE, (kill_primary(60.0, 30.0),), 3)
    assert not outcome.ok
    assert outcome.violated == ("failover_within",)
    assert outcome.first_violation_s is not None
    assert outcome.first_violation_s >= 60.0


def test_a_sweep_on_two_workers_equals_one_on_one() -> None:
    one = sweep(NOWD, Budget(schedules=8), seed0=10, workers=1)
    two = sweep(NOWD, Budget(schedules=8), seed0=10, workers=2)
    assert [t.seed for t in one.trials] == list(range(10, 18))
    assert one == two
    assert (
        one.trials
        == tuple(
            Trial(s, schedule_for_seed(NOWD, s), run_schedule(NOWD, schedule_for_seed(NOWD, s), s))
            for s in range(10, 13)
        )
        + one.trials[3:]
    )


def test_a_sweep_on_a_dask_cluster_equals_the_local_one() -> None:
    distributed = pytest.importorskip("distributed")
    local = sweep(NOWD, Budget(schedules=6), seed0=20, workers=2)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        remote = sweep(NOWD, Budget(schedules=6), seed0=20, dask_address=cluster.scheduler_address)
    assert remote == local


def test_an_unreachable_dask_scheduler_is_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("distributed")
    monkeypatch.setattr(sim.explore.pools, "DASK_CONNECT_TIMEOUT", "1s")
    with pytest.raises(ExploreError, match="cannot reach a Dask scheduler"):
        sweep(NOWD, Budget(schedules=1), dask_address="tcp://127.0.0.1:1")


def test_the_fastest_failures_come_first() -> None:
    def trial(seed: int, first: float | None, ok: bool = False) -> Trial:
        return Trial(
            seed, (), Verdict(ok=ok, violated=() if ok else ("x",), first_violation_s=first)
        )

    result = SweepResult((trial(1, 50.0), trial(2, None, ok=True), trial(3, 20.0), trial(4, 50.0)))
    assert [t.seed for t in result.fastest(3)] == [3, 1, 4]
    assert [t.seed for t in result.failures] == [1, 3, 4]


def test_shrinking_a_certain_failure_leaves_the_kill_earlier_and_shorter() -> None:
    faults = (*NOISE[:2], kill_primary(60.0, 55.0), NOISE[2])
    shrunk = shrink(SURE, faults, 3)
    assert len(shrunk.faults) == 1
    only = shrunk.faults[0]
    assert only.kind is FaultKind.KILL
    assert only.at_s < 60.0
    assert only.for_s is not None
    assert only.for_s < 55.0  # shorter, yet longer than the ttl: a shorter kill is ridden out
    assert shrunk.outcome.violated == ("failover_within",)
    assert run_schedule(SURE, shrunk.faults, 3) == shrunk.outcome  # still fails when re-run


def test_shrinking_on_a_pool_gives_what_shrinking_in_turn_gives() -> None:
    failing = next(t for t in sweep(NOWD, Budget(schedules=30)).failures if len(t.faults) > 1)
    alone = shrink(NOWD, failing.faults, failing.seed, original=failing.outcome)
    with ProcessPoolExecutor(2) as executor:
        evaluate = evaluator(Pool(executor, 4), NOWD, failing.seed, None)
        pooled = shrink(
            NOWD, failing.faults, failing.seed, original=failing.outcome, evaluate=evaluate
        )
    assert len(alone.faults) <= len(failing.faults)
    assert not run_schedule(NOWD, alone.faults, failing.seed).ok
    assert (pooled.faults, pooled.outcome) == (alone.faults, alone.outcome)


def test_a_schedule_that_does_not_fail_is_left_as_it_is() -> None:
    shrunk = shrink(SURE, NOISE, 3)
    assert shrunk.faults == NOISE
    assert shrunk.outcome.ok


def test_a_reproducer_reruns_to_the_same_verdict_and_history(tmp_path: Path) -> None:
    faults = (kill_primary(35.0, 60.0),)
    outcome = run_schedule(SURE, faults, 9)
    repro = write_reproducer(SURE, faults, 9, outcome, tmp_path / "out")
    assert repro.path == tmp_path / "out" / "certain-seed9.yaml"
    assert repro.outcome == outcome
    assert (repro.report_dir / "report.html").exists()
    scenario = load_scenario(repro.path)
    assert (scenario.seed, scenario.explore, len(scenario.faults)) == (9, None, 1)
    assert "seed 9" in scenario.description
    header = f"# Written by pgha sim explore. Reproduce with: {repro.command}\n"
    assert repro.path.read_text().startswith(header)
    rerun = tmp_path / "rerun"
    assert main(["sim", "run", str(repro.path), "--out", str(rerun)]) == 1
    history = (rerun / "history.jsonl").read_bytes()
    assert history == (repro.report_dir / "history.jsonl").read_bytes()


def test_a_crash_is_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the simulator broke")

    monkeypatch.setattr(sim.explore.engines, "run", crash)
    outcome = run_schedule(SURE, NOISE, 3)
    assert (outcome.ok, outcome.violated) == (False, (CRASHED,))
    assert outcome.error == "RuntimeError: the simulator broke"


def test_engine_variants_run_and_unknown_ones_are_refused() -> None:
    reproducer = load_scenario(ROOT / "scenarios" / "variants" / "watchdog-not-armed.yaml")
    assert run_schedule(reproducer, reproducer.faults, reproducer.seed).ok
    bad = run_schedule(reproducer, reproducer.faults, reproducer.seed, variant="watchdog-not-armed")
    assert "no_split_brain" in bad.violated
    with pytest.raises(ExploreError, match="did you mean 'watchdog-not-armed'"):
        check_variant("watchdog-not-armd")


def test_hypothesis_finds_a_failure_and_shrinks_it() -> None:
    result = search(NOWD, Budget(schedules=40), seed=1)
    assert result.found is not None
    assert len(result.found.faults) in range(1, 5)
    again = run_schedule(NOWD, result.found.faults, result.found.seed)
    assert again == result.found.outcome
    assert not again.ok


PAUSES = parse_scenario(
    NO_WATCHDOG.replace("faults: [pause, kill, clock, switchover]", "faults: [pause]").replace(
        "max_faults: 4", "max_faults: 4\n  params: {pause_for: [40s, 60s]}"
    )
)


def test_the_state_machine_finds_split_brain_without_a_watchdog() -> None:
    machine = cluster_machine(PAUSES, seed=1)
    quick = settings(
        max_examples=50,
        stateful_step_count=10,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    with pytest.raises(AssertionError, match="split brain after"):
        run_state_machine_as_test(machine, settings=quick)
