"""The pure HA decision engine: values in, decisions out; no I/O, no clock, no randomness."""

from pgha.engine.actions import Action, DemoteMode
from pgha.engine.config import DynamicConfig, SyncMode, WatchdogMode, parse_dynamic_config
from pgha.engine.decision import Decision, Reason
from pgha.engine.roles import TRANSITIONS, IllegalTransitionError, Role
from pgha.engine.rules import RULES, decide
from pgha.engine.state import NodeState
from pgha.engine.values import ClusterView, LocalConfig, Observation, PostgresState

__all__ = [
    "RULES",
    "TRANSITIONS",
    "Action",
    "ClusterView",
    "Decision",
    "DemoteMode",
    "DynamicConfig",
    "IllegalTransitionError",
    "LocalConfig",
    "NodeState",
    "Observation",
    "PostgresState",
    "Reason",
    "Role",
    "SyncMode",
    "WatchdogMode",
    "decide",
    "parse_dynamic_config",
]
