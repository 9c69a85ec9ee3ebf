"""The `config` (an operator's PATCH /config) and `etcd_put` (raw bytes in a cluster key) faults:
what the loader accepts, what it refuses (with line, field and what was expected), and the
round trip through `dump_scenario`. A bad *configuration* is not bad input: it is the operator's
mistake the scenario is about; only what cannot be sent at all (not JSON, not text) is refused."""

from __future__ import annotations

import pytest

from pgha.scenario import (
    ConfigFault,
    EtcdPutFault,
    FaultKind,
    FaultSpec,
    FrozenDict,
    Target,
    dump_scenario,
    parse_scenario,
)
from tests.scenario.texts import HEADER, error_of, one_fault

F = HEADER + "faults:\n  - "  # a fault entry on line 4
KEYS = "a cluster key: initialize, leader, sync, failover, config, status, failsafe, history"

BAD: list[tuple[str, str, str]] = [
    ("{at: 1m, config: {ttl: 20}}", "faults[0].config.ttl", "one of the keys patch, node"),
    ("{at: 1m, config: {node: n1}}", "faults[0].config.patch", "(required)"),
    ("{at: 1m, config: {patch: {}}}", "faults[0].config.patch", "a non-empty mapping"),
    ("{at: 1m, config: {patch: [ttl]}}", "faults[0].config.patch", "a non-empty mapping"),
    ("{at: 1m, config: {patch: {ttl: .nan}}}", "faults[0].config.patch.ttl", "a JSON value"),
    ("{at: 1m, config: {patch: {a: [1, .inf]}}}", "faults[0].config.patch.a[1]", "a JSON value"),
    ("{at: 1m, config: {patch: {ttl: 2024-01-01}}}", "faults[0].config.patch.ttl", "a JSON value"),
    ("{at: 1m, config: {patch: {ttl: 20}, node: etcd1}}", "faults[0].config.node", "a node"),
    ("{at: 1m, config: {patch: {ttl: 20}, node: [n1, n2]}}", "faults[0].config.node", "a node"),
    ("{at: 1m, config: {patch: {ttl: 20}, nodes: n1}}", "faults[0].config.nodes", "patch, node"),
    ("{at: 1m, config: null}", "faults[0].config", "a mapping with keys patch, node"),
    ("{at: 1m, etcd_put: leader}", "faults[0].etcd_put", "a mapping with keys key, value"),
    ("{at: 1m, etcd_put: {key: leadr, value: x}}", "faults[0].etcd_put.key", KEYS),
    ("{at: 1m, etcd_put: {key: /service/x/leader, value: x}}", "faults[0].etcd_put.key", KEYS),
    ("{at: 1m, etcd_put: {key: members/, value: x}}", "faults[0].etcd_put.key", KEYS),
    ("{at: 1m, etcd_put: {key: members/a/b, value: x}}", "faults[0].etcd_put.key", KEYS),
    ("{at: 1m, etcd_put: {key: 5, value: x}}", "faults[0].etcd_put.key", KEYS),
    ("{at: 1m, etcd_put: {key: leader, value: 5}}", "faults[0].etcd_put.value", "as text"),
    ("{at: 1m, etcd_put: {key: leader, value: {a: 1}}}", "faults[0].etcd_put.value", "quote it"),
    ("{at: 1m, etcd_put: {key: leader}}", "faults[0].etcd_put.value", "(required)"),
    ("{at: 1m, etcd_put: {value: x}}", "faults[0].etcd_put.key", "(required)"),
    ("{at: 1m, etcd_put: {key: leader, value: x}, for: 10m}", "faults[0].for", "at + for"),
]


@pytest.mark.parametrize(("entry", "field", "expected"), BAD, ids=[b[0] for b in BAD])
def test_bad_entries_name_line_field_and_what_was_expected(
    entry: str, field: str, expected: str
) -> None:
    err = error_of(F + entry + "\n")

    assert (err.path, err.line, err.field) == ("t.yaml", 4, field)
    assert expected in err.expected
    assert str(err).startswith(f"t.yaml:4: {field}: expected ")


