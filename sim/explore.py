# Exploration (issue 4): search fault schedules that break an invariant, shrink what breaks, and
# hand back a scenario file that reproduces it.
#
# A schedule is drawn from the scenario's `explore:` section by `draw_schedule`, written against
# one primitive (`Draw.integer`), so the same code draws from a seeded `random.Random` (the seed
# sweep) and from Hypothesis (sim/explore_hypothesis.py, whose shrinker then works on the draws).
# Choices are listed simplest first (the primary before other targets, the window's start before
# later times), which is where Hypothesis shrinks to. Times are multiples of 0.1 s, so schedules
# read well and survive the YAML round trip exactly.
#
# Seed sweep (as TigerBeetle's VOPR): seed s draws its schedule from Random(f"explore/{s}") and
# runs the simulation with seed s, so one integer reproduces a trial. Trials run in worker
# processes (or on a Dask cluster) behind one `concurrent.futures.Executor` interface, a few per
# worker in flight; results are sorted by seed, so they do not depend on who ran them. A run's
# history goes straight into the checkers through the history's own encoder and parser (never to
# disk), so a verdict here is the verdict of `pgha sim run` on the reproducer, byte for byte.
#
# A run that crashes (the engine or the simulator raises) is a finding like a broken check: it is
# kept, shrunk and written out with the exception, so that `pgha sim run` shows the traceback.
#
# Shrinking is delta debugging in rounds: drop a fault, halve a `for`, move a fault earlier; each
# round tries its candidates in a fixed order and keeps the first one that still breaks one of the
# checks the original broke. Rounds can evaluate their candidates in parallel with the same result.
"""Fault-schedule exploration: schedule generation, seed sweeps, shrinking and reproducers."""

from __future__ import annotations

import contextlib
import difflib
import importlib
import json
import math
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, TextIO, TypeVar

from pgha.checks import CheckReport, FactsCollector, run_checks
from pgha.history import HistoryWriter, encode_event, iter_history, parse_event
from pgha.report import write_report
from pgha.scenario import (
    STAYS_WITHOUT_FOR,
    ClockFault,
    DiskFullFault,
    EtcdAction,
    EtcdFault,
    EtcdPlacement,
    ExploreSpec,
    FailoverFault,
    FaultKind,
    FaultParams,
    FaultSpec,
    HealFault,
    KillAgentFault,
    KillFault,
    KillPostgresFault,
    LatencyFault,
    LossFault,
    ParamRange,
    PartitionFault,
    PauseFault,
    PauseWhat,
    RestartFault,
    Scenario,
    SwitchoverFault,
    Target,
    TargetRole,
    dump_scenario,
    load_scenario,
)
from sim.explore_draws_ops import draw_config, draw_etcd_put
from sim.run import Simulation, build, run

if TYPE_CHECKING:
    from sim.variants import Variant

_T = TypeVar("_T")

TIME_STEP_S = 0.1  # fault times and lengths are multiples of this
DASK_CONNECT_TIMEOUT = "10s"  # how long to try reaching a Dask scheduler
DECIMALS = 6  # drawn values are rounded to this many decimals (no 0.30000000000000004)
ONE_OFF = frozenset(  # kinds that take no `for` (the loader refuses one)
    {
        FaultKind.RESTART,
        FaultKind.KILL_POSTGRES,
        FaultKind.HEAL,
        FaultKind.SWITCHOVER,
        FaultKind.FAILOVER,
    }
)


def _range(low: float, high: float) -> ParamRange:
    return ParamRange(low=low, high=high)


# Parameter ranges the explorer draws from unless the scenario's `explore.params` says otherwise.
# `<kind>_for` (e.g. `pause_for`) overrides `for` for one kind.
PARAM_DEFAULTS: Mapping[str, ParamRange] = MappingProxyType(
    {
        "for": _range(5.0, 90.0),  # seconds an undoable fault lasts
        "clock_offset": _range(-60.0, 60.0),  # seconds
        "clock_drift_ppm": _range(-500.0, 500.0),
        "clock_jump": _range(-60.0, 60.0),  # seconds (a jump of 0 becomes 0.1 s)
        "loss_rate": _range(0.1, 1.0),  # fraction of messages dropped
        "latency_median": _range(0.01, 0.5),  # seconds
        "latency_p99": _range(0.01, 2.0),  # seconds (at least the median)
    }
)
PER_KIND_FOR = tuple(f"{kind.value}_for" for kind in FaultKind if kind not in ONE_OFF)
KNOWN_PARAMS = (*PARAM_DEFAULTS, *PER_KIND_FOR)
STEPS: Mapping[str, float] = MappingProxyType(
    {"clock_drift_ppm": 1.0, "loss_rate": 0.01, "latency_median": 0.001, "latency_p99": 0.001}
)
# Lowest value a range may reach: lengths and latencies are > 0, loss rates in (0, 1].
MINIMA: Mapping[str, float] = MappingProxyType(
    {"for": TIME_STEP_S, "loss_rate": 0.01, "latency_median": 0.0, "latency_p99": 0.0}
)


