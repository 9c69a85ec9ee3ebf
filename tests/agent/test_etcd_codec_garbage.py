"""The agent's codec reads any value in any key without raising (issue 13, item 7), pure tests.

A malformed key is read as unreadable on its own: the leader key says whether it has a lease, a
`/failover` that is no valid request passes its version on for the leader to delete it, a `/sync`
that cannot be read blocks every promotion, and `pgha ctl list` names what the table cannot show.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgha.agent.etcd import codec as etcd_codec
from pgha.agent.etcd.codec import ConfigMemory, Entry, decode_cluster
from pgha.ctl.render import dcs_warning_lines
from pgha.engine.values import ClusterView, FailoverKey, LeaderKey, Member, SyncKey

KEYS = ("initialize", "leader", "config", "sync", "failover", "history", "status", "failsafe")
KEYS += ("members/n1", "members/", "members/zz")


def _view(*entries: Entry) -> ClusterView:
    view, _ = decode_cluster(entries, ConfigMemory())
    return view


def _entry(key: str, value: bytes | str, revision: int = 5, lease_id: int = 0) -> Entry:
    data = value.encode() if isinstance(value, str) else value
    return Entry(key=key, value=data, mod_revision=revision, lease_id=lease_id)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["n1", "--5", "\u00b2", "7000000000000000001", "2024-01-01T00:00:00+00:00"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
FIELDS = ["leader", "member", "scheduled_at", "sync_standby", "quorum", "optime", "role"]
DOCUMENTS = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), JSON, max_size=5)
VALUES = (
    st.binary(max_size=64)
    | JSON.map(lambda v: json.dumps(v).encode())
    | DOCUMENTS.map(lambda v: json.dumps(v).encode())
    | st.sampled_from([b"[" * 3000, b"1" * 5000, b"\xff\xfe", b'{"a":' * 2000, b"NaN"])
)


@given(st.dictionaries(st.sampled_from(KEYS), VALUES), st.integers(0, 2**63 - 1))
def test_decoding_never_raises_whatever_the_keys_hold(values: dict[str, bytes], lease: int) -> None:
    entries = [_entry(k, v, i + 1, lease) for i, (k, v) in enumerate(sorted(values.items()))]
    view = _view(*entries)
    assert isinstance(view, ClusterView)
    assert all(isinstance(member, Member) and member.name for member in view.members)
    if view.failover is not None:
        assert view.failover.leader or view.failover.candidate
        assert view.failover_invalid_version is None
    dcs_warning_lines(view)  # and `pgha ctl list` can show it


@pytest.mark.parametrize(
    ("lease_id", "leased"), [(0, False), (7587869034117650186, True)], ids=["etcdctl", "agent"]
)
def test_the_leader_key_says_whether_it_has_a_lease(lease_id: int, leased: bool) -> None:
    view = _view(_entry("leader", "garbage", 9, lease_id))
    assert view.leader == LeaderKey(holder="garbage", version=9, leased=leased)


# (value, valid request)
FAILOVERS: list[tuple[str, bool]] = [
    ('{"leader": "n1"}', True),
    ('{"member": "n2"}', True),
    ('{"leader": "n1", "member": "n2", "scheduled_at": "2030-01-01T00:00:00+00:00"}', True),
    ('{"leader": "n1", "member": null}', True),
    ("garbage", False),
    ("n1:n2", False),  # Patroni's legacy text form: pgha never writes it
    ("{}", False),  # Patroni: "to anyone"; here no request, so garbage cannot move the primary
    ("[]", False),
    ('{"leader": 5}', False),
    ('{"leader": "n1", "member": ["n2"]}', False),
    ('{"leader": "", "member": ""}', False),
    ('{"leader": "n1", "scheduled_at": "tomorrow"}', False),
    ('{"leader": "n1", "scheduled_at": "2030-01-01T00:00:00"}', False),  # no timezone
]


@pytest.mark.parametrize(("value", "valid"), FAILOVERS)
def test_a_failover_that_is_no_valid_request_is_passed_on_for_deletion(
    value: str, valid: bool
) -> None:
    view = _view(_entry("failover", value, 11))
    assert (view.failover is not None) is valid
    assert view.failover_invalid_version == (None if valid else 11)
    if valid:
        assert isinstance(view.failover, FailoverKey)
        assert view.failover.version == 11


@pytest.mark.parametrize(
    "value",
    ["garbage", "[]", '{"leader": 5}', '{"leader": "n1", "sync_standby": 7}', '{"quorum": "x"}'],
)
def test_an_unreadable_sync_blocks_every_promotion(value: str) -> None:
    sync = _view(_entry("sync", value, 3)).sync
    assert sync == SyncKey(leader="", version=3)
    assert not any(sync.may_promote(name) for name in ("n1", "n2", "garbage"))


def test_an_absent_sync_is_inactive() -> None:
    assert _view().sync == SyncKey()


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5, 5), ("12", 12), (" -3 ", -3), ("--5", None), ("\u00b2", None), ("1" * 5000, None)],
)
def test_int_reads_only_plain_decimals(value: object, expected: int | None) -> None:
    assert etcd_codec._int(value) == expected


def test_an_unforeseen_exception_in_one_key_hides_nothing_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(entry: Entry) -> int:
        raise AttributeError("a decoder bug")

    monkeypatch.setattr(etcd_codec, "_status", broken)
    view = _view(_entry("status", '{"optime": 1}'), _entry("leader", "n1", 4, 8))
    assert view.status_optime_lsn is None
    assert view.leader == LeaderKey(holder="n1", version=4)


# ---------------------------------------------------------------- pgha ctl list


def test_ctl_list_warns_about_what_the_table_cannot_show() -> None:
    view = _view(
        _entry("leader", "garbage", 4),
        _entry("initialize", "garbage"),
        _entry("failover", "{}"),
        _entry("members/n1", '{"state": "running"}'),
    )
    assert dcs_warning_lines(view) == (
        "warning: the leader key is held by 'garbage', which is not a member (it has no lease:"
        " the agents delete it once it is unchanged for ttl)",
        "warning: /initialize holds 'garbage', which is no system identifier (the leader"
        " rewrites it)",
        "warning: /failover holds no valid request (the leader deletes it)",
    )


def test_ctl_list_says_nothing_about_a_healthy_cluster() -> None:
    view = _view(
        _entry("leader", "n1", 4, 77),
        _entry("initialize", "7000000000000000001"),
        _entry("members/n1", '{"state": "running"}'),
    )
    assert dcs_warning_lines(view) == ()
    leased_foreign = _view(_entry("leader", "n9", 4, 77))
    assert dcs_warning_lines(leased_foreign) == (
        "warning: the leader key is held by 'n9', which is not a member",
    )
