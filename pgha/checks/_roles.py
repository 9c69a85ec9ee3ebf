# PostgreSQL as it really was (`pg_role`, `writable`) and what the agents believed (`agent_role`).
# The checks trust the first two; an agent's belief only stands in where no `pg_role` says who was
# primary (histories from worlds that cannot see PostgreSQL).
"""Role changes, agent beliefs, and the windows when two or more nodes were primary or writable."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pgha.checks._fields import get_str, node_of, opt_int, opt_str
from pgha.history import Event


@dataclass(frozen=True, slots=True)
class RoleChange:
    """A `pg_role` event: PostgreSQL as it really was from `t` on."""

    t: float
    node: str
    role: str
    timeline: int | None
    upstream: str | None = None


@dataclass(frozen=True, slots=True)
class Window:
    """An interval of true time and the nodes it concerns."""

    t_start: float
    t_end: float
    nodes: tuple[str, ...]

    @property
    def duration_s(self) -> float:
        return self.t_end - self.t_start


class Overlaps:
    """Windows during which two or more nodes were in a state at once (writable, primary)."""

    def __init__(self) -> None:
        self._now: set[str] = set()
        self._since: float | None = None
        self._nodes: set[str] = set()
        self.windows: list[Window] = []

    def set(self, node: str, on: bool, t: float) -> None:
        if on:
            self._now.add(node)
        else:
            self._now.discard(node)
        if len(self._now) >= 2:
            self._since = t if self._since is None else self._since
            self._nodes |= self._now
        else:
            self.close(t)

    def close(self, t: float) -> None:
        if self._since is not None:
            self.windows.append(Window(self._since, t, tuple(sorted(self._nodes))))
            self._since = None
            self._nodes = set()


class Roles:
    """PostgreSQL roles (`pg_role`, logged) and agent beliefs (`agent_role`, latest only)."""

    def __init__(self) -> None:
        self.log: list[RoleChange] = []
        self.pg: dict[str, RoleChange] = {}
        self.agent: dict[str, str] = {}
        self.primaries_at_once = Overlaps()

    def pg_role(self, e: Event) -> None:
        change = RoleChange(
            e.t, node_of(e), get_str(e, "role"), opt_int(e, "timeline"), opt_str(e, "upstream")
        )
        self.log.append(change)
        self.pg[change.node] = change
        self.primaries_at_once.set(change.node, change.role == "primary", e.t)

    def agent_role(self, e: Event) -> None:
        self.agent[node_of(e)] = get_str(e, "role")

    def timeline(self, node: str) -> int | None:
        change = self.pg.get(node)
        return None if change is None else change.timeline

    def primaries(self) -> tuple[str, ...]:
        """Nodes whose PostgreSQL is primary; failing that, whose agent believes it is."""
        by_pg = sorted(n for n, c in self.pg.items() if c.role == "primary")
        by_agent = sorted(n for n, r in self.agent.items() if r == "primary")
        return tuple(by_pg or by_agent)


def state_at(roles: Sequence[RoleChange], t: float) -> dict[str, RoleChange]:
    """Each node's latest role change at or before `t`."""
    state: dict[str, RoleChange] = {}
    for c in roles:
        if c.t > t:
            break
        state[c.node] = c
    return state
