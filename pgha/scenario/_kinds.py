# The registry of fault kinds: one entry per kind, with everything the project knows about it in
# one place. Each entry names its parser (_fault_params.py) and dumper (_fault_dump.py), the keys
# of its long form (and the schema definition that lists them), its synonyms, whether it can be
# undone (`for`), whether `heal` ends it, the explorer's parameter ranges its draw reads, and, for
# anything not done everywhere, why not: a kind the explorer does not draw, or a world (sim,
# chaos) that cannot apply it, is named here with the reason. The worlds' own tables (the
# appliers in sim/faults.py and chaos/nemesis_faults.py, the explorer's draws) are keyed by this
# registry and checked against it (pgha.faults.appliers, and the test
# tests/scenario/test_fault_kinds_everywhere.py), so a new kind missing anywhere fails by name.
#
# The type of a kind's parameters and whether written data stays without `for` are facts of the
# value layer (FaultSpec checks itself against them in _model.py, which cannot import parsers);
# the entries read them from there, so they have one source too.
"""The registry of fault kinds: parse, dump, parameters, exploration and world support."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from pgha.scenario import _fault_dump as dump
from pgha.scenario import _fault_params as parse
from pgha.scenario._model import (
    PARAMS_TYPE,
    STAYS_WITHOUT_FOR,
    ClockFault,
    FaultKind,
    FaultParams,
)

WorldName = Literal["sim", "chaos"]
WORLDS: tuple[WorldName, ...] = ("sim", "chaos")
Dumper = Callable[[FaultParams], object]


def _nowhere() -> Mapping[WorldName, str]:
    return MappingProxyType({})  # every world applies it


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultKindEntry:
    """One fault kind: how it is read and written, its parameters, and where it is applied."""

    kind: FaultKind
    parse: parse.Parser  # the value under the kind's key -> its parameters
    dump: Dumper  # the parameters -> the value a scenario file holds
    keys: tuple[str, ...] = ()  # the keys of the long form; () when it has none
    schema: str | None = None  # the long form's definition in pgha/schema/scenario.schema.json
    synonyms: tuple[str, ...] = ()  # other keys that mean this kind (`crash: n1`)
    one_off: bool = False  # takes no `for`: there is nothing to undo
    network: bool = False  # a network fault: `heal` ends it
    explore_params: tuple[str, ...] = ()  # explore.params ranges its draw reads (besides `for`)
    not_drawn: str | None = None  # why the explorer never draws it; None: it does
    unsupported: Mapping[WorldName, str] = field(default_factory=_nowhere)  # world -> why not

    @property
    def word(self) -> str:
        """The key of the kind in a `faults:` entry."""
        return self.kind.value

    @property
    def params_type(self) -> type[FaultParams]:
        """The value class of the kind's parameters."""
        return PARAMS_TYPE[self.kind]

    @property
    def stays_without_for(self) -> bool:
        """Written data: the end of the run does not undo it when it has no `for`."""
        return self.kind in STAYS_WITHOUT_FOR

    def applied_in(self, world: WorldName) -> bool:
        """Whether `world` applies this kind (else `unsupported[world]` says why not)."""
        return world not in self.unsupported


def _node_kind(
    kind: FaultKind,
    parser: parse.Parser,
    *,
    synonyms: tuple[str, ...] = (),
    one_off: bool = False,
) -> FaultKindEntry:
    # The five kinds that take one node target (short form) or {node} (long form).
    return FaultKindEntry(
        kind=kind,
        parse=parser,
        dump=dump.node_fault,
        keys=parse.NODE_KEYS,
        schema="node_fault",
        synonyms=synonyms,
        one_off=one_off,
    )


