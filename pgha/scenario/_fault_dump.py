# Each fault kind's parameters as a scenario file holds them: the short form (a target) where the
# loader reads one back to the same parameters, the long form (a mapping) otherwise. The registry
# (pgha/scenario/_kinds.py) names the dumper of every kind; `dump_fault` (_dump.py) adds at, for
# and label around it. Every dumper is the inverse of its parser in _fault_params.py.
"""Writing one fault kind's parameters back as YAML values."""

from __future__ import annotations

from pgha.scenario._model import (
    Bridge,
    ClockFault,
    ConfigFault,
    DiskFullFault,
    EtcdFault,
    EtcdPutFault,
    FailoverFault,
    FaultParams,
    HealFault,
    KillAgentFault,
    KillFault,
    KillPostgresFault,
    LatencyFault,
    LossFault,
    PartitionFault,
    PauseFault,
    PauseWhat,
    RestartFault,
    SwitchoverFault,
)
from pgha.scenario._written import duration, number, one, plain, target

Doc = dict[str, object]
NodeFault = KillFault | RestartFault | KillAgentFault | KillPostgresFault | DiskFullFault


def node_fault(params: FaultParams) -> str | list[str]:
    """kill, restart, kill_agent, kill_postgres, disk_full: the short form, a target."""
    assert isinstance(params, NodeFault)
    return target(params.target)


def pause(params: FaultParams) -> str | list[str] | Doc:
    """A pause of the whole node in the short form; of the agent or PostgreSQL in the long."""
    assert isinstance(params, PauseFault)
    if params.what is PauseWhat.NODE:
        return target(params.target)
    return {"node": target(params.target), "what": params.what.value}


def partition(params: FaultParams) -> Doc:
    """One of the four forms."""
    assert isinstance(params, PartitionFault)
    if params.isolate is not None:
        return {"isolate": target(params.isolate)}
    if params.groups is not None:
        return {"groups": [[one(member) for member in group] for group in params.groups]}
    if params.one_way is not None:
        return {"from": target(params.one_way[0]), "to": target(params.one_way[1])}
    assert isinstance(params.bridge, Bridge)
    sides = params.bridge
    return {"a": target(sides.a), "b": target(sides.b), "bridge": target(sides.bridge)}


def heal(params: FaultParams) -> bool:
    """`heal: true` (it takes no parameters)."""
    assert isinstance(params, HealFault)
    return True


def clock(params: FaultParams) -> Doc:
    """The node and whichever of offset, drift_ppm and jump are set."""
    assert isinstance(params, ClockFault)
    out: Doc = {"node": target(params.target)}
    for key, value in (
        ("offset", params.offset_s),
        ("drift_ppm", params.drift_ppm),
        ("jump", params.jump_s),
    ):
        if value is not None:
            out[key] = number(value) if key == "drift_ppm" else duration(value)
    return out


def etcd(params: FaultParams) -> Doc:
    """The member and the action, always in the long form."""
    assert isinstance(params, EtcdFault)
    return {"member": one(params.member), "action": params.action.value}


def loss(params: FaultParams) -> Doc:
    """The targets and the rate (a fraction)."""
    assert isinstance(params, LossFault)
    return {"targets": target(params.targets), "rate": number(params.rate)}


def latency(params: FaultParams) -> Doc:
    """The targets, the median and the 99th percentile."""
    assert isinstance(params, LatencyFault)
    return {
        "targets": target(params.targets),
        "median": duration(params.median_s),
        "p99": duration(params.p99_s),
    }


def switchover(params: FaultParams) -> Doc:
    """Whichever of leader, candidate and the scheduled time are set ({} for none)."""
    assert isinstance(params, SwitchoverFault)
    out: Doc = {}
    if params.leader is not None:
        out["leader"] = one(params.leader)
    if params.candidate is not None:
        out["candidate"] = one(params.candidate)
    if params.scheduled_at_s is not None:
        out["at"] = duration(params.scheduled_at_s)
    return out


def failover(params: FaultParams) -> Doc:
    """The candidate."""
    assert isinstance(params, FailoverFault)
    return {"candidate": one(params.candidate)}


def config(params: FaultParams) -> Doc:
    """The patch as it is sent: numbers stay numbers (a duration string would be the operator's
    mistake, sent as text), lists as lists; and the node asked first, if any."""
    assert isinstance(params, ConfigFault)
    out: Doc = {"patch": plain(params.patch)}
    if params.node is not None:
        out["node"] = one(params.node)
    return out


def etcd_put(params: FaultParams) -> Doc:
    """The key and the value, as text."""
    assert isinstance(params, EtcdPutFault)
    return {"key": params.key, "value": params.value}
