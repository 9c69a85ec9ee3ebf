"""The etcd v3 DCS against real etcd members on loopback: keys, lock, leases, faults, admin."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from pgha.agent.etcd.codec import ConfigMemory, Entry, decode_cluster
from pgha.agent.etcd.dcs import EtcdAdmin, EtcdDcs, EtcdSettings
from pgha.agent.etcd.session import EtcdSession
from pgha.engine.config import SyncMode
from pgha.engine.values import (
    HistoryEntry,
    LockResult,
    Member,
    MemberRole,
    PgRun,
    PostgresState,
    Tags,
)
from pgha.ports import DcsError
from tests.agent.conftest import free_port
from tests.agent.etcd_cluster import EtcdCluster
from tests.probes import holds_for, wait_for

pytestmark = pytest.mark.agent

FAST = {"ttl": 3, "loop_wait": 1, "retry_timeout": 1}  # leases of 3 s
PG = PostgresState(run=PgRun.RUNNING, in_recovery=False, timeline=4, wal_lsn=123456)


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdCluster]:
    with EtcdCluster.running(size=3) as cluster:
        yield cluster


@pytest.fixture
def scope() -> str:
    """A fresh cluster scope per test, so tests on the shared etcd never see each other's keys."""
    return f"t{uuid.uuid4().hex[:10]}"


Hosts = EtcdCluster | list[tuple[str, int]]


def settings(etcd: Hosts, scope: str, **more: Any) -> EtcdSettings:
    hosts = etcd.endpoints if isinstance(etcd, EtcdCluster) else etcd
    return EtcdSettings(hosts=tuple(hosts), scope=scope, **more)


def node(
    etcd: Hosts,
    scope: str,
    name: str,
    config: dict[str, Any] | None = None,
    tags: Tags | None = None,
) -> EtcdDcs:
    return EtcdDcs(
        settings(etcd, scope),
        name=name,
        api_url=f"http://127.0.0.1:8008/{name}",
        conn_url=f"postgres://127.0.0.1:5432/{name}",
        tags=tags or Tags(),
        bootstrap_config=FAST if config is None else config,
        postgres_state=lambda: PG,
    )


def test_initialize_race_has_exactly_one_winner(etcd: EtcdCluster, scope: str) -> None:
    racers = [node(etcd, scope, f"n{i}") for i in range(4)]
    results: list[bool] = []
    barrier = threading.Barrier(len(racers))

    def race(dcs: EtcdDcs) -> None:
        barrier.wait()
        results.append(dcs.acquire_initialize())

    threads = [threading.Thread(target=race, args=(dcs,)) for dcs in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, False, False, True]
    assert racers[0].read_cluster().initialize == ""
    racers[1].write_initialize("7212345678901234567")
    assert racers[2].read_cluster().initialize == "7212345678901234567"
    racers[1].delete_initialize()
    assert racers[3].read_cluster().initialize is None


def test_write_config_only_creates(etcd: EtcdCluster, scope: str) -> None:
    first = node(etcd, scope, "a", config={**FAST, "maximum_lag_on_failover": 1000})
    second = node(etcd, scope, "b", config={"ttl": 30, "synchronous_mode": True})
    assert first.read_cluster().config_version is None
    assert second.read_cluster().config.ttl_s == 30  # the bootstrap config until /config exists
    first.write_config()
    second.write_config()  # absent no more: left alone
    view = second.read_cluster()
    assert view.config_version is not None
    assert view.config.maximum_lag_on_failover_b == 1000
    assert view.config.synchronous_mode is SyncMode.OFF
    assert second.raw_config_document()["maximum_lag_on_failover"] == 1000
    assert second.session.retry_timeout_s == 1


