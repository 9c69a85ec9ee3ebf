# One chaos run of a scenario, as `sim.run` does it in the simulator: bring a real cluster up, start
# the workload, apply the faults at their times (relative to the run's start, `for:` undoing them),
# stop at the duration, heal everything, let the cluster settle, read every node's data, collect one
# history (the harness's events and every agent's) and judge it with the simulator's checkers and
# report. Safety rule protected: nothing starts when a fault cannot be applied for real (it is
# refused before any container exists), and every fault is recorded at the time it really took
# effect, so the checks judge what happened, not what was planned.
"""Run one scenario against real containers: `run_scenario`."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.compare import CompareRow, compare, render_table, sim_initial_primary, simulate
from chaos.history import (
    EventLog,
    LeaderWatch,
    MergeStats,
    PgReading,
    Poller,
    merge,
    run_start_fields,
    write_history,
)
from chaos.workload import Workload, create_table, final_read, observe, plan_clients
from pgha.checks import CheckReport, collect_facts, run_checks
from pgha.cli_verdict import verdict
from pgha.history import iter_history
from pgha.report import write_report
from pgha.scenario import Scenario, WorkloadVia

AGENTS = ("pgha", "patroni")
SETTLE_S = 60.0  # after healing: at most this long for one primary and caught-up replicas
SETTLE_QUIET_S = 2.0  # ... then this long more, so the poller records the settled state
BOOT_TIMEOUT_S = 240.0
SWITCHOVER_TIMEOUT_S = 60.0
LOG_FILES = ("agent.log", "postgresql.log", "softdog.jsonl", "history.jsonl", "patroni.log")
EXIT_OK, EXIT_VIOLATION, EXIT_BAD_INPUT = 0, 1, 2

Progress = Callable[[str], None]


class RunFailed(RuntimeError):
    """The harness could not carry the run out (no image, a cluster that never came up, Docker
    errors); the message says why. The node logs, where any, are in the output directory."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChaosResult:
    """What a run left: its exit code, the lines to print, and where its files are."""

    exit_code: int
    lines: tuple[str, ...]
    out_dir: Path
    history: Path | None = None
    report: CheckReport | None = None
    comparison: tuple[CompareRow, ...] = ()
    summary: dict[str, Any] = field(default_factory=dict)


def preflight(scenario: Scenario, *, agent: str = "pgha") -> list[str]:
    """Why `scenario` cannot run for real here (empty: it can); nothing is started."""
    from chaos.nemesis import unsupported

    problems = list(unsupported(scenario))
    if agent not in AGENTS:
        problems.append(f"unknown agent {agent!r}: expected one of {', '.join(AGENTS)}")
    return problems


