"""The chaos harness's `config` and `etcd_put` faults (chaos/nemesis_writes.py) without Docker:
the merge patch that restores a document, how an answer to PATCH /config is read, and the raw
etcd writes through etcd's own JSON gateway against a real etcd 3.4 process. The faults on a
real cluster are in tests/chaos/test_nemesis.py."""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Iterator

import pytest

from chaos.nemesis_writes import EtcdGateway, KeyValue, config_result
from tests.agent.conftest import free_port
from tests.agent.etcd_cluster import EtcdCluster


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, b'{"ttl": 20}', ("accepted", None)),
        (
            400,
            b'{"error": "ttl: expected a number of seconds from 3 to 3600"}',
            ("refused", "invalid_config"),
        ),
        (
            409,
            b'{"error": "the configuration changed concurrently; try again"}',
            ("refused", "conflict"),
        ),
        (401, b"", ("refused", "http_401")),
        (503, b'{"error": "the DCS is not reachable; try again"}', ("failed", "dcs_unavailable")),
        (None, b"", ("failed", "unreachable")),
    ],
)
def test_an_answer_to_patch_config_is_an_outcome_and_an_error(
    status: int | None, body: bytes, expected: tuple[str, str | None]
) -> None:
    assert config_result(status, body, False) == expected


# ---------------------------------------------------------------- a real etcd


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdGateway]:
    with EtcdCluster.running(tmp_path_factory.mktemp("etcd"), size=1) as cluster:
        url = cluster.member("etcd1").client_url
        dead = f"http://127.0.0.1:{free_port()}"  # a member that does not answer is skipped
        yield EtcdGateway([dead, url])


def _lease(etcd: EtcdGateway, ttl_s: int) -> int:
    return int(etcd.call("/v3/lease/grant", {"TTL": ttl_s})["ID"])


def _revoke(etcd: EtcdGateway, lease: int) -> None:
    etcd.call("/v3/lease/revoke", {"ID": lease})


def _put_on(etcd: EtcdGateway, key: str, value: bytes, lease: int) -> None:
    b64 = base64.b64encode
    etcd.call(
        "/v3/kv/put",
        {"key": b64(key.encode()).decode(), "value": b64(value).decode(), "lease": lease},
    )


def test_a_put_has_no_lease_and_the_undo_puts_back_value_and_lease(etcd: EtcdGateway) -> None:
    key, lease = "/service/t/leader", _lease(etcd, 60)
    _put_on(etcd, key, b"n1", lease)
    old = etcd.get(key)
    assert old == KeyValue(b"n1", lease)

    revision = etcd.put(key, b"garbage")
    assert etcd.get(key) == KeyValue(b"garbage", 0)  # exactly what etcdctl put does
    etcd.restore(key, old, revision)
    assert etcd.get(key) == KeyValue(b"n1", lease)


def test_a_key_that_was_absent_is_deleted_again(etcd: EtcdGateway) -> None:
    key = "/service/t/failsafe"
    assert etcd.get(key) is None
    revision = etcd.put(key, b"")
    assert etcd.get(key) == KeyValue(b"", 0)  # an empty value is a value
    etcd.restore(key, None, revision)
    assert etcd.get(key) is None


def test_a_key_whose_lease_has_ended_is_deleted(etcd: EtcdGateway) -> None:
    key, lease = "/service/t/members/n2", _lease(etcd, 60)
    _put_on(etcd, key, b"{}", lease)
    old = etcd.get(key)
    revision = etcd.put(key, b"[]")
    _revoke(etcd, lease)
    etcd.restore(key, old, revision)
    assert etcd.get(key) is None


def test_a_key_written_since_is_left_alone(etcd: EtcdGateway) -> None:
    key = "/service/t/initialize"
    etcd.put(key, b"7345678901234567890")
    old = etcd.get(key)
    revision = etcd.put(key, b"garbage")
    etcd.put(key, b"7345678901234567890")  # the leader repaired it
    etcd.restore(key, old, revision)
    assert etcd.get(key) == KeyValue(b"7345678901234567890", 0)
    etcd.restore(key, None, revision)  # not even deleted
    assert etcd.get(key) is not None


def test_no_member_answering_is_an_action_error() -> None:
    from chaos.nemesis_ops import ActionError

    gateway = EtcdGateway([f"http://127.0.0.1:{free_port()}"])
    with pytest.raises(ActionError, match="no etcd member answered"):
        gateway.put("/service/t/leader", b"x")


def test_the_gateway_answers_what_etcdctl_would_read(etcd: EtcdGateway) -> None:
    etcd.put("/service/t/sync", b'{"leader": 5}')
    url = etcd.endpoints[-1]
    body = json.dumps({"key": base64.b64encode(b"/service/t/sync").decode()}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{url}/v3/kv/range", data=body)) as r:
        kvs = json.loads(r.read())["kvs"]
    assert base64.b64decode(kvs[0]["value"]) == b'{"leader": 5}'