def test_lock_acquire_renew_release(etcd: EtcdCluster, scope: str) -> None:
    a, b = node(etcd, scope, "a"), node(etcd, scope, "b")
    assert a.acquire_lock() is LockResult.OK
    assert b.acquire_lock() is LockResult.CAS_FAILED
    assert a.acquire_lock() is LockResult.OK  # already a's, on a's lease (a retried create)
    leader = b.read_cluster().leader
    assert leader is not None
    assert leader.holder == "a"
    assert b.renew_lock(leader.version) is LockResult.CAS_FAILED  # not b's name
    assert a.renew_lock(leader.version) is LockResult.OK
    assert a.renew_lock(leader.version) is LockResult.CAS_FAILED  # the renewal moved the version
    renewed = a.read_cluster().leader
    assert renewed is not None
    assert renewed.version > leader.version
    b.release_lock(renewed.version)  # not b's: left alone, no error
    a.release_lock(leader.version)  # stale version: left alone
    assert a.read_cluster().leader == renewed
    a.release_lock(None)  # as a last wrote it
    assert a.read_cluster().leader is None
    a.release_lock(None)  # idempotent
    assert b.acquire_lock() is LockResult.OK
    assert a.renew_lock(renewed.version) is LockResult.CAS_FAILED


def test_leases_expire_unless_renewed(etcd: EtcdCluster, scope: str) -> None:
    holder, idle = node(etcd, scope, "holder"), node(etcd, scope, "idle")
    holder.update_member(MemberRole.PRIMARY)
    idle.update_member(MemberRole.REPLICA)
    assert holder.acquire_lock() is LockResult.OK

    def renew() -> bool:
        leader = holder.read_cluster().leader
        assert leader is not None
        assert holder.renew_lock(leader.version) is LockResult.OK
        holder.update_member(MemberRole.PRIMARY)
        return True

    # Renewed every 0.8 s for longer than the 3 s lease: the lock and holder's key stay.
    holds_for("the holder renewing", renew, 4.5, every_s=0.8)
    view = holder.read_cluster()
    assert [m.name for m in view.members] == ["holder"]  # idle's member key expired
    assert view.leader is not None
    version = view.leader.version
    wait_for("the lock to expire", lambda: holder.read_cluster().leader is None, 6)
    assert holder.read_cluster().members == ()
    assert holder.renew_lock(version) is LockResult.CAS_FAILED
    assert idle.acquire_lock() is LockResult.OK
    holder.update_member(MemberRole.REPLICA)  # a new lease for the member key
    assert [m.name for m in holder.read_cluster().members] == ["holder"]


def test_ttl_change_moves_the_lock_to_a_new_lease(etcd: EtcdCluster, scope: str) -> None:
    a = node(etcd, scope, "a")
    admin = EtcdAdmin(settings(etcd, scope))
    assert admin.replace_config(FAST, None)
    a.read_cluster()
    assert a.acquire_lock() is LockResult.OK
    first_lease = _leader_lease(a, scope)
    assert admin.replace_config({**FAST, "ttl": 6}, admin.raw_config()[1])
    leader = a.read_cluster().leader
    assert leader is not None
    assert a.renew_lock(leader.version) is LockResult.OK
    assert _leader_lease(a, scope) != first_lease


def _leader_lease(dcs: EtcdDcs, scope: str) -> int:
    answer = dcs.session.range(f"/service/{scope}/leader".encode(), what="test")
    return int(answer.kvs[0].lease)


def test_keys_round_trip_through_read_cluster(etcd: EtcdCluster, scope: str) -> None:
    tags = Tags(nofailover=True, failover_priority=0, replicatefrom="a", nosync=True)
    a, b = node(etcd, scope, "a"), node(etcd, scope, "b", tags=tags)
    admin = EtcdAdmin(settings(etcd, scope))
    a.update_member(MemberRole.PRIMARY)
    b.update_member(MemberRole.REPLICA)
    a.read_cluster()
    assert a.write_sync("a", frozenset({"b", "c"}), 1, None)
    assert not a.write_sync("a", frozenset(), 0, None)  # exists: a create loses
    a.write_status(987654)
    a.write_failsafe(("a", "b", "ghost"))
    a.append_history(HistoryEntry(timeline=1, switch_lsn=5000, new_leader="a"))
    a.append_history(HistoryEntry(timeline=1, switch_lsn=5000, new_leader="a"))  # a retry
    a.append_history(HistoryEntry(timeline=2, switch_lsn=9000))
    admin.write_failover(leader="a", candidate="b", scheduled_at_wall=1_900_000_000.25)
    view = b.read_cluster()
    assert [m.name for m in view.members] == ["a", "b"]
    assert view.members[1] == Member(
        name="b",
        api_url="http://127.0.0.1:8008/b",
        conn_url="postgres://127.0.0.1:5432/b",
        role=MemberRole.REPLICA,
        timeline=4,
        wal_lsn=123456,
        tags=tags,
    )
    assert view.members[0].role is MemberRole.PRIMARY
    assert (view.sync.leader, view.sync.standbys, view.sync.quorum) == ("a", {"b", "c"}, 1)
    assert view.status_optime_lsn == 987654
    assert view.failsafe == ("a", "b", "ghost")
    assert [(h.timeline, h.switch_lsn, h.new_leader) for h in view.history] == [
        (1, 5000, "a"),
        (2, 9000, None),
    ]
    assert view.timeline == 3
    assert view.failover is not None
    assert (view.failover.leader, view.failover.candidate) == ("a", "b")
    assert view.failover.scheduled_at_wall == pytest.approx(1_900_000_000.25)
    documents = admin.member_documents()
    assert documents["a"]["role"] == "primary"
    assert documents["b"]["tags"]["nofailover"] is True
    failsafe = a.session.range(f"/service/{scope}/failsafe".encode(), what="test").kvs[0]
    assert json.loads(failsafe.value) == {
        "a": "http://127.0.0.1:8008/a",
        "b": "http://127.0.0.1:8008/b",
        "ghost": "",
    }
    _check_versioned_writes(a, view)


