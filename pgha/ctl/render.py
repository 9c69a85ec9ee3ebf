# What `pgha ctl` shows, as pure functions: a cluster read (ClusterView + member documents) or a
# `/history` value becomes rows, and rows become text (patronictl-style boxed tables), JSON or
# YAML. No I/O here, so every view is tested from tables of inputs. Safety rule: the view an
# operator decides on must not lie: roles come from the same code as the REST API's `/cluster`
# (`pgha.agent.rest.read.cluster_document`), the leader is the lock holder and nothing else, and a
# value that is unknown is shown as unknown (or empty), never as zero.
"""Pure rendering for `pgha ctl`: member, topology and history tables as text, JSON or YAML."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from pgha.agent.rest.read import cluster_document
from pgha.engine.values import ClusterView, sysid_valid

FORMATS = ("pretty", "json", "yaml")
MB = 1024 * 1024
MEMBER_COLUMNS = ("Member", "Host", "Role", "State", "TL", "Lag in MB")
OPTIONAL_COLUMNS = ("Pending restart", "Tags")
HISTORY_COLUMNS = ("TL", "LSN", "Reason", "Timestamp", "New Leader")
_ROLES = {
    "leader": "Leader",
    "standby_leader": "Standby Leader",
    "sync_standby": "Sync Standby",
    "quorum_standby": "Quorum Standby",
    "replica": "Replica",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberLine:
    """One member as `list` shows it (values typed; None: unknown or not applicable)."""

    name: str
    host: str
    role: str
    state: str
    timeline: int | None
    lag_mb: int | str | None  # None for the leader, "unknown" when the member has no position
    pending_restart: bool
    tags: Mapping[str, Any]
    replicatefrom: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Table:
    """A table to render: columns, rows of JSON-ready values, an optional title and footer.

    `records` are the JSON/YAML form (one object per row); when empty, rows zipped with the
    columns are used.
    """

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    title: str = ""
    footer: tuple[str, ...] = ()
    records: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterInfo:
    """The cluster-wide facts `list` shows under the table."""

    paused: bool = False
    scheduled_at: str | None = None
    scheduled_from: str | None = None
    scheduled_to: str | None = None


# ---------------------------------------------------------------- members


def cluster_title(scope: str, view: ClusterView) -> str:
    """`Cluster: <scope> (<sysid>)`; "uninitialized" until the system id is known."""
    return f"Cluster: {scope} ({view.initialize or 'uninitialized'})"


def _host(summary: Mapping[str, Any]) -> str:
    host, port = summary.get("host"), summary.get("port")
    if not host:
        return ""
    return f"{host}:{port}" if port is not None else str(host)


def _optime(view: ClusterView) -> int | None:
    """The cluster's last known WAL position: `/status`, else the leader's published one."""
    if view.status_optime_lsn is not None:
        return view.status_optime_lsn
    leader = view.member(view.leader.holder) if view.leader is not None else None
    return leader.wal_lsn if leader is not None else None


def _lag_mb(view: ClusterView, name: str, is_leader: bool) -> int | str | None:
    member, optime = view.member(name), _optime(view)
    if is_leader:
        return None
    if member is None or member.wal_lsn is None or optime is None:
        return "unknown"
    return round(max(0, optime - member.wal_lsn) / MB)


def _state(summary: Mapping[str, Any], document: Mapping[str, Any]) -> str:
    state = str(summary.get("state", ""))
    replication = document.get("replication_state")
    if state == "running" and isinstance(replication, str) and replication:
        return replication
    return state


def _role(summary: Mapping[str, Any], document: Mapping[str, Any]) -> str:
    role = str(summary.get("role", "replica"))
    if role == "leader" and document.get("role") == "standby_leader":
        role = "standby_leader"
    return _ROLES.get(role, role.replace("_", " ").title())


def member_lines(
    view: ClusterView, documents: Mapping[str, Mapping[str, Any]]
) -> tuple[MemberLine, ...]:
    """Every member of `view` (sorted by name), with role, state, lag and tags."""
    summaries = cluster_document(view, {k: dict(v) for k, v in documents.items()})["members"]
    lines = []
    for summary in sorted(summaries, key=lambda s: str(s["name"])):
        document = documents.get(summary["name"], {})
        tags = summary.get("tags") or {}
        upstream = tags.get("replicatefrom") if isinstance(tags, Mapping) else None
        lines.append(
            MemberLine(
                name=summary["name"],
                host=_host(summary),
                role=_role(summary, document),
                state=_state(summary, document),
                timeline=summary.get("timeline"),
                lag_mb=_lag_mb(view, summary["name"], summary.get("role") == "leader"),
                pending_restart=bool(summary.get("pending_restart")),
                tags=dict(tags) if isinstance(tags, Mapping) else {},
                replicatefrom=upstream if isinstance(upstream, str) and upstream else None,
            )
        )
    return tuple(lines)


def cluster_info(view: ClusterView) -> ClusterInfo:
    """Pause and the scheduled switchover, as `/cluster` reports them."""
    document = cluster_document(view, {})
    scheduled = document.get("scheduled_switchover") or {}
    at = scheduled.get("at")
    return ClusterInfo(
        paused=bool(document.get("pause")),
        scheduled_at=None if at is None else str(at),
        scheduled_from=scheduled.get("from"),
        scheduled_to=scheduled.get("to"),
    )


def footer_lines(info: ClusterInfo) -> tuple[str, ...]:
    """The lines patronictl prints under the member table."""
    out = []
    if info.paused:
        out.append(" Maintenance mode: on")
    if info.scheduled_at is not None:
        text = f" Switchover scheduled at: {info.scheduled_at}"
        for label, value in (("from", info.scheduled_from), ("to", info.scheduled_to)):
            if value is not None:
                text += f"\n{label:>24}: {value}"
        out.append(text)
    return tuple(out)


def dcs_warning_lines(view: ClusterView) -> tuple[str, ...]:
    """`warning:` lines for keys the table cannot show: a leader key held by a name that is no
    member (the table would show no leader at all), and values the leader repairs."""
    out = []
    leader = view.leader
    if leader is not None and view.member(leader.holder) is None:
        text = f"warning: the leader key is held by {leader.holder!r}, which is not a member"
        if not leader.leased:
            text += " (it has no lease: the agents delete it once it is unchanged for ttl)"
        out.append(text)
    init = view.initialize
    if init and not sysid_valid(init):
        out.append(
            f"warning: /initialize holds {init!r}, which is no system identifier"
            " (the leader rewrites it)"
        )
    if view.failover_invalid_version is not None:
        out.append("warning: /failover holds no valid request (the leader deletes it)")
    return tuple(out)


def topology_order(lines: Sequence[MemberLine]) -> tuple[tuple[int, MemberLine], ...]:
    """(depth, member) in tree order: the leader first at depth 0, its replicas below it.

    A member hangs under its `replicatefrom` member when that names another member, else under
    the leader. Without a leader, members without an upstream are roots; members in a
    `replicatefrom` cycle are shown at depth 0 at the end, so that no member is ever hidden.
    """
    names = {line.name for line in lines}
    leader = next((line.name for line in lines if line.role.endswith("Leader")), None)

    def parent(line: MemberLine) -> str | None:
        upstream = line.replicatefrom
        if upstream is not None and upstream != line.name and upstream in names:
            return upstream
        return None if line.name == leader else leader

    children: dict[str | None, list[MemberLine]] = {}
    for line in lines:
        children.setdefault(parent(line), []).append(line)
    roots = sorted(children.get(None, []), key=lambda m: (m.name != leader, m.name))
    out: list[tuple[int, MemberLine]] = []
    seen: set[str] = set()
    stack = [(0, root) for root in reversed(roots)]
    while stack:
        depth, line = stack.pop()
        if line.name in seen:
            continue
        seen.add(line.name)
        out.append((depth, line))
        below = sorted(children.get(line.name, []), key=lambda m: m.name, reverse=True)
        stack.extend((depth + 1, child) for child in below)
    out.extend((0, line) for line in lines if line.name not in seen)
    return tuple(out)


def _optional_columns(lines: Sequence[MemberLine], extended: bool) -> tuple[str, ...]:
    pending = extended or any(line.pending_restart for line in lines)
    tags = extended or any(line.tags for line in lines)
    return tuple(c for c, on in zip(OPTIONAL_COLUMNS, (pending, tags), strict=True) if on)


def _cells(line: MemberLine, member_cell: str, optional: Sequence[str]) -> tuple[Any, ...]:
    cells: list[Any] = [member_cell, line.host, line.role, line.state, line.timeline, line.lag_mb]
    if "Pending restart" in optional:
        cells.append(line.pending_restart)
    if "Tags" in optional:
        cells.append(dict(line.tags))
    return tuple(cells)


def _record(scope: str, line: MemberLine) -> dict[str, Any]:
    return {
        "Cluster": scope,
        "Member": line.name,
        "Host": line.host or None,
        "Role": line.role,
        "State": line.state,
        "TL": line.timeline,
        "Lag in MB": line.lag_mb,
        "Pending restart": line.pending_restart,
        "Tags": dict(line.tags),
    }


def members_table(
    scope: str,
    view: ClusterView,
    documents: Mapping[str, Mapping[str, Any]],
    *,
    topology: bool = False,
    extended: bool = False,
) -> Table:
    """The `list` table (or `topology` when `topology`): title, rows and footer."""
    lines = member_lines(view, documents)
    ordered = topology_order(lines) if topology else tuple((0, line) for line in lines)
    optional = _optional_columns(lines, extended)
    rows = tuple(_cells(line, _indent(depth) + line.name, optional) for depth, line in ordered)
    records = []
    for depth, line in ordered:
        record = _record(scope, line)
        if topology:
            record["Depth"] = depth
        records.append(record)
    return Table(
        columns=MEMBER_COLUMNS + optional,
        rows=rows,
        title=cluster_title(scope, view),
        footer=footer_lines(cluster_info(view)),
        records=tuple(records),
    )


def _indent(depth: int) -> str:
    return "" if depth == 0 else "  " * (depth - 1) + "+ "


# ---------------------------------------------------------------- history


def _history_cell(line: Sequence[Any], index: int) -> Any:
    value = line[index] if index < len(line) else None
    if isinstance(value, bool) or not isinstance(value, str | int | float) or value == "":
        return None
    return value


def history_table(lines: Sequence[Any]) -> Table:
    """The `history` table from the raw `/history` value: `[tl, lsn, reason, timestamp, leader]`
    per line (shorter, older lines leave the last cells empty; unreadable lines are skipped)."""
    rows = []
    for line in lines:
        if isinstance(line, list) and len(line) >= 2:
            rows.append(tuple(_history_cell(line, i) for i in range(len(HISTORY_COLUMNS))))
    return Table(columns=HISTORY_COLUMNS, rows=tuple(rows))


# ---------------------------------------------------------------- text


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "*" if value else ""
    if isinstance(value, Mapping):
        return yaml_text(dict(value)).strip() if value else ""
    return str(value)


def _right_aligned(column: Sequence[Any]) -> bool:
    """Numbers are right-aligned (a column of ints, maybe with empty or "unknown" cells)."""
    numbers = [v for v in column if isinstance(v, int | float) and not isinstance(v, bool)]
    return bool(numbers) and all(
        v is None or v == "unknown" or isinstance(v, int | float) for v in column
    )


def render_pretty(table: Table) -> str:
    """A boxed table like patronictl's, the title set into the top border, then the footer."""
    cells = [[_text(value).split("\n") for value in row] for row in table.rows]
    widths = [len(name) for name in table.columns]
    for row in cells:
        for index, parts in enumerate(row):
            widths[index] = max(widths[index], *(len(part) for part in parts))
    if table.title and widths:
        missing = len(table.title) + 4 - (sum(w + 3 for w in widths) + 1)
        widths[-1] += max(0, missing)
    right = [_right_aligned([row[i] for row in table.rows]) for i in range(len(widths))]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    top = rule
    if table.title:
        top = "+ " + table.title + " " + rule[len(table.title) + 3 :]
    multi_line = any(len(parts) > 1 for row in cells for parts in row)
    out = [top, _line([[name] for name in table.columns], widths, right, 0), rule]
    for number, row in enumerate(cells):
        if multi_line and number > 0:
            out.append(rule)
        out.extend(_line(row, widths, right, i) for i in range(max(len(p) for p in row)))
    out.append(rule)
    out.extend(table.footer)
    return "\n".join(out)


