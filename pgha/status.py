# What the agent knows about itself after each decision, as the REST API, the health checks and
# the metrics read it. A pure function of the previous status and one step (observation, state,
# decision), so every world computes it the same way; the loop publishes it, nobody else builds it.
"""The agent's status snapshot and how one step updates it."""

from __future__ import annotations

from dataclasses import dataclass, field

from pgha.engine.config import DynamicConfig, WatchdogMode
from pgha.engine.decision import Decision, Reason
from pgha.engine.roles import Role
from pgha.engine.values import (
    ClusterView,
    Failure,
    LocalConfig,
    Observation,
    PostgresState,
    Tags,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStatus:
    """What the agent knows about itself after its latest decision; the REST API reads it.

    `holds_lock` is as of `last_loop_mono`; health answers compare `lock_deadline_mono` with the
    time of the request instead. `cluster` is the last view read successfully.
    """

    name: str
    role: Role = Role.UNINITIALIZED
    holds_lock: bool = False
    lock_deadline_mono: float | None = None
    postgres: PostgresState = field(default_factory=lambda: PostgresState(data_present=False))
    reason: Reason | None = None
    paused: bool = False
    failsafe_active: bool = False
    watchdog_failed: bool = False
    dcs_reachable: bool = False  # the latest read of the DCS succeeded
    dcs_last_seen_mono: float | None = None
    dcs_last_seen_wall: float | None = None
    last_loop_mono: float | None = None
    tags: Tags = field(default_factory=Tags)
    cluster: ClusterView | None = None
    config: DynamicConfig = field(default_factory=DynamicConfig)


def _watchdog_failed(cfg: DynamicConfig, obs: Observation) -> bool:
    usable = obs.watchdog_available and cfg.watchdog_slack_s >= 0
    broken = not usable or obs.failure is Failure.WATCHDOG
    return cfg.watchdog_mode is WatchdogMode.REQUIRED and broken


def next_status(
    status: AgentStatus,
    local: LocalConfig,
    obs: Observation,
    decision: Decision,
    *,
    dcs_read: bool = True,
) -> AgentStatus:
    """The status after deciding `decision` on `obs` (the DCS fields keep their last good value).

    `dcs_read` False: `obs` reused the previous view without reading the DCS, so the DCS fields
    describe the latest real read and stay as they were.
    """
    state = decision.next_state
    seen = dcs_read and obs.cluster is not None
    return AgentStatus(
        name=local.name,
        role=state.role,
        holds_lock=state.holds_lock(obs.now_mono),
        lock_deadline_mono=state.lock_deadline_mono,
        postgres=obs.postgres,
        reason=decision.reason,
        paused=state.config.pause,
        failsafe_active=state.failsafe_active,
        watchdog_failed=_watchdog_failed(state.config, obs),
        dcs_reachable=seen if dcs_read else status.dcs_reachable,
        dcs_last_seen_mono=obs.now_mono if seen else status.dcs_last_seen_mono,
        dcs_last_seen_wall=obs.now_wall if seen else status.dcs_last_seen_wall,
        last_loop_mono=obs.now_mono,
        tags=local.tags,
        cluster=obs.cluster if seen else status.cluster,
        config=state.config,
    )