def run_scenario(
    scenario: Scenario,
    *,
    client: Any,
    out_dir: Path,
    agent: str = "pgha",
    keep: bool = False,
    progress: Progress,
    compare_sim: bool = False,
    seed: int | None = None,
    image: str | None = None,
) -> ChaosResult:
    """Run `scenario` against containers; history and reports go to `out_dir`.

    Exit code 2 (nothing started) when a fault cannot be applied here; else 0 when every check
    held and 1 when one broke. The cluster is removed at the end unless `keep`.
    """
    problems = preflight(scenario, agent=agent)
    if problems:
        lines = tuple(f"{scenario.source}: {p}" for p in problems)
        return ChaosResult(exit_code=EXIT_BAD_INPUT, lines=lines, out_dir=out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    image = image if image is not None else _build_image(progress)
    run = ChaosRun(scenario, client=client, image=image, agent=agent, progress=progress, seed=seed)
    try:
        run.execute()
        run.collect(out_dir)
    except Exception as error:
        run.save_all_logs(out_dir)
        raise RunFailed(f"run {run.run_id}: {type(error).__name__}: {error}") from error
    finally:
        if keep:
            progress(f"kept the cluster of run {run.run_id} (pgha chaos down removes it)")
        else:
            run.teardown()
    return judge(run, out_dir, compare_sim=compare_sim)


def _build_image(progress: Progress) -> str:
    """Build (or reuse) the chaos image; its tag. Raises RunFailed when the build fails."""
    from chaos.image import ImageBuildError, build_images

    try:
        return build_images(progress=progress)
    except ImageBuildError as error:
        raise RunFailed(f"the image build failed: {error}") from error


# ---------------------------------------------------------------- the run


class ChaosRun:
    """One run's moving parts: cluster, event log, poller, workload, faults."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        client: Any,
        image: str,
        agent: str,
        progress: Progress,
        seed: int | None = None,
    ) -> None:
        from chaos.cluster import ChaosCluster, new_run_id

        self.scenario = scenario
        self.agent = agent
        self.image = image
        self.progress = progress
        self.seed = scenario.seed if seed is None else seed
        self.run_id = new_run_id()
        self.cluster = ChaosCluster(
            client, scenario, run_id=self.run_id, image=image, agent=agent, progress=progress
        )
        self.log = EventLog()
        self.t0_mono = 0.0
        self.t_end_mono = 0.0
        self.node_of_host: dict[str, str] = {}
        self.poller: Poller | None = None
        self.leader_watch: LeaderWatch | None = None
        self.workload: Workload | None = None
        self.nemesis: Any = None
        self.timings: dict[str, float] = {}
        self.merge_stats: MergeStats | None = None
        self.agent_histories: dict[str, list[dict[str, Any]]] = {}
        self.initial_primary: str | None = None

    # ------------------------------------------------------------ phases

    def execute(self) -> None:
        """Up, run the faults over the workload, heal, settle, read every node's data."""
        began = time.monotonic()
        self.progress(f"run {self.run_id}: starting {self.scenario.name} with {self.agent}")
        self.cluster.up(timeout_s=BOOT_TIMEOUT_S)
        names = self.cluster.node_names
        self.node_of_host = {self.cluster.ip(n): n for n in names} | {n: n for n in names}
        self._align_primary()
        create_table(self.cluster.haproxy_dsn(), timeout_s=60.0)
        self.timings["boot_s"] = time.monotonic() - began
        self.progress(f"cluster healthy after {self.timings['boot_s']:.1f} s; run starts")
        self._start()
        try:
            self._drive()
        except BaseException:  # Ctrl-C or a harness error: stop everything, skip the settling
            self._abort()
            raise
        self._heal_and_settle()

    def _abort(self) -> None:
        for part in (self.nemesis, self.workload, self.poller, self.leader_watch):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.stop()

    def _align_primary(self) -> None:
        """Start from the primary the simulator starts from (same scenario, same seed), so a
        fault naming a node hits the same role in both worlds: a switchover if it differs."""
        want = sim_initial_primary(self.scenario, self.seed)
        have = self.cluster.primary()
        self.initial_primary = have
        if want is None or have is None or want == have:
            return
        from chaos.nemesis_ops import Ops

        self.progress(f"switching over from {have} to {want}, the simulator's first primary")
        _, status = Ops(self.cluster).rest_post(
            have, "/switchover", {"leader": have, "candidate": want}
        )
        deadline = time.monotonic() + SWITCHOVER_TIMEOUT_S
        while time.monotonic() < deadline and self.cluster.primary() != want:
            time.sleep(0.5)
        self.cluster.wait_healthy(timeout_s=SWITCHOVER_TIMEOUT_S)
        self.initial_primary = self.cluster.primary()
        if self.initial_primary != want:
            self.progress(f"the switchover to {want} did not happen (HTTP {status}); going on")

    def _start(self) -> None:
        scenario = self.scenario
        self.t0_mono = self.log.record(
            "run_start", **run_start_fields(scenario, agent=self.agent, seed=self.seed)
        )
        self.poller = Poller(self.log, self.cluster.node_names, self._observe)
        self.poller.announce()
        self.poller.start()
        self.leader_watch = self._leader_watch()
        self.leader_watch.poll_once()
        self.leader_watch.start()
        spec = scenario.workload
        if spec is not None:
            via = "haproxy" if spec.via is WorkloadVia.HAPROXY else "direct"
            clients = plan_clients(
                via=via, clients=spec.clients, nodes=self.cluster.node_names, dsn_of=self._dsn_of
            )
            self.workload = Workload(
                self.log,
                clients,
                rate_per_s=spec.rate_per_s,
                timeout_s=spec.timeout_s,
                node_of_host=self.node_of_host,
                seed=self.seed,
            )
            self.workload.start(self.t0_mono + scenario.duration_s)
        from chaos.nemesis import Nemesis

        self.nemesis = Nemesis(self.cluster, log=self.log, seed=self.seed)
        self.nemesis.start(scenario.faults, self.t0_mono)

    def _leader_watch(self) -> LeaderWatch:
        from chaos.configs import ETCD_CLIENT_PORT, NAMESPACE, SCOPE

        endpoints = [
            f"http://{self.cluster.ip(member)}:{ETCD_CLIENT_PORT}"
            for member in self.cluster.etcd_names
        ]
        key = f"{NAMESPACE.rstrip('/')}/{SCOPE}/leader"
        # pgha's agents record their own acquisitions; Patroni writes no history
        return LeaderWatch(self.log, endpoints, key, acquired=self.agent != "pgha")

    def _dsn_of(self, target: str) -> str:
        return self.cluster.haproxy_dsn() if target == "haproxy" else self.cluster.dsn(target)

    def _observe(self, node: str) -> PgReading | None:
        seen = observe(self.cluster.dsn(node), self.node_of_host)
        if seen is None and self._state(node) not in ("running", "paused"):
            return PgReading(role="crashed")  # the machine is down (killed, or reset)
        return seen

    def _say(self, line: str) -> None:
        self.progress(f"t={time.monotonic() - self.t0_mono:6.1f} {line}")

    def _drive(self) -> None:
        """Let the nemesis apply the faults (it undoes each after `for`) until the duration."""
        end_mono = self.t0_mono + self.scenario.duration_s
        reported = 0
        while (left_s := end_mono - time.monotonic()) > 0:
            time.sleep(min(left_s, 1.0))
            records = list(self.nemesis.records) if self.nemesis is not None else []
            for record in records[reported:]:
                self._say(_describe(record))
            reported = len(records)

    def _heal_and_settle(self) -> None:
        if self.nemesis is not None:
            self.nemesis.stop()
            self.nemesis.heal_everything()
            self._say("healed everything")
        if self.workload is not None:
            self.workload.stop()
            self.progress(f"workload done: {self.workload.counts}")
        settled_at = self._settle()
        self.timings["settle_s"] = settled_at
        for watcher in (self.poller, self.leader_watch):
            if watcher is not None:
                watcher.stop()
        for node in self.cluster.node_names:
            down = "crashed" if self._state(node) != "running" else "stopped"
            read = final_read(self.cluster.dsn(node), down_role=down)
            self.log.record("final_read", node, **read)
        self.t_end_mono = self.log.record("run_end")

    def _state(self, node: str) -> str:
        try:
            return str(self.cluster.state(node))
        except Exception:  # the container is gone: as good as crashed
            return "missing"

    def _settle(self) -> float:
        """Wait for one primary with every other node a caught-up replica; seconds waited."""
        began = time.monotonic()
        deadline = began + SETTLE_S
        while time.monotonic() < deadline:
            if self.poller is not None and settled(self.poller.latest()):
                time.sleep(SETTLE_QUIET_S)
                waited = time.monotonic() - began
                self.progress(f"settled {waited:.1f} s after healing")
                return waited
            time.sleep(0.5)
        self.progress(f"not settled {SETTLE_S:.0f} s after healing; reading the data as it is")
        return SETTLE_S

    # ------------------------------------------------------------ afterwards

    def collect(self, out_dir: Path) -> Path:
        """Read the agents' histories and logs, merge, write history.jsonl; its path."""
        for node in self.cluster.node_names:
            try:
                self.agent_histories[node] = self.cluster.read_agent_history(node)
            except Exception as error:  # a node whose files cannot be read: say so, go on
                self.progress(f"no agent history from {node}: {error}")
                self.agent_histories[node] = []
            self._save_logs(node, out_dir / "logs" / node)
        events, self.merge_stats = merge(
            self.log.events(),
            self.agent_histories,
            t0_mono=self.t0_mono,
            t_end_mono=self.t_end_mono,
        )
        path = out_dir / "history.jsonl"
        write_history(path, events)
        return path

    def save_all_logs(self, out_dir: Path) -> None:
        """Every node's logs into `out_dir/logs` (after a failure: whatever can be read)."""
        with contextlib.suppress(Exception):
            for node in self.cluster.node_names:
                self._save_logs(node, out_dir / "logs" / node)

    def _save_logs(self, node: str, where: Path) -> None:
        from chaos.configs import LOG_DIR

        where.mkdir(parents=True, exist_ok=True)
        for name in LOG_FILES:
            try:
                content = self.cluster.read_file(node, f"{LOG_DIR}/{name}")
            except Exception:
                content = None
            if content:
                (where / name).write_bytes(content)
        with contextlib.suppress(Exception):  # logs are a convenience, never a failure
            (where / "container.log").write_text(self.cluster.logs(node))

    def teardown(self) -> None:
        """Remove the run's containers, network and volumes."""
        try:
            self.cluster.down()
        except Exception as error:  # never hide the run's own outcome behind a cleanup error
            self.progress(f"teardown of run {self.run_id} failed: {error} (pgha chaos down)")


def settled(latest: dict[str, Any]) -> bool:
    """One primary; every other node a replica on its timeline, streaming from it, caught up."""
    seen = list(latest.values())
    if any(o is None for o in seen):
        return False
    primaries = [(name, o) for name, o in latest.items() if o.role == "primary"]
    if len(primaries) != 1:
        return False
    name, primary = primaries[0]
    for other, o in latest.items():
        if other == name:
            continue
        if o.role != "replica" or o.timeline != primary.timeline or o.upstream != name:
            return False
        if o.lsn is None or primary.lsn is None or o.lsn < primary.lsn:
            return False
    return True


# ---------------------------------------------------------------- verdict and report


def judge(run: ChaosRun, out_dir: Path, *, compare_sim: bool = False) -> ChaosResult:
    """Run the checks on the history in `out_dir`, write the reports, and say what happened."""
    history = out_dir / "history.jsonl"
    facts = collect_facts(iter_history(history), str(history))
    report = run_checks(facts)
    write_report(history, report, out_dir)
    rows: list[CompareRow] = []
    if compare_sim:
        run.progress("running the scenario in the simulator")
        predicted = simulate(run.scenario, out_dir / "sim", seed=run.seed)
        rows = compare(predicted, facts)
    summary = _extend_summary(out_dir / "summary.json", run, rows)
    lines = verdict_lines(run, report, out_dir)
    if compare_sim:
        lines.append(render_table(rows))
    return ChaosResult(
        exit_code=EXIT_OK if report.ok else EXIT_VIOLATION,
        lines=tuple(lines),
        out_dir=out_dir,
        history=history,
        report=report,
        comparison=tuple(rows),
        summary=summary,
    )


def _extend_summary(path: Path, run: ChaosRun, rows: list[CompareRow]) -> dict[str, Any]:
    from chaos.configs import differences

    document: dict[str, Any] = json.loads(path.read_text())
    stats = run.merge_stats
    document["chaos"] = {
        "run_id": run.run_id,
        "agent": run.agent,
        "initial_primary": run.initial_primary,
        "image": run.image,
        "differences": differences(run.scenario, agent=run.agent),
        "timings_s": {key: round(value, 3) for key, value in run.timings.items()},
        "workload": dict(run.workload.counts) if run.workload is not None else {},
        "agent_events": {node: len(events) for node, events in run.agent_histories.items()},
        "merge": None
        if stats is None
        else {
            "harness": stats.harness,
            "agent": stats.agent,
            "agent_before_start": stats.agent_before_start,
            "agent_after_end": stats.agent_after_end,
            "repeats": stats.repeats,
        },
    }
    if rows:
        document["compare_sim"] = [row.to_dict() for row in rows]
    path.write_text(json.dumps(document, sort_keys=True, indent=2) + "\n")
    return document


def verdict_lines(run: ChaosRun, report: CheckReport, out_dir: Path) -> list[str]:
    """What `pgha chaos run` prints: the verdict lines of `pgha sim run`, and the notes."""
    from chaos.configs import differences

    scenario = run.scenario
    name = f"{scenario.name} (chaos, {run.agent}, run {run.run_id})"
    how = f"{scenario.duration_s:.0f} s real time"
    lines = verdict(name, None, report, how, out_dir / "report.html").splitlines()
    notes = [f"  note: {note}" for note in differences(scenario, agent=run.agent)]
    return [*lines[:-1], *notes, lines[-1]]


def _describe(record: dict[str, Any]) -> str:
    """A nemesis record as one progress line."""
    if record.get("kind") != "fault":
        return f"{record.get('kind')} {record.get('node', '')} {record.get('event', '')}".strip()
    what = f"fault {record.get('id')} {record.get('phase')}: {record.get('label')}"
    return what + (f" ({record['error']})" if record.get("error") else "")
