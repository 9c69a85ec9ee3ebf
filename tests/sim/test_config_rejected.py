"""A bad `/config` written to the simulated etcd (issue 13, items 1 and 2) crashes no node.

The simulator's etcd client decodes `/config` as the real agent does: a JSON document goes through
the engine's parser, and a value it refuses keeps the last good configuration (never a crash,
never a lease etcd could not grant). The cluster keeps its primary; each node says so once.
"""

from __future__ import annotations

from typing import Any

import pytest

from pgha.engine.config import DynamicConfig
from sim.dcs import config_of
from tests.sim.simkit import finish, later, primary_of, scenario_sim

HUGE = 99999999999999999999999999
BAD_AT = 20.0


@pytest.mark.parametrize(
    ("bad", "key"),
    [
        ({"ttl": HUGE, "loop_wait": 2, "retry_timeout": 3}, "ttl"),
        ({"ttl": 10000000000, "loop_wait": 2, "retry_timeout": 3}, "ttl"),
        ({"ttl": 10, "loop_wait": float("nan")}, "loop_wait"),
        ("garbage", "config"),
    ],
)
def test_a_bad_config_in_etcd_keeps_every_node_alive_and_the_primary(bad: Any, key: str) -> None:
    sim = scenario_sim(duration=60)
    later(sim.world.env, BAD_AT, lambda: sim.etcd.put("config", bad))
    events = finish(sim)
    rejected = [e for e in events if e["kind"] == "config_rejected"]
    assert sorted(e["node"] for e in rejected) == ["n1", "n2", "n3"]  # each says it once
    assert {e["key"] for e in rejected} == {key}
    assert all(e["t"] >= BAD_AT for e in rejected)
    leaders = {e["node"] for e in events if e["kind"] == "lock" and e["event"] == "acquired"}
    assert len(leaders) == 1  # nobody lost the lock: it was renewed with the last good ttl
    lost = [e for e in events if e["kind"] == "lock" and e["event"] in ("lost", "expired")]
    assert lost == []
    assert primary_of(sim) == leaders.pop()
    for node in sim.nodes.values():
        assert node.dcs.config.ttl_s == 10


def test_config_of_keeps_the_last_good_one() -> None:
    good = DynamicConfig(ttl_s=20)
    assert config_of(good, DynamicConfig()) == (good, None, "")
    assert config_of({"ttl": 15}, good)[0].ttl_s == 15
    config, error, key = config_of({"ttl": HUGE}, good)
    assert (config, key) == (good, "ttl")
    assert error is not None
    assert "from 3 to 3600" in error
    assert config_of([1], good) == (good, "config: not a JSON object", "config")
