# The `config` and `etcd_put` faults on real containers, as sim/faults_ops.py applies them in the
# simulator. A `config` change is a real authenticated `PATCH /config` to the agents' REST APIs in
# turn (`node` first: the planner's asking order, pgha/faults) until one answers, sent from a
# thread (a partitioned API holds the request up to its timeout) and ending in one `operator` event
# with the same fields as the simulator's (docs/history.md, "Operator requests"); the
# document it replaced is read with `GET /config` just before, and `for` sends the merge patch
# that turns the document of that moment back into it. An `etcd_put` is `etcdctl put` through
# etcd's own JSON gateway (the harness's etcd client, chaos/history.py): the bytes, no lease, no
# compare. Its `for` is one transaction that puts the old value back (on its old lease, or deletes
# the key when there was none or that lease has ended) only if the key still holds the bytes it
# wrote: a key an agent has repaired or replaced since is not touched. Safety rule protected: an
# undo never overwrites what the cluster itself wrote after the fault.
"""Appliers for operator `config` changes and raw `etcd_put` writes on a ChaosCluster, and how an
agent's answer to an operator's request reads as an outcome."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from chaos.configs import ETCD_CLIENT_PORT, NAMESPACE, SCOPE
from chaos.nemesis_ops import ActionError, RestAnswer
from chaos.nemesis_world import NemesisWorld
from pgha.engine.config import diff_patch
from pgha.faults import Applied, ConfigChange, Document, Firing, config_ask
from pgha.operator_history import (
    ACCEPTED,
    CONFLICT,
    FAILED,
    INVALID_CONFIG,
    REFUSED,
    config_fields,
    outcome_of_status,
)
from pgha.scenario import ConfigFault, EtcdPutFault

ETCD_TIMEOUT_S = 2.0  # one request to one etcd member; then the next member
MAX_DETAIL = 300  # characters of an API's error message kept in the history


# ---------------------------------------------------------------- config: PATCH /config


def apply_config(n: NemesisWorld, p: ConfigFault, firing: Firing) -> Applied:
    """Send the patch from a thread; `for` puts the replaced document back."""
    ask = config_ask(p, n.resolver)
    change = ConfigChange.of(firing.id, p, ask)
    thread = threading.Thread(
        target=send_config, args=(n, change, False), name="nemesis-config", daemon=True
    )
    n.operators.append(thread)
    sent = time.monotonic()
    thread.start()

    def undo() -> float:
        thread.join()  # the change's own answer first
        if change.previous is not None:  # refused or failed: nothing to put back
            send_config(n, change, True)
        return time.monotonic()

    return firing.applied(ask.asked, undo, at=sent)


def send_config(n: NemesisWorld, change: ConfigChange, restore: bool) -> None:
    """Ask the REST APIs in turn until one answers; record the answer."""
    answer, via, timed_out = RestAnswer(time.monotonic(), time.monotonic(), None), None, False
    for node in change.order:
        current = n.ops.rest_answer(node, "/config", None, method="GET")
        timed_out = timed_out or current.timed_out
        if current.status is None:
            continue
        document = _json(current.body) if current.status == 200 else None
        stored = document if isinstance(document, dict) else {}
        patch = diff_patch(stored, change.previous or {}) if restore else change.patch
        answer = n.ops.rest_answer(node, "/config", patch, method="PATCH")
        timed_out = timed_out or answer.timed_out
        if answer.status is None:
            continue
        via = node
        if not restore and outcome_of_status(answer.status) == ACCEPTED:
            change.previous = stored
        break
    outcome, error = config_result(answer.status, answer.body, timed_out)
    fields = config_fields(
        fault_id=change.fault_id,
        outcome=outcome,
        status=answer.status,
        error=error,
        via=via,
        restore=restore,
        detail=None if outcome == ACCEPTED else _detail(answer.body),
    )
    n.record(answer.answered, "operator", "ctl", **fields)


def config_result(status: int | None, body: bytes, timed_out: bool) -> tuple[str, str | None]:
    """The outcome and error identifier of an answer to `PATCH /config` (the switchover's rules
    for everything but a refused configuration)."""
    if status == 400:
        return REFUSED, INVALID_CONFIG  # the configuration was checked and refused
    if status == 409:
        return REFUSED, CONFLICT  # every compare-and-set lost a race
    return operator_result(status, body, timed_out)


def operator_result(status: int | None, body: bytes, timed_out: bool) -> tuple[str, str | None]:
    """The outcome and error identifier of an agent's answer to a switchover or failover.

    pgha's REST API names a refusal in its JSON body (`refusal`: a pgha.engine.operator value);
    its other failures, and Patroni's answers, are told apart by status and text.
    """
    if status is None:
        return FAILED, "timeout" if timed_out else "unreachable"
    outcome = outcome_of_status(status)
    if outcome == ACCEPTED:
        return outcome, None
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("refusal"), str):
        return outcome, str(document["refusal"])
    text = body.decode(errors="replace").lower()
    if status == 503 and "dcs" in text:
        return outcome, "dcs_unavailable"  # pgha: the DCS is not reachable
    if status == 503 and "status unknown" in text:
        return outcome, "timeout"  # written, but no new leader before the API's deadline
    if status == 503 and "failed" in text:
        return outcome, "not_done"  # written, then dropped with the leader unchanged
    return outcome, f"http_{status}"


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _detail(body: bytes) -> str | None:
    document = _json(body)
    text = document.get("error") if isinstance(document, dict) else None
    if not isinstance(text, str):
        text = body.decode(errors="replace").strip() or None
    return None if text is None else text[:MAX_DETAIL]


# ---------------------------------------------------------------- etcd_put: etcdctl put


def apply_etcd_put(n: NemesisWorld, p: EtcdPutFault, firing: Firing) -> Applied:
    """Put the value's bytes into the key with no lease; `for` puts the old entry back."""
    etcd = EtcdGateway(
        [f"http://{n.cluster.ip(m)}:{ETCD_CLIENT_PORT}" for m in n.cluster.etcd_names]
    )
    key = f"{NAMESPACE.rstrip('/')}/{SCOPE}/{p.key}"
    old = etcd.get(key)
    revision = etcd.put(key, p.value.encode())
    applied = time.monotonic()

    def undo() -> float:
        etcd.restore(key, old, revision)
        return time.monotonic()

    return firing.applied((), undo, at=applied)


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One key as etcd has it: the value and its lease (0: none)."""

    value: bytes
    lease: int


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class EtcdError(ActionError):
    """etcd answered with an error (the message is etcd's)."""


class EtcdGateway:
    """etcd's v3 JSON gateway (`/v3/kv/...`), asked of the first member that answers."""

    def __init__(self, endpoints: list[str]) -> None:
        self.endpoints = endpoints

    def call(self, path: str, body: Document) -> Document:
        """POST to `path` on the first member that answers; its JSON answer."""
        data = json.dumps(body).encode()
        for endpoint in self.endpoints:
            request = urllib.request.Request(f"{endpoint}{path}", data=data, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=ETCD_TIMEOUT_S) as response:
                    answer: Document = json.loads(response.read())
                    return answer
            except urllib.error.HTTPError as error:
                message = _detail(error.read(64 * 1024)) or f"HTTP {error.code}"
                raise EtcdError(f"etcd {path}: {message}") from None
            except (OSError, ValueError):
                continue
        raise ActionError(f"no etcd member answered {path}")

    def get(self, key: str) -> KeyValue | None:
        kvs = self.call("/v3/kv/range", {"key": _b64(key.encode())}).get("kvs") or []
        if not kvs:
            return None
        return KeyValue(base64.b64decode(kvs[0].get("value", "")), int(kvs[0].get("lease", 0)))

    def put(self, key: str, value: bytes) -> int:
        """`etcdctl put`: no lease; the revision it made."""
        answer = self.call("/v3/kv/put", {"key": _b64(key.encode()), "value": _b64(value)})
        return int(answer["header"]["revision"])

    def restore(self, key: str, old: KeyValue | None, revision: int) -> None:
        """Put `old` back (on its lease; deleted when none, or its lease has ended) if the key
        is still at `revision`."""
        k = _b64(key.encode())
        delete = {"request_delete_range": {"key": k}}
        if old is not None:
            put = {
                "key": k,
                "value": _b64(old.value),
                **({"lease": old.lease} if old.lease else {}),
            }
            try:
                self._txn(k, revision, {"request_put": put})
                return
            except EtcdError as error:
                if "lease not found" not in str(error):
                    raise
        self._txn(k, revision, delete)

    def _txn(self, key: str, revision: int, operation: Document) -> None:
        compare = {"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": revision}
        self.call("/v3/kv/txn", {"compare": [compare], "success": [operation]})
