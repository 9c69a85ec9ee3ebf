"""The one error a scenario can raise."""

from __future__ import annotations

from pgha.located import LocatedError


class ScenarioError(LocatedError):
    """A scenario file is invalid (see LocatedError for the attributes and the message)."""
