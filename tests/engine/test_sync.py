"""Synchronous replication: ssn and `/sync` ordering, who may promote, quorum votes.

Each table row names the behaviour it pins. The Hypothesis tests drive plan_sync through flapping
standby sets, apply every action to a simulated primary and DCS, and check after every single step
that no acknowledged commit can be lost by a permitted promotion (bug zoo 10, 15 in
docs/patroni-rules.md §5).
"""

from __future__ import annotations

from dataclasses import replace
from itertools import combinations
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgha.engine.actions import Action, SetSyncStandbyNames, WriteSync
from pgha.engine.config import DynamicConfig, SyncMode
from pgha.engine.sync import (
    SYNC_SETTLE_S,
    SyncPlan,
    demote_sync,
    failover_votes_needed,
    plan_sync,
    pre_promote_sync,
    quorum_invariant_holds,
    quorum_votes_ok,
    sync_allows_race,
    sync_failover_candidates,
)
from pgha.engine.values import (
    ClusterView,
    Member,
    PeerStatus,
    PgRun,
    PostgresState,
    Standby,
    SyncKey,
    SyncStandbyNames,
    SyncState,
    Tags,
)

ME = "p"
NOW = 100.0
WAL = 1000
ON = SyncMode.ON
QUORUM = SyncMode.QUORUM
OFF = SyncMode.OFF
EMPTY = SyncStandbyNames()
STAR = SyncStandbyNames(star=True)


def fs(names: str) -> frozenset[str]:
    """'ab' -> {'a', 'b'}: standby names are single letters in these tables."""
    return frozenset(names)


def first(names: str) -> SyncStandbyNames:
    return SyncStandbyNames(count=len(names), names=fs(names))


def any_(count: int, names: str) -> SyncStandbyNames:
    return SyncStandbyNames(count=count, names=fs(names), quorum=True)


def sync_key(standbys: str = "", quorum: int = 0, leader: str | None = ME) -> SyncKey:
    return SyncKey(leader=leader, standbys=fs(standbys), quorum=quorum, version=7)


def write(standbys: str, quorum: int = 0, version: int | None = 7) -> WriteSync:
    return WriteSync(leader=ME, standbys=fs(standbys), quorum=quorum, version=version)


def ssn_to(value: SyncStandbyNames) -> SetSyncStandbyNames:
    return SetSyncStandbyNames(value=value)


def cluster(sync: SyncKey | None = None, members: str = "abcd", **tags: Tags) -> ClusterView:
    rows = (Member(name=n, tags=tags.get(n, Tags())) for n in members)
    return ClusterView(members=(Member(name=ME), *rows), sync=sync or SyncKey())


def primary(ssn: SyncStandbyNames = EMPTY, standbys: tuple[Standby, ...] = ()) -> PostgresState:
    return PostgresState(
        run=PgRun.RUNNING, in_recovery=False, wal_lsn=WAL, ssn=ssn, standbys=standbys
    )


def rows(
    names: str, state: SyncState = SyncState.SYNC, flush_lsn: int = WAL
) -> tuple[Standby, ...]:
    return tuple(Standby(name=n, sync_state=state, flush_lsn=flush_lsn) for n in names)


def conf(mode: SyncMode = ON, **kw: Any) -> DynamicConfig:
    return DynamicConfig(synchronous_mode=mode, **kw)


def plan(
    *,
    cfg: DynamicConfig,
    view: ClusterView,
    pg: PostgresState,
    now: float = NOW,
    changed: float | None = 0.0,
    flush_lsn: int = 0,
    hold: float | None = None,
) -> SyncPlan:
    return plan_sync(
        me=ME,
        cfg=cfg,
        cluster=view,
        pg=pg,
        now_mono=now,
        sync_changed_mono=changed,
        sync_flush_lsn=flush_lsn,
        quorum_hold_until_mono=hold,
    )


# ------------------------------------------------------------------------------------ mode off


@pytest.mark.parametrize(
    ("sync", "ssn", "expected"),
    [
        (sync_key("a"), first("a"), [WriteSync(leader=None, standbys=fs(""), quorum=0, version=7)]),
        (SyncKey(), first("a"), []),
        (sync_key(), EMPTY, [WriteSync(leader=None, standbys=fs(""), quorum=0, version=7)]),
        (SyncKey(), EMPTY, []),
        (SyncKey(), STAR, []),
    ],
)
def test_off_mode_deactivates_sync_key_before_clearing_ssn(
    sync: SyncKey, ssn: SyncStandbyNames, expected: list[Action]
) -> None:
    result = plan(cfg=conf(OFF), view=cluster(sync), pg=primary(ssn), changed=5.0, flush_lsn=9)
    clear = [] if ssn.empty else [ssn_to(EMPTY)]
    assert list(result.actions) == expected + clear
    assert (result.sync_changed_mono, result.sync_flush_lsn) == (None, 0)


