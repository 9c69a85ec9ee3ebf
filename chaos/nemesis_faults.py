# One applier per fault kind of the registry (pgha.scenario's FAULT_KINDS) that this world applies,
# mirroring sim/faults.py on real containers: each resolves its targets when the fault fires with
# the planner shared with the simulator (pgha/faults), applies the fault with the primitives of
# chaos/nemesis_ops.py, and returns an Applied: the hosts it hit, how to undo it (on those same
# hosts) and the host monotonic time it was in force on all of them. Safety rule protected: `for:`
# undoes exactly what was done (the same hosts, the same rules, the clock as it was), and a fault
# that cannot be applied raises Skip, so it is recorded as skipped instead of silently doing
# nothing. The appliers see the nemesis as a NemesisWorld (chaos/nemesis_world.py), never import
# it. Those of `config` and `etcd_put` (written data rather than broken machines) are in
# nemesis_writes.py.
"""Appliers: FaultSpec -> real actions, per fault kind."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from chaos.configs import uses_faketime
from chaos.nemesis_ops import ActionError, RestAnswer
from chaos.nemesis_world import NemesisWorld
from chaos.nemesis_writes import apply_config, apply_etcd_put, operator_result
from chaos.netrules import drop_rules, loss_rules
from pgha.faults import (
    Applied,
    Firing,
    OperatorAsk,
    Skip,
    appliers,
    end_kills_on,
    end_network_faults,
    failover_ask,
    on,
    partition_pairs,
    switchover_ask,
)
from pgha.operator_history import operator_fields
from pgha.scenario import (
    ClockFault,
    ConfigFault,
    DiskFullFault,
    EtcdAction,
    EtcdFault,
    EtcdPutFault,
    FailoverFault,
    HealFault,
    KillAgentFault,
    KillFault,
    KillPostgresFault,
    LossFault,
    PartitionFault,
    PauseFault,
    PauseWhat,
    RestartFault,
    SwitchoverFault,
)

CLIENT_HOST = "client"  # the Docker host: the workload and the operator (not a container)


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


def _kill(n: NemesisWorld, p: KillFault, firing: Firing) -> Applied:
    nodes = n.resolver.nodes(p.target)
    with n.lock:
        n.down_by_fault.update(nodes)
        for node in nodes:
            n.boots.pop(node, None)
    applied = each(nodes, n.ops.kill_machine)

    def undo() -> float:
        booted = each(nodes, n.ops.start_machine)
        with n.lock:
            n.down_by_fault.difference_update(nodes)
        return booted

    return firing.applied(nodes, undo, at=applied)


def _restart(n: NemesisWorld, p: RestartFault, firing: Firing) -> Applied:
    nodes = n.resolver.nodes(p.target)
    running = [node for node in nodes if n.ops.is_running(node)]
    end_kills_on(n, nodes)
    dead = [node for node in nodes if node not in running]
    times = [each(dead, n.ops.start_machine)] if dead else []
    if running:  # a running machine is reset and boots again after the reboot time
        with n.lock:
            for node in running:
                n.boots[node] = time.monotonic() + n.reboot_after_s
        times.append(each(running, n.ops.kill_machine))
    return firing.applied(nodes, None, at=max(times))


def _kill_agent(n: NemesisWorld, p: KillAgentFault, firing: Firing) -> Applied:
    nodes = n.resolver.nodes(p.target)
    applied = each(nodes, lambda node: n.ops.signal(node, "agent", "KILL"))

    def undo() -> float:
        up = [node for node in nodes if n.ops.is_running(node)]
        return each(up, lambda node: n.ops.start_process(node, "agent"))

    return firing.applied(nodes, undo, at=applied)


def _kill_postgres(n: NemesisWorld, p: KillPostgresFault, firing: Firing) -> Applied:
    nodes = n.resolver.nodes(p.target)
    applied = each(nodes, lambda node: n.ops.signal_postgres(node, "KILL"))
    return firing.applied(nodes, None, at=applied)


def _pause(n: NemesisWorld, p: PauseFault, firing: Firing) -> Applied:
    nodes = n.resolver.nodes(p.target)
    pause, resume = _pause_pair(n, p.what)
    applied = each(nodes, pause)
    return firing.applied(nodes, lambda: each(nodes, resume), at=applied)


def _pause_pair(n: NemesisWorld, what: PauseWhat) -> tuple[Callable[[str], float], ...]:
    ops = n.ops
    if what is PauseWhat.NODE:
        return ops.pause_machine, ops.resume_machine
    if what is PauseWhat.AGENT:
        return (lambda h: ops.signal(h, "agent", "STOP"), lambda h: ops.signal(h, "agent", "CONT"))
    return (lambda h: ops.signal_postgres(h, "STOP"), lambda h: ops.signal_postgres(h, "CONT"))


# ---------------------------------------------------------------- network


def _ips(n: NemesisWorld) -> dict[str, str]:
    c = n.cluster
    ips = {host: c.ip(host) for host in c.hosts}
    return {**ips, "haproxy": c.layout.haproxy_ip, CLIENT_HOST: c.layout.gateway}


def _partition(n: NemesisWorld, p: PartitionFault, firing: Firing) -> Applied:
    c = n.cluster
    everyone = [*c.hosts, "haproxy", CLIENT_HOST]  # isolate cuts clients and HAProxy off too
    pairs, hosts = partition_pairs(p, n.resolver.resolve, everyone)
    rules = drop_rules(pairs, _ips(n), managed=[*c.hosts, "haproxy"])
    applied = n.ops.set_rules(firing.id, rules)
    return firing.applied(
        tuple(dict.fromkeys(hosts)), lambda: n.ops.clear_rules(firing.id), at=applied
    )


def _heal(n: NemesisWorld, _: HealFault, firing: Firing) -> Applied:
    end_network_faults(n)
    return firing.applied((), None, at=time.monotonic())


def _loss(n: NemesisWorld, p: LossFault, firing: Firing) -> Applied:
    hosts = n.resolver.resolve(p.targets)
    applied = n.ops.set_rules(firing.id, loss_rules(hosts, p.rate))
    return firing.applied(hosts, lambda: n.ops.clear_rules(firing.id), at=applied)


# ---------------------------------------------------------------- clocks, etcd, disk


def _clock(n: NemesisWorld, p: ClockFault, firing: Firing) -> Applied:
    if not uses_faketime(n.scenario):
        raise Skip("the nodes run without libfaketime")
    hosts = n.resolver.resolve(p.target)
    if any(host not in n.cluster.node_names for host in hosts):
        raise Skip("etcd ignores libfaketime: only database nodes' clocks can be skewed")
    now = time.monotonic()
    before = {host: n.ops.clock_of(host, now) for host in hosts}

    def change(host: str) -> float:
        offset, drift = before[host]
        offset = p.offset_s if p.offset_s is not None else offset
        drift = p.drift_ppm if p.drift_ppm is not None else drift
        return n.ops.set_clock(host, offset + (p.jump_s or 0.0), drift)

    applied = each(hosts, change)
    if p.offset_s is None and p.drift_ppm is None:
        return firing.applied(hosts, None, at=applied)  # a jump is a one-off step: no undo

    def undo() -> float:
        return each(hosts, lambda h: n.ops.set_clock(h, *before[h]))

    return firing.applied(hosts, undo, at=applied)


def _etcd(n: NemesisWorld, p: EtcdFault, firing: Firing) -> Applied:
    members = n.resolver.resolve(p.member, etcd=True)
    own = set(n.cluster.layout.own_etcd_hosts)
    ops, kill = n.ops, p.action is EtcdAction.KILL

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

    applied = each(members, stop)
    return firing.applied(members, lambda: each(members, resume), at=applied)


def _disk_full(n: NemesisWorld, p: DiskFullFault, firing: Firing) -> Applied:
    nodes = n.resolver.nodes(p.target)
    applied = each(nodes, n.ops.fill_disk)
    return firing.applied(nodes, lambda: each(nodes, n.ops.free_disk), at=applied)


# ---------------------------------------------------------------- operator requests


def _operator(
    n: NemesisWorld, firing: Firing, request: tuple[str, dict[str, Any]], order: Sequence[str]
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
        n.record_fault(
            "start", last.sent, firing.spec, firing.id, hosts, status=last.status, via=via
        )
        outcome, error = operator_result(last.status, last.body, any(a.timed_out for a in answers))
        fields = operator_fields(
            request=path.strip("/"),
            fault_id=firing.id,
            leader=body.get("leader"),
            candidate=body.get("candidate"),
            scheduled="scheduled_at" in body,
            outcome=outcome,
            status=last.status,
            error=error,
            via=via,
        )
        n.record(last.answered, "operator", "ctl", **fields)

    thread = threading.Thread(target=run, name=f"nemesis-{path.strip('/')}", daemon=True)
    n.operators.append(thread)
    thread.start()


def _switchover(n: NemesisWorld, p: SwitchoverFault, firing: Firing) -> Applied:
    ask = switchover_ask(p, n.resolver)
    body: dict[str, Any] = {"leader": ask.leader}
    if ask.candidate is not None:
        body["candidate"] = ask.candidate
    if p.scheduled_at_s is not None:
        wall = time.time() + (n.t0_mono + p.scheduled_at_s - time.monotonic())
        body["scheduled_at"] = datetime.fromtimestamp(wall, UTC).isoformat()
    _operator(n, firing, ("/switchover", body), ask.order)
    return _asked(firing, ask)


def _failover(n: NemesisWorld, p: FailoverFault, firing: Firing) -> Applied:
    ask = failover_ask(p, n.resolver)
    _operator(n, firing, ("/failover", {"candidate": ask.candidate}), ask.order)
    return _asked(firing, ask)


def _asked(firing: Firing, ask: OperatorAsk) -> Applied:
    # The request is in flight (its answer is recorded when it comes): nothing to undo.
    return firing.applied(tuple(dict.fromkeys(ask.parties)), None, at=time.monotonic())


APPLY = appliers(
    "chaos",
    on(KillFault, _kill),
    on(RestartFault, _restart),
    on(KillAgentFault, _kill_agent),
    on(KillPostgresFault, _kill_postgres),
    on(PauseFault, _pause),
    on(PartitionFault, _partition),
    on(HealFault, _heal),
    on(ClockFault, _clock),
    on(EtcdFault, _etcd),
    on(LossFault, _loss),
    on(DiskFullFault, _disk_full),
    on(SwitchoverFault, _switchover),
    on(FailoverFault, _failover),
    on(ConfigFault, apply_config),
    on(EtcdPutFault, apply_etcd_put),
)
