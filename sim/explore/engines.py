# Which engine a run uses: the real one, or a known-bad variant of it named on the command line
# (sim/variants.py, the bug zoo). The variants are imported when first needed.
"""Engine variants by name: refuse unknown names, build and run a scenario with one."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pgha.scenario import Scenario
from sim.explore.space import ExploreError
from sim.run import Simulation, build, run

if TYPE_CHECKING:
    from sim.variants import Variant


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