# ------------------------------------------------------------------------------------ mode on


@pytest.mark.parametrize(
    "sync",
    [
        SyncKey(),
        SyncKey(leader=None, version=3),
        SyncKey(leader="old", standbys=fs("a"), version=3),
    ],
)
def test_explicit_enable_writes_sync_leader_even_without_candidates(sync: SyncKey) -> None:
    view = cluster(sync, a=Tags(nosync=True), b=Tags(nosync=True))
    result = plan(cfg=conf(), view=view, pg=primary(standbys=rows("ab")))
    assert result.actions == (
        WriteSync(leader=ME, standbys=fs(""), quorum=0, version=sync.version),
    )


@pytest.mark.parametrize(
    ("view", "standbys", "cfg", "picked"),
    [
        pytest.param(
            cluster(sync_key(), a=Tags(nosync=True)), rows("ab"), conf(), "b", id="nosync"
        ),
        pytest.param(cluster(sync_key(), members="b"), rows("ab"), conf(), "b", id="unknown"),
        pytest.param(
            cluster(sync_key()),
            (*rows("a", flush_lsn=WAL - 11), *rows("b", flush_lsn=1)),
            conf(maximum_lag_on_syncnode_b=10),
            "",
            id="all-lagging",
        ),
        pytest.param(
            cluster(sync_key()),
            (*rows("a", flush_lsn=WAL - 10), *rows("b", flush_lsn=1)),
            conf(maximum_lag_on_syncnode_b=10),
            "a",
            id="lag-at-limit",
        ),
        pytest.param(
            cluster(sync_key()),
            (*rows("a", flush_lsn=2), *rows("b", flush_lsn=1)),
            conf(),
            "a",
            id="more-wal",
        ),
        pytest.param(cluster(sync_key()), rows("ba"), conf(), "a", id="name"),
        pytest.param(
            cluster(sync_key("b")),
            (*rows("a", flush_lsn=2), *rows("b", flush_lsn=1)),
            conf(),
            "b",
            id="current-sync-first",
        ),
        pytest.param(
            cluster(sync_key(), a=Tags(nofailover=True)),
            (*rows("a", flush_lsn=2), *rows("b", flush_lsn=1)),
            conf(),
            "b",
            id="can-failover-first",
        ),
        pytest.param(
            cluster(sync_key(), a=Tags(failover_priority=0)),
            rows("ab"),
            conf(synchronous_node_count=2),
            "ab",
            id="nofailover-still-picked",
        ),
        pytest.param(
            cluster(sync_key()),
            rows("abc"),
            conf(synchronous_node_count=5),
            "abc",
            id="count-reduced-to-eligible",
        ),
        pytest.param(
            cluster(sync_key()),
            (*rows("a"), *rows("a", flush_lsn=3), *rows(ME)),
            conf(synchronous_node_count=3),
            "a",
            id="duplicates-and-me-ignored",
        ),
    ],
)
def test_nosync_members_never_picked(
    view: ClusterView, standbys: tuple[Standby, ...], cfg: DynamicConfig, picked: str
) -> None:
    stale = SyncStandbyNames(count=1, names=fs("z"))
    result = plan(cfg=cfg, view=view, pg=primary(stale, standbys))
    assert result.actions == (ssn_to(first(picked) if picked else EMPTY),)


@pytest.mark.parametrize(
    ("sync", "ssn", "expected"),
    [
        (sync_key(), EMPTY, [ssn_to(STAR)]),
        (sync_key(), STAR, []),
        (sync_key("a"), first("a"), [write(""), ssn_to(STAR)]),
    ],
)
def test_strict_mode_without_standbys_sets_star(
    sync: SyncKey, ssn: SyncStandbyNames, expected: list[Action]
) -> None:
    result = plan(cfg=conf(synchronous_mode_strict=True), view=cluster(sync), pg=primary(ssn))
    assert list(result.actions) == expected


def test_non_strict_mode_without_standbys_falls_back_to_async() -> None:
    result = plan(cfg=conf(), view=cluster(sync_key("a")), pg=primary(first("a")))
    assert result.actions == (write(""), ssn_to(EMPTY))