CRASHED = "crashed"  # the name a crash takes among the violated checks


class ExploreError(ValueError):
    """Bad input to the explorer: a scenario it cannot explore, an unknown variant or parameter."""


# ---------------------------------------------------------------- the space of schedules


class Draw(Protocol):
    """The one random primitive schedules are drawn with."""

    def integer(self, low: int, high: int) -> int:
        """An integer in [low, high]; Hypothesis shrinks it towards `low`."""
        ...


class RandomDraw:
    """Draws from a seeded `random.Random`."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def integer(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)


def choose(draw: Draw, options: Sequence[_T]) -> _T:
    """One of `options` (the first is the simplest)."""
    return options[draw.integer(0, len(options) - 1)]


def stepped(draw: Draw, bounds: ParamRange, step: float) -> float:
    """A multiple of `step` above `bounds.low`, within the bounds."""
    count = max(0, math.floor((bounds.high - bounds.low) / step + 1e-9))
    value = round(bounds.low + draw.integer(0, count) * step, DECIMALS)
    return min(value, bounds.high)


@dataclass(frozen=True, slots=True, kw_only=True)
class Space:
    """What one scenario's `explore:` section allows, with the targets its cluster offers."""

    duration_s: float
    kinds: tuple[FaultKind, ...]
    max_faults: int
    window_s: tuple[float, float]
    params: Mapping[str, ParamRange]
    nodes: tuple[str, ...]
    hosts: tuple[str, ...]
    etcd: tuple[str, ...]

    @classmethod
    def of(cls, scenario: Scenario, spec: ExploreSpec | None = None) -> Space:
        """The space of `spec` (default: the scenario's own `explore:`), checked.

        Raises:
            ExploreError: no explore section, an unknown parameter or an unusable range.
        """
        spec = spec if spec is not None else scenario.explore
        if spec is None:
            raise ExploreError(f"{scenario.source}: no 'explore:' section to draw schedules from")
        check_params(spec.params)
        own_hosts = scenario.etcd_placement is EtcdPlacement.OWN_HOSTS
        return cls(
            duration_s=scenario.duration_s,
            kinds=spec.faults,
            max_faults=spec.max_faults,
            window_s=spec.window_s,
            params=MappingProxyType({**PARAM_DEFAULTS, **spec.params}),
            nodes=scenario.node_names,
            hosts=scenario.node_names + (scenario.etcd if own_hosts else ()),
            etcd=scenario.etcd,
        )

    def param(self, name: str) -> ParamRange:
        return self.params[name]


def check_params(params: Mapping[str, ParamRange]) -> None:
    """Refuse parameter names the explorer does not know and ranges it cannot use."""
    for name, bounds in params.items():
        if name not in KNOWN_PARAMS:
            raise ExploreError(
                f"explore.params.{name}: unknown parameter; known: {', '.join(KNOWN_PARAMS)}"
            )
        minimum = MINIMA.get("for" if name.endswith("_for") else name)
        if minimum is not None and bounds.low < minimum:
            raise ExploreError(f"explore.params.{name}: the low end must be at least {minimum:g}")
        if name == "loss_rate" and bounds.high > 1:
            raise ExploreError(f"explore.params.{name}: a loss rate is at most 1")


def draw_schedule(space: Space, draw: Draw) -> tuple[FaultSpec, ...]:
    """1..max_faults faults of the allowed kinds, sorted by time (as the loader sorts them)."""
    count = draw.integer(1, space.max_faults)
    faults = [draw_fault(space, draw, choose(draw, space.kinds)) for _ in range(count)]
    return tuple(sorted(faults, key=lambda spec: spec.at_s))


def random_schedule(
    spec: ExploreSpec, scenario: Scenario, rng: random.Random
) -> tuple[FaultSpec, ...]:
    """A random schedule from `spec` for `scenario`'s cluster, drawn with `rng`."""
    return draw_schedule(Space.of(scenario, spec), RandomDraw(rng))


def schedule_for_seed(scenario: Scenario, seed: int) -> tuple[FaultSpec, ...]:
    """The schedule a seed sweep runs with `seed` (a function of the scenario and the seed)."""
    return draw_schedule(Space.of(scenario), RandomDraw(random.Random(f"explore/{seed}")))


