"""Files read with their locations: a YAML tree whose every node knows its line and dotted field,
typed accessors and units that raise `Problem` at a node, and `LocatedError`, the one error shape
(file, line, field, expected, got, hint) of every format built on it: scenarios
(`pgha.scenario.ScenarioError`) and agent configurations (`AgentConfigError`).

`tree` holds the nodes and accessors, `units` durations, rates and fractions, `errors` the errors.
"""

from pgha.located.errors import LocatedError, Problem

__all__ = ["LocatedError", "Problem", "errors", "tree", "units"]