@pytest.mark.parametrize(
    ("sync", "ssn", "standbys", "expected"),
    [
        pytest.param("ab", first("ab"), rows("a"), [write("a"), ssn_to(first("a"))], id="one-gone"),
        pytest.param(
            "a", first("a"), rows("b", SyncState.ASYNC), [write(""), ssn_to(first("b"))], id="swap"
        ),
        pytest.param(
            "", first("a"), rows("b", SyncState.ASYNC), [ssn_to(first("b"))], id="nothing-to-shrink"
        ),
    ],
)
def test_removal_shrinks_sync_key_before_ssn(
    sync: str, ssn: SyncStandbyNames, standbys: tuple[Standby, ...], expected: list[Action]
) -> None:
    cfg = conf(synchronous_node_count=2)
    result = plan(cfg=cfg, view=cluster(sync_key(sync)), pg=primary(ssn, standbys))
    assert list(result.actions) == expected
    # The ssn changed: the next cycle records when, and the LSN after the reload.
    assert (result.sync_changed_mono, result.sync_flush_lsn) == (None, 0)


def test_addition_sets_ssn_before_growing_sync_key_after_settle() -> None:
    cfg = conf(synchronous_node_count=2)
    view = cluster(sync_key("a"))
    pg = primary(first("a"), rows("a") + rows("b", SyncState.ASYNC, flush_lsn=WAL - 50))
    step1 = plan(cfg=cfg, view=view, pg=pg)
    assert step1.actions == (ssn_to(first("ab")),)
    assert (step1.sync_changed_mono, step1.sync_flush_lsn) == (None, 0)
    pg2 = primary(first("ab"), rows("ab"))
    # The first cycle after the reload records the change time and the primary's LSN then.
    step2 = plan(cfg=cfg, view=view, pg=pg2, now=NOW + 1, changed=None, flush_lsn=0)
    assert step2.actions == ()
    assert (step2.sync_changed_mono, step2.sync_flush_lsn) == (NOW + 1, WAL)
    changed, flush_lsn = step2.sync_changed_mono, step2.sync_flush_lsn
    soon = plan(
        cfg=cfg,
        view=view,
        pg=pg2,
        now=NOW + 1 + SYNC_SETTLE_S - 0.1,
        changed=changed,
        flush_lsn=flush_lsn,
    )
    assert soon.actions == ()
    later = plan(
        cfg=cfg,
        view=view,
        pg=pg2,
        now=NOW + 1 + SYNC_SETTLE_S,
        changed=changed,
        flush_lsn=flush_lsn,
    )
    assert later.actions == (write("ab"),)


@pytest.mark.parametrize(
    ("state", "flush_lsn", "grows"),
    [
        (SyncState.SYNC, 500, True),
        (SyncState.SYNC, 499, False),
        (SyncState.POTENTIAL, 900, False),
        (SyncState.QUORUM, 900, False),
    ],
)
def test_sync_key_grows_only_to_confirmed_caught_up_standbys(
    state: SyncState, flush_lsn: int, grows: bool
) -> None:
    pg = primary(first("a"), rows("a", state, flush_lsn))
    result = plan(cfg=conf(), view=cluster(sync_key()), pg=pg, changed=10.0, flush_lsn=500)
    assert result.actions == ((write("a"),) if grows else ())


@pytest.mark.parametrize(
    ("sync", "ssn", "standbys", "expected"),
    [
        pytest.param("a", first("a"), rows("a", SyncState.ASYNC), [write("")], id="not-waited-for"),
        pytest.param(
            "a",
            EMPTY,
            rows("a", SyncState.ASYNC),
            [write(""), ssn_to(first("a"))],
            id="operator-reset-ssn",
        ),
        pytest.param(
            "a",
            first("a"),
            rows("a", SyncState.SYNC, flush_lsn=1),
            [],
            id="in-sync-key-needs-no-catch-up",
        ),
        pytest.param("ab", first("a"), rows("a"), [write("a")], id="not-in-ssn"),
    ],
)
def test_sync_key_reconciled_to_confirmed_standbys(
    sync: str, ssn: SyncStandbyNames, standbys: tuple[Standby, ...], expected: list[Action]
) -> None:
    # Bug zoo 10: `/sync` never keeps a standby PostgreSQL does not wait for, settled or not.
    result = plan(cfg=conf(), view=cluster(sync_key(sync)), pg=primary(ssn, standbys), changed=NOW)
    assert list(result.actions) == expected


def test_unknown_change_time_waits_a_full_settle_from_now() -> None:
    pg = primary(first("a"), rows("a", flush_lsn=WAL))
    result = plan(cfg=conf(), view=cluster(sync_key()), pg=pg, changed=None)
    assert result == SyncPlan(actions=(), sync_changed_mono=NOW, sync_flush_lsn=WAL)


