# A parameter sweep: every combination of parameter values (a grid, or uniform samples from a
# seeded random.Random) times every seed, each run by the caller's runner (the simulator's is
# sim/analysis.py's) and measured by the checkers. This module runs no world itself.
# All scenario variants are built and checked before the first run, runs go to worker processes
# (concurrent.futures), and rows come back in task order, so a sweep gives the same frame with
# one worker or many.
"""`run_sweep`: a grid or random sample of scenario parameters over many seeds, as a DataFrame.

Parameter names: config keys (`ttl`, `loop_wait`, `retry_timeout`, `synchronous_mode`,
`watchdog.safety_margin` ...), `faults[i].at` / `faults[i].for`, a key of a fault's own mapping
(`faults[i].jump`, `.offset`, `.drift_ppm` (or `.drift`) of a clock fault), or a dotted path into
the scenario (`duration`, `workload.rate`, `clocks.n1.offset`). Durations are seconds. Each setting
is applied to the scenario's YAML and parsed again, so what a YAML file may not say is refused here
too.

Columns of the frame: one per parameter, then seed, ok (every check held), split_brain,
lost_writes, failover_s (the checkers' first failover; NaN if none), unavailability_s (total),
longest_unavailability_s, dual_writable_s, writes_acknowledged, episodes (how many), the first
episode's detect_s, lock_expired_s and promoted_s (see `episodes`), violated (the broken checks,
comma-joined) and error (a simulator crash, else None), and ttl_s, loop_wait_s, retry_timeout_s:
the timing the engine used (like Patroni, it lowers loop_wait, then retry_timeout, until
loop_wait + 2 * retry_timeout <= ttl). `METRICS` holds the columns after seed and their dtypes.
"""

from __future__ import annotations

import itertools
import math
import os
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any, Protocol

import pandas as pd

from pgha.analysis._episodes import episodes_of
from pgha.analysis._params import apply_params, param_path, scenario_document
from pgha.analysis._scenarios import ScenarioSource, resolve_scenario
from pgha.checks import SPLIT_BRAIN, check_no_split_brain, collect_facts, run_checks
from pgha.history import Event
from pgha.scenario import Scenario, parse_scenario

DEFAULT_WORKERS = 2  # at most this many processes unless asked (and never more than the CPUs)
METRICS: Mapping[str, str] = {
    "ok": "bool",
    "split_brain": "bool",
    "lost_writes": "Int64",
    "failover_s": "float64",
    "unavailability_s": "float64",
    "longest_unavailability_s": "float64",
    "dual_writable_s": "float64",
    "writes_acknowledged": "int64",
    "episodes": "int64",
    "detect_s": "float64",
    "lock_expired_s": "float64",
    "promoted_s": "float64",
    "violated": "object",
    "error": "object",
    # the timing the engine really used (Patroni's rule may lower loop_wait / retry_timeout)
    "ttl_s": "float64",
    "loop_wait_s": "float64",
    "retry_timeout_s": "float64",
}


class Runner(Protocol):
    """Runs one scenario with a seed (and an engine variant, or None) and returns its events.

    A sweep with workers > 1 sends it to other processes: a function defined at module level.
    """

    def __call__(
        self, scenario: Scenario, *, seed: int | None, variant: str | None
    ) -> list[Event]: ...


# the runner, scenario YAML, its source name, seed, variant
_Task = tuple[Runner, str, str, int, str | None]