_ENTRIES = (
    _node_kind(FaultKind.KILL, parse.kill, synonyms=("crash",)),
    _node_kind(FaultKind.RESTART, parse.restart, one_off=True),
    _node_kind(FaultKind.KILL_AGENT, parse.kill_agent),
    # a one-off crash the agent reacts to: nothing to undo
    _node_kind(FaultKind.KILL_POSTGRES, parse.kill_postgres, one_off=True),
    FaultKindEntry(
        kind=FaultKind.PAUSE,
        parse=parse.pause,
        dump=dump.pause,
        keys=parse.PAUSE_KEYS,
        schema="pause_fault",
    ),
    FaultKindEntry(
        kind=FaultKind.PARTITION,
        parse=parse.partition,
        dump=dump.partition,
        keys=parse.PARTITION_KEYS,
        schema="partition_fault",
        network=True,
    ),
    FaultKindEntry(kind=FaultKind.HEAL, parse=parse.heal, dump=dump.heal, one_off=True),
    FaultKindEntry(
        kind=FaultKind.CLOCK,
        parse=parse.clock,
        dump=dump.clock,
        keys=parse.CLOCK_KEYS,
        schema="clock_fault",
        explore_params=("clock_offset", "clock_drift_ppm", "clock_jump"),
    ),
    FaultKindEntry(
        kind=FaultKind.ETCD,
        parse=parse.etcd,
        dump=dump.etcd,
        keys=parse.ETCD_KEYS,
        schema="etcd_fault",
    ),
    FaultKindEntry(
        kind=FaultKind.LOSS,
        parse=parse.loss,
        dump=dump.loss,
        keys=parse.LOSS_KEYS,
        schema="loss_fault",
        network=True,
        explore_params=("loss_rate",),
    ),
    FaultKindEntry(
        kind=FaultKind.LATENCY,
        parse=parse.latency,
        dump=dump.latency,
        keys=parse.LATENCY_FAULT_KEYS,
        schema="latency_fault",
        network=True,
        explore_params=("latency_median", "latency_p99"),
        unsupported=MappingProxyType({"chaos": "latency needs netem, which this kernel lacks"}),
    ),
    _node_kind(FaultKind.DISK_FULL, parse.disk_full),
    FaultKindEntry(
        kind=FaultKind.SWITCHOVER,
        parse=parse.switchover,
        dump=dump.switchover,
        keys=parse.SWITCHOVER_KEYS,
        schema="switchover_fault",
        one_off=True,
    ),
    FaultKindEntry(
        kind=FaultKind.FAILOVER,
        parse=parse.failover,
        dump=dump.failover,
        keys=parse.FAILOVER_KEYS,
        schema="failover_fault",
        one_off=True,
    ),
    FaultKindEntry(
        kind=FaultKind.CONFIG,
        parse=parse.config,
        dump=dump.config,
        keys=parse.CONFIG_FAULT_KEYS,
        schema="config_fault",
    ),
    FaultKindEntry(
        kind=FaultKind.ETCD_PUT,
        parse=parse.etcd_put,
        dump=dump.etcd_put,
        keys=parse.ETCD_PUT_KEYS,
        schema="etcd_put_fault",
    ),
)


def _registry() -> Mapping[FaultKind, FaultKindEntry]:
    table = {entry.kind: entry for entry in _ENTRIES}
    if len(table) != len(_ENTRIES) or set(table) != set(FaultKind):
        missing = sorted(kind.value for kind in set(FaultKind) - set(table))
        raise RuntimeError(f"the fault kind registry needs one entry per kind; missing {missing}")
    return MappingProxyType({kind: table[kind] for kind in FaultKind})  # in the enum's order


FAULT_KINDS: Mapping[FaultKind, FaultKindEntry] = _registry()
KIND_WORDS = tuple(entry.word for entry in FAULT_KINDS.values())
KIND_SYNONYMS: Mapping[str, str] = MappingProxyType(
    {synonym: entry.word for entry in FAULT_KINDS.values() for synonym in entry.synonyms}
)
NETWORK_KINDS = frozenset(kind for kind, entry in FAULT_KINDS.items() if entry.network)
ONE_OFF_KINDS = frozenset(kind for kind, entry in FAULT_KINDS.items() if entry.one_off)
# `<kind>_for` (e.g. `pause_for`): the explorer's range of `for` for one kind that takes one.
PER_KIND_FOR = tuple(f"{entry.word}_for" for entry in FAULT_KINDS.values() if not entry.one_off)
# The long forms' keys, by their definition in the schema (the loader's ACCEPTED_KEYS).
LONG_FORM_KEYS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {entry.schema: entry.keys for entry in FAULT_KINDS.values() if entry.schema is not None}
)


def can_be_undone(kind: FaultKind, params: FaultParams) -> bool:
    """Whether a fault may take `for`: not a one-off kind, and not a clock jump (a one-off step
    of the wall clock)."""
    jump = isinstance(params, ClockFault) and params.jump_s is not None
    return not FAULT_KINDS[kind].one_off and not jump


def kind_of(params_type: type[object]) -> FaultKind:
    """The kind whose parameters are `params_type` (each kind has a value class of its own)."""
    for kind, entry in FAULT_KINDS.items():
        if entry.params_type is params_type:
            return kind
    raise KeyError(params_type.__name__)