# ------------------------------------------------------------------------------------ quorum


def qplan(
    voters: str,
    quorum: int,
    ssn: SyncStandbyNames,
    active: str,
    count: int = 1,
    strict: bool = False,
    **kw: Any,
) -> SyncPlan:
    cfg = conf(QUORUM, synchronous_node_count=count, synchronous_mode_strict=strict)
    kw.setdefault("changed", 0.0)
    kw.setdefault("flush_lsn", WAL)
    standbys = kw.pop("standbys", rows(active, SyncState.QUORUM))
    return plan(cfg=cfg, view=cluster(sync_key(voters, quorum)), pg=primary(ssn, standbys), **kw)


@pytest.mark.parametrize(
    ("voters", "quorum", "ssn", "active", "count", "strict", "expected"),
    [
        pytest.param("a", 0, any_(1, "a"), "ab", 1, False, write("ab", 1), id="add-voters-first"),
        pytest.param(
            "", 0, EMPTY, "a", 1, False, ssn_to(any_(1, "a")), id="add-to-empty-ssn-first"
        ),
        pytest.param(
            "ab", 1, any_(1, "ab"), "a", 1, False, ssn_to(any_(1, "a")), id="remove-ssn-first"
        ),
        pytest.param("a", 0, any_(1, "a"), "", 1, False, write(""), id="remove-last-voters-first"),
        pytest.param("", 0, any_(1, "a"), "", 1, False, ssn_to(EMPTY), id="then-clear-ssn"),
        pytest.param("", 0, any_(1, "a"), "", 1, True, ssn_to(STAR), id="strict-star"),
        pytest.param("", 0, STAR, "", 1, True, None, id="strict-steady"),
        pytest.param(
            "ab", 1, any_(1, "ab"), "ab", 2, False, ssn_to(any_(2, "ab")), id="raise-numsync-first"
        ),
        pytest.param(
            "ab", 1, any_(2, "ab"), "ab", 2, False, write("ab", 0), id="then-lower-quorum"
        ),
        pytest.param(
            "ab", 0, any_(2, "ab"), "ab", 1, False, write("ab", 1), id="raise-quorum-first"
        ),
        pytest.param(
            "ab", 1, any_(2, "ab"), "ab", 1, False, ssn_to(any_(1, "ab")), id="then-lower-numsync"
        ),
        pytest.param(
            "ab",
            1,
            any_(1, "ab"),
            "ac",
            1,
            False,
            ssn_to(any_(1, "a")),
            id="replace-drops-gone-from-ssn-first",
        ),
        pytest.param("ab", 1, any_(1, "a"), "ac", 1, False, write("ac", 1), id="replace-voters"),
        pytest.param(
            "ac", 1, any_(1, "a"), "ac", 1, False, ssn_to(any_(1, "ac")), id="replace-done"
        ),
        pytest.param(
            "ab",
            1,
            any_(1, "abx"),
            "ab",
            1,
            False,
            ssn_to(any_(1, "ab")),
            id="unknown-name-dropped",
        ),
        pytest.param("ab", 1, any_(1, "ab"), "ab", 1, False, None, id="steady"),
        pytest.param(
            "ab", 1, first("ab"), "ab", 2, False, ssn_to(any_(2, "ab")), id="first-becomes-any"
        ),
        pytest.param("a", 0, STAR, "ab", 1, True, write("ab", 2), id="star-with-voters"),
    ],
)
def test_quorum_changes_one_safe_step_per_cycle(
    voters: str,
    quorum: int,
    ssn: SyncStandbyNames,
    active: str,
    count: int,
    strict: bool,
    expected: Action | None,
) -> None:
    result = qplan(voters, quorum, ssn, active, count, strict)
    assert result.actions == (() if expected is None else (expected,))
    changed_ssn = isinstance(expected, SetSyncStandbyNames)
    assert result.sync_changed_mono == (None if changed_ssn else 0.0)


@pytest.mark.parametrize(
    ("caught_up", "expected"),
    [("ab", (write("ab", 0),)), ("a", ()), ("", ())],
)
def test_quorum_lowered_only_when_each_quorum_set_holds_a_caught_up_standby(
    caught_up: str, expected: tuple[Action, ...]
) -> None:
    behind = "".join(n for n in "ab" if n not in caught_up)
    standbys = rows(caught_up, SyncState.QUORUM) + rows(behind, SyncState.QUORUM, WAL - 1)
    result = qplan("ab", 1, any_(2, "ab"), "ab", 2, standbys=standbys)
    assert result.actions == expected


