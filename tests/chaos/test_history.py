"""Collecting a chaos history: the harness's and the agents' events on one time base, merged and
ordered, accepted by the same checkers as the simulator's; the polled PostgreSQL roles; and the
sim-versus-real failover comparison. Pure: no Docker, no PostgreSQL."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from chaos.compare import compare, failover_times, render_table
from chaos.history import EventLog, PgReading, Poller, merge, run_start_fields, write_history
from pgha.checks import collect_facts, run_checks
from pgha.history import Event, read_history
from pgha.scenario import parse_scenario

T0 = 5_000.0  # the host's monotonic clock when the run started

SCENARIO = """
name: synthetic
duration: 40s
cluster: {nodes: 3, etcd: 3}
config: {ttl: 10, loop_wait: 2, retry_timeout: 2}
workload: {rate: 5/s}
faults:
  - {at: 10s, kill: primary, for: 10s}
checks: {failover_within: 25s, max_lost_writes: 0, eventually_healthy: 20s}
"""


class Clock:
    """A settable monotonic clock for the EventLog."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _at(
    log: EventLog, clock: Clock, t: float, kind: str, node: str | None = None, **f: Any
) -> None:
    clock.now = T0 + t
    log.record(kind, node, **f)


def _agent(t: float, kind: str, node: str, **fields: Any) -> dict[str, Any]:
    return {"t": T0 + t, "kind": kind, "node": node, **fields}


def _write(log: EventLog, clock: Clock, t: float, write_id: int, node: str, timeline: int) -> None:
    _at(log, clock, t, "invoke", "c1", op="write", id=write_id, target="haproxy")
    _at(log, clock, t + 0.01, "ok", "c1", op="write", id=write_id, served_by=node,
        timeline=timeline, lsn=1000 + write_id)  # fmt: skip


def _synthetic_run(*, lose: bool = False) -> tuple[EventLog, dict[str, list[dict[str, Any]]]]:
    """A primary kill at 10 s, n2 promoted at 16 s, n1 back as a replica at 21 s."""
    scenario = parse_scenario(SCENARIO)
    clock = Clock()
    log = EventLog(clock)
    _at(log, clock, 0.0, "run_start", **run_start_fields(scenario))
    for node in ("n1", "n2", "n3"):
        role = "primary" if node == "n1" else "replica"
        upstream = None if node == "n1" else "n1"
        _at(log, clock, 0.1, "pg_role", node, role=role, timeline=1, lsn=1, upstream=upstream)
        _at(log, clock, 0.1, "writable", node, writable=node == "n1")
    ids = iter(range(1, 100))
    for t in (1.0, 3.0, 5.0, 7.0, 9.0):
        _write(log, clock, t, next(ids), "n1", 1)
    clock.now = T0 + 10.0
    log.record_at(T0 + 10.0, "fault", phase="start", fault="kill", targets=["n1"],
                  params={"target": {"role": "primary"}}, id=1, label="kill n1")  # fmt: skip
    _at(log, clock, 10.3, "pg_role", "n1", role="crashed", timeline=1, lsn=None, upstream=None)
    _at(log, clock, 10.3, "writable", "n1", writable=False)
    _at(log, clock, 12.0, "invoke", "c1", op="write", id=next(ids), target="haproxy")
    _at(log, clock, 12.5, "fail", "c1", op="write", id=6, error="no_backend")
    _at(log, clock, 16.2, "pg_role", "n2", role="primary", timeline=2, lsn=2000, upstream=None)
    _at(log, clock, 16.2, "writable", "n2", writable=True)
    for t in (17.0, 19.0, 25.0, 30.0):
        _write(log, clock, t, next(ids), "n2", 2)
    log.record_at(T0 + 20.0, "fault", phase="end", fault="kill", targets=["n1"],
                  params={"target": {"role": "primary"}}, id=1, label="kill n1")  # fmt: skip
    _at(log, clock, 18.0, "pg_role", "n3", role="replica", timeline=2, lsn=2100, upstream="n2")
    _at(log, clock, 23.0, "pg_role", "n1", role="replica", timeline=2, lsn=2200, upstream="n2")
    acked = [1, 2, 3, 4, 5, 7, 8, 9, 10]
    final = [i for i in acked if not (lose and i == 3)]
    for node, role in (("n1", "replica"), ("n2", "primary"), ("n3", "replica")):
        _at(log, clock, 41.0, "final_read", node, ids=final, timeline=2, lsn=3000, role=role)
    _at(log, clock, 41.5, "run_end")
    agents = {
        "n1": [
            _agent(-30.0, "agent_role", "n1", role="candidate", reason="bootstrap"),
            _agent(-20.0, "agent_role", "n1", role="primary", reason="acquired_lock"),
            _agent(-20.0, "decision", "n1", reason="acquired_lock", role="primary", actions=[]),
            _agent(-1.0, "lock", "n1", event="renewed", deadline=T0 + 9.0),
            _agent(2.0, "lock", "n1", event="renewed", deadline=T0 + 12.0),
            _agent(22.0, "pg_role", "n1", role="replica", timeline=2, lsn=2150, upstream="n2"),
            _agent(23.5, "pg_role", "n1", role="replica", timeline=2, lsn=2200, upstream="n2"),
            _agent(99.0, "agent_role", "n1", role="replica", reason="late"),
        ],
        "n2": [
            _agent(-20.0, "agent_role", "n2", role="replica", reason="following"),
            _agent(16.0, "lock", "n2", event="acquired", deadline=T0 + 26.0),
            _agent(16.1, "agent_role", "n2", role="primary", reason="acquired_lock"),
            _agent(16.15, "pg_role", "n2", role="primary", timeline=2, lsn=2000, upstream=None),
            _agent(16.3, "ok", "n2", op="write", id=999, served_by="n2"),  # not the agent's kind
        ],
    }
    return log, agents