def draw_fault(space: Space, draw: Draw, kind: FaultKind, at_s: float | None = None) -> FaultSpec:
    """One fault of `kind`, at `at_s` or at a time drawn from the window."""
    at = draw_time(space, draw) if at_s is None else at_s
    params = DRAW_PARAMS[kind](space, draw)
    undoable = kind not in ONE_OFF and not (
        isinstance(params, ClockFault) and params.jump_s is not None
    )
    if kind in STAYS_WITHOUT_FOR and draw.integer(0, 3) == 0:
        undoable = False  # one written change in four stays to the end (no `for`)
    for_s = draw_for(space, draw, kind, at) if undoable else None
    return FaultSpec(at_s=at, kind=kind, params=params, for_s=for_s)


def draw_time(space: Space, draw: Draw) -> float:
    """A time in the window, before the end of the run."""
    low, high = space.window_s
    high = min(high, space.duration_s - TIME_STEP_S)
    if high <= low:
        return low
    return stepped(draw, _range(low, high), TIME_STEP_S)


def draw_for(space: Space, draw: Draw, kind: FaultKind, at_s: float) -> float | None:
    """How long the fault lasts, ending by the end of the run (None: it lasts to the end)."""
    bounds = space.params.get(f"{kind.value}_for") or space.param("for")
    length = stepped(draw, bounds, TIME_STEP_S)
    return fit_for(length, at_s, space.duration_s)


def fit_for(length: float, at_s: float, duration_s: float) -> float | None:
    """`length`, shortened (to a multiple of 0.1 s where it can) so that at + for stays within
    the run; None when no time is left (the fault then lasts to the end of the run)."""
    room = math.floor((duration_s - at_s) / TIME_STEP_S + 1e-6) * TIME_STEP_S
    length = round(min(length, room), DECIMALS)
    while length > 0 and at_s + length > duration_s:  # float rounding: a millisecond less
        length = round(length - 0.001, DECIMALS)
    return length if length > 0 else None


# ---------------------------------------------------------------- parameters of each kind


def _roles(*roles: TargetRole) -> list[Target]:
    return [Target.of_role(role) for role in roles]


def node_target(space: Space, draw: Draw) -> Target:
    options = _roles(TargetRole.PRIMARY, TargetRole.REPLICA, TargetRole.RANDOM)
    return choose(draw, [*options, *(Target.named(name) for name in space.nodes)])


def host_target(space: Space, draw: Draw) -> Target:
    options = _roles(
        TargetRole.PRIMARY, TargetRole.REPLICA, TargetRole.ETCD_LEADER, TargetRole.RANDOM
    )
    # Isolating every host is refused by the loader: with one host, only roles.
    named = [Target.named(host) for host in space.hosts] if len(space.hosts) > 1 else []
    return choose(draw, [*options, *named])


def etcd_target(space: Space, draw: Draw) -> Target:
    options = _roles(TargetRole.ETCD_LEADER, TargetRole.RANDOM)
    return choose(draw, [*options, *(Target.named(name) for name in space.etcd)])


def candidate_target(space: Space, draw: Draw) -> Target:
    options = _roles(TargetRole.REPLICA, TargetRole.RANDOM)
    return choose(draw, [*options, *(Target.named(name) for name in space.nodes)])


def _kill(space: Space, draw: Draw) -> FaultParams:
    return KillFault(target=node_target(space, draw))


def _restart(space: Space, draw: Draw) -> FaultParams:
    return RestartFault(target=node_target(space, draw))


def _kill_agent(space: Space, draw: Draw) -> FaultParams:
    return KillAgentFault(target=node_target(space, draw))


def _kill_postgres(space: Space, draw: Draw) -> FaultParams:
    return KillPostgresFault(target=node_target(space, draw))


def _disk_full(space: Space, draw: Draw) -> FaultParams:
    return DiskFullFault(target=node_target(space, draw))


def _pause(space: Space, draw: Draw) -> FaultParams:
    what = choose(draw, (PauseWhat.AGENT, PauseWhat.NODE, PauseWhat.POSTGRES))
    return PauseFault(target=node_target(space, draw), what=what)


def _partition(space: Space, draw: Draw) -> FaultParams:
    if len(space.hosts) < 2 or draw.integer(0, 2) < 2:  # isolate two times in three
        return PartitionFault(isolate=host_target(space, draw))
    return PartitionFault(groups=_groups(space, draw))


def _groups(space: Space, draw: Draw) -> tuple[tuple[Target, ...], ...]:
    # Two named hosts seed the two sides; every other host joins one side or neither.
    hosts = list(space.hosts)
    first = hosts.pop(draw.integer(0, len(hosts) - 1))
    second = hosts.pop(draw.integer(0, len(hosts) - 1))
    sides: list[list[str]] = [[first], [second]]
    for host in hosts:
        side = draw.integer(0, 2)
        if side < 2:
            sides[side].append(host)
    return tuple(tuple(Target.named(host) for host in side) for side in sides)


def _heal(space: Space, draw: Draw) -> FaultParams:
    return HealFault()


