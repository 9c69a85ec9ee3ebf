# Safety rule: one ordered table decides; the first rule that matches wins, so priority is the order
# below and nothing else. Identity and DCS health come first (a node that cannot prove anything must
# not act as a leader), then missing data, then the lock holder's own proof by compare-and-set, then
# pause, then what a proven holder does, then what everyone else does: demote without the lock,
# rejoin and follow a leader, and only last race for a free lock (Patroni `_run_cycle`,
# docs/patroni-rules.md §2.1-2.3, as a flat table instead of nested branches).
"""The ordered rule table and `decide`, the engine's one entry point."""

from __future__ import annotations

from collections.abc import Callable

from pgha.engine.context import Ctx, make_context
from pgha.engine.decision import Decision
from pgha.engine.rules_leader import (
    leader_enforce_primary,
    leader_manual_failover,
    leader_postgres_down,
    leader_postgres_starting,
    leader_start_failed,
    leader_watchdog_unusable,
    lock_renewal_failed,
    promote_failed,
    renew_lock_first,
)
from pgha.engine.rules_lifecycle import (
    dcs_unreachable,
    expire_unleased_leader,
    halt_on_foreign_sysid,
    no_data_directory,
    take_over_standalone,
)
from pgha.engine.rules_pause import paused
from pgha.engine.rules_replica import (
    acquire_lock,
    demote_without_lock,
    failsafe_cached_leader,
    follow_leader,
    not_healthiest,
    peers_say_not_healthiest,
    probe_peers,
    race_lost,
    replica_postgres_down,
    replica_starting,
)
from pgha.engine.state import NodeState
from pgha.engine.values import LocalConfig, Observation

Rule = Callable[[Ctx], Decision | None]

RULES: tuple[Rule, ...] = (
    halt_on_foreign_sysid,
    dcs_unreachable,
    expire_unleased_leader,
    no_data_directory,
    take_over_standalone,
    renew_lock_first,
    lock_renewal_failed,
    paused,
    promote_failed,
    leader_watchdog_unusable,
    leader_start_failed,
    leader_postgres_down,
    leader_postgres_starting,
    leader_manual_failover,
    leader_enforce_primary,
    demote_without_lock,
    replica_postgres_down,
    follow_leader,
    replica_starting,
    failsafe_cached_leader,
    race_lost,
    not_healthiest,
    probe_peers,
    peers_say_not_healthiest,
)


def decide(state: NodeState, obs: Observation, local: LocalConfig) -> Decision:
    """Decide one step of the HA loop.

    Args:
        state: what the node remembers (the previous decision's `next_state`).
        obs: what it observes now, including the results of the previous step's actions.
        local: its local (non-DCS) settings.

    Returns:
        The decision of the first rule that matches (`acquire_lock` when none does).

    Raises:
        IllegalTransitionError: a rule asked for a role change the table forbids (a bug).
    """
    ctx = make_context(state, obs, local)
    for rule in RULES:
        decision = rule(ctx)
        if decision is not None:
            return decision
    return acquire_lock(ctx)