def run_sweep(
    runner: Runner,
    scenario: ScenarioSource,
    *,
    grid: Mapping[str, Sequence[Any]] | None = None,
    sample: Mapping[str, tuple[float, float]] | None = None,
    n_samples: int = 20,
    seeds: Iterable[int] = range(20),
    variant: str | None = None,
    workers: int | None = None,
    sample_seed: int = 0,
) -> pd.DataFrame:
    """Run `scenario` with `runner` for every parameter setting and seed; one row per run.

    Args:
        runner: what runs one scenario (`sim.analysis.sweep` passes the simulator's).
        scenario: a path to scenario YAML, YAML text or a parsed Scenario.
        grid: parameter name -> list of values; every combination (cartesian product) is run.
        sample: parameter name -> (low, high); `n_samples` settings drawn uniformly with
            random.Random(sample_seed). With both, every grid point is run with every sample.
        seeds: simulation seeds; each setting runs once per seed.
        variant: passed to the runner (the simulator's: a bug-zoo engine, `pgha sim variants`).
        workers: processes to run in (default min(2, CPUs)); 1 runs here, in this process.

    Returns:
        One row per run, ordered by setting (grid order, then samples), then seed, whatever the
        number of workers: a column per parameter, then seed, then the `METRICS` columns (what
        parameter names and columns mean: this module's docstring, `pgha.analysis._sweep`).

    Raises:
        ValueError: a bad parameter name or value (naming it and what was expected), a bad
            range, seed or worker count; all before any run starts.
    """
    parsed = resolve_scenario(scenario)
    settings = _settings(grid, sample, n_samples, sample_seed)
    seed_list = _seeds(seeds)
    tasks = _tasks(runner, parsed, settings, seed_list, variant)
    with _executor(_workers(workers, len(tasks))) as executor:
        results = list(executor.map(run_trial, *zip(*tasks, strict=True)))
    return _frame(settings, seed_list, results)


def _tasks(
    runner: Runner,
    parsed: Scenario,
    settings: list[dict[str, Any]],
    seed_list: list[int],
    variant: str | None,
) -> list[_Task]:
    """Every (setting, seed) run, setting-major; each setting is applied and checked first."""
    document = scenario_document(parsed)
    for name in settings[0]:
        param_path(name, document)  # a bad name is refused before any value is tried
    built = [apply_params(parsed, document, setting) for setting in settings]
    return [
        (runner, text, changed.source, seed, variant)
        for changed, text in built
        for seed in seed_list
    ]


def _frame(
    settings: list[dict[str, Any]], seed_list: list[int], results: list[dict[str, Any]]
) -> pd.DataFrame:
    """The rows (setting, seed, metrics) as a frame with the columns' dtypes."""
    rows = [
        {**setting, "seed": seed, **result}
        for (setting, seed), result in zip(
            itertools.product(settings, seed_list), results, strict=True
        )
    ]
    names = list(settings[0])
    frame = pd.DataFrame(rows, columns=[*names, "seed", *METRICS])
    return frame.astype({"seed": "int64", **METRICS})


def _settings(
    grid: Mapping[str, Sequence[Any]] | None,
    sample: Mapping[str, tuple[float, float]] | None,
    n_samples: int,
    sample_seed: int,
) -> list[dict[str, Any]]:
    points = _grid_points(grid or {})
    drawn = _samples(sample or {}, n_samples, sample_seed) if sample else [{}]
    clash = sorted(set(grid or {}) & set(sample or {}))
    if clash:
        raise ValueError(f"sweep: {clash} appear in both grid and sample; give each once")
    return [{**point, **draw} for point in points for draw in drawn]


def _grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    if not isinstance(grid, Mapping):
        raise ValueError(f"grid: expected a mapping of parameter name to values, got {grid!r}")
    for name, values in grid.items():
        if isinstance(values, str | bytes) or not isinstance(values, Iterable):
            raise ValueError(f"grid[{name!r}]: expected a list of values, got {values!r}")
    columns = {name: list(values) for name, values in grid.items()}
    for name, values in columns.items():
        if not values:
            raise ValueError(f"grid[{name!r}]: expected at least one value, got an empty list")
    return [
        dict(zip(columns, combo, strict=True)) for combo in itertools.product(*columns.values())
    ]


def _samples(
    sample: Mapping[str, tuple[float, float]], n_samples: int, sample_seed: int
) -> list[dict[str, Any]]:
    if not isinstance(sample, Mapping):
        raise ValueError(
            f"sample: expected a mapping of parameter name to (low, high), got {sample!r}"
        )
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples: expected an integer >= 1, got {n_samples!r}")
    ranges = {name: _range(name, bounds) for name, bounds in sample.items()}
    rng = random.Random(sample_seed)
    return [
        {name: rng.uniform(low, high) for name, (low, high) in ranges.items()}
        for _ in range(n_samples)
    ]