def _clock(space: Space, draw: Draw) -> FaultParams:
    host = host_target(space, draw)
    mode = draw.integer(0, 3)  # 0 offset, 1 offset and drift, 2 drift, 3 jump
    if mode == 3:
        jump = stepped(draw, space.param("clock_jump"), TIME_STEP_S)
        return ClockFault(target=host, jump_s=jump or TIME_STEP_S)
    offset = stepped(draw, space.param("clock_offset"), TIME_STEP_S) if mode < 2 else None
    drift = stepped(draw, space.param("clock_drift_ppm"), 1.0) if mode > 0 else None
    return ClockFault(target=host, offset_s=offset, drift_ppm=drift)


def _etcd(space: Space, draw: Draw) -> FaultParams:
    action = choose(draw, (EtcdAction.KILL, EtcdAction.PAUSE))
    return EtcdFault(member=etcd_target(space, draw), action=action)


def _loss(space: Space, draw: Draw) -> FaultParams:
    rate = stepped(draw, space.param("loss_rate"), STEPS["loss_rate"])
    return LossFault(targets=host_target(space, draw), rate=max(rate, MINIMA["loss_rate"]))


def _latency(space: Space, draw: Draw) -> FaultParams:
    median = max(stepped(draw, space.param("latency_median"), STEPS["latency_median"]), 0.001)
    p99 = stepped(draw, space.param("latency_p99"), STEPS["latency_p99"])
    return LatencyFault(targets=host_target(space, draw), median_s=median, p99_s=max(p99, median))


def _switchover(space: Space, draw: Draw) -> FaultParams:
    if draw.integer(0, 1) == 0:
        return SwitchoverFault()
    return SwitchoverFault(candidate=candidate_target(space, draw))


def _failover(space: Space, draw: Draw) -> FaultParams:
    return FailoverFault(candidate=candidate_target(space, draw))


DRAW_PARAMS: Mapping[FaultKind, Callable[[Space, Draw], FaultParams]] = MappingProxyType(
    {
        FaultKind.KILL: _kill,
        FaultKind.RESTART: _restart,
        FaultKind.KILL_AGENT: _kill_agent,
        FaultKind.KILL_POSTGRES: _kill_postgres,
        FaultKind.PAUSE: _pause,
        FaultKind.PARTITION: _partition,
        FaultKind.HEAL: _heal,
        FaultKind.CLOCK: _clock,
        FaultKind.ETCD: _etcd,
        FaultKind.LOSS: _loss,
        FaultKind.LATENCY: _latency,
        FaultKind.DISK_FULL: _disk_full,
        FaultKind.SWITCHOVER: _switchover,
        FaultKind.FAILOVER: _failover,
        FaultKind.CONFIG: draw_config,
        FaultKind.ETCD_PUT: draw_etcd_put,
    }
)


# ---------------------------------------------------------------- engine variants


def load_variants() -> Mapping[str, Variant]:
    """`sim.variants.VARIANTS`: the known-bad engines by name (imported when first needed)."""
    from sim.variants import VARIANTS

    return VARIANTS


def check_variant(name: str | None) -> None:
    """Refuse an unknown engine variant name (None: the real engine)."""
    if name is None:
        return
    variants = load_variants()
    if name not in variants:
        hint = difflib.get_close_matches(name, sorted(variants), n=1)
        raise ExploreError(
            f"unknown engine variant {name!r}"
            + (f" (did you mean {hint[0]!r}?)" if hint else "")
            + f"; `pgha sim variants` lists them: {', '.join(sorted(variants))}"
        )


def build_simulation(
    scenario: Scenario, *, seed: int | None, recorder: Any, variant: str | None = None
) -> Simulation:
    """Build the world of `scenario`, with the engine variant named `variant` if one is given."""
    if variant is None:
        return build(scenario, seed=seed, recorder=recorder)
    check_variant(variant)
    return build(scenario, seed=seed, recorder=recorder, variant=load_variants()[variant])


def simulate(
    scenario: Scenario, *, seed: int | None, recorder: Any, variant: str | None = None
) -> Simulation:
    """Build and run `scenario` (with the engine variant named `variant`, if any)."""
    return run(build_simulation(scenario, seed=seed, recorder=recorder, variant=variant))


# ---------------------------------------------------------------- one run


@dataclass(frozen=True, slots=True)
class Outcome:
    """The verdict of one run: which checks broke and when the first violation began.

    A run that crashed (the engine or the simulator raised) is a finding too: `violated` is
    (`CRASHED`,), `first_violation_s` the time of the last event before the crash and `error`
    the exception. `wall_s` is left out of comparisons: equal outcomes are equal wherever they ran.
    """

    ok: bool
    violated: tuple[str, ...] = ()
    first_violation_s: float | None = None
    wall_s: float = field(default=0.0, compare=False)
    error: str | None = None

    def breaks_any(self, checks: Iterable[str]) -> bool:
        """Whether this run broke one of `checks`."""
        return not self.ok and bool(set(self.violated) & set(checks))