@pytest.mark.parametrize(
    ("entry", "hint"),
    [
        ("{at: 1m, config: {ttl: 20}}", "write config: {patch: {ttl: ...}}"),
        ("{at: 1m, config: {patch: {ttl: .inf}}}", "JSON has no infinity or NaN"),
        ("{at: 1m, config: {patch: {at: 2024-01-01}}}", "quote it to send it as a string"),
        ("{at: 1m, etcd_put: {key: sinc, value: x}}", "did you mean 'sync'?"),
        ("{at: 1m, etcd_put: {key: members/1, value: x}}", "starting with a letter"),
    ],
)
def test_hints(entry: str, hint: str) -> None:
    assert hint in error_of(F + entry + "\n").hint


def test_a_bad_configuration_is_the_operators_mistake_not_bad_input() -> None:
    huge = 99999999999999999999999999
    spec = one_fault(f"{{at: 1m, config: {{patch: {{ttl: {huge}, loop_wait: -1, x: y}}}}}}")

    assert spec.params == ConfigFault(patch=FrozenDict(ttl=huge, loop_wait=-1, x="y"))


def test_both_can_be_undone_and_neither_is_undone_by_the_end_of_the_run_without_for() -> None:
    config = one_fault("{at: 1m, config: {patch: {ttl: 20}}, for: 30s}")
    put = one_fault("{at: 1m, etcd_put: {key: sync, value: ''}, for: 30s}")
    stays = one_fault("{at: 1m, etcd_put: {key: sync, value: ''}}")
    kill = one_fault("{at: 1m, kill: n1}")

    assert (config.end_s, put.end_s, stays.end_s) == (90.0, 90.0, None)
    assert (config.undone_at_end, put.undone_at_end) == (True, True)
    assert (stays.undone_at_end, kill.undone_at_end) == (False, True)


def test_labels_name_the_key_or_the_changed_settings() -> None:
    put = one_fault("{at: 1m, etcd_put: {key: members/n2, value: x}}")
    config = one_fault("{at: 1m, config: {patch: {ttl: 20, loop_wait: 5}, node: primary}}")
    named = one_fault("{at: 1m, etcd_put: {key: leader, value: x}, label: garbage leader}")

    assert put.label_for(()) == "etcd_put members/n2"
    assert config.label_for(("n2",)) == "config ttl,loop_wait n2"
    assert config.label_for(()) == "config ttl,loop_wait"
    assert named.label_for(()) == "garbage leader"
    assert one_fault("{at: 1m, kill: primary}").label_for(("n1",)) == "kill n1"


@pytest.mark.parametrize(
    "entry",
    [
        "{at: 1m, config: {patch: {ttl: 20, loop_wait: 5}}, for: 30s}",
        "{at: 1m, config: {patch: {ttl: '20', a: {b: [1, 2.5, null, true]}, c: null}, node: n3}}",
        "{at: 1m, config: {patch: {ttl: 99999999999999999999999999, loop_wait: 1.5e+308}}}",
        "{at: 1m, etcd_put: {key: initialize, value: ''}}",
        "{at: 1m, etcd_put: {key: members/ghost, value: '{\"role\": 5}'}, for: 5s}",
        '{at: 1m, etcd_put: {key: history, value: "[[1]]\\n"}}',
        "{at: 1m, etcd_put: {key: leader, value: 'null'}}",
    ],
)
def test_dump_reads_back_to_the_same_fault(entry: str) -> None:
    scenario = parse_scenario(F + entry + "\n")

    again = parse_scenario(dump_scenario(scenario))

    assert again.faults[0].params == scenario.faults[0].params
    assert again.faults[0].for_s == scenario.faults[0].for_s
    assert hash(again.faults[0].params) == hash(scenario.faults[0].params)  # schedules hash


def test_a_patch_is_read_only_and_pickles() -> None:
    import pickle

    spec = one_fault("{at: 1m, config: {patch: {watchdog: {mode: off}}}}")
    assert isinstance(spec.params, ConfigFault)
    with pytest.raises(TypeError):
        spec.params.patch["ttl"] = 20  # type: ignore[index]
    assert pickle.loads(pickle.dumps(spec)) == spec


def test_built_in_code() -> None:
    spec = FaultSpec(
        at_s=1.0,
        kind=FaultKind.ETCD_PUT,
        params=EtcdPutFault(key="leader", value="x"),
    )
    with pytest.raises(ValueError, match="config takes ConfigFault"):
        FaultSpec(at_s=1.0, kind=FaultKind.CONFIG, params=spec.params)
    assert ConfigFault(patch=FrozenDict(ttl=20), node=Target.named("n1")).node == Target.named("n1")