def _range(name: str, bounds: Any) -> tuple[float, float]:
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(
            f"sample[{name!r}]: expected (low, high), two numbers, got {bounds!r}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise ValueError(f"sample[{name!r}]: expected finite low <= high, got {bounds!r}")
    return low, high


def _seeds(seeds: Iterable[int]) -> list[int]:
    try:
        seed_list = list(seeds)
    except TypeError:
        raise ValueError(f"seeds: expected an iterable of integers, got {seeds!r}") from None
    bad = [s for s in seed_list if isinstance(s, bool) or not isinstance(s, int)]
    if bad or not seed_list:
        raise ValueError(f"seeds: expected at least one integer seed, got {seed_list!r}")
    return seed_list


def _workers(workers: int | None, tasks: int) -> int:
    if workers is None:
        return max(1, min(DEFAULT_WORKERS, os.cpu_count() or 1, tasks))
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected an integer >= 1, got {workers!r}")
    return min(workers, tasks)


class _Inline(Executor):
    """Runs each call here and now (workers=1): no processes, tracebacks in the notebook."""

    def map(self, fn: Any, *iterables: Iterable[Any], **_: Any) -> Iterator[Any]:
        return iter([fn(*args) for args in zip(*iterables, strict=True)])


@contextmanager
def _executor(workers: int) -> Iterator[Executor]:
    if workers <= 1:
        yield _Inline()
        return
    import multiprocessing

    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield pool


# ---------------------------------------------------------------- one run (in a worker)


def run_trial(
    runner: Runner, text: str, source: str, seed: int, variant: str | None
) -> dict[str, Any]:
    """Parse the scenario, run it with `seed`, measure it: the metric columns of one row."""
    scenario = parse_scenario(text, source)
    try:
        events = runner(scenario, seed=seed, variant=variant)
    except Exception as error:  # a crash of the engine or the world is a result, not an abort
        return {**dict.fromkeys(METRICS), "ok": False, "split_brain": False,
                "writes_acknowledged": 0, "episodes": 0, "lost_writes": pd.NA,
                "error": f"{type(error).__name__}: {error}", **_timing(scenario)}  # fmt: skip
    return {**measure(events, scenario), **_timing(scenario)}


def _timing(scenario: Scenario) -> dict[str, float]:
    config = scenario.config
    return {
        "ttl_s": config.ttl_s,
        "loop_wait_s": config.loop_wait_s,
        "retry_timeout_s": config.retry_timeout_s,
    }


def measure(events: Sequence[Event], scenario: Scenario) -> dict[str, Any]:
    """The metric columns of one run's events."""
    facts = collect_facts(events)
    report = run_checks(facts, scenario.checks)
    summary = report.summary
    split = next((r for r in report.results if r.name == SPLIT_BRAIN), None)
    split_ok = (split if split is not None else check_no_split_brain(facts)).ok
    failovers = [f.failover_s for f in facts.failovers if f.failover_s is not None]
    steps = episodes_of(events, facts)
    lost = summary.get("lost_writes")

    def episode(column: str) -> float:
        return float(steps[column].iloc[0]) if len(steps) else math.nan

    return {
        "ok": report.ok,
        "split_brain": not split_ok,
        "lost_writes": pd.NA if lost is None else int(lost),
        "failover_s": failovers[0] if failovers else math.nan,
        "unavailability_s": facts.writes.unavailability_s,
        "longest_unavailability_s": facts.writes.longest_unavailability_s,
        "dual_writable_s": facts.dual_writable_s,
        "writes_acknowledged": facts.writes.acknowledged,
        "episodes": len(steps),
        "detect_s": episode("detect_s"),
        "lock_expired_s": episode("lock_expired_s"),
        "promoted_s": episode("promoted_s"),
        "violated": ",".join(r.name for r in report.results if not r.ok),
        "error": None,
    }