class CheckingRecorder:
    """A recorder that feeds the checkers as the run goes, through the history's own encoder
    and parser (so they see exactly what a history file would give them), keeping nothing."""

    def __init__(self) -> None:
        self.collector = FactsCollector()
        self.count = 0
        self.last_t = 0.0

    def record(self, t: float, kind: str, node: str | None = None, **fields: Any) -> None:
        event = parse_event(encode_event(t, kind, node, fields))
        self.collector.feed(event)
        self.count += 1
        self.last_t = event.t


def outcome_of(report: CheckReport, wall_s: float) -> Outcome:
    """The Outcome of a check report."""
    failed = [result for result in report.results if not result.ok]
    starts = [v.t_start for result in failed for v in result.violations]
    return Outcome(
        ok=report.ok,
        violated=tuple(result.name for result in failed),
        first_violation_s=min(starts) if starts else None,
        wall_s=wall_s,
    )


def with_schedule(scenario: Scenario, faults: Iterable[FaultSpec], seed: int) -> Scenario:
    """`scenario` with these faults (sorted by time, as the loader sorts them) and seed."""
    ordered = tuple(sorted(faults, key=lambda spec: spec.at_s))
    return replace(scenario, faults=ordered, seed=seed)


def run_schedule(
    scenario: Scenario, faults: Iterable[FaultSpec], seed: int, *, variant: str | None = None
) -> Outcome:
    """Run `scenario` with `faults` instead of its own and the simulation seed `seed`; check it.

    The history goes to the checkers only. The checks are the scenario's.
    """
    started = time.perf_counter()
    recorder = CheckingRecorder()
    schedule = with_schedule(scenario, faults, seed)
    try:
        simulate(schedule, seed=seed, recorder=recorder, variant=variant)
    except Exception as error:  # a crash is a finding: shrink it and write it out like others
        return crashed(error, recorder.last_t, time.perf_counter() - started)
    report = run_checks(recorder.collector.finish(), scenario.checks)
    return outcome_of(report, time.perf_counter() - started)


def crashed(error: Exception, at_s: float | None, wall_s: float) -> Outcome:
    """The Outcome of a run that raised `error` (last event at `at_s`)."""
    text = f"{type(error).__name__}: {error}"
    return Outcome(ok=False, violated=(CRASHED,), first_violation_s=at_s, wall_s=wall_s, error=text)


# ---------------------------------------------------------------- seed sweeps


@dataclass(frozen=True, slots=True)
class Trial:
    """One schedule run: the seed, the schedule it drew, and the verdict."""

    seed: int
    faults: tuple[FaultSpec, ...]
    outcome: Outcome


def run_seed(scenario: Scenario, seed: int, variant: str | None = None) -> Trial:
    """Draw seed `seed`'s schedule and run it (what each worker does)."""
    faults = schedule_for_seed(scenario, seed)
    return Trial(seed, faults, run_schedule(scenario, faults, seed, variant=variant))


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)(ms|s|m|h))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True, slots=True)
class Budget:
    """How much to explore: a number of schedules, or wall-clock seconds."""

    schedules: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if (self.schedules is None) == (self.seconds is None):
            raise ValueError("a Budget is either a number of schedules or a time")

    @classmethod
    def parse(cls, text: str) -> Budget:
        """`500` (schedules) or a duration: `60s`, `5m`, `1h30m`.

        Raises:
            ExploreError: anything else, or zero.
        """
        text = text.strip()
        if text.isdigit() and int(text) > 0:
            return cls(schedules=int(text))
        if _DURATION.fullmatch(text):
            seconds = sum(float(n) * _UNIT_S[u] for n, u in _DURATION_PART.findall(text))
            if seconds > 0:
                return cls(seconds=seconds)
        raise ExploreError(
            f"--budget: expected a number of schedules (500) or a duration (60s, 5m), got {text!r}"
        )

    def allows(self, started: int, elapsed_s: float) -> bool:
        """Whether another schedule may start."""
        if self.schedules is not None:
            return started < self.schedules
        assert self.seconds is not None
        return elapsed_s < self.seconds

    def __str__(self) -> str:
        if self.schedules is not None:
            return f"{self.schedules} schedules"
        return f"{self.seconds:g} s"


@dataclass(frozen=True, slots=True)
class SweepResult:
    """Every trial of a sweep, sorted by seed."""

    trials: tuple[Trial, ...]
    wall_s: float = field(default=0.0, compare=False)
    workers: int = field(default=1, compare=False)

    @property
    def failures(self) -> tuple[Trial, ...]:
        return tuple(trial for trial in self.trials if not trial.outcome.ok)

    def fastest(self, count: int) -> tuple[Trial, ...]:
        """The `count` failures whose first violation came earliest (then by seed)."""

        def key(trial: Trial) -> tuple[float, int]:
            first = trial.outcome.first_violation_s
            return (math.inf if first is None else first, trial.seed)

        return tuple(sorted(self.failures, key=key)[:count])

    @property
    def per_second(self) -> float:
        return len(self.trials) / self.wall_s if self.wall_s > 0 else 0.0


