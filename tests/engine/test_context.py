"""Absorbing results into the state, the local lock deadline, and derived roles."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pgha.engine.context import absorb, observed_role
from pgha.engine.roles import Role
from pgha.engine.state import Pending
from pgha.engine.values import Failure, LockResult, PgRun, PostgresState
from tests.engine.builders import (
    continuing,
    empty,
    leader_state,
    member,
    obs,
    primary,
    replica,
    state,
    stopped,
    view,
)

STARTING_PRIMARY = replace(primary(), run=PgRun.STARTING)
STARTING_REPLICA = replace(replica(), run=PgRun.STARTING)


@pytest.mark.parametrize(
    ("role", "pg", "holds", "expected"),
    [
        (Role.PRIMARY, empty(), True, Role.UNINITIALIZED),  # data vanished: stopped, then empty
        (Role.CLONING, empty(), False, Role.UNINITIALIZED),
        (Role.BOOTSTRAPPING, empty(), False, Role.UNINITIALIZED),
        (Role.UNINITIALIZED, replica(), False, Role.REPLICA),  # agent restart beside a replica
        (Role.UNINITIALIZED, primary(), False, Role.STARTING),  # ... beside an unmanaged primary
        (Role.UNINITIALIZED, primary(), True, Role.PRIMARY),
        (Role.PRIMARY, stopped(), True, Role.STOPPED),  # crash
        (Role.STOPPED, STARTING_REPLICA, False, Role.STARTING),
        (Role.REPLICA, STARTING_REPLICA, False, Role.REPLICA),
        (Role.PRIMARY, replica(), False, Role.REPLICA),  # demoted under us: through DEMOTING
        (Role.PROMOTING, replica(), True, Role.PROMOTING),  # promotion still running
        (Role.PROMOTING, primary(), True, Role.PRIMARY),
        (Role.PROMOTING, primary(), False, Role.PROMOTING),  # lock gone: rules demote it
        (Role.REPLICA, primary(), False, Role.STARTING),  # promoted by hand
        (Role.BOOTSTRAPPING, primary(), False, Role.BOOTSTRAPPING),
        (Role.BOOTSTRAPPING, replica(), False, Role.REPLICA),
        (Role.REWINDING, replica(), False, Role.REPLICA),
        (Role.CANDIDATE, primary(), True, Role.PRIMARY),
        (Role.PRIMARY, primary(), False, Role.PRIMARY),
    ],
)
def test_derived_role_follows_postgres_along_allowed_edges(
    role: Role, pg: PostgresState, holds: bool, expected: Role
) -> None:
    assert observed_role(role, pg, holds) is expected


class TestAbsorb:
    def test_new_cycle_forgets_the_previous_cycles_results(self) -> None:
        st = replace(continuing(state(), Pending.PEERS, 90.0), continuing=False)
        got = absorb(st, obs(100.0, cluster=view(), peers=()))
        assert got.memo.start_mono == 100.0
        assert got.memo.peers is None

    def test_results_are_recorded_for_what_was_pending(self) -> None:
        st = continuing(state(), Pending.FAILSAFE, 99.0)
        assert absorb(st, obs(cluster=None, failsafe_acks=None)).memo.failsafe_acks == ()
        st = continuing(state(), Pending.INITIALIZE, 99.0)
        got = absorb(st, obs(cluster=view(), lock_result=LockResult.CAS_FAILED))
        assert got.memo.initialize is LockResult.CAS_FAILED

    def test_failed_renewal_clears_the_deadline(self) -> None:
        st = continuing(leader_state(), Pending.RENEW, 100.0)
        got = absorb(st, obs(100.1, cluster=view("n1"), lock_result=LockResult.CAS_FAILED))
        assert got.lock_deadline_mono is None

    def test_view_with_another_holder_clears_the_deadline_and_failsafe(self) -> None:
        st = leader_state(failsafe_active=True)
        got = absorb(st, obs(cluster=view("n2", members=("n2", "n9"))))
        assert got.lock_deadline_mono is None
        assert not got.failsafe_active
        assert (got.former_leader, [m.name for m in got.old_members]) == ("n2", ["n2", "n9"])

    def test_dcs_outage_keeps_memory_but_a_passed_deadline_is_gone(self) -> None:
        st = leader_state(lock_deadline_mono=100.0, former_leader="n1")
        got = absorb(st, obs(100.0, cluster=None))
        assert got.lock_deadline_mono is None
        assert got.former_leader == "n1"

    def test_a_view_without_leader_keeps_the_former_leader(self) -> None:
        st = state(former_leader="n3", old_members=(member("n3"),))
        got = absorb(st, obs(cluster=view()))
        assert got.former_leader == "n3"

    @pytest.mark.parametrize(
        ("failure", "watchdog", "rewind_failed"),
        [
            (Failure.WATCHDOG, None, False),
            (Failure.REWIND, 25.0, True),
            (Failure.REWIND_SOURCE, 25.0, False),  # the source was unreachable: no verdict
            (None, 25.0, False),
        ],
    )
    def test_failures_reset_what_they_broke(
        self, failure: Failure | None, watchdog: float | None, rewind_failed: bool
    ) -> None:
        got = absorb(leader_state(), obs(cluster=view("n1"), failure=failure))
        assert got.watchdog_timeout_s == watchdog
        assert got.rewind_failed is rewind_failed
