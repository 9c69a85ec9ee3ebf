"""The bug zoo (docs/patroni-rules.md §5) as engine variants (sim/variants.py).

Three things are shown. (1) Each variant decides differently from the real engine on one
hand-built observation, in the rule the bug is about (table below: the real reason, the variant's
reason). (2) Building every variant leaves the real engine as it was: the same `RULES` tuple, the
same module globals, the same decisions. (3) Each variant's reproducer,
`scenarios/variants/<name>.yaml`, breaks an invariant when the variant runs it and passes with the
real engine (for the variants that change the etcd client, also with the real engine on that
broken client: the engine's own rules are what protects).
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import json
import pickle
import sys
from dataclasses import dataclass, replace
from importlib.resources import files
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import pgha.engine
import pgha.engine.rules as engine_rules
import sim.variants as variants_module
from pgha.checks import CheckReport, run_checks
from pgha.engine.actions import AcquireLock, ArmWatchdog, KickWatchdog, RenewLock
from pgha.engine.config import SyncMode
from pgha.engine.decision import Decision, Reason
from pgha.engine.roles import Role
from pgha.engine.rules import RULES, decide
from pgha.engine.state import NodeState, Pending
from pgha.engine.values import (
    HistoryEntry,
    LocalConfig,
    LockResult,
    Observation,
    SyncKey,
    Tags,
)
from pgha.history import HistoryWriter, iter_history
from pgha.scenario import load_scenario
from sim.run import build, run
from sim.variants import VARIANTS, DcsOptions, Variant, WallClockState
from tests.engine.builders import (
    cfg,
    continuing,
    leader_state,
    local,
    obs,
    primary,
    state,
    view,
)

ROOT = Path(__file__).resolve().parents[2]
REPRODUCERS = ROOT / "scenarios" / "variants"


# ---------------------------------------------------------------- (1) one observation per variant


LOCAL = local()


@dataclass(frozen=True)
class Case:
    """One input on which `variant` breaks `rule`, the real rule the bug is about."""

    variant: str
    rule: str
    label: str
    state: NodeState
    obs: Observation
    real: Reason
    broken: Reason
    local: LocalConfig = LOCAL


def _stepped_back(
    st: WallClockState, now: float, wall_at_now: float
) -> tuple[NodeState, Observation]:
    # A primary whose DCS read failed at `now` (monotonic); its wall clock reads `wall_at_now`.
    return st, Observation(now_mono=now, now_wall=wall_at_now, cluster=None, postgres=primary())


_WALL_LEADER = WallClockState(
    name="n1", role=Role.PRIMARY, lock_deadline_wall=1125.0, watchdog_timeout_s=25.0
)
_SYNC_ON = cfg(synchronous_mode=SyncMode.ON)
_SYNC_KEY = SyncKey(leader="n2", standbys=frozenset({"n3"}), version=4)
_FAILSAFE = cfg(failsafe_mode=True)

CASES = [
    Case(
        "no-demote-on-failed-renewal",
        "lock_renewal_failed",
        "CAS failed, the re-read still names me: stay the leader",
        continuing(leader_state(), Pending.RENEW, 100.0),
        obs(100.4, cluster=view("n1"), postgres=primary(), lock_result=LockResult.CAS_FAILED),
        real=Reason.LOCK_CAS_FAILED_DEMOTE,
        broken=Reason.LEADER,
    ),
    Case(
        "no-demote-on-failed-renewal",
        "dcs_unreachable",
        "the renewal hit a DCS error, the (stale) re-read names me: stay the leader",
        continuing(leader_state(), Pending.RENEW, 100.0),
        obs(110.0, cluster=view("n1"), postgres=primary(), lock_result=LockResult.DCS_ERROR),
        real=Reason.DCS_UNREACHABLE_DEMOTE,
        broken=Reason.LEADER,
    ),
    Case(
        "no-demote-on-failed-renewal",
        "lock_renewal_failed",
        "CAS failed and another node holds the lock: no demotion in this cycle",
        continuing(leader_state(), Pending.RENEW, 100.0),
        obs(100.4, cluster=view("n2"), postgres=primary(), lock_result=LockResult.CAS_FAILED),
        real=Reason.LOCK_CAS_FAILED_DEMOTE,
        broken=Reason.LOCK_CAS_FAILED,
    ),
    Case(
        "trust-stale-read",
        "renew_lock_first",
        "the view names me: the read is taken as proof, no compare-and-set",
        leader_state(),
        obs(100.0, cluster=view("n1"), postgres=primary()),
        real=Reason.RENEW_LOCK,
        broken=Reason.LEADER,
    ),
    Case(
        "wall-clock-lease",
        "dcs_unreachable",
        "DCS down, the wall clock stepped back 60 s: the lease looks a minute longer",
        *_stepped_back(_WALL_LEADER, 110.0, 1050.0),
        real=Reason.DCS_UNREACHABLE_DEMOTE,
        broken=Reason.DCS_UNREACHABLE,
    ),
    Case(
        "no-healthiest-check",
        "probe_peers",
        "no leader: race at once instead of probing the peers",
        state(Role.REPLICA),
        obs(100.0, cluster=view()),
        real=Reason.PROBE_PEERS,
        broken=Reason.RACE,
    ),
    Case(
        "no-healthiest-check",
        "not_healthiest",
        "far behind /status (maximum_lag_on_failover): race anyway",
        state(Role.REPLICA),
        obs(100.0, cluster=view(status_optime_lsn=1000 + 2**21)),
        real=Reason.NOT_HEALTHIEST_LAG,
        broken=Reason.RACE,
    ),
    Case(
        "stale-primary-retakes-lock",
        "not_healthiest",
        "a primary on timeline 1 finds the lock free while /history says timeline 2",
        state(Role.PRIMARY),
        obs(
            100.0,
            cluster=view(history=(HistoryEntry(timeline=1, switch_lsn=5000),)),
            postgres=primary(timeline=1),
        ),
        real=Reason.NOT_HEALTHIEST_DEMOTE,
        broken=Reason.RACE,
    ),
    Case(
        "sync-allows-async-candidate",
        "not_healthiest",
        "synchronous mode, /sync = {n2: [n3]}: n1 goes on to the race",
        state(Role.REPLICA),
        obs(100.0, cluster=view(config=_SYNC_ON, sync=_SYNC_KEY)),
        real=Reason.NOT_HEALTHIEST_NOT_SYNC,
        broken=Reason.PROBE_PEERS,
    ),
    Case(
        "failsafe-partial-acks",
        "dcs_unreachable",
        "failsafe round: n2 accepted, n3 did not answer: keep running",
        continuing(
            leader_state(config=_FAILSAFE, last_failsafe=("n1", "n2", "n3")),
            Pending.FAILSAFE,
            110.0,
        ),
        obs(110.1, cluster=None, postgres=primary(), failsafe_acks=("n2",)),
        real=Reason.FAILSAFE_INCOMPLETE_DEMOTE,
        broken=Reason.FAILSAFE_CONTINUE,
    ),
]


def _real(case: Case) -> Decision:
    # The real engine gets a plain NodeState (the variant's extra memory stripped).
    st = case.state
    if isinstance(st, WallClockState):
        deadline = st.lock_deadline_wall
        st = NodeState(
            name=st.name,
            role=st.role,
            watchdog_timeout_s=st.watchdog_timeout_s,
            # the true lease: set when the wall clock read mono + 1000, before the step back
            lock_deadline_mono=None if deadline is None else deadline - 1000.0,
        )
    return decide(st, case.obs, case.local)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.variant}: {c.rule}: {c.label}")
def test_variant_breaks_its_rule_where_the_real_engine_holds(case: Case) -> None:
    assert case.rule in {rule.__name__ for rule in RULES}
    real = _real(case)
    broken = VARIANTS[case.variant].decide(case.state, case.obs, case.local)
    assert real.reason is case.real
    assert broken.reason is case.broken


def test_every_engine_variant_has_a_case_and_dcs_variants_change_the_client() -> None:
    # watchdog-not-armed decides with the same reasons; its own test below shows the difference.
    with_cases = {c.variant for c in CASES} | {"watchdog-not-armed"}
    for name, variant in VARIANTS.items():
        assert name == variant.name
        assert variant.bug
        assert variant.description
        if name not in with_cases:  # a bug in the etcd client, not in the rules
            assert variant.decide(*_any_input()) == decide(*_any_input())
            assert variant.dcs != DcsOptions()
    assert len(VARIANTS) >= 8


def _any_input() -> tuple[NodeState, Observation, LocalConfig]:
    return leader_state(), obs(100.0, cluster=view("n1"), postgres=primary()), local()


def test_trust_stale_read_skips_the_compare_and_set() -> None:
    d = VARIANTS["trust-stale-read"].decide(*_any_input())
    assert not any(isinstance(a, RenewLock) for a in d.actions)
    assert decide(*_any_input()).actions == (RenewLock(version=10),)


def test_wall_clock_lease_is_the_real_engine_while_the_clock_does_not_step() -> None:
    variant = VARIANTS["wall-clock-lease"]
    st, o = _stepped_back(_WALL_LEADER, 110.0, 1110.0)  # wall = mono + 1000, as at the renewal
    assert variant.decide(st, o, local()).reason is Reason.DCS_UNREACHABLE_DEMOTE
    # A successful renewal stores its deadline on the wall clock: sent + ttl, read at now.
    renewing = continuing(_WALL_LEADER, Pending.RENEW, 100.0)
    o = Observation(now_mono=100.2, now_wall=1100.2, cluster=view("n1"), postgres=primary())
    o = replace(o, lock_result=LockResult.OK)
    d = variant.decide(renewing, o, local())
    assert d.reason is Reason.LEADER
    assert isinstance(d.next_state, WallClockState)
    assert d.next_state.lock_deadline_wall == pytest.approx(1130.0)
    assert d.next_state.lock_deadline_mono == pytest.approx(130.0)
    # Starting from the engine's plain state works too (the first step of an agent).
    first = variant.decide(NodeState(name="n1"), obs(0.0, cluster=view()), local())
    assert isinstance(first.next_state, WallClockState)


def test_watchdog_not_armed_leaves_the_device_alone() -> None:
    renewed = continuing(leader_state(watchdog_timeout_s=None), Pending.RENEW, 100.0)
    o = obs(100.2, cluster=view("n1"), postgres=primary(), lock_result=LockResult.OK)
    real = decide(renewed, o, local())
    broken = VARIANTS["watchdog-not-armed"].decide(renewed, o, local())
    assert real.reason is broken.reason is Reason.LEADER
    assert [type(a).__name__ for a in real.actions][:2] == ["ArmWatchdog", "KickWatchdog"]
    assert not any(isinstance(a, ArmWatchdog | KickWatchdog) for a in broken.actions)
    assert broken.next_state.watchdog_timeout_s is None


def test_no_healthiest_check_still_refuses_a_nofailover_node() -> None:
    tagged = local(tags=Tags(nofailover=True))
    d = VARIANTS["no-healthiest-check"].decide(state(Role.REPLICA), obs(cluster=view()), tagged)
    assert d.reason is Reason.NOT_HEALTHIEST_NOFAILOVER
    assert not any(isinstance(a, AcquireLock) for a in d.actions)


# ---------------------------------------------------------------- (2) the real engine is untouched


def _engine_modules() -> list[ModuleType]:
    return [m for name, m in sorted(sys.modules.items()) if name.startswith("pgha.engine")]


def _globals(modules: list[ModuleType]) -> dict[str, dict[str, int]]:
    return {m.__name__: {k: id(v) for k, v in vars(m).items()} for m in modules}


def _build_variants_again() -> ModuleType:
    # Execute sim/variants.py once more as a module of its own (sim.variants itself is left as
    # it is, so other tests keep the objects they imported). A compiled sim.variants (pgha
    # compile) cannot be executed again, nor its source beside the compiled engine (WallClockState
    # would be an interpreted subclass of a compiled class): it stands in for itself, so the
    # variants still run on every input against the engine as it was (the pure suite checks the
    # building too).
    if not str(variants_module.__file__).endswith(".py"):
        return variants_module
    name = "sim._variants_built_again"
    spec = importlib.util.spec_from_file_location(name, variants_module.__file__)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file executes
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def _code(rule: object) -> object:
    # A rule's code object. A compiled rule (pgha compile) has none, and none can be swapped in.
    return getattr(rule, "__code__", None)


def test_building_every_variant_leaves_the_real_engine_as_it_was() -> None:
    rules_before = engine_rules.RULES
    listed_before = list(rules_before)
    code_before = [_code(rule) for rule in rules_before]
    modules = _engine_modules()
    globals_before = _globals(modules)
    decisions_before = [decide(c.state, c.obs, c.local) for c in CASES]

    fresh = _build_variants_again()
    for variant in fresh.VARIANTS.values():  # and runs each on every input
        for case in CASES:
            variant.decide(case.state, case.obs, case.local)

    assert engine_rules.RULES is rules_before is RULES
    assert list(engine_rules.RULES) == listed_before
    assert [_code(rule) for rule in engine_rules.RULES] == code_before
    assert pgha.engine.RULES is rules_before
    assert engine_rules.decide is decide
    assert _globals(modules) == globals_before
    after = [decide(c.state, c.obs, c.local) for c in CASES]
    assert after == decisions_before


def test_variants_pickle_for_worker_processes() -> None:
    for name, variant in VARIANTS.items():
        copy = pickle.loads(pickle.dumps(variant))
        assert copy == variant, name
        state_, observation, loc = _any_input()
        assert copy.decide(state_, observation, loc) == variant.decide(state_, observation, loc)


def test_replaced_and_without_refuse_a_rule_that_is_not_in_the_table() -> None:
    def stray(ctx: Any) -> None:
        return None

    with pytest.raises(ValueError, match="stray"):
        variants_module.replaced(stray, stray)
    with pytest.raises(ValueError, match="stray"):
        variants_module.without(stray)


# ---------------------------------------------------------------- (3) each reproducer, simulated


@dataclass(frozen=True)
class Outcome:
    """A reproducer's run: the verdicts, the first primary and etcd's first leader."""

    report: CheckReport
    first_primary: str | None
    first_etcd_leader: str | None


def _simulate(name: str, variant: Variant | None) -> Outcome:
    buffer = io.StringIO()
    scenario = load_scenario(REPRODUCERS / f"{name}.yaml")
    sim = build(scenario, recorder=HistoryWriter(buffer), variant=variant)
    etcd_leader = sim.etcd.leader
    run(sim)
    lines = buffer.getvalue().splitlines()
    roles = (json.loads(line) for line in lines if '"pg_role"' in line)
    first = next((e["node"] for e in roles if e.get("role") == "primary"), None)
    return Outcome(run_checks(iter_history(lines)), first, etcd_leader)


def _failed(report: CheckReport) -> set[str]:
    return {r.name for r in report.results if not r.ok}


# What each reproducer's fixed schedule assumes about its seed: the fault targets name n1 as the
# primary, and the etcd partitions name etcd2 as etcd's leader (so etcd1 is a follower).
FIRST_PRIMARY = "n1"
FIRST_ETCD_LEADER = {"no-demote-on-failed-renewal": "etcd2", "trust-stale-read": "etcd2"}

# The invariants each reproducer breaks with its variant.
BREAKS: dict[str, set[str]] = {
    "no-demote-on-failed-renewal": {"no_split_brain", "no_lost_acknowledged_writes"},
    "trust-stale-read": {"no_split_brain", "no_lost_acknowledged_writes"},
    "wall-clock-lease": {"no_split_brain", "no_lost_acknowledged_writes"},
    "no-healthiest-check": {"no_lost_acknowledged_writes"},
    "stale-primary-retakes-lock": {"no_split_brain", "no_lost_acknowledged_writes"},
    "sync-allows-async-candidate": {"no_lost_acknowledged_writes"},
    "watchdog-not-armed": {"no_split_brain", "no_lost_acknowledged_writes"},
    "unbounded-dcs-retries": {"no_split_brain", "no_lost_acknowledged_writes"},
    "failsafe-partial-acks": {"no_split_brain", "no_lost_acknowledged_writes"},
}


def test_every_variant_has_a_reproducer() -> None:
    assert set(BREAKS) == set(VARIANTS)
    assert {p.stem for p in REPRODUCERS.glob("*.yaml")} == set(VARIANTS)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_reproducer_breaks_the_variant_and_not_the_real_engine(name: str) -> None:
    variant = VARIANTS[name]
    assert load_scenario(REPRODUCERS / f"{name}.yaml").name == name
    broken = _simulate(name, variant)
    premise = (broken.first_primary, broken.first_etcd_leader)
    assumed = (FIRST_PRIMARY, FIRST_ETCD_LEADER.get(name, broken.first_etcd_leader))
    assert premise == assumed, f"the simulator changed: {name}.yaml needs another seed"
    assert _failed(broken.report) == BREAKS[name]
    real = _simulate(name, None).report
    assert real.ok, [r.to_dict() for r in real.results if not r.ok]
    if variant.dcs != DcsOptions() and not variant.dcs.unbounded_retries:
        # The real rules on the variant's broken etcd client: the CAS discipline still holds.
        on_its_client = Variant(f"real/{name}", "real engine", "-", decide, variant.dcs)
        assert _simulate(name, on_its_client).report.ok


def test_reproducers_use_at_most_four_faults() -> None:
    for name in VARIANTS:
        scenario = load_scenario(REPRODUCERS / f"{name}.yaml")
        assert len(scenario.faults) in range(1, 5), name
        assert scenario.duration_s <= 240.0, name


def test_reproducers_validate_against_the_published_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    yaml = pytest.importorskip("yaml")
    schema = json.loads((files("pgha") / "schema" / "scenario.schema.json").read_text("utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    for path in sorted(REPRODUCERS.glob("*.yaml")):
        errors = list(validator.iter_errors(yaml.safe_load(path.read_text("utf-8"))))
        assert not errors, (path.name, [e.message for e in errors])