class InlineExecutor(Executor):
    """Runs each call at once in this process (one worker without process overhead)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:
            future.set_exception(error)
        return future


@dataclass(frozen=True, slots=True)
class Pool:
    """Where trials run, and how many of them to keep in flight there."""

    executor: Executor
    slots: int


@contextlib.contextmanager
def pool(workers: int = 1, dask_address: str | None = None) -> Iterator[Pool]:
    """Where trials run: this process (1 worker), worker processes, or a Dask cluster.

    Raises:
        ExploreError: Dask is not installed or its scheduler cannot be reached.
    """
    if dask_address is not None:
        with _dask_pool(dask_address) as remote:
            yield remote
    elif workers <= 1:
        yield Pool(InlineExecutor(), 1)
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context()) as local:
            yield Pool(local, 2 * workers)


def _mp_context() -> Any:
    import multiprocessing

    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method)


@contextlib.contextmanager
def _dask_pool(address: str) -> Iterator[Pool]:
    try:
        distributed = importlib.import_module("distributed")
    except ImportError:
        raise ExploreError("--dask needs Dask: pip install 'pgha[explore]'") from None
    try:
        client = distributed.Client(address, timeout=DASK_CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as error:
        raise ExploreError(f"--dask: cannot reach a Dask scheduler at {address}: {error}") from None
    try:
        threads = sum(client.nthreads().values())
        remote: Executor = client.get_executor(pure=False)
        yield Pool(remote, 2 * max(1, threads))
    finally:
        client.close()


class Progress:
    """Schedules run, failures found, schedules per second: one updating line on a terminal,
    a plain line every few seconds otherwise."""

    def __init__(
        self,
        stream: TextIO | None,
        label: str,
        *,
        every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.label = label
        self.clock = clock
        self.started = clock()
        self.tty = bool(stream is not None and stream.isatty())
        self.every_s = 0.1 if self.tty else every_s
        self._last = self.started
        self.runs = 0
        self.failures = 0

    def line(self) -> str:
        elapsed = self.clock() - self.started
        rate = self.runs / elapsed if elapsed > 0 else 0.0
        return (
            f"{self.label}: {self.runs} schedules, {self.failures} failures, "
            f"{rate:.1f} schedules/s, {elapsed:.0f} s"
        )

    def update(self, runs: int, failures: int) -> None:
        self.runs, self.failures = runs, failures
        now = self.clock()
        if self.stream is None or now - self._last < self.every_s:
            return
        self._last = now
        self._show()

    def _show(self) -> None:
        assert self.stream is not None
        if self.tty:
            self.stream.write("\r\033[K" + self.line())
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line of its own (after the progress line)."""
        if self.stream is not None:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.stream is None:
            return
        self._show()
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()


def sweep(
    scenario: Scenario,
    budget: Budget,
    *,
    seed0: int = 0,
    workers: int = 1,
    dask_address: str | None = None,
    variant: str | None = None,
    progress: Progress | None = None,
    on: Pool | None = None,
) -> SweepResult:
    """Run seeds seed0, seed0 + 1, ... within the budget; every trial, sorted by seed.

    Trials run on `on` if given, else on a pool made for the sweep (`pool(workers, dask_address)`).
    With a count budget the trials are the same whichever executor runs them; with a time budget,
    each seed's trial is (only how many seeds run depends on the machine).

    Raises:
        ExploreError: nothing to explore, an unknown variant, or Dask unavailable.
    """
    Space.of(scenario)
    check_variant(variant)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        where = on if on is not None else stack.enter_context(pool(workers, dask_address))
        trials = _drive(where, scenario, budget, seed0, variant, progress)
    if progress is not None:
        progress.close()
    ordered = tuple(sorted(trials, key=lambda trial: trial.seed))
    return SweepResult(ordered, time.perf_counter() - started, workers)


def _drive(
    where: Pool,
    scenario: Scenario,
    budget: Budget,
    seed0: int,
    variant: str | None,
    progress: Progress | None,
) -> list[Trial]:
    # Keep up to `where.slots` trials submitted; stop submitting when the budget is spent.
    started = time.perf_counter()
    pending: set[Future[Trial]] = set()
    trials: list[Trial] = []
    failures = 0
    next_seed = seed0
    while True:
        while len(pending) < where.slots and budget.allows(
            next_seed - seed0, time.perf_counter() - started
        ):
            pending.add(where.executor.submit(run_seed, scenario, next_seed, variant))
            next_seed += 1
        if not pending:
            return trials
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            trial = future.result()
            trials.append(trial)
            failures += not trial.outcome.ok
        if progress is not None:
            progress.update(len(trials), failures)


