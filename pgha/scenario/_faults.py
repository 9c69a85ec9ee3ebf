# One fault entry is a mapping with `at`, exactly one kind key, and optionally `for` and `label`.
# The kind's own value is parsed by the parser the registry names (pgha/scenario/_kinds.py, the
# parsers in _fault_params.py). `for` undoes a fault on the hosts it hit; it is refused where
# nothing can be undone: the registry's one-off kinds (heal, restart, kill_postgres, switchover,
# failover) and a clock jump. A fault must start before the end of the run and, with `for`, end by
# then.
"""Parsing the `faults:` list into FaultSpecs."""

from __future__ import annotations

from pgha.located.errors import Problem
from pgha.located.tree import Fields, Node, items, mapping, problem, text
from pgha.located.units import Sign, duration_s
from pgha.scenario._fault_params import FaultContext, at_time, end_text
from pgha.scenario._kinds import FAULT_KINDS, KIND_SYNONYMS, KIND_WORDS, can_be_undone
from pgha.scenario._model import FaultKind, FaultParams, FaultSpec

FAULT_KEYS: tuple[str, ...] = ("at", "for", "label", *KIND_WORDS)

__all__ = ["FAULT_KEYS", "KIND_SYNONYMS", "KIND_WORDS", "FaultContext", "fault", "faults"]


def faults(node: Node | None, ctx: FaultContext) -> tuple[FaultSpec, ...]:
    """The `faults:` list, sorted by time (stable: equal times keep their order)."""
    if node is None:
        return ()
    parsed = [fault(item, ctx) for item in items(node, "a list of faults", non_empty=False)]
    return tuple(sorted(parsed, key=lambda spec: spec.at_s))


def fault(node: Node, ctx: FaultContext) -> FaultSpec:
    """One fault entry."""
    fields = mapping(node, FAULT_KEYS, KIND_SYNONYMS)
    kind = _kind(fields)
    at_s = at_time(fields.required("at", "a time such as 60s"), ctx)
    params = FAULT_KINDS[kind].parse(fields.entries[kind.value], ctx, at_s)
    for_node = fields.get("for")
    for_s = None if for_node is None else _for(for_node, kind, params, at_s, ctx)
    label_node = fields.get("label")
    return FaultSpec(
        at_s=at_s,
        kind=kind,
        params=params,
        for_s=for_s,
        label=None if label_node is None else text(label_node),
        line=node.line,
    )


def _kind(fields: Fields) -> FaultKind:
    kinds = [key for key in fields.entries if key in KIND_WORDS]
    if len(kinds) != 1:
        got = " and ".join(kinds) if kinds else "none"
        raise Problem(
            line=fields.node.line,
            field=fields.node.field,
            expected=f"exactly one fault kind ({', '.join(KIND_WORDS)})",
            got=got,
        )
    return FaultKind(kinds[0])


def _for(node: Node, kind: FaultKind, params: FaultParams, at_s: float, ctx: FaultContext) -> float:
    if not can_be_undone(kind, params):
        what = "a clock jump" if kind is FaultKind.CLOCK else kind.value
        raise problem(node, f"no 'for': {what} cannot be undone")
    for_s = duration_s(node, Sign.POSITIVE)
    if at_s + for_s > ctx.duration_s:
        raise problem(node, f"at + for within {end_text(ctx)}")
    return for_s