def _check_versioned_writes(a: EtcdDcs, view: Any) -> None:
    assert not a.write_sync(None, frozenset(), 0, view.sync.version - 1)
    assert a.write_sync(None, frozenset(), 0, view.sync.version)
    assert a.read_cluster().sync.leader is None  # deactivated
    assert not a.clear_failover(view.failover.version + 1000)
    assert a.clear_failover(view.failover.version)
    assert a.read_cluster().failover is None
    assert not a.clear_failover(view.failover.version)  # gone


def test_malformed_values_do_not_break_the_read(etcd: EtcdCluster, scope: str) -> None:
    a = node(etcd, scope, "a")
    admin = EtcdAdmin(settings(etcd, scope))
    assert admin.replace_config({**FAST, "maximum_lag_on_failover": 77}, None)
    a.update_member(MemberRole.PRIMARY)
    good = a.read_cluster()
    assert good.config.maximum_lag_on_failover_b == 77
    raw = EtcdSession(settings(etcd, scope))
    prefix = f"/service/{scope}/"
    garbage = {
        "members/broken": b"{not json",
        "members/list": b"[1, 2]",
        "sync": b'{"leader": 5}',
        "failover": b'{"leader": "a", "scheduled_at": "tomorrow"}',
        "history": b'[[1, 100, "r", "t", "a"], "junk", [2], ["x", 5], [3, 300]]',
        "status": b'{"optime": "lots"}',
        "failsafe": b'"nope"',
        "config": b'{"ttl": "long"}',
    }
    for key, value in garbage.items():
        raw.put((prefix + key).encode(), value, what="test")
    view = a.read_cluster()
    assert [m.name for m in view.members] == ["a"]
    assert view.sync.leader == ""  # present but unreadable: nobody may promote on it
    assert not view.sync.may_promote("a")
    assert view.failover is None
    assert [(h.timeline, h.switch_lsn) for h in view.history] == [(1, 100), (3, 300)]
    assert view.status_optime_lsn is None
    assert view.failsafe is None
    assert view.config == good.config  # the previous good config is kept ...
    assert view.config_version is not None
    assert view.config_version > (good.config_version or 0)
    assert a.last_config_error() is not None  # ... and the problem reported
    assert a.raw_config_document()["maximum_lag_on_failover"] == 77
    assert admin.raw_config() == ({"ttl": "long"}, view.config_version)
    assert admin.replace_config(FAST, view.config_version)
    fixed = a.read_cluster()
    assert a.last_config_error() is None
    assert fixed.config.maximum_lag_on_failover_b == 1048576