# ---------------------------------------------------------------- shrinking


Evaluate = Callable[[Sequence[tuple[FaultSpec, ...]]], Iterator[Outcome]]


@dataclass(frozen=True, slots=True)
class Shrunk:
    """A shrunk schedule, the verdict it still gives, and what shrinking cost."""

    faults: tuple[FaultSpec, ...]
    outcome: Outcome
    rounds: int
    runs: int


def _sequential(scenario: Scenario, seed: int, variant: str | None) -> Evaluate:
    def evaluate(candidates: Sequence[tuple[FaultSpec, ...]]) -> Iterator[Outcome]:
        for faults in candidates:
            yield run_schedule(scenario, faults, seed, variant=variant)

    return evaluate


def evaluator(where: Pool, scenario: Scenario, seed: int, variant: str | None) -> Evaluate:
    """How shrinking evaluates a round's candidates on `where`: one after the other in this
    process (stopping at the first that fails), else all at once on the pool."""
    if isinstance(where.executor, InlineExecutor):
        return _sequential(scenario, seed, variant)
    return parallel_evaluate(where.executor, scenario, seed, variant)


def parallel_evaluate(
    executor: Executor, scenario: Scenario, seed: int, variant: str | None
) -> Evaluate:
    """Evaluate a round's candidates on `executor` (same result as one after the other)."""

    def evaluate(candidates: Sequence[tuple[FaultSpec, ...]]) -> Iterator[Outcome]:
        count = len(candidates)
        return executor.map(
            _run_candidate, [scenario] * count, candidates, [seed] * count, [variant] * count
        )

    return evaluate


def _run_candidate(
    scenario: Scenario, faults: tuple[FaultSpec, ...], seed: int, variant: str | None
) -> Outcome:
    return run_schedule(scenario, faults, seed, variant=variant)


def drop_one(
    faults: tuple[FaultSpec, ...], window_s: tuple[float, float]
) -> list[tuple[FaultSpec, ...]]:
    """Candidates with one fault fewer (never the empty schedule)."""
    if len(faults) <= 1:
        return []
    return [faults[:i] + faults[i + 1 :] for i in range(len(faults))]


def halve_for(
    faults: tuple[FaultSpec, ...], window_s: tuple[float, float]
) -> list[tuple[FaultSpec, ...]]:
    """Candidates with one fault's `for` halved (not below one second)."""
    out: list[tuple[FaultSpec, ...]] = []
    for i, spec in enumerate(faults):
        if spec.for_s is None or spec.for_s <= 1.0:
            continue
        shorter = max(1.0, round(spec.for_s / 2, 1))
        out.append((*faults[:i], replace(spec, for_s=shorter), *faults[i + 1 :]))
    return out


def move_earlier(
    faults: tuple[FaultSpec, ...], window_s: tuple[float, float]
) -> list[tuple[FaultSpec, ...]]:
    """Candidates with one fault moved halfway to the window's start (re-sorted by time)."""
    out: list[tuple[FaultSpec, ...]] = []
    start = window_s[0]
    for i, spec in enumerate(faults):
        if spec.at_s - start < 2 * TIME_STEP_S:
            continue
        earlier = round(start + math.floor((spec.at_s - start) / 2 / TIME_STEP_S) * TIME_STEP_S, 1)
        moved = (*faults[:i], replace(spec, at_s=earlier), *faults[i + 1 :])
        out.append(tuple(sorted(moved, key=lambda s: s.at_s)))
    return out


SHRINK_STEPS = (drop_one, halve_for, move_earlier)


def shrink(
    scenario: Scenario,
    faults: Sequence[FaultSpec],
    seed: int,
    *,
    variant: str | None = None,
    max_rounds: int = 25,
    evaluate: Evaluate | None = None,
    original: Outcome | None = None,
) -> Shrunk:
    """Shrink a failing schedule: fewer faults, shorter, earlier, still breaking a check that
    the original broke (same seed and variant). Returns the original if it does not fail.

    Each round tries one kind of step on every fault and keeps the first candidate that still
    fails; a step that helps is tried again before the next kind. `evaluate` may run a round's
    candidates in parallel (`parallel_evaluate`): the result is the same.
    """
    evaluate = evaluate or _sequential(scenario, seed, variant)
    current = tuple(sorted(faults, key=lambda spec: spec.at_s))
    outcome = original or run_schedule(scenario, current, seed, variant=variant)
    runs, rounds = (0 if original else 1), 0
    if outcome.ok:
        return Shrunk(current, outcome, rounds, runs)
    window = scenario.explore.window_s if scenario.explore is not None else (0.0, 0.0)
    broken = outcome.violated
    step = 0
    while step < len(SHRINK_STEPS) and rounds < max_rounds:
        candidates = SHRINK_STEPS[step](current, window)
        rounds += 1
        found = _first_failing(candidates, evaluate, broken)
        runs += found[2]
        if found[0] is None:
            step += 1
            continue
        current, outcome = found[0], found[1]
        step = 0
    return Shrunk(current, outcome, rounds, runs)