def _line(row: Sequence[list[str]], widths: Sequence[int], right: Sequence[bool], at: int) -> str:
    parts = []
    for parts_of_cell, width, align_right in zip(row, widths, right, strict=True):
        text = parts_of_cell[at] if at < len(parts_of_cell) else ""
        parts.append(text.rjust(width) if align_right else text.ljust(width))
    return "| " + " | ".join(parts) + " |"


def records(table: Table) -> list[dict[str, Any]]:
    """The table as a list of objects (for JSON and YAML)."""
    if table.records:
        return [dict(record) for record in table.records]
    return [dict(zip(table.columns, row, strict=True)) for row in table.rows]


def yaml_text(document: Any, *, sort_keys: bool = True) -> str:
    """Block-style YAML (keys sorted unless `sort_keys` is False), as show-config shows it."""
    return yaml.safe_dump(
        document, default_flow_style=False, sort_keys=sort_keys, allow_unicode=True, width=1000
    )


def render(table: Table, fmt: str) -> str:
    """`table` in `fmt` (pretty, json or yaml), without a trailing newline."""
    if fmt == "json":
        return json.dumps(records(table))
    if fmt == "yaml":
        return yaml_text(records(table), sort_keys=False).rstrip("\n")
    return render_pretty(table)


def render_document(document: Any, fmt: str) -> str:
    """A configuration document: YAML for pretty and yaml, JSON for json."""
    if fmt == "json":
        return json.dumps(document, indent=2, sort_keys=True)
    return yaml_text(document).rstrip("\n") if document else "{}"