def test_decode_accepts_patroni_documents() -> None:
    entries = [
        Entry(key="leader", value=b"pg1", mod_revision=7),
        Entry(key="sync", value=b'{"leader":"pg1","sync_standby":"pg2,pg3"}', mod_revision=8),
        Entry(
            key="members/pg2",
            value=b'{"conn_url":"postgres://x","api_url":"http://y","state":"starting",'
            b'"role":"master","xlog_location":"42","tags":{"nofailover":"on",'
            b'"failover_priority":"x"},"checkpoint_after_promote":false}',
            mod_revision=9,
        ),
        Entry(
            key="failover",
            value=b'{"member":"pg2","scheduled_at":"2030-01-01T00:00:00+01:00"}',
            mod_revision=10,
        ),
        Entry(key="failsafe", value=b'{"pg1":"http://a","pg2":"http://b"}', mod_revision=11),
    ]
    view, memory = decode_cluster(entries, ConfigMemory())
    assert view.leader is not None
    assert (view.leader.holder, view.leader.version) == ("pg1", 7)
    assert (view.sync.standbys, view.sync.quorum, view.sync.version) == ({"pg2", "pg3"}, 0, 8)
    (member,) = view.members
    assert (member.role, member.running, member.wal_lsn) == (MemberRole.PRIMARY, False, 42)
    assert member.tags == Tags(nofailover=True)
    assert member.checkpoint_after_promote_pending
    assert view.failover is not None
    assert view.failover.candidate == "pg2"
    assert not view.failover.is_switchover
    assert view.failover.scheduled_at_wall == 1893452400.0
    assert view.failsafe == ("pg1", "pg2")
    assert view.config_version is None
    assert memory == ConfigMemory()
    naive = Entry(key="failover", value=b'{"scheduled_at":"2030-01-01T00:00:00"}', mod_revision=1)
    assert decode_cluster([naive], memory)[0].failover is None


def test_all_members_paused_gives_dcs_error_within_retry_timeout(
    etcd: EtcdCluster, scope: str
) -> None:
    a = node(etcd, scope, "a", config={"ttl": 10, "loop_wait": 1, "retry_timeout": 2})
    a.read_cluster()
    assert a.acquire_lock() is LockResult.OK
    leader = a.read_cluster().leader
    assert leader is not None
    for name in etcd.names:
        etcd.pause(name)
    try:
        for call in (a.read_cluster, lambda: a.renew_lock(leader.version)):
            started = time.monotonic()
            with pytest.raises(DcsError):
                call()
            assert 1.8 <= time.monotonic() - started <= 3.0
    finally:
        for name in etcd.names:
            etcd.resume(name)
    etcd.wait_healthy()
    assert a.renew_lock(leader.version) is LockResult.OK


def test_a_paused_or_killed_member_is_skipped(etcd: EtcdCluster, scope: str) -> None:
    config = {"ttl": 10, "loop_wait": 1, "retry_timeout": 3}
    for fault, heal in ((etcd.pause, etcd.resume), (etcd.kill, etcd.restart)):
        victim = etcd.leader()  # the raft leader: the others must also elect a new one
        others = [etcd.endpoint(name) for name in etcd.names if name != victim]
        dcs = node([etcd.endpoint(victim), *others], scope, "a", config)  # victim tried first
        dcs.update_member(MemberRole.REPLICA)
        fault(victim)
        try:
            started = time.monotonic()
            assert [m.name for m in dcs.read_cluster().members] == ["a"]
            dcs.update_member(MemberRole.REPLICA)
            assert time.monotonic() - started <= 3.5
        finally:
            heal(victim)
        etcd.wait_healthy()


def test_unreachable_endpoints_name_the_endpoint_not_the_password() -> None:
    port = free_port()
    dead = EtcdSettings(
        hosts=(("127.0.0.1", port),),
        scope="s",
        username="root",
        password="hunter2-secret",
        retry_timeout_s=1,
    )
    assert "hunter2" not in repr(dead)
    admin = EtcdAdmin(dead)
    started = time.monotonic()
    with pytest.raises(DcsError) as caught:
        admin.cluster()
    assert 0.9 <= time.monotonic() - started <= 2.0
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_etcd_auth() -> None:
    with EtcdCluster.running(size=1) as single:
        host, port = single.endpoints[0]
        ctl = ["etcdctl", f"--endpoints=http://{host}:{port}"]
        for args in (
            ["user", "add", "root:rootpw"],
            ["role", "add", "root"],
            ["user", "grant-role", "root", "root"],
            ["auth", "enable"],
        ):
            subprocess.run([*ctl, *args], check=True, capture_output=True, timeout=10)
        good = EtcdAdmin(settings(single, "s", username="root", password="rootpw"))
        assert good.replace_config(FAST, None)
        assert good.raw_config()[0] == FAST
        bad = EtcdAdmin(settings(single, "s", username="root", password="wrong-pw-123"))
        with pytest.raises(DcsError) as caught:
            bad.raw_config()
        assert "wrong-pw-123" not in str(caught.value)
        assert str(port) in str(caught.value)


