# What `pgha sim explore` draws for the faults an operator or a broken tool writes: a `config`
# change (PATCH /config) and an `etcd_put` (raw bytes in one cluster key). Values come from small
# fixed lists, simplest first (where Hypothesis shrinks to): for `config`, valid changes before
# the mistakes the REST API must refuse (a ttl of 0, negative, a string, beyond etcd's largest
# lease, a number of 26 digits; unknown keys; wrong types) or adjust (loop_wait above ttl); for
# `etcd_put`, garbage any key may get (empty, not JSON, JSON of another type) and JSON of the
# wrong shape for that key. Nothing drawn is a valid-looking foreign system identifier (ten or
# more digits in `initialize`): that one legitimately stops a cluster, as Patroni's does, so it
# is not a failure to search for. `pause: true` is not drawn either: it switches failover off, so
# a check that expects one would break by design.
"""Drawing `config` and `etcd_put` faults for the explorer."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from pgha.scenario import (
    CLUSTER_KEYS,
    MEMBERS_PREFIX,
    ConfigFault,
    EtcdPutFault,
    FaultParams,
    FrozenDict,
    Target,
    TargetRole,
)
from sim.explore.space import Draw, Space, choose

HUGE = 99999999999999999999999999  # crashed every agent of a real cluster (issue 13)

CONFIG_PATCHES: tuple[Mapping[str, Any], ...] = (
    {"ttl": 20},
    {"loop_wait": 5},
    {"retry_timeout": 5},
    {"ttl": 20, "loop_wait": 5, "retry_timeout": 5},
    {"ttl": None},  # back to the default
    {"maximum_lag_on_failover": 0},
    {"synchronous_mode": True},
    {"loop_wait": 60},  # above ttl: lowered, as Patroni does
    {"ttl": 0},
    {"ttl": -5},
    {"ttl": "thirty"},
    {"ttl": 10000000000},  # beyond etcd's largest lease
    {"ttl": HUGE},
    {"retry_timeout": 0},
    {"loop_wait": 1.5e308},
    {"synchronous_mode": "maybe"},
    {"watchdog": {"mode": "sometimes"}},
    {"no_such_setting": 1},
)

GARBAGE = ("garbage", "", "{", "null", "[]", "{}", "12345")  # never ten digits or more
WRONG_SHAPE: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "initialize": (),
        "leader": (),
        "sync": ('{"leader": 5, "sync_standby": [1]}', '{"leader": "ghost", "sync_standby": "x"}'),
        "failover": ('{"member": 5}', '{"scheduled_at": "tomorrow"}', '{"leader": "ghost"}'),
        "config": ('{"ttl": "x"}', f'{{"ttl": {HUGE}}}', '{"loop_wait": -1}'),
        "status": ('{"optime": "x"}', '{"optime": -1}'),
        "failsafe": ('["n1"]', '{"ghost": 5}'),
        "history": ('[["x", "y"]]', "[[1]]", '{"1": 2}'),
        MEMBERS_PREFIX: ('{"role": 5, "state": []}', '{"timeline": "x", "xlog_location": -1}'),
    }
)


def frozen(value: Any) -> Any:
    """A JSON value as a scenario holds it: mappings read-only, lists as tuples."""
    if isinstance(value, Mapping):
        return FrozenDict({key: frozen(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(frozen(item) for item in value)
    return value


def draw_config(space: Space, draw: Draw) -> FaultParams:
    """A `config` change: one patch of CONFIG_PATCHES, to some node's REST API first."""
    patch = choose(draw, CONFIG_PATCHES)
    roles = (TargetRole.PRIMARY, TargetRole.REPLICA, TargetRole.RANDOM)
    node = choose(draw, (None, *(Target.of_role(role) for role in roles)))
    return ConfigFault(patch=frozen(patch), node=node)


def draw_etcd_put(space: Space, draw: Draw) -> FaultParams:
    """An `etcd_put`: a cluster key (a member key of one of the nodes) and garbage for it."""
    members = tuple(f"{MEMBERS_PREFIX}{name}" for name in space.nodes)
    key = choose(draw, (*CLUSTER_KEYS, *members))
    shapes = WRONG_SHAPE[MEMBERS_PREFIX if key in members else key]
    return EtcdPutFault(key=key, value=choose(draw, (*GARBAGE, *shapes)))