def test_quorum_sync_key_waits_for_ssn_to_settle() -> None:
    early = qplan("a", 0, any_(1, "a"), "ab", changed=NOW - SYNC_SETTLE_S + 0.5)
    assert early.actions == ()
    assert early.sync_changed_mono == NOW - SYNC_SETTLE_S + 0.5


@pytest.mark.parametrize(
    ("hold", "expected"),
    [(NOW + 0.1, ()), (NOW, (write("ab", 1),)), (None, (write("ab", 1),))],
)
def test_quorum_hold_after_promotion_blocks_changes(
    hold: float | None, expected: tuple[Action, ...]
) -> None:
    assert qplan("a", 0, any_(1, "a"), "ab", hold=hold).actions == expected


@pytest.mark.parametrize(
    ("sync", "ssn", "settled", "expected"),
    [
        pytest.param(
            SyncKey(leader="old", standbys=fs("pab"), quorum=1, version=7),
            any_(1, "ab"),
            False,
            write("ab", 1),
            id="pre-promote-ssn-recorded",
        ),
        pytest.param(
            SyncKey(leader="old", standbys=fs("ab"), quorum=0, version=7),
            any_(2, "ab"),
            False,
            write("ab", 0),
            id="was-not-a-voter",
        ),
        pytest.param(
            SyncKey(version=7),
            any_(1, "ab"),
            False,
            write("ab", 2),
            id="inactive-waits-for-catch-up",
        ),
        pytest.param(
            SyncKey(version=7), any_(1, "ab"), True, write("ab", 1), id="inactive-caught-up"
        ),
        pytest.param(SyncKey(), STAR, True, write("", 0, None), id="star-has-no-voters"),
        pytest.param(SyncKey(), EMPTY, True, write("", 0, None), id="empty"),
    ],
)
def test_quorum_leader_fix_records_current_ssn_even_during_hold(
    sync: SyncKey, ssn: SyncStandbyNames, settled: bool, expected: Action
) -> None:
    view = cluster(sync)
    changed = 0.0 if settled else NOW
    pg = primary(ssn, rows("ab", SyncState.QUORUM))
    result = plan(cfg=conf(QUORUM), view=view, pg=pg, changed=changed, hold=NOW + 5, flush_lsn=WAL)
    assert result.actions == (expected,)
    assert isinstance(expected, WriteSync)
    assert quorum_invariant_holds(
        leader=ME, voters=expected.standbys, quorum=expected.quorum, ssn=ssn
    )


def brute_force_safe(voters: frozenset[str], quorum: int, ssn: SyncStandbyNames) -> bool:
    """Every q + 1 voters (the primary excluded) meet every set of k acknowledging standbys."""
    others = sorted(voters - {ME})
    if ssn.star:
        acks = [frozenset({"someone-else"})]
    else:
        names = sorted(ssn.names - {ME})
        acks = [frozenset(c) for c in combinations(names, min(ssn.count, len(names)))]
    return all(set(q) & a for q in combinations(others, quorum + 1) for a in acks)


@pytest.mark.parametrize(
    ("voters", "quorum", "ssn", "holds"),
    [
        ("ab", 1, any_(1, "ab"), True),
        ("ab", 0, any_(1, "ab"), False),
        ("ab", 0, any_(2, "ab"), True),
        ("pab", 0, any_(2, "ab"), True),
        ("a", 0, any_(1, "ab"), False),
        ("abc", 1, any_(1, "ab"), False),
        ("", 0, EMPTY, True),
        ("a", 0, EMPTY, False),
        ("a", 1, EMPTY, True),
        ("a", 0, STAR, False),
        ("", 0, STAR, True),
        ("ab", 1, first("ab"), True),
        ("ab", 0, SyncStandbyNames(count=3, names=fs("ab"), quorum=True), True),
        ("a", 0, SyncStandbyNames(count=1, names=fs("pa"), quorum=True), True),
    ],
)
def test_quorum_invariant_matches_brute_force(
    voters: str, quorum: int, ssn: SyncStandbyNames, holds: bool
) -> None:
    assert quorum_invariant_holds(leader=ME, voters=fs(voters), quorum=quorum, ssn=ssn) is holds
    assert brute_force_safe(fs(voters), quorum, ssn) is holds


NAMES = "pabcde"