def test_term_check_refuses_lower_terms() -> None:
    session = EtcdSession(settings([("127.0.0.1", free_port())], "s"))
    assert session.accept_term(5)
    assert session.accept_term(5)
    assert not session.accept_term(4)
    assert session.accept_term(6)
    assert session.highest_term == 6


def test_member_with_a_lower_raft_term_is_not_trusted() -> None:
    # Two independent one-member clusters stand for one cluster's members: "ahead" went through
    # more elections (restarts), "stale" answers with an older raft term, as a member cut off
    # from the majority would. After reading from "ahead", an answer from "stale" is refused.
    with EtcdCluster.running(size=1) as ahead, EtcdCluster.running(size=1) as stale:
        for _restart in range(2):
            ahead.restart("etcd1")
        hosts = [ahead.endpoints[0], stale.endpoints[0]]
        session = EtcdSession(settings(hosts, "s", retry_timeout_s=2))
        session.range(b"/x", what="test")
        assert session.highest_term > _term(stale)
        ahead.kill("etcd1")
        with pytest.raises(DcsError):
            session.range(b"/x", what="test")
        assert session.highest_term > _term(stale)
        fresh = EtcdSession(settings(hosts, "s", retry_timeout_s=2))  # no term seen yet
        assert fresh.range(b"/x", what="test").header.raft_term == _term(stale)


def _term(cluster: EtcdCluster) -> int:
    session = EtcdSession(settings(cluster, "s", retry_timeout_s=2))
    return int(session.range(b"/x", what="test").header.raft_term)


def test_wait_for_leader_change(etcd: EtcdCluster, scope: str) -> None:
    a, b = node(etcd, scope, "a"), node(etcd, scope, "b")
    b.read_cluster()
    timer = threading.Timer(0.5, a.acquire_lock)
    timer.start()
    started = time.monotonic()
    assert b.wait_for_leader_change(5.0)
    assert 0.4 <= time.monotonic() - started <= 2.5
    timer.join()
    b.read_cluster()
    started = time.monotonic()
    assert not b.wait_for_leader_change(1.0)
    assert 0.9 <= time.monotonic() - started <= 2.0
    a.release_lock(None)  # a change between the read and the wait is not missed
    started = time.monotonic()
    assert b.wait_for_leader_change(5.0)
    assert time.monotonic() - started <= 1.0


def test_wait_for_leader_change_without_etcd_waits_out_the_timeout() -> None:
    dcs = node([("127.0.0.1", free_port())], "s", "a")
    started = time.monotonic()
    assert not dcs.wait_for_leader_change(1.5)
    assert 1.4 <= time.monotonic() - started <= 2.5


def test_admin_replaces_config_by_compare_and_set(etcd: EtcdCluster, scope: str) -> None:
    admin = EtcdAdmin(settings(etcd, scope))
    a = node(etcd, scope, "a")
    assert admin.raw_config() == ({}, None)
    assert admin.replace_config({**FAST, "pause": True}, None)
    assert not admin.replace_config(FAST, None)  # exists now
    document, version = admin.raw_config()
    assert document == {**FAST, "pause": True}
    assert version is not None
    assert a.read_cluster().config.pause
    assert admin.replace_config({**FAST, "pause": False}, version)
    assert not admin.replace_config({**FAST, "pause": True}, version)  # lost: stale version
    view = admin.cluster()
    assert not view.config.pause
    assert view.config_version == admin.raw_config()[1]
    admin.write_failover(leader=None, candidate="a", scheduled_at_wall=None)
    failover = a.read_cluster().failover
    assert failover is not None
    assert (failover.leader, failover.candidate, failover.scheduled_at_wall) == (None, "a", None)
    admin.delete_failover()
    assert a.read_cluster().failover is None
    admin.delete_failover()  # absent is fine
