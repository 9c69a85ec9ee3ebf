# Drawing a fault schedule from a `Space` (issue 4): how many faults, of which kinds, when, for how
# long, and each kind's parameters. Everything is drawn through `Draw.integer`, so the seed sweep
# (a seeded `random.Random`) and Hypothesis draw the same schedules from the same choices; options
# are listed simplest first, where Hypothesis shrinks to. The faults an operator or a broken tool
# writes (`config`, `etcd_put`) are drawn in sim/explore/draws_ops.py.
"""Drawing fault schedules: times, lengths, targets and each kind's parameters."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from types import MappingProxyType

from pgha.scenario import (
    STAYS_WITHOUT_FOR,
    ClockFault,
    DiskFullFault,
    EtcdAction,
    EtcdFault,
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
    can_be_undone,
)
from sim.explore.draws_ops import draw_config, draw_etcd_put
from sim.explore.space import (
    DECIMALS,
    MINIMA,
    STEPS,
    TIME_STEP_S,
    Draw,
    RandomDraw,
    Space,
    choose,
    stepped,
)


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
    undoable = can_be_undone(kind, params)
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
    return stepped(draw, ParamRange(low=low, high=high), TIME_STEP_S)


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


# ---------------------------------------------------------------- targets


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


# ---------------------------------------------------------------- parameters of each kind


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