def _first_failing(
    candidates: list[tuple[FaultSpec, ...]], evaluate: Evaluate, broken: tuple[str, ...]
) -> tuple[tuple[FaultSpec, ...] | None, Outcome, int]:
    runs = 0
    if candidates:
        for candidate, outcome in zip(candidates, evaluate(candidates), strict=False):
            runs += 1
            if outcome.breaks_any(broken):
                return candidate, outcome, runs
    return None, Outcome(ok=True), runs


# ---------------------------------------------------------------- reproducers


@dataclass(frozen=True, slots=True)
class Reproducer:
    """A failure written out: the scenario file, its report directory, the verdict it gave."""

    path: Path
    report_dir: Path
    outcome: Outcome
    command: str


def reproducer_scenario(
    scenario: Scenario,
    faults: Sequence[FaultSpec],
    seed: int,
    outcome: Outcome,
    *,
    variant: str | None = None,
) -> Scenario:
    """A standalone scenario that runs `faults` with `seed`: no explore section, a name and a
    description saying where it came from."""
    engine = f"engine variant {variant}" if variant else "the real engine"
    suffix = f"-{variant}" if variant else ""
    broke = ", ".join(outcome.violated) or "nothing"
    if outcome.error is not None:
        broke = f"crash the simulation ({outcome.error})"
    first = outcome.first_violation_s
    when = "" if first is None else f" at t={first:.1f} s"
    description = (
        f"Found by pgha sim explore from {scenario.name} ({engine}, seed {seed}): "
        f"{len(faults)} fault(s) {broke if outcome.error else 'break ' + broke}{when}."
    )
    if scenario.description:
        description += f"\nExplored scenario: {scenario.description.strip()}"
    return replace(
        with_schedule(scenario, faults, seed),
        name=f"{scenario.name}-seed{seed}{suffix}",
        description=description,
        explore=None,
    )


def run_file(
    path: Path, out_dir: Path, *, variant: str | None = None, show_decisions: bool = False
) -> tuple[Simulation, CheckReport]:
    """What `pgha sim run FILE` does: run the file, write its history and reports to `out_dir`."""
    scenario = load_scenario(path)
    out_dir.mkdir(parents=True, exist_ok=True)
    history = out_dir / "history.jsonl"
    with HistoryWriter(history) as writer:
        sim = simulate(scenario, seed=None, recorder=writer, variant=variant)
    report = run_checks(iter_history(history), source=str(history))
    write_report(history, report, out_dir, show_decisions=show_decisions)
    return sim, report


def write_reproducer(
    scenario: Scenario,
    faults: Sequence[FaultSpec],
    seed: int,
    outcome: Outcome,
    out_dir: Path,
    *,
    variant: str | None = None,
) -> Reproducer:
    """Write the failure as `<out_dir>/<name>.yaml`, run it as `pgha sim run` would, and write its
    history and report to `<out_dir>/<name>/`."""
    repro = reproducer_scenario(scenario, faults, seed, outcome, variant=variant)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{repro.name}.yaml"
    flag = f" --engine-variant {variant}" if variant else ""
    command = f"pgha sim run {path}{flag}"
    header = f"# Written by pgha sim explore. Reproduce with: {command}\n"
    path.write_text(header + dump_scenario(repro), encoding="utf-8")
    report_dir = out_dir / repro.name
    started = time.perf_counter()
    try:
        _, report = run_file(path, report_dir, variant=variant)
    except Exception as error:  # the schedule crashes the simulation: report what ran
        last = _partial_report(report_dir / "history.jsonl", report_dir)
        verdict = crashed(error, last, time.perf_counter() - started)
        return Reproducer(path, report_dir, verdict, command)
    return Reproducer(path, report_dir, outcome_of(report, time.perf_counter() - started), command)


def _partial_report(history: Path, out_dir: Path) -> float | None:
    # The history of a crashed run stops at the crash: report it if it can be, and return the
    # time of its last event.
    events = list(iter_history(history))
    with contextlib.suppress(Exception):  # a bonus: a partial history may not make a report
        write_report(events, None, out_dir)
    return events[-1].t if events else None


def write_summary(path: Path, document: Mapping[str, Any]) -> None:
    """The explore run's summary as JSON."""
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def default_workers() -> int:
    """All cores."""
    return os.cpu_count() or 1
