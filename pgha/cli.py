"""The ``pgha`` command: the composition root.

``pgha sim run FILE`` runs a scenario in the simulator and writes its history, summary, JUnit XML
and HTML report. ``pgha sim explore FILE`` searches fault schedules drawn from the scenario's
``explore:`` section for one that breaks a check, shrinks each failure and writes it out as a
scenario file with its report. ``pgha sim variants`` lists the known-bad engine variants. ``pgha
check HISTORY`` (:mod:`pgha.cli_check`) re-checks an existing history, simulated, chaos or an
agent's, with its own checks or others (``--checks FILE``, ``--set key=value``), and writes its
summary, JUnit XML and HTML report again, without the simulator. Exit codes: 0 every check holds
(nothing broke within the budget), 1 a check broke, 2 bad input.

``pgha agent``, ``pgha ctl``, ``pgha softdog``, ``pgha chaos`` and ``pgha notebooks`` have parsers
of their own (``PASS_THROUGH``): the real agent, its control CLI, the watchdog emulation, the
Docker chaos harness and the notebooks' runner and renderer. This module imports :mod:`sim` and
:mod:`chaos` lazily, inside the subcommands; the arguments are parsed by :mod:`pgha.cli_parser`.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pgha import cli_check
from pgha.cli_parser import PASS_THROUGH, build_parser
from pgha.cli_verdict import simulated, verdict

if TYPE_CHECKING:
    from pgha.scenario import FaultSpec, Scenario
    from sim.explore import Budget, Progress, Verdict
    from sim.explore.reproduce import Reproducer

EXIT_OK, EXIT_VIOLATION, EXIT_BAD_INPUT = 0, 1, 2
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT


def main(argv: list[str] | None = None) -> int:
    """Run the ``pgha`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in PASS_THROUGH:
        module = importlib.import_module(PASS_THROUGH[argv[0]][0])
        code: int = module.main(argv[1:])
        return code
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.world == "check":
        return cli_check.run(args)
    if args.world != "sim":
        parser.print_help()
        return EXIT_OK
    if args.command == "variants":
        return sim_variants()
    if args.command == "explore":
        return sim_explore(
            args.file,
            budget=args.budget,
            seed=args.seed,
            workers=args.workers,
            dask=args.dask,
            out=args.out,
            variant=args.engine_variant,
            keep=args.keep,
            search=args.search,
        )
    return sim_run(
        args.file,
        seed=args.seed,
        out=args.out,
        decisions=args.show_decisions,
        variant=args.engine_variant,
    )


def sim_run(
    file: Path,
    *,
    seed: int | None = None,
    out: Path | None = None,
    decisions: bool = False,
    variant: str | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """``pgha sim run``: simulate `file`, write history and reports, print the verdict."""
    from pgha.checks import run_checks
    from pgha.history import HistoryWriter, iter_history
    from pgha.report import write_report
    from pgha.scenario import ScenarioError, load_scenario

    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    try:
        scenario = load_scenario(file)
    except ScenarioError as error:
        print(f"pgha: {error}", file=stderr)
        return EXIT_BAD_INPUT
    if variant is not None and not _variant_ok(variant, stderr):
        return EXIT_BAD_INPUT
    out = out if out is not None else Path("reports") / file.stem
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"pgha: {out}: cannot create the output directory: {error.strerror}", file=stderr)
        return EXIT_BAD_INPUT
    history = out / "history.jsonl"
    started = time.perf_counter()
    with HistoryWriter(history) as writer:
        sim = _simulate(scenario, seed, writer, variant)
    wall_s = time.perf_counter() - started
    report = run_checks(iter_history(history), source=str(history))
    write_report(history, report, out, show_decisions=decisions)
    how = simulated(sim.world.now, wall_s)
    print(verdict(scenario.name, sim.world.seed, report, how, out / "report.html"), file=stdout)
    return EXIT_OK if report.ok else EXIT_VIOLATION


def _simulate(scenario: Scenario, seed: int | None, recorder: Any, variant: str | None) -> Any:
    if variant is None:
        from sim.run import run_scenario

        return run_scenario(scenario, seed=seed, recorder=recorder)
    from sim.explore import simulate

    return simulate(scenario, seed=seed, recorder=recorder, variant=variant)


def _variant_ok(variant: str, stderr: TextIO) -> bool:
    from sim.explore import ExploreError, check_variant

    try:
        check_variant(variant)
    except ExploreError as error:
        print(f"pgha: {error}", file=stderr)
        return False
    return True


# ---------------------------------------------------------------- pgha sim variants


def sim_variants(stdout: TextIO | None = None) -> int:
    """``pgha sim variants``: the known-bad engine variants, each with what it gets wrong."""
    from sim.explore import load_variants

    stdout = stdout or sys.stdout
    variants = load_variants()
    if not variants:
        print("no engine variants", file=stdout)
    for name in sorted(variants):
        variant = variants[name]
        print(name, file=stdout)
        for label, key in (("", "description"), ("bug: ", "bug")):
            text = str(getattr(variant, key, "") or "").strip()
            if text:
                print(
                    textwrap.fill(
                        label + text,
                        100,
                        initial_indent="    ",
                        subsequent_indent="    " + " " * len(label),
                        break_on_hyphens=False,
                    ),
                    file=stdout,
                )
    return EXIT_OK


# ---------------------------------------------------------------- pgha sim explore


def sim_explore(
    file: Path,
    *,
    budget: str = "60s",
    seed: int | None = None,
    workers: int | None = None,
    dask: str | None = None,
    out: Path | None = None,
    variant: str | None = None,
    keep: int = 3,
    search: str = "sweep",
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """``pgha sim explore``: search schedules, shrink and write out the failures, print them."""
    from sim.explore import Progress, default_workers

    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    checked = _explore_inputs(file, budget, variant, workers, keep, out, stderr)
    if checked is None:
        return EXIT_BAD_INPUT
    scenario, spent, out = checked
    job = _ExploreJob(
        scenario=scenario,
        budget=spent,
        seed0=scenario.seed if seed is None else seed,
        workers=workers or default_workers(),
        dask=dask,
        out=out,
        variant=variant,
        keep=keep,
        progress=Progress(stderr, f"explore {scenario.name}"),
    )
    return job.run(search, stdout, stderr)


def _explore_inputs(
    file: Path,
    budget: str,
    variant: str | None,
    workers: int | None,
    keep: int,
    out: Path | None,
    stderr: TextIO,
) -> tuple[Scenario, Budget, Path] | None:
    """The scenario, the budget and the output directory (made); None, said on stderr, if bad."""
    from pgha.scenario import ScenarioError, load_scenario
    from sim.explore import Budget, ExploreError, Space, check_variant

    try:
        scenario = load_scenario(file)
        if scenario.explore is None:
            raise ExploreError(
                f"{file}: no 'explore:' section: add one to say which faults to draw "
                "(docs/scenarios.md, `explore`)"
            )
        Space.of(scenario)
        spent = Budget.parse(budget)
        check_variant(variant)
        if (workers is not None and workers < 1) or keep < 1:
            raise ExploreError("--workers and --keep take a number >= 1")
        out = out if out is not None else Path("reports") / "explore" / scenario.name
        out.mkdir(parents=True, exist_ok=True)
    except (ScenarioError, ExploreError) as error:
        print(f"pgha: {error}", file=stderr)
        return None
    except OSError as error:
        print(f"pgha: {out}: cannot create the output directory: {error.strerror}", file=stderr)
        return None
    return scenario, spent, out


@dataclass(kw_only=True)
class _ExploreJob:
    """One `pgha sim explore`: search, shrink, write reproducers and the summary; print lines."""

    scenario: Scenario
    budget: Budget
    seed0: int
    workers: int
    dask: str | None
    out: Path
    variant: str | None
    keep: int
    progress: Progress
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def engine(self) -> str:
        return f"engine variant {self.variant}" if self.variant else "the real engine"

    def run(self, search: str, stdout: TextIO, stderr: TextIO) -> int:
        """Search (`sweep` or `hypothesis`), print what was found; the exit code."""
        from sim.explore import ExploreError

        try:
            found = self.hypothesis() if search == "hypothesis" else self.sweep()
        except ExploreError as error:
            print(f"pgha: {error}", file=stderr)
            return EXIT_BAD_INPUT
        except KeyboardInterrupt:
            print("\npgha: interrupted", file=stderr)
            return EXIT_INTERRUPTED
        print("\n".join(found), file=stdout)
        return EXIT_VIOLATION if self.failures else EXIT_OK

    def sweep(self) -> list[str]:
        from sim.explore import evaluator, pool, shrink, sweep

        with pool(self.workers, self.dask) as where:
            result = sweep(
                self.scenario,
                self.budget,
                seed0=self.seed0,
                workers=self.workers,
                variant=self.variant,
                progress=self.progress,
                on=where,
            )
            shown = "Dask" if self.dask else f"{self.workers} worker(s)"
            lines = [
                f"explore {self.scenario.name} ({self.engine}, seeds from {self.seed0}): "
                f"{len(result.trials)} schedules in {result.wall_s:.1f} s "
                f"({result.per_second:.1f}/s, {shown}); {len(result.failures)} failed"
            ]
            for trial in result.fastest(self.keep):
                self.progress.note(f"shrinking seed {trial.seed} ({len(trial.faults)} faults)")
                evaluate = evaluator(where, self.scenario, trial.seed, self.variant)
                shrunk = shrink(
                    self.scenario,
                    trial.faults,
                    trial.seed,
                    variant=self.variant,
                    evaluate=evaluate,
                    original=trial.outcome,
                )
                original = (trial.faults, trial.outcome)
                lines += self._write(trial.seed, shrunk.faults, shrunk.outcome, original)
        self._summary("sweep", len(result.trials), result.wall_s, [t.seed for t in result.failures])
        return lines

    def hypothesis(self) -> list[str]:
        from sim.explore.hypothesis_search import search

        result = search(
            self.scenario,
            self.budget,
            seed=self.seed0,
            variant=self.variant,
            progress=self.progress,
        )
        found = result.found
        lines = [
            f"explore {self.scenario.name} ({self.engine}, Hypothesis seed {self.seed0}): "
            f"{result.runs} schedules in {result.wall_s:.1f} s; "
            f"{'a failure, shrunk by Hypothesis' if found else 'no violation'}"
        ]
        if found is not None:
            lines += self._write(found.seed, found.faults, found.outcome)
        self._summary("hypothesis", result.runs, result.wall_s, [found.seed] if found else [])
        return lines

    def _write(
        self,
        seed: int,
        shrunk: tuple[FaultSpec, ...],
        shrunk_outcome: Verdict,
        original: tuple[tuple[FaultSpec, ...], Verdict] | None = None,
    ) -> list[str]:
        # `original`: the schedule as the sweep found it (Hypothesis hands back only the shrunk).
        from sim.explore import write_reproducer

        faults, outcome = original or (shrunk, shrunk_outcome)
        repro = write_reproducer(
            self.scenario, shrunk, seed, shrunk_outcome, self.out, variant=self.variant
        )
        same = (repro.outcome.ok, repro.outcome.violated) == (
            shrunk_outcome.ok,
            shrunk_outcome.violated,
        )
        self.failures.append(
            {
                "seed": seed,
                "violated": list(outcome.violated),
                "error": outcome.error,
                "first_violation_s": outcome.first_violation_s,
                "faults": len(faults),
                "shrunk_faults": len(shrunk),
                "shrunk_first_violation_s": shrunk_outcome.first_violation_s,
                "reproducer": str(repro.path),
                "report": str(repro.report_dir / "report.html"),
                "reproduced": same,
            }
        )
        shrinking = (
            f"shrunk {len(faults)} -> {len(shrunk)} fault(s){_at(shrunk_outcome)}"
            if original
            else f"{len(shrunk)} fault(s), shrunk by Hypothesis"
        )
        return _failure_lines(seed, outcome, shrinking, repro, same)

    def _summary(self, method: str, runs: int, wall_s: float, failing: list[int]) -> None:
        from sim.explore import write_summary

        write_summary(
            self.out / "explore.json",
            {
                "scenario": self.scenario.name,
                "source": self.scenario.source,
                "variant": self.variant,
                "search": method,
                "budget": str(self.budget),
                "first_seed": self.seed0,
                "workers": "dask" if self.dask else self.workers,
                "schedules": runs,
                "wall_s": round(wall_s, 3),
                "failing_seeds": failing,
                "failures": self.failures,
            },
        )


def _failure_lines(
    seed: int, outcome: Verdict, shrinking: str, repro: Reproducer, same: bool
) -> list[str]:
    """What `pgha sim explore` prints about one failure it wrote out."""
    broke = ", ".join(outcome.violated)
    if outcome.error is not None:
        broke = f"the simulation crashed ({outcome.error})"
    page = repro.report_dir / "report.html"
    lines = [
        f"  seed {seed}: {broke}{_at(outcome)}; {shrinking}",
        f"    reproduce: {repro.command}",
        f"    report:    {page if page.exists() else 'none (the run crashed)'}",
    ]
    if not same:
        lines.append("    WARNING: the reproducer gave another verdict; please report this")
    return lines


def _at(outcome: Verdict) -> str:
    first = outcome.first_violation_s
    if first is None:
        return ""
    return f" at t={first:.1f} s" if outcome.error else f" from t={first:.1f} s"


if __name__ == "__main__":  # pragma: no cover - `python -m pgha.cli`
    sys.exit(main())
