"""The explorer's `config` and `etcd_put` faults (sim/explore/draws_ops.py): every listed patch,
key and value is drawn, schedules stay valid and read back, nothing drawn is a valid-looking
foreign system identifier, one change in four stays without `for`, and a sweep runs them.

They are drawn only where a scenario's `explore.faults` lists them, so the schedules (and thus
the histories) of every scenario that does not are what they were before these kinds existed."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from pgha.scenario import (
    CLUSTER_KEYS,
    ConfigFault,
    EtcdPutFault,
    FaultKind,
    FaultSpec,
    parse_scenario,
)
from sim.explore import Budget, run_schedule, schedule_for_seed, sweep
from sim.explore.draws_ops import CONFIG_PATCHES, GARBAGE, WRONG_SHAPE
from tests.explore.test_explore_schedules import check_schedule

WRITES = """
name: writes
seed: 4
duration: 3m
cluster: {nodes: 3, etcd: 3}
config: {ttl: 20, loop_wait: 5, retry_timeout: 5}
workload: {rate: 10/s, via: haproxy}
checks: {eventually_healthy: 1m}
explore:
  faults: [config, etcd_put]
  max_faults: 3
  window: [20s, 2m]
"""
SCENARIO = parse_scenario(WRITES)
SEEDS = range(400)


def _faults() -> list[FaultSpec]:
    return [fault for seed in SEEDS for fault in schedule_for_seed(SCENARIO, seed)]


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value))


def test_schedules_keep_to_the_spec_and_read_back() -> None:
    for seed in range(100):
        check_schedule(SCENARIO, schedule_for_seed(SCENARIO, seed))


def test_every_patch_key_and_value_is_drawn() -> None:
    faults = _faults()
    configs = [f.params for f in faults if isinstance(f.params, ConfigFault)]
    puts = [f.params for f in faults if isinstance(f.params, EtcdPutFault)]
    drawn = {json.dumps(_plain(p.patch), sort_keys=True) for p in configs}
    assert drawn == {json.dumps(p, sort_keys=True) for p in CONFIG_PATCHES}
    assert {str(p.node) for p in configs} == {"None", "primary", "replica", "random"}
    members = {f"members/{n}" for n in SCENARIO.node_names}
    assert {p.key for p in puts} == {*CLUSTER_KEYS, *members}
    for key in CLUSTER_KEYS:
        values = {p.value for p in puts if p.key == key}
        assert values <= {*GARBAGE, *WRONG_SHAPE[key]}
        assert len(values) >= len(GARBAGE)


def test_no_valid_looking_system_identifier_is_ever_written() -> None:
    # Ten digits or more in `initialize` is a foreign cluster's identifier: halting is right.
    values = {*GARBAGE, *(v for shapes in WRONG_SHAPE.values() for v in shapes)}
    assert not any(v.strip().isdigit() and len(v.strip()) >= 10 for v in values)


def test_one_written_change_in_four_stays_without_for() -> None:
    faults = _faults()
    stays = Counter(f.for_s is None for f in faults)
    assert 0.18 < stays[True] / len(faults) < 0.32
    assert {f.kind for f in faults} == {FaultKind.CONFIG, FaultKind.ETCD_PUT}


def test_the_same_seed_gives_the_same_outcome() -> None:
    faults = schedule_for_seed(SCENARIO, 5)
    assert run_schedule(SCENARIO, faults, 5) == run_schedule(SCENARIO, faults, 5)


def test_a_small_sweep_runs_them_without_a_crash() -> None:
    result = sweep(SCENARIO, Budget(schedules=6))
    assert [trial.seed for trial in result.trials] == list(range(6))
    assert all(trial.outcome.error is None for trial in result.trials)