def _merged(lose: bool = False) -> list[Event]:
    log, agents = _synthetic_run(lose=lose)
    events, _ = merge(log.events(), agents, t0_mono=T0, t_end_mono=T0 + 41.5)
    return events


def test_merge_puts_every_event_on_the_run_time_base_in_order() -> None:
    events = _merged()
    times = [e.t for e in events]
    assert times == sorted(times)
    assert (events[0].kind, events[0].t) == ("run_start", 0.0)
    assert (events[-1].kind, events[-1].t) == ("run_end", 41.5)
    promoted = next(e for e in events if e.kind == "agent_role" and e.t > 10)
    assert (promoted.node, promoted.t) == ("n2", pytest.approx(16.1))


def test_agent_state_before_the_start_is_carried_to_zero_and_the_rest_dropped() -> None:
    log, agents = _synthetic_run()
    events, stats = merge(log.events(), agents, t0_mono=T0, t_end_mono=T0 + 41.5)
    at_zero = [(e.kind, e.node, e.get("role") or e.get("event")) for e in events if e.t == 0.0]
    assert at_zero[0][0] == "run_start"
    assert ("agent_role", "n1", "primary") in at_zero  # the last before the start, not candidate
    assert ("agent_role", "n1", "candidate") not in at_zero
    assert ("agent_role", "n2", "replica") in at_zero
    assert ("lock", "n1", "renewed") in at_zero
    assert not any(e.kind == "decision" for e in events)  # not a state: dropped
    assert not any(e.get("reason") == "late" for e in events)  # after the run's end
    assert not any(e.kind == "ok" and e.get("id") == 999 for e in events)  # harness-only kind
    assert (stats.agent_before_start, stats.agent_after_end) == (2, 1)  # candidate, decision


def test_pg_role_and_writable_repeats_from_both_sources_are_dropped() -> None:
    events = _merged()
    n2_roles = [(e.t, e.get("role")) for e in events if e.kind == "pg_role" and e.node == "n2"]
    # the agent saw the promotion first (16.15); the harness's identical poll (16.2) is a repeat
    assert n2_roles == [(pytest.approx(0.1), "replica"), (pytest.approx(16.15), "primary")]
    n1_roles = [(e.t, e.get("role")) for e in events if e.kind == "pg_role" and e.node == "n1"]
    assert [role for _, role in n1_roles] == ["primary", "crashed", "replica"]
    assert n1_roles[-1][0] == pytest.approx(22.0)


