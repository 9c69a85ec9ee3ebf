# Operator requests and raw DCS writes in the simulated world, as the chaos harness makes them on
# real containers (chaos/nemesis_faults.py, chaos/nemesis_writes.py). A switchover, failover or
# `config` change goes to the agents' REST APIs in turn until one answers (in the order the planner
# in pgha/faults gives: the leader, the candidate or the named node first), and ends in one
# `operator` history event (docs/history.md, "Operator requests"). A `config` change is
# `PATCH /config` as the agent serves it (pgha/agent/rest/write.py): the stored document is read,
# the JSON merge patch applied, the whole result checked with the engine's parser (a refusal is a
# 400 naming the key, nothing is written) and written by compare-and-set on the version read; the
# agent then wakes its loop. `for` sends the change that puts back the document it replaced.
# An `etcd_put` writes the key as `etcdctl put` does: raw bytes (the simulated etcd decodes them
# with the agent's own codec, sim/dcs.py), no lease, no compare. Its `for` puts the old entry back
# only while the key still holds the bytes it wrote: a key an agent has repaired or replaced
# since is left as the agent wrote it.
"""Operator requests (switchover, failover, config) and raw etcd writes in the simulator."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import simpy

from pgha.agent.etcd.codec import json_object
from pgha.engine.config import ConfigError, DynamicConfig, merge_patch, parse_dynamic_config
from pgha.engine.operator import refusal
from pgha.engine.values import FailoverKey
from pgha.faults import ConfigChange, Document, Undo
from pgha.operator_history import (
    ACCEPTED,
    CONFLICT,
    FAILED,
    INVALID_CONFIG,
    REFUSED,
    config_fields,
    operator_fields,
    outcome_of_status,
)
from pgha.ports import DcsError
from pgha.scenario import EtcdPutFault
from sim.etcd import Entry, EtcdCluster
from sim.faults_world import SimCluster
from sim.net import Unreachable
from sim.node import DCS_UNAVAILABLE, Refused, SimNode

Gen = Generator[simpy.Event, Any, Any]
OPERATOR_TIMEOUT_S = 30.0  # as the chaos harness waits for an agent's REST API to answer
CAS_ATTEMPTS = 3  # as the REST API: a lost compare-and-set is retried on a fresh read


@dataclass(frozen=True, slots=True)
class Request:
    """One operator request: the endpoint, the key it would write, the fault that made it."""

    kind: str  # "switchover" or "failover"
    key: FailoverKey
    fault_id: int


def ask(sim: SimCluster, request: Request, order: tuple[str, ...]) -> None:
    """Send a switchover or failover request to the agents' REST APIs in `order`."""
    sim.world.env.process(_write_failover(sim, request, order))


def _write_failover(sim: SimCluster, request: Request, ask: tuple[str, ...]) -> Gen:
    # As `pgha ctl`, patronictl and the chaos harness do: POST to the agents' REST APIs in turn
    # (the leader first) until one answers; it checks the request against one read of the
    # cluster, writes the key and wakes its own loop, or answers 503 when it cannot reach etcd.
    # When no agent answers at all, the operator reads and writes etcd directly (only a loop that
    # comes round then sees the key); with etcd unreachable too, the request fails. Every way
    # ends in one `operator` event.
    for name in ask:
        node = sim.nodes[name]
        handler = node.operator_handler(name, request.key)
        try:
            answer = yield from sim.net.call(sim.ctl.host, name, handler, OPERATOR_TIMEOUT_S)
        except (Unreachable, Refused):
            continue
        if answer.error == DCS_UNAVAILABLE:
            sim.world.record("dcs_error", node="ctl", op="write_failover", via=name)
        outcome = outcome_of_status(answer.status)
        _answered(sim, request, outcome, answer.status, answer.error, name)
        return
    yield from _write_directly(sim, request)


def _write_directly(sim: SimCluster, request: Request) -> Gen:
    ctl = sim.ctl
    try:
        view = yield from ctl.read_view()
        why = refusal(view, request.key, now_wall=sim.clocks[ctl.host].wall(sim.world.env.now))
        if why is None:
            yield from ctl.write_failover(request.key)
    except DcsError:
        sim.world.record("dcs_error", node="ctl", op="write_failover")
        _answered(sim, request, FAILED, None, "unreachable", None)
        return
    if why is None:
        _answered(sim, request, ACCEPTED, None, None, None)
    else:
        _answered(sim, request, REFUSED, None, why.value, None)


def _answered(
    sim: SimCluster,
    request: Request,
    outcome: str,
    status: int | None,
    error: str | None,
    via: str | None,
) -> None:
    key = request.key
    fields = operator_fields(
        request=request.kind,
        fault_id=request.fault_id,
        leader=key.leader,
        candidate=key.candidate,
        scheduled=key.scheduled_at_wall is not None,
        outcome=outcome,
        status=status,
        error=error,
        via=via,
    )
    sim.world.record("operator", node="ctl", **fields)


# ---------------------------------------------------------------- config: PATCH /config


@dataclass(frozen=True, slots=True)
class ConfigAnswer:
    """The REST API's answer to a `/config` write: the status, the error identifier and the
    parser's message (refused), and the document the write replaced (accepted)."""

    status: int
    error: str | None = None
    detail: str | None = None
    previous: Document | None = None