@settings(max_examples=300, deadline=None)
@given(
    voters=st.frozensets(st.sampled_from(NAMES)),
    quorum=st.integers(0, 5),
    names=st.frozensets(st.sampled_from(NAMES)),
    count=st.integers(0, 6),
    star=st.booleans(),
)
def test_quorum_invariant_formula_equals_brute_force(
    voters: frozenset[str], quorum: int, names: frozenset[str], count: int, star: bool
) -> None:
    ssn = SyncStandbyNames(count=count, names=names, quorum=True, star=star)
    formula = quorum_invariant_holds(leader=ME, voters=voters, quorum=quorum, ssn=ssn)
    assert formula is brute_force_safe(voters, quorum, ssn)


# ------------------------------------------------------------------------------------ simulation


class Sim:
    """A primary, its standbys and the DCS `/sync` key; commits acknowledged as ssn demands."""

    def __init__(self, cfg: DynamicConfig, sync: SyncKey) -> None:
        self.cfg = cfg
        self.sync = sync
        self.ssn = EMPTY
        self.flush = dict.fromkeys("abcd", 0)
        self.wal = 100
        self.acked = 0
        self.now = 0.0
        self.memo: tuple[float | None, int] = (None, 0)
        self.view = cluster(members="abcd")

    def commit(self, alive: frozenset[str], order: list[str]) -> None:
        """Write one commit; it is acknowledged once enough standbys flushed it (`order` picks)."""
        self.wal += 10
        if self.ssn.empty:
            self.acked = self.wal
            return
        pool = [n for n in order if n in alive and (self.ssn.star or n in self.ssn.names)]
        need = 1 if self.ssn.star else self.ssn.count
        if len(pool) >= need:
            for name in pool[:need]:
                self.flush[name] = self.wal
            self.acked = self.wal

    def primary(self, alive: frozenset[str]) -> PostgresState:
        state = SyncState.QUORUM if self.cfg.synchronous_mode is QUORUM else SyncState.SYNC
        confirmed = [n for n in sorted(alive) if self.ssn.star or n in self.ssn.names][:1]
        standbys = tuple(
            Standby(
                name=n,
                flush_lsn=self.flush[n],
                sync_state=state if n in self.ssn.names or n in confirmed else SyncState.ASYNC,
            )
            for n in sorted(alive)
        )
        return primary(self.ssn, standbys)

    def cycle(self, alive: frozenset[str], fail_cas: bool) -> list[Action]:
        pg = replace(self.primary(alive), wal_lsn=self.wal)
        result = plan_sync(
            me=ME,
            cfg=self.cfg,
            cluster=replace(self.view, sync=self.sync),
            pg=pg,
            now_mono=self.now,
            sync_changed_mono=self.memo[0],
            sync_flush_lsn=self.memo[1],
            quorum_hold_until_mono=None,
        )
        self.memo = (result.sync_changed_mono, result.sync_flush_lsn)
        applied: list[Action] = []
        for action in result.actions:
            if isinstance(action, WriteSync):
                assert action.version == self.sync.version
                if fail_cas:
                    break  # the shell stops at the first failure
                version = (self.sync.version or 0) + 1
                self.sync = SyncKey(
                    leader=action.leader,
                    standbys=action.standbys,
                    quorum=action.quorum,
                    version=version,
                )
            else:
                assert isinstance(action, SetSyncStandbyNames)
                self.ssn = action.value
            applied.append(action)
            self.check()
        return applied

    def check(self) -> None:
        """No promotion allowed by `/sync` can lose an acknowledged commit."""
        if self.sync.leader != ME:
            return
        if self.cfg.synchronous_mode is ON:
            assert all(self.flush[n] >= self.acked for n in self.sync.standbys)
            return
        voters, quorum = self.sync.standbys, self.sync.quorum
        assert brute_force_safe(voters, quorum, self.ssn)
        for quorum_set in combinations(sorted(voters - {ME}), quorum + 1):
            assert max(self.flush[n] for n in quorum_set) >= self.acked


def assert_converged(sim: Sim, final: frozenset[str]) -> None:
    """Quorum: the one optimal state. On: FIRST n of the best live standbys, all in `/sync`."""
    cfg = sim.cfg
    count = min(cfg.synchronous_node_count, len(final))
    fallback = STAR if cfg.synchronous_mode_strict else EMPTY
    assert sim.sync.leader == ME
    if cfg.synchronous_mode is QUORUM:
        assert sim.ssn == (any_(count, "".join(final)) if final else fallback)
        assert (sim.sync.standbys, sim.sync.quorum) == (final, len(final) - count)
        return
    names = sim.ssn.names
    assert names <= final
    assert sim.ssn == (first("".join(names)) if final else fallback)
    assert len(names) == count
    assert (sim.sync.standbys, sim.sync.quorum) == (names, 0)


