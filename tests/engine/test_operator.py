"""Whether the cluster accepts an operator's switchover or failover (pgha.engine.operator).

One table: the cluster (leader n1 of n1..n3 unless a row says otherwise), the request (the
`/failover` key it would write), and the refusal the rule must give, or None. Wall clock: 1000.
"""

from __future__ import annotations

from typing import Any

import pytest

from pgha.engine.config import SyncMode
from pgha.engine.operator import CHECKS, STATUS, Refusal, refusal
from pgha.engine.values import ClusterView, FailoverKey, SyncKey, Tags
from tests.engine.builders import cfg, member, view

NOW_WALL = 1000.0
R = Refusal


def cluster(leader: str | None = "n1", **kw: Any) -> ClusterView:
    return view(leader, **kw)


def members(*spec: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {"member_values": tuple(member(name, **kw) for name, kw in spec)}


SYNC_ON = {
    "config": cfg(synchronous_mode=SyncMode.ON),
    "sync": SyncKey(leader="n1", standbys=frozenset({"n2"})),
}
SYNC_QUORUM = {
    "config": cfg(synchronous_mode=SyncMode.QUORUM),
    "sync": SyncKey(leader="n1", standbys=frozenset({"n2"})),
}
SYNC_ON_INACTIVE = {"config": cfg(synchronous_mode=SyncMode.ON)}  # no `/sync` leader yet
N3_DOWN = members(("n1", {}), ("n2", {}), ("n3", {"running": False}))
N3_NOFAILOVER = members(("n1", {}), ("n2", {}), ("n3", {"tags": Tags(nofailover=True)}))
N3_PRIORITY_0 = members(("n1", {}), ("n2", {}), ("n3", {"tags": Tags(failover_priority=0)}))
ONLY_BAD_OTHERS = members(
    ("n1", {}), ("n2", {"running": False}), ("n3", {"tags": Tags(nofailover=True)})
)
SCHEDULED = {"failover": FailoverKey(leader="n1", candidate="n2", scheduled_at_wall=2000.0)}
IMMEDIATE_PENDING = {"failover": FailoverKey(leader="n1", candidate="n2")}
PAUSED = {"config": cfg(pause=True)}


def switchover(candidate: str | None = None, leader: str = "n1", at: float | None = None) -> Any:
    return FailoverKey(leader=leader, candidate=candidate, scheduled_at_wall=at)


def failover(candidate: str, leader: str | None = None) -> FailoverKey:
    return FailoverKey(leader=leader, candidate=candidate)


CASES: list[tuple[str, dict[str, Any], FailoverKey, Refusal | None]] = [
    # accepted
    ("switchover to a replica", {}, switchover("n2"), None),
    ("switchover to the best replica", {}, switchover(), None),
    ("scheduled switchover", {}, switchover("n2", at=1000.5), None),
    ("failover without a leader", {"leader": None}, failover("n2"), None),
    ("failover naming the leader", {}, failover("n2", leader="n1"), None),
    ("an immediate request pending is no obstacle", IMMEDIATE_PENDING, switchover("n3"), None),
    ("in pause, with a candidate", PAUSED, switchover("n2"), None),
    ("sync on: to the sync standby", SYNC_ON, switchover("n2"), None),
    ("sync on: a failover without leader", SYNC_ON, failover("n3"), None),
    ("sync on, not active yet", SYNC_ON_INACTIVE, switchover("n3"), None),
    ("quorum mode: any standby", SYNC_QUORUM, switchover("n3"), None),
    ("sync on: without candidate, the sync standby", SYNC_ON, switchover(), None),
    ("one good other member is enough", N3_DOWN, switchover(), None),
    # refused, in the order the checks run
    ("in pause, without candidate", PAUSED, switchover(), R.PAUSED_NEEDS_CANDIDATE),
    ("not the lock holder", {}, switchover("n3", leader="n2"), R.LEADER_MISMATCH),
    ("no lock holder at all", {"leader": None}, switchover("n2"), R.LEADER_MISMATCH),
    ("failover naming a wrong leader", {}, failover("n2", leader="n3"), R.LEADER_MISMATCH),
    ("candidate not a member", {}, switchover("n9"), R.CANDIDATE_NOT_MEMBER),
    ("failover to a stranger", {"leader": None}, failover("n9"), R.CANDIDATE_NOT_MEMBER),
    ("candidate is the leader", {}, switchover("n1"), R.CANDIDATE_IS_LEADER),
    ("failover to the leader", {}, failover("n1"), R.CANDIDATE_IS_LEADER),
    ("candidate not running", N3_DOWN, switchover("n3"), R.CANDIDATE_NOT_RUNNING),
    ("candidate nofailover", N3_NOFAILOVER, switchover("n3"), R.CANDIDATE_NOFAILOVER),
    ("candidate failover_priority 0", N3_PRIORITY_0, failover("n3"), R.CANDIDATE_NOFAILOVER),
    ("sync on: not a sync standby", SYNC_ON, switchover("n3"), R.CANDIDATE_NOT_SYNC),
    ("sync on: failover naming a leader", SYNC_ON, failover("n3", "n1"), R.CANDIDATE_NOT_SYNC),
    ("no good other member", ONLY_BAD_OTHERS, switchover(), R.NO_CANDIDATE),
    (
        "sync on: no sync standby fit",
        {**SYNC_ON, "sync": SyncKey(leader="n1", standbys=frozenset({"n9"}))},
        switchover(),
        R.NO_CANDIDATE,
    ),
    ("a switchover is scheduled", SCHEDULED, switchover("n3"), R.ALREADY_SCHEDULED),
    ("a failover while one is scheduled", SCHEDULED, failover("n3"), R.ALREADY_SCHEDULED),
    ("scheduled in pause", PAUSED, switchover("n2", at=2000.0), R.PAUSED_NO_SCHEDULE),
    ("scheduled now", {}, switchover("n2", at=1000.0), R.SCHEDULED_IN_PAST),
    ("scheduled in the past", {}, switchover("n2", at=10.0), R.SCHEDULED_IN_PAST),
]


@pytest.mark.parametrize(
    ("kw", "request_", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_refusal(kw: dict[str, Any], request_: FailoverKey, expected: Refusal | None) -> None:
    assert refusal(cluster(**kw), request_, now_wall=NOW_WALL) is expected


def test_every_refusal_is_in_the_table_and_has_a_status() -> None:
    assert {c[3] for c in CASES} == {*Refusal, None}
    assert set(STATUS) == set(Refusal)
    assert {STATUS[r] for r in Refusal} <= {400, 409, 412, 422}


def test_the_first_refusal_wins() -> None:
    # Wrong leader, a stranger as candidate, one scheduled already: the leader check comes first.
    request = switchover("n9", leader="n2", at=10.0)
    assert refusal(cluster(**SCHEDULED), request, now_wall=NOW_WALL) is R.LEADER_MISMATCH
    assert len(CHECKS) == 5


def test_values_are_snake_case_identifiers() -> None:
    assert all(r.value == r.name.lower() for r in Refusal)