def change_config(sim: SimCluster, change: ConfigChange) -> Undo:
    """Send the patch to the REST APIs in the change's order; its undo (`for`) sends the
    change that restores the replaced document, once the change itself was answered."""
    env = sim.world.env
    answered = env.process(_send_config(sim, change, restore=False))

    def undo() -> None:
        env.process(_restore_config(sim, change, answered))

    return undo


def _restore_config(sim: SimCluster, change: ConfigChange, answered: simpy.Event) -> Gen:
    yield answered  # the change's own answer first
    if change.previous is not None:  # refused or failed: nothing to put back
        yield from _send_config(sim, change, restore=True)


def _send_config(sim: SimCluster, change: ConfigChange, *, restore: bool) -> Gen:
    previous = change.previous

    def patched(raw: Document) -> Document:
        if restore and previous is not None:
            return previous
        merged: Document = merge_patch(raw, change.patch)  # an object patch merges to an object
        return merged

    for name in change.order:
        node = sim.nodes[name]

        def handler(deadline: float, node: SimNode = node) -> Gen:
            return (yield from _serve_config(sim, node, patched, deadline))

        try:
            answer = yield from sim.net.call(sim.ctl.host, name, handler, OPERATOR_TIMEOUT_S)
        except (Unreachable, Refused):
            continue
        if answer.previous is not None and not restore:
            change.previous = answer.previous
        _config_answered(sim, change, answer, name, restore=restore)
        return
    _config_answered(sim, change, ConfigAnswer(0, "unreachable"), None, restore=restore)


def _serve_config(
    sim: SimCluster, node: SimNode, patched: Callable[[Document], Document], deadline: float
) -> Gen:
    # The agent's REST handler (pgha/agent/rest/write.py `_store_config`), on the node's own
    # etcd connection; the REST API lives in the agent's process.
    yield from node._rest_resumed(deadline)
    if node.status is None:
        raise Refused(node.name)
    bootstrap = sim.scenario.config_json()
    try:
        for _ in range(CAS_ATTEMPTS):
            raw, version = yield from node.dcs.transact(lambda c: stored_config(c, bootstrap))
            updated = patched(raw)
            why = config_refusal(updated)
            if why is not None:
                return ConfigAnswer(400, INVALID_CONFIG, why)
            if version is not None and updated == raw:
                return ConfigAnswer(200, previous=raw)  # nothing changes: nothing written
            written = yield from node.dcs.transact(partial(_replace, updated, version))
            if written:
                node.wake()
                return ConfigAnswer(200, previous=raw)
    except DcsError:
        return ConfigAnswer(503, DCS_UNAVAILABLE)
    return ConfigAnswer(409, CONFLICT, "the configuration changed concurrently")


def stored_config(cluster: EtcdCluster, bootstrap: Document) -> tuple[Document, int | None]:
    """`/config` as the REST API reads it: the JSON document and its version; ({}, None) when
    absent, ({}, version) when it is no JSON object. The simulator keeps the bootstrap
    configuration as a DynamicConfig: its document is the scenario's `config:`."""
    entry = cluster.kv.get("config")
    if entry is None:
        return {}, None
    value = entry.value
    if isinstance(value, DynamicConfig):
        return dict(bootstrap), entry.mod_rev
    if isinstance(value, bytes):
        value = json_object(value)
    return (dict(value) if isinstance(value, Mapping) else {}), entry.mod_rev


def _replace(document: Document, version: int | None, cluster: EtcdCluster) -> bool:
    entry = cluster.kv.get("config")
    if (None if entry is None else entry.mod_rev) != version:
        return False
    cluster.put("config", document)
    return True


def config_refusal(document: Mapping[str, Any]) -> str | None:
    """Why the engine's parser refuses `document` (the REST API's 400), or None."""
    try:
        parse_dynamic_config(document)
    except ConfigError as exc:
        return str(exc)
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        return f"invalid configuration ({type(exc).__name__})"
    return None


def _config_answered(
    sim: SimCluster, change: ConfigChange, answer: ConfigAnswer, via: str | None, *, restore: bool
) -> None:
    status = answer.status or None
    fields = config_fields(
        fault_id=change.fault_id,
        outcome=outcome_of_status(status),
        status=status,
        error=answer.error,
        via=via,
        restore=restore,
        detail=answer.detail,
    )
    sim.world.record("operator", node="ctl", **fields)


# ---------------------------------------------------------------- etcd_put: etcdctl put


def put_raw(cluster: EtcdCluster, p: EtcdPutFault) -> Undo:
    """Write the value's bytes into the key with no lease (the caller checked that etcd has a
    leader to commit it); the undo (`for`) puts the old entry back while the key still holds
    them."""
    old = cluster.kv.get(p.key)
    revision = cluster.put(p.key, p.value.encode())
    return lambda: restore_key(cluster, p.key, old, revision)


def restore_key(cluster: EtcdCluster, key: str, old: Entry | None, revision: int) -> None:
    """Put `old` back into `key` if the key is still at `revision`: on its lease while that
    lives; deleted when there was no entry, or its lease has ended since (etcd would have
    deleted it with the lease)."""
    entry = cluster.kv.get(key)
    if entry is None or entry.mod_rev != revision:
        return  # repaired or replaced since: not ours to undo
    if old is None or (old.lease is not None and old.lease not in cluster.leases):
        cluster.delete(key)
    else:
        cluster.put(key, old.value, old.lease)
