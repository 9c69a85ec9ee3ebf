"""The issue's example runs as written, files load, and parsing is deterministic."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest

from pgha.engine.config import DynamicConfig, WatchdogMode
from pgha.engine.values import Tags
from pgha.scenario import (
    ChecksSpec,
    ClockFault,
    ClockSpec,
    EtcdPlacement,
    FaultKind,
    FaultSpec,
    FrozenDict,
    KillFault,
    LatencySpec,
    NetworkSpec,
    NodeSpec,
    PartitionFault,
    PauseFault,
    PauseWhat,
    Scenario,
    ScenarioError,
    Target,
    TargetRole,
    WorkloadSpec,
    WorkloadVia,
    load_scenario,
    parse_scenario,
)
from tests.scenario.texts import ISSUE_EXAMPLE

PRIMARY = Target.of_role(TargetRole.PRIMARY)


def test_issue_example_parses_to_exactly_these_values() -> None:
    scenario = parse_scenario(ISSUE_EXAMPLE, "primary-crash.yaml")

    assert scenario == Scenario(
        name="primary-crash",
        description="The primary's machine dies; a replica takes over.",
        seed=7,
        duration_s=300.0,
        nodes=(NodeSpec(name="n1"), NodeSpec(name="n2"), NodeSpec(name="n3")),
        etcd=("etcd1", "etcd2", "etcd3"),
        etcd_placement=EtcdPlacement.OWN_HOSTS,
        config=DynamicConfig(watchdog_mode=WatchdogMode.AUTOMATIC, safety_margin_s=5.0),
        config_raw={
            "ttl": 30,
            "loop_wait": 10,
            "retry_timeout": 10,
            "synchronous_mode": False,
            "watchdog": {"mode": "automatic", "safety_margin": 5},
        },
        network=NetworkSpec(latency=LatencySpec(median_s=0.001, p99_s=0.010)),
        clocks={"n2": ClockSpec(offset_s=2.0, drift_ppm=100.0)},
        workload=WorkloadSpec(rate_per_s=10.0, via=WorkloadVia.HAPROXY, clients=1, timeout_s=5.0),
        faults=(
            FaultSpec(
                at_s=60.0,
                kind=FaultKind.KILL,
                params=KillFault(target=PRIMARY),
                for_s=90.0,
                line=20,
            ),
            FaultSpec(
                at_s=200.0,
                kind=FaultKind.PARTITION,
                params=PartitionFault(isolate=PRIMARY),
                for_s=45.0,
                line=21,
            ),
            FaultSpec(
                at_s=260.0,
                kind=FaultKind.PAUSE,
                params=PauseFault(target=Target.named("n1"), what=PauseWhat.AGENT),
                for_s=40.0,
                line=22,
            ),
            FaultSpec(
                at_s=280.0,
                kind=FaultKind.CLOCK,
                params=ClockFault(target=Target.named("n3"), jump_s=40.0),
                line=23,
            ),
        ),
        checks=ChecksSpec(failover_within_s=45.0, eventually_healthy_s=60.0),
        explore=None,
        source="primary-crash.yaml",
    )


def test_issue_example_keeps_the_config_as_patroni_keys_for_the_history() -> None:
    scenario = parse_scenario(ISSUE_EXAMPLE)

    assert json.loads(json.dumps(scenario.config_json())) == {
        "ttl": 30,
        "loop_wait": 10,
        "retry_timeout": 10,
        "synchronous_mode": False,
        "watchdog": {"mode": "automatic", "safety_margin": 5},
    }
    assert scenario.node_names == ("n1", "n2", "n3")
    assert scenario.source == "<string>"


def test_parsed_values_are_frozen() -> None:
    scenario = parse_scenario(ISSUE_EXAMPLE)

    with pytest.raises(AttributeError):
        scenario.seed = 8  # type: ignore[misc]
    with pytest.raises(TypeError):
        scenario.clocks["n1"] = ClockSpec()  # type: ignore[index]
    with pytest.raises(TypeError):
        scenario.config_raw["ttl"] = 10  # type: ignore[index]


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.__setitem__("ttl", 1),
        lambda m: m.__delitem__("ttl"),
        lambda m: m.__ior__({"ttl": 1}),
        lambda m: m.clear(),
        lambda m: m.pop("ttl"),
        lambda m: m.popitem(),
        lambda m: m.setdefault("ttl", 1),
        lambda m: m.update(ttl=1),
    ],
)
def test_mappings_are_read_only(change: Callable[[FrozenDict[object]], None]) -> None:
    config_raw = parse_scenario(ISSUE_EXAMPLE).config_raw
    assert isinstance(config_raw, FrozenDict)

    with pytest.raises(TypeError, match="read-only"):
        change(config_raw)
    assert config_raw["ttl"] == 30


def test_scenarios_and_errors_cross_process_boundaries() -> None:
    scenario = parse_scenario(ISSUE_EXAMPLE)
    with pytest.raises(ScenarioError) as caught:
        parse_scenario("name: x\nduration: 5x\n")

    assert pickle.loads(pickle.dumps(scenario)) == scenario
    error = pickle.loads(pickle.dumps(caught.value))
    assert (str(error), error.line, error.field) == (str(caught.value), 2, "duration")
    assert json.loads(json.dumps(scenario.config_raw)) == scenario.config_json()


def test_parsing_is_deterministic() -> None:
    first, second = parse_scenario(ISSUE_EXAMPLE), parse_scenario(ISSUE_EXAMPLE)

    assert first == second
    assert repr(first) == repr(second)


def test_load_scenario_reads_a_file_and_names_it_as_source(tmp_path: Path) -> None:
    path = tmp_path / "primary-crash.yaml"
    path.write_text(ISSUE_EXAMPLE, encoding="utf-8")

    scenario = load_scenario(path)

    assert scenario == parse_scenario(ISSUE_EXAMPLE, str(path))
    assert scenario.source == str(path)


def test_load_scenario_reports_a_missing_file_as_a_scenario_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)

    assert (caught.value.path, caught.value.line, caught.value.field) == (str(path), 1, "<file>")
    assert caught.value.expected == "a readable UTF-8 file"


def test_load_scenario_reports_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))

    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)

    assert caught.value.field == "<file>"


def test_error_message_names_file_line_field_expected_and_got() -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario("name: x\nduration: 5m\nnetwrok: {}\n", "bad.yaml")

    err = caught.value
    assert str(err).startswith(f"bad.yaml:3: netwrok: expected {err.expected}, got 'netwrok'")
    assert err.hint == "did you mean 'network'?"
    assert str(err).endswith(err.hint)


BUNDLED = sorted((Path(__file__).resolve().parents[2] / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("path", BUNDLED, ids=[p.stem for p in BUNDLED])
def test_bundled_scenarios_load(path: Path) -> None:
    assert load_scenario(path).name


def test_tags_default_to_the_engines_defaults() -> None:
    assert parse_scenario(ISSUE_EXAMPLE).nodes[0].tags == Tags()