def simulate(data: st.DataObject, mode: SyncMode) -> None:
    count = data.draw(st.integers(1, 3), label="synchronous_node_count")
    strict = data.draw(st.booleans(), label="strict")
    cfg = conf(mode, synchronous_node_count=count, synchronous_mode_strict=strict)
    active = data.draw(st.booleans(), label="sync key written")
    sim = Sim(cfg, SyncKey(leader=ME, version=1) if active else SyncKey())
    alive = data.draw(st.frozensets(st.sampled_from("abcd")), label="alive at start")
    # Each cycle one standby joins or leaves (None: no change), so joins and leaves flap.
    toggles = st.lists(st.sampled_from("abcd") | st.none(), min_size=1, max_size=14)
    for toggle in data.draw(toggles, label="join or leave per cycle"):
        alive = alive ^ {toggle} if toggle else alive
        if data.draw(st.booleans(), label="commit"):
            sim.commit(alive, data.draw(st.permutations(sorted(alive))))
        for name in alive:  # a live standby sometimes catches up without a commit waiting for it
            if data.draw(st.integers(0, 3)) == 0:
                sim.flush[name] = sim.wal
        sim.check()
        applied = sim.cycle(alive, fail_cas=data.draw(st.integers(0, 9)) == 0)
        assert len(applied) <= (1 if mode is QUORUM else 2)
        sim.now += data.draw(st.sampled_from([2.0, 5.0, 0.5, 1.0]))
    final = alive
    for _ in range(8):  # stable: every live standby catches up, cycles 3 s apart
        sim.commit(final, sorted(final))
        sim.flush.update(dict.fromkeys(final, sim.wal))
        sim.cycle(final, fail_cas=False)
        sim.now += 3.0
    assert_converged(sim, final)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_quorum_mode_never_breaks_the_intersection_invariant_and_converges(
    data: st.DataObject,
) -> None:
    simulate(data, QUORUM)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_sync_mode_on_keeps_every_sync_standby_caught_up_and_converges(
    data: st.DataObject,
) -> None:
    simulate(data, ON)


# ------------------------------------------------------------------------------------ promotion


@pytest.mark.parametrize(
    ("cfg", "sync", "expected"),
    [
        pytest.param(conf(OFF), sync_key("a"), (), id="off"),
        pytest.param(conf(), sync_key("a"), (write(""), ssn_to(EMPTY)), id="on-fences-old-primary"),
        pytest.param(
            conf(synchronous_mode_strict=True),
            SyncKey(),
            (write("", version=None), ssn_to(STAR)),
            id="on-strict-creates-key",
        ),
        pytest.param(conf(QUORUM), SyncKey(), (ssn_to(EMPTY),), id="quorum-inactive"),
        pytest.param(
            conf(QUORUM, synchronous_mode_strict=True),
            SyncKey(),
            (ssn_to(STAR),),
            id="quorum-inactive-strict",
        ),
        pytest.param(
            conf(QUORUM),
            SyncKey(leader="o", standbys=fs("pab"), quorum=1),
            (ssn_to(any_(1, "ab")),),
            id="quorum-voter",
        ),
        pytest.param(
            conf(QUORUM),
            SyncKey(leader="o", standbys=fs("ab"), quorum=1),
            (ssn_to(any_(1, "ab")),),
            id="quorum-not-voter",
        ),
        pytest.param(
            conf(QUORUM),
            SyncKey(leader="o", standbys=fs("ab"), quorum=0),
            (ssn_to(any_(2, "ab")),),
            id="quorum-not-voter-zero",
        ),
        pytest.param(
            conf(QUORUM),
            SyncKey(leader="o", standbys=fs("pa"), quorum=1),
            (ssn_to(EMPTY),),
            id="quorum-count-zero",
        ),
        pytest.param(
            conf(QUORUM, synchronous_mode_strict=True),
            SyncKey(leader="o", standbys=fs("pa"), quorum=1),
            (ssn_to(any_(1, "a")),),
            id="quorum-strict-floor",
        ),
        pytest.param(
            conf(QUORUM, synchronous_mode_strict=True),
            SyncKey(leader="o", standbys=fs("p"), quorum=0),
            (ssn_to(STAR),),
            id="quorum-strict-no-names",
        ),
    ],
)
def test_pre_promote_sync_prepares_ssn_before_promote(
    cfg: DynamicConfig, sync: SyncKey, expected: tuple[Action, ...]
) -> None:
    assert pre_promote_sync(me=ME, cfg=cfg, cluster=cluster(sync)) == expected
    if cfg.synchronous_mode is QUORUM and sync.leader is not None:
        # The old `/sync` stays in force until the leader fix: it must still cover the new ssn.
        new_ssn = expected[-1]
        assert isinstance(new_ssn, SetSyncStandbyNames)
        assert quorum_invariant_holds(
            leader=ME, voters=sync.standbys, quorum=sync.quorum, ssn=new_ssn.value
        )