def test_merged_history_is_written_and_judged_by_the_simulators_checkers(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    assert write_history(path, _merged()) > 0
    events = read_history(path)  # checks the order on reading
    report = run_checks(events)
    assert report.ok, report.to_dict()
    assert [r.name for r in report.results] == [
        "no_split_brain",
        "no_lost_acknowledged_writes",
        "failover_within",
        "eventually_healthy",
    ]
    facts = collect_facts(events)
    assert facts.run["world"] == "chaos"
    (failover,) = facts.failovers
    assert (failover.new_primary, failover.failover_s) == ("n2", pytest.approx(7.01))
    assert report.summary["writes_acknowledged"] == 9
    assert report.summary["writes_failed"] == 1


def test_a_lost_acknowledged_write_breaks_the_check(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    write_history(path, _merged(lose=True))
    report = run_checks(read_history(path))
    lost = report.result("no_lost_acknowledged_writes")
    assert lost is not None
    assert not lost.ok
    assert report.summary["lost_write_ids"] == [3]


# ---------------------------------------------------------------- the poller


class Script:
    """What `observe` answers for each node, one answer per call (the last repeats)."""

    def __init__(self, answers: Mapping[str, Sequence[PgReading | None]]) -> None:
        self.answers = {node: list(seq) for node, seq in answers.items()}

    def __call__(self, node: str) -> PgReading | None:
        seq = self.answers[node]
        return seq.pop(0) if len(seq) > 1 else seq[0]


def test_poller_records_role_and_writability_only_on_change() -> None:
    primary = PgReading(role="primary", timeline=1, lsn=10)
    log = EventLog()
    script = Script({"n1": [primary, PgReading(role="primary", timeline=1, lsn=99), None,
                            primary, PgReading(role="stopped")]})  # fmt: skip
    poller = Poller(log, ["n1"], script)
    for _ in range(5):
        poller.poll_once("n1")
    seen = [(e.kind, e.fields.get("role", e.fields.get("writable"))) for e in log.events()]
    assert seen == [
        ("pg_role", "primary"),
        ("writable", True),
        ("writable", False),  # no answer: not writable, role unchanged
        ("writable", True),
        ("pg_role", "stopped"),
        ("writable", False),
    ]
    assert poller.latest() == {"n1": PgReading(role="stopped")}


def test_poller_never_moves_a_node_back_to_an_older_timeline() -> None:
    log = EventLog()
    script = Script({"n3": [PgReading(role="replica", timeline=2, upstream="n1"),
                            PgReading(role="replica", timeline=1, upstream=None),  # stale
                            PgReading(role="replica", timeline=3, upstream="n2")]})  # fmt: skip
    poller = Poller(log, ["n3"], script)
    for _ in range(3):
        poller.poll_once("n3")
    roles = [
        (e.fields["timeline"], e.fields["upstream"]) for e in log.events() if e.kind == "pg_role"
    ]
    assert roles == [(2, "n1"), (2, None), (3, "n2")]


def test_poller_announce_looks_at_every_node() -> None:
    log = EventLog()
    script = Script({"n1": [PgReading(role="primary", timeline=1)],
                     "n2": [PgReading(role="replica", timeline=1, upstream="n1")]})  # fmt: skip
    Poller(log, ["n1", "n2"], script).announce()
    roles = {e.node: e.fields["role"] for e in log.events() if e.kind == "pg_role"}
    assert roles == {"n1": "primary", "n2": "replica"}


# ---------------------------------------------------------------- sim versus real


def test_compare_sets_predicted_beside_measured_failover_per_fault() -> None:
    real = collect_facts(_merged())
    log, agents = _synthetic_run()
    merged, _ = merge(log.events(), agents, t0_mono=T0, t_end_mono=T0 + 41.5)
    # the simulator's world: the new primary's writes come 2 s earlier
    earlier = [e.t - 2.0 if e.kind in ("ok", "invoke") and e.t > 16 else e.t for e in merged]
    predicted_events = [
        Event(t, e.kind, e.node, e.fields) for t, e in zip(earlier, merged, strict=True)
    ]
    predicted_events.sort(key=lambda e: e.t)
    sim = collect_facts(predicted_events)
    (row,) = compare(sim, real)
    assert (row.fault_id, row.fault, row.label) == (1, "kill", "kill n1")
    assert row.measured_s == pytest.approx(7.01)
    assert row.predicted_s == pytest.approx(5.01)
    assert row.error_pct == pytest.approx(100 * (5.01 - 7.01) / 7.01)
    assert failover_times(real)[1].new_primary == "n2"
    table = render_table([row])
    assert "7.0 s" in table
    assert "5.0 s" in table
