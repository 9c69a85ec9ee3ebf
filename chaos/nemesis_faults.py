# One applier per fault kind of the scenario format, mirroring sim/faults.py on real containers:
# each resolves its targets when the fault fires, applies the fault with the primitives of
# chaos/nemesis_ops.py, and returns the hosts it hit, how to undo it (on those same hosts) and the
# host monotonic time it was in force on all of them. Safety rule protected: `for:` undoes exactly
# what was done (the same hosts, the same rules, the clock as it was), and a fault that cannot be
# applied raises Skip, so it is recorded as skipped instead of silently doing nothing. The appliers
# of `config` and `etcd_put` (written data rather than broken machines) are in nemesis_writes.py.
"""Appliers: FaultSpec -> real actions, per fault kind."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chaos.configs import uses_faketime
from chaos.nemesis_ops import ActionError, RestAnswer, Skip
from chaos.nemesis_writes import apply_config, apply_etcd_put
from chaos.netrules import drop_rules, loss_rules, partition_pairs
from pgha.operator_history import ACCEPTED, FAILED, operator_fields, outcome_of_status
from pgha.scenario import EtcdAction, FaultKind, FaultSpec, PauseWhat

if TYPE_CHECKING:
    from chaos.nemesis import Nemesis

CLIENT_HOST = "client"  # the Docker host: the workload and the operator (not a container)
NETWORK_KINDS = (FaultKind.PARTITION, FaultKind.LOSS, FaultKind.LATENCY)

Undo = Callable[[], float]
Result = tuple[tuple[str, ...], Undo | None, float]


def each(hosts: Sequence[str], action: Callable[[str], float]) -> float:
    """Run `action` on every host in parallel; the latest time; ActionError if any failed."""
    errors: list[str] = []

    def one(host: str) -> float:
        try:
            return action(host)
        except Exception as error:  # docker API errors carry no secrets
            errors.append(f"{host}: {str(error)[:200]}")
            return 0.0

    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        times = list(pool.map(one, hosts))
    if errors:
        raise ActionError("; ".join(errors))
    return max(times, default=time.monotonic())


# ---------------------------------------------------------------- machines and processes


def _kill(n: Nemesis, spec: FaultSpec, _: int) -> Result:
    nodes = n.nodes(spec.params.target)  # type: ignore[union-attr]
    with n._lock:
        n.down_by_fault.update(nodes)
        for node in nodes:
            n._boots.pop(node, None)
    applied = each(nodes, n.ops.kill_machine)

    def undo() -> float:
        booted = each(nodes, n.ops.start_machine)
        with n._lock:
            n.down_by_fault.difference_update(nodes)
        return booted

    return nodes, undo, applied


def _restart(n: Nemesis, spec: FaultSpec, _: int) -> Result:
    nodes = n.nodes(spec.params.target)  # type: ignore[union-attr]
    running = [node for node in nodes if n.ops.is_running(node)]
    for applied in list(n.active):  # a kill still in force on these machines ends here
        if applied.spec.kind is FaultKind.KILL and set(nodes) & set(applied.hosts):
            n.end(applied)
    dead = [node for node in nodes if node not in running]
    times = [each(dead, n.ops.start_machine)] if dead else []
    if running:  # a running machine is reset and boots again after the reboot time
        with n._lock:
            for node in running:
                n._boots[node] = time.monotonic() + n.reboot_after_s
        times.append(each(running, n.ops.kill_machine))
    return nodes, None, max(times)


def _kill_agent(n: Nemesis, spec: FaultSpec, _: int) -> Result:
    nodes = n.nodes(spec.params.target)  # type: ignore[union-attr]
    applied = each(nodes, lambda node: n.ops.signal(node, "agent", "KILL"))

    def undo() -> float:
        up = [node for node in nodes if n.ops.is_running(node)]
        return each(up, lambda node: n.ops.start_process(node, "agent"))

    return nodes, undo, applied


def _kill_postgres(n: Nemesis, spec: FaultSpec, _: int) -> Result:
    nodes = n.nodes(spec.params.target)  # type: ignore[union-attr]
    return nodes, None, each(nodes, lambda node: n.ops.signal_postgres(node, "KILL"))


def _pause(n: Nemesis, spec: FaultSpec, _: int) -> Result:
    params: Any = spec.params
    nodes = n.nodes(params.target)
    pause, resume = _PAUSE[params.what](n)
    applied = each(nodes, pause)
    return nodes, lambda: each(nodes, resume), applied


def _pause_pair(n: Nemesis, what: PauseWhat) -> tuple[Callable[[str], float], ...]:
    ops = n.ops
    if what is PauseWhat.NODE:
        return ops.pause_machine, ops.resume_machine
    if what is PauseWhat.AGENT:
        return (lambda h: ops.signal(h, "agent", "STOP"), lambda h: ops.signal(h, "agent", "CONT"))
    return (lambda h: ops.signal_postgres(h, "STOP"), lambda h: ops.signal_postgres(h, "CONT"))


_PAUSE = {what: (lambda n, what=what: _pause_pair(n, what)) for what in PauseWhat}


# ---------------------------------------------------------------- network


def _ips(n: Nemesis) -> dict[str, str]:
    c = n.cluster
    ips = {host: c.ip(host) for host in c.hosts}
    return {**ips, "haproxy": c.layout.haproxy_ip, CLIENT_HOST: c.layout.gateway}


def _partition(n: Nemesis, spec: FaultSpec, fid: int) -> Result:
    c = n.cluster
    everyone = [*c.hosts, "haproxy", CLIENT_HOST]  # isolate cuts clients and HAProxy off too
    pairs, hosts = partition_pairs(spec.params, n.resolve, everyone)  # type: ignore[arg-type]
    rules = drop_rules(pairs, _ips(n), managed=[*c.hosts, "haproxy"])
    applied = n.ops.set_rules(fid, rules)
    return tuple(dict.fromkeys(hosts)), lambda: n.ops.clear_rules(fid), applied


def _heal(n: Nemesis, _spec: FaultSpec, _: int) -> Result:
    for applied in list(n.active):
        if applied.spec.kind in NETWORK_KINDS:
            n.end(applied)
    return (), None, time.monotonic()


def _loss(n: Nemesis, spec: FaultSpec, fid: int) -> Result:
    params: Any = spec.params
    hosts = n.resolve(params.targets)
    applied = n.ops.set_rules(fid, loss_rules(hosts, params.rate))
    return hosts, lambda: n.ops.clear_rules(fid), applied


def _latency(_n: Nemesis, _spec: FaultSpec, _: int) -> Result:
    raise Skip("latency needs netem, which this kernel lacks (run it in the simulator)")


# ---------------------------------------------------------------- clocks, etcd, disk


def _clock(n: Nemesis, spec: FaultSpec, _: int) -> Result:
    params: Any = spec.params
    if not uses_faketime(n.scenario):
        raise Skip("the nodes run without libfaketime")
    hosts = n.resolve(params.target)
    if any(host not in n.cluster.node_names for host in hosts):
        raise Skip("etcd ignores libfaketime: only database nodes' clocks can be skewed")
    now = time.monotonic()
    before = {host: n.ops.clock_of(host, now) for host in hosts}

    def change(host: str) -> float:
        offset, drift = before[host]
        offset = params.offset_s if params.offset_s is not None else offset
        drift = params.drift_ppm if params.drift_ppm is not None else drift
        return n.ops.set_clock(host, offset + (params.jump_s or 0.0), drift)

    applied = each(hosts, change)
    if params.offset_s is None and params.drift_ppm is None:
        return hosts, None, applied  # a jump is a one-off step: nothing to undo
    return hosts, lambda: each(hosts, lambda h: n.ops.set_clock(h, *before[h])), applied


def _etcd(n: Nemesis, spec: FaultSpec, _: int) -> Result:
    params: Any = spec.params
    members = n.resolve(params.member, etcd=True)
    own = set(n.cluster.layout.own_etcd_hosts)
    ops, kill = n.ops, params.action is EtcdAction.KILL

    def stop(member: str) -> float:
        host = n.cluster.host_of(member)
        if member in own:
            return ops.kill_machine(host) if kill else ops.pause_machine(host)
        return ops.signal(host, "etcd", "KILL" if kill else "STOP")

    def resume(member: str) -> float:
        host = n.cluster.host_of(member)
        if member in own:
            return ops.start_machine(host) if kill else ops.resume_machine(host)
        return ops.start_process(host, "etcd") if kill else ops.signal(host, "etcd", "CONT")

    return members, lambda: each(members, resume), each(members, stop)


def _disk_full(n: Nemesis, spec: FaultSpec, _: int) -> Result:
    nodes = n.nodes(spec.params.target)  # type: ignore[union-attr]
    return nodes, lambda: each(nodes, n.ops.free_disk), each(nodes, n.ops.fill_disk)


# ---------------------------------------------------------------- operator requests


def _operator(
    n: Nemesis, spec: FaultSpec, fid: int, request: tuple[str, dict[str, Any]], order: list[str]
) -> None:
    """POST in a thread (a switchover answers when done); the fault's start is recorded at
    sending, with the status and the agent that answered, and the answer as an `operator` event
    when it came (docs/history.md, "Operator requests")."""
    path, body = request
    hosts = tuple(dict.fromkeys(h for h in (body.get("leader"), body.get("candidate")) if h))

    def run() -> None:
        answers: list[RestAnswer] = []
        via = None
        for node in order:  # the first agent that answers takes the request
            answers.append(n.ops.rest_answer(node, path, body))
            if answers[-1].status is not None:
                via = node
                break
        last = answers[-1]
        n._record_fault("start", last.sent, spec, fid, hosts, status=last.status, via=via)
        outcome, error = operator_result(last.status, last.body, any(a.timed_out for a in answers))
        fields = operator_fields(
            request=path.strip("/"),
            fault_id=fid,
            leader=body.get("leader"),
            candidate=body.get("candidate"),
            scheduled="scheduled_at" in body,
            outcome=outcome,
            status=last.status,
            error=error,
            via=via,
        )
        n._record(last.answered, "operator", "ctl", **fields)

    thread = threading.Thread(target=run, name=f"nemesis-{path.strip('/')}", daemon=True)
    n.operators.append(thread)
    thread.start()


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


def _switchover(n: Nemesis, spec: FaultSpec, fid: int) -> Result:
    params: Any = spec.params
    leader = n.resolve(params.leader)[0] if params.leader is not None else n._primary(False)
    if leader is None:
        raise Skip("no primary to switch over from")
    body: dict[str, Any] = {"leader": leader}
    if params.candidate is not None:
        body["candidate"] = n.resolve(params.candidate)[0]
    if params.scheduled_at_s is not None:
        wall = time.time() + (n.t0_mono + params.scheduled_at_s - time.monotonic())
        body["scheduled_at"] = datetime.fromtimestamp(wall, UTC).isoformat()
    others = [node for node in n.cluster.node_names if node != leader]
    _operator(n, spec, fid, ("/switchover", body), [leader, *others])
    return (
        tuple(dict.fromkeys(h for h in (leader, body.get("candidate")) if h)),
        None,
        time.monotonic(),
    )


def _failover(n: Nemesis, spec: FaultSpec, fid: int) -> Result:
    params: Any = spec.params
    candidate = n.resolve(params.candidate)[0]
    others = [node for node in n.cluster.node_names if node != candidate]
    _operator(n, spec, fid, ("/failover", {"candidate": candidate}), [candidate, *others])
    return (candidate,), None, time.monotonic()


APPLY: dict[FaultKind, Callable[[Nemesis, FaultSpec, int], Result]] = {
    FaultKind.KILL: _kill,
    FaultKind.RESTART: _restart,
    FaultKind.KILL_AGENT: _kill_agent,
    FaultKind.KILL_POSTGRES: _kill_postgres,
    FaultKind.PAUSE: _pause,
    FaultKind.PARTITION: _partition,
    FaultKind.HEAL: _heal,
    FaultKind.CLOCK: _clock,
    FaultKind.ETCD: _etcd,
    FaultKind.LOSS: _loss,
    FaultKind.LATENCY: _latency,
    FaultKind.DISK_FULL: _disk_full,
    FaultKind.SWITCHOVER: _switchover,
    FaultKind.FAILOVER: _failover,
    FaultKind.CONFIG: apply_config,
    FaultKind.ETCD_PUT: apply_etcd_put,
}