@pytest.mark.parametrize(
    ("ssn", "expected"),
    [(EMPTY, ()), (STAR, (ssn_to(EMPTY),)), (any_(1, "a"), (ssn_to(EMPTY),))],
)
def test_demote_clears_ssn_in_any_mode(ssn: SyncStandbyNames, expected: tuple[Action, ...]) -> None:
    for mode in SyncMode:
        assert demote_sync(cfg=conf(mode), pg=primary(ssn)) == expected


@pytest.mark.parametrize(
    ("mode", "sync", "me", "allowed"),
    [
        (ON, sync_key("a", leader="o"), "a", True),
        (ON, sync_key("a", leader="o"), "o", True),
        (ON, sync_key("a", leader="o"), "b", False),
        (ON, SyncKey(), "b", True),
        (QUORUM, sync_key("a", leader="o"), "b", True),
        (OFF, sync_key("a", leader="o"), "b", True),
    ],
)
def test_switchover_candidate_must_be_in_sync(
    mode: SyncMode, sync: SyncKey, me: str, allowed: bool
) -> None:
    assert sync_allows_race(me=me, cfg=conf(mode), cluster=cluster(sync)) is allowed


@pytest.mark.parametrize(
    ("mode", "sync", "manual", "candidates", "votes"),
    [
        pytest.param(OFF, sync_key("a"), False, None, 1, id="off"),
        pytest.param(ON, sync_key("ab"), True, None, 1, id="manual-failover-may-pick-async"),
        pytest.param(ON, sync_key("ab"), False, "ab", 1, id="switchover-only-sync"),
        pytest.param(ON, SyncKey(), False, "", 1, id="on-before-sync-key-nobody"),
        pytest.param(QUORUM, sync_key("pab", 1), False, "ab", 2, id="quorum-voters"),
        pytest.param(QUORUM, sync_key("ab", 2), False, "", 3, id="quorum-unreachable"),
        pytest.param(QUORUM, sync_key("ab", 2), True, None, 1, id="quorum-manual"),
    ],
)
def test_failover_possible_only_toward_nodes_that_could_promote(
    mode: SyncMode, sync: SyncKey, manual: bool, candidates: str | None, votes: int
) -> None:
    view = cluster(sync)
    found = sync_failover_candidates(me=ME, cfg=conf(mode), cluster=view, manual_failover=manual)
    assert found == (None if candidates is None else fs(candidates))
    assert failover_votes_needed(cfg=conf(mode), cluster=view, manual_failover=manual) == votes


def peer(name: str, wal_lsn: int = 100, **kw: Any) -> PeerStatus:
    return PeerStatus(name=name, wal_lsn=wal_lsn, **kw)


@pytest.mark.parametrize(
    ("me", "sync", "peers", "ok"),
    [
        pytest.param("a", sync_key("ab", 1), [peer("b")], True, id="voter-one-vote"),
        pytest.param("a", sync_key("ab", 1), [peer("b", 101)], False, id="voter-ahead-no-vote"),
        pytest.param("x", sync_key("ab", 1), [peer("a"), peer("b")], True, id="outsider-two"),
        pytest.param("x", sync_key("ab", 1), [peer("a"), peer("a")], False, id="vote-once"),
        pytest.param("x", sync_key("ab", 1), [peer("a"), peer("c")], False, id="non-voter"),
        pytest.param("a", sync_key("ab", 1), [peer("b", 0)], False, id="no-wal-no-vote"),
        pytest.param("a", sync_key("ab", 1), [peer("b", reachable=False)], False, id="unreachable"),
        pytest.param("a", sync_key("ab", 1), [peer("b", running=False)], False, id="stopped"),
        pytest.param("a", sync_key("ab", 1), [peer("a"), peer("c")], False, id="self-skipped"),
        pytest.param("a", sync_key("ab", 0), [], True, id="quorum-zero"),
        pytest.param(ME, sync_key("ab", 2), [peer("c")], True, id="sync-leader-nobody-ahead"),
        pytest.param(ME, sync_key("ab", 2), [peer("c", 101)], False, id="sync-leader-behind"),
    ],
)
def test_quorum_votes_counted_from_voters_not_ahead(
    me: str, sync: SyncKey, peers: list[PeerStatus], ok: bool
) -> None:
    assert quorum_votes_ok(me=me, sync=sync, peers=peers, my_wal_lsn=100) is ok
