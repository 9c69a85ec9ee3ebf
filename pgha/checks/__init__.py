# Invariants are judged from the history alone (docs/design.md, "Invariants"; the definitions are in
# docs/history.md, "Checkers"): nothing here imports the simulator or the harness, and nothing
# trusts labels or API roles where the data says otherwise. A history that contradicts itself is
# refused with its file and line (`HistoryIntegrityError`), never counted.
"""Checkers for the run invariants, and the run summary, computed from a history.

Layers: `_fields` (typed event fields) and `_writes`, `_roles`, `_faults` (streaming trackers)
feed `_facts` (one pass: `RunFacts`); `_split_brain`, `_lost` and `_timed` judge the facts;
`_run` runs the checks a history or scenario names and summarizes the run.
"""

from pgha.checks._facts import FactsCollector, FinalRead, RunFacts, collect_facts
from pgha.checks._faults import FAILOVER_FAULT_KINDS, Failover, FaultRecord, OperatorRequest
from pgha.checks._fields import HistoryIntegrityError
from pgha.checks._lost import check_no_lost_acknowledged_writes
from pgha.checks._results import (
    FAILOVER,
    FIRST_IDS,
    HEALTHY,
    LOST_WRITES,
    OPERATOR,
    SPLIT_BRAIN,
    CheckReport,
    CheckResult,
    Violation,
    spec_from_history,
)
from pgha.checks._roles import RoleChange, Window
from pgha.checks._run import (
    check_operator_requests,
    eventually_healthy,
    failover_within,
    no_lost_acknowledged_writes,
    no_split_brain,
    run_checks,
    summarize,
)
from pgha.checks._split_brain import Reign, check_no_split_brain, interleave, reigns
from pgha.checks._timed import check_eventually_healthy, check_failover_within
from pgha.checks._writes import AckLog, WriteStats

__all__ = [
    "FAILOVER",
    "FAILOVER_FAULT_KINDS",
    "FIRST_IDS",
    "HEALTHY",
    "LOST_WRITES",
    "OPERATOR",
    "SPLIT_BRAIN",
    "AckLog",
    "CheckReport",
    "CheckResult",
    "FactsCollector",
    "Failover",
    "FaultRecord",
    "FinalRead",
    "HistoryIntegrityError",
    "OperatorRequest",
    "Reign",
    "RoleChange",
    "RunFacts",
    "Violation",
    "Window",
    "WriteStats",
    "check_eventually_healthy",
    "check_failover_within",
    "check_no_lost_acknowledged_writes",
    "check_no_split_brain",
    "check_operator_requests",
    "collect_facts",
    "eventually_healthy",
    "failover_within",
    "interleave",
    "no_lost_acknowledged_writes",
    "no_split_brain",
    "reigns",
    "run_checks",
    "spec_from_history",
    "summarize",
]
