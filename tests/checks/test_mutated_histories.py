"""The checker judged on real runs and on mutations of them (issue 12, deliverable 4).

Four bundled scenarios are simulated once per module; every case mutates one of their histories
(tests/checks/corpus.py), writes it to a file, and asks both `run_checks` and `pgha check` for
the verdict it must get: 0 (pass), 1 (a named violation) or 2 (a located error).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pgha.checks import LOST_WRITES, SPLIT_BRAIN, CheckReport, HistoryIntegrityError, run_checks
from pgha.cli import main
from pgha.history import HistoryError, iter_history
from tests.checks import corpus
from tests.checks.corpus import Mutated


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, Path]]:
    """scenario -> (exit code of `pgha sim run`, its history)."""
    base = tmp_path_factory.mktemp("sim")
    return {name: corpus.simulate(name, base / name) for name in corpus.SCENARIOS}


@pytest.fixture(scope="module")
def originals(runs: dict[str, tuple[int, Path]]) -> dict[str, list[dict[str, Any]]]:
    return {name: corpus.load(history) for name, (_, history) in runs.items()}


def check_cli(path: Path, out: Path, *options: str) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["check", str(path), "--out", str(out), *options])
    return code, stdout.getvalue(), stderr.getvalue()


def reasons(report: CheckReport, name: str) -> set[str]:
    result = report.result(name)
    assert result is not None
    return {v.detail["reason"] for v in result.violations}


def failing(report: CheckReport) -> set[str]:
    return {r.name for r in report.results if not r.ok}


# ---------------------------------------------------------------- the untouched runs


@pytest.mark.parametrize("scenario", list(corpus.SCENARIOS))
def test_recheck_gives_the_verdict_of_the_run(
    scenario: str, runs: dict[str, tuple[int, Path]]
) -> None:
    code, history = runs[scenario]
    assert code == corpus.SCENARIOS[scenario]
    report = run_checks(iter_history(history), source=str(history))
    assert report.ok is (code == 0)
    document = report.to_dict()
    assert run_checks(iter_history(history), source=str(history)).to_dict() == document
    sim = json.loads((history.parent / "summary.json").read_text())
    assert sim["ok"] is document["ok"]
    assert sim["checks"] == json.loads(json.dumps(document["checks"]))
    assert sim["summary"] == json.loads(json.dumps(document["summary"]))


@pytest.mark.parametrize("scenario", list(corpus.SCENARIOS))
def test_recheck_cli_gives_the_verdict_of_the_run(
    scenario: str, runs: dict[str, tuple[int, Path]], tmp_path: Path
) -> None:
    code, history = runs[scenario]
    cli_code, _, stderr = check_cli(history, tmp_path)
    assert (cli_code, stderr) == (code, "")
    sim = json.loads((history.parent / "summary.json").read_text())
    rechecked = json.loads((tmp_path / "summary.json").read_text())
    for key in ("ok", "checks", "summary"):
        assert rechecked[key] == sim[key], key


def test_the_real_split_brain_is_interleaved_reigns(
    runs: dict[str, tuple[int, Path]],
) -> None:
    _, history = runs["agent-pause-no-watchdog"]
    report = run_checks(iter_history(history), source=str(history))
    assert failing(report) == {SPLIT_BRAIN}
    assert "interleaved_reigns" in reasons(report, SPLIT_BRAIN)
    split = report.result(SPLIT_BRAIN)
    assert split is not None
    (interleaved,) = [v for v in split.violations if v.detail["reason"] == "interleaved_reigns"]
    assert interleaved.nodes == ("n1", "n2")
    assert interleaved.detail["timelines"] == {"n1": 1, "n2": 2}
    assert split.metrics["stale_acks"] == interleaved.detail["stale_acks"] > 0
    assert report.summary["split_brain_s"] > 0


# ---------------------------------------------------------------- mutations that change the verdict


@dataclass(frozen=True)
class Verdict:
    scenario: str
    mutation: Callable[[corpus.Lines], Mutated]
    exit: int
    failing: frozenset[str] = frozenset()
    reasons: dict[str, set[str]] = field(default_factory=dict)
    then: Callable[[CheckReport, Mutated], None] | None = None
    options: tuple[str, ...] = ()


def _lost_one(report: CheckReport, m: Mutated) -> None:
    lost = report.result(LOST_WRITES)
    assert lost is not None
    assert lost.metrics["lost_writes"] == 1
    assert lost.metrics["lost_ids"] == list(m.ids)
    assert m.reign is not None
    node, timeline = m.reign
    (by_reign,) = lost.metrics["lost_by_reign"]
    assert (by_reign["node"], by_reign["timeline"]) == (node, timeline)
    assert by_reign["lost_writes"] == 1
    assert by_reign["first_ids"] == list(m.ids)
    assert lost.metrics["lost_by_node"] == {node: 1}
    if not lost.ok:
        (v,) = lost.violations
        assert v.nodes == (node,)
        assert (v.detail["served_by"], v.detail["timeline"]) == (node, timeline)
        assert v.detail["first_ids"] == list(m.ids)


def _stale(report: CheckReport, m: Mutated) -> None:
    split = report.result(SPLIT_BRAIN)
    assert split is not None
    assert m.reign is not None
    (v,) = split.violations
    old_node, old_timeline = m.reign
    new_node, new_timeline = m.info["newer"]
    assert v.nodes == tuple(sorted((old_node, new_node)))
    assert v.detail["stale_acks"] == len(m.ids)
    assert v.detail["stale_first_ids"] == list(m.ids)
    assert v.detail["timelines"] == {old_node: old_timeline, new_node: new_timeline}
    assert [r["node"] for r in v.detail["reigns"]] == [old_node, new_node]
    assert split.metrics["stale_acks"] == len(m.ids)
    assert split.metrics["interleaved_reigns"] == 1
    assert report.summary["stale_acks"] == len(m.ids)
    assert report.summary["split_brain_s"] > 0


def _resumed(report: CheckReport, m: Mutated) -> None:
    split = report.result(SPLIT_BRAIN)
    assert split is not None
    assert m.reign is not None
    (v,) = split.violations
    assert v.detail["stale_acks"] == len(m.ids)
    assert v.detail["stale_first_ids"] == list(m.ids)
    lost = report.result(LOST_WRITES)
    assert lost is not None
    assert lost.metrics["lost_writes"] == m.info["lost"]
    assert [(r["node"], r["timeline"]) for r in lost.metrics["lost_by_reign"]] == [("n2", 2)]


def _honest(report: CheckReport, m: Mutated) -> None:
    split = report.result(SPLIT_BRAIN)
    assert split is not None
    assert split.metrics["stale_acks"] == 0
    assert split.metrics["interleaved_reigns"] == 0
    assert split.metrics["split_brain_s"] == 0


def _two_final(report: CheckReport, m: Mutated) -> None:
    split = report.result(SPLIT_BRAIN)
    assert split is not None
    (v,) = split.violations
    assert m.info["node"] in v.nodes
    assert len(v.nodes) == 2
    assert report.summary["final_primary"] is None


VERDICTS = {
    "drop-id-of-newest-reign": Verdict(
        "switchover",
        corpus.drop_acknowledged(1),
        1,
        frozenset({LOST_WRITES}),
        {LOST_WRITES: {"acknowledged_writes_lost"}},
        _lost_one,
    ),
    "drop-id-of-first-reign": Verdict(
        "switchover",
        corpus.drop_acknowledged(0),
        1,
        frozenset({LOST_WRITES}),
        {LOST_WRITES: {"acknowledged_writes_lost"}},
        _lost_one,
    ),
    "drop-id-within-bound": Verdict(
        "switchover",
        corpus.drop_acknowledged(2),
        0,
        then=_lost_one,
        options=("--set", "max_lost_writes=1"),
    ),
    "drop-id-beyond-bound-zero": Verdict(
        "switchover",
        corpus.drop_acknowledged(2),
        1,
        frozenset({LOST_WRITES}),
        then=_lost_one,
        options=("--set", "max_lost_writes=0"),
    ),
    "stale-ack-after-newer-reign": Verdict(
        "primary-crash",
        corpus.stale_ack(1),
        1,
        frozenset({SPLIT_BRAIN}),
        {SPLIT_BRAIN: {"interleaved_reigns"}},
        _stale,
    ),
    "stale-acks-in-switchover": Verdict(
        "switchover",
        corpus.stale_ack(3),
        1,
        frozenset({SPLIT_BRAIN}),
        {SPLIT_BRAIN: {"interleaved_reigns"}},
        _stale,
    ),
    "resume-old-branch": Verdict(
        "primary-crash",
        corpus.resume_old_branch,
        1,
        frozenset({SPLIT_BRAIN, LOST_WRITES}),
        {SPLIT_BRAIN: {"interleaved_reigns"}, LOST_WRITES: {"acknowledged_writes_lost"}},
        _resumed,
    ),
    "delay-honest-ack-crash": Verdict("primary-crash", corpus.delay_honest_ack, 0, then=_honest),
    "delay-honest-ack-switchover": Verdict("switchover", corpus.delay_honest_ack, 0, then=_honest),
    "delay-honest-ack-partition": Verdict(
        "primary-partition", corpus.delay_honest_ack, 0, then=_honest
    ),
    "two-final-primaries": Verdict(
        "switchover",
        corpus.second_final_primary,
        1,
        frozenset({SPLIT_BRAIN, LOST_WRITES, "eventually_healthy"}),
        {SPLIT_BRAIN: {"two_final_primaries"}, LOST_WRITES: {"no_single_final_primary"}},
        _two_final,
    ),
}


def _set_spec(options: tuple[str, ...]) -> dict[str, Any] | None:
    """The checks `--set max_lost_writes=N` gives, for run_checks."""
    if not options:
        return None
    key, value = options[1].split("=")
    return {
        "no_split_brain": True,
        "no_lost_acknowledged_writes": True,
        "eventually_healthy_s": 60.0,
        key: int(value),
    }


@pytest.mark.parametrize("name", list(VERDICTS))
def test_mutation_verdict(
    name: str, originals: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    case = VERDICTS[name]
    m = case.mutation(list(originals[case.scenario]))
    path = corpus.dump(m.lines, tmp_path / "history.jsonl")
    report = run_checks(iter_history(path), _set_spec(case.options), source=str(path))
    assert report.ok is (case.exit == 0)
    assert failing(report) == case.failing
    for check, expected in case.reasons.items():
        assert reasons(report, check) == expected
    if case.then is not None:
        case.then(report, m)


@pytest.mark.parametrize("name", list(VERDICTS))
def test_mutation_verdict_cli(
    name: str, originals: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    case = VERDICTS[name]
    path = corpus.dump(case.mutation(list(originals[case.scenario])).lines, tmp_path / "h.jsonl")
    code, _stdout, stderr = check_cli(path, tmp_path / "out", *case.options)
    assert (code, stderr) == (case.exit, "")
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["ok"] is (case.exit == 0)


def test_mutations_leave_their_input_alone(originals: dict[str, list[dict[str, Any]]]) -> None:
    before = json.dumps(originals)
    for case in VERDICTS.values():
        case.mutation(originals[case.scenario])
    for scenario, mutation, _ in INTEGRITY.values():
        mutation(originals[scenario])
    assert json.dumps(originals) == before


# ---------------------------------------------------------------- self-contradicting histories

# name -> (scenario, mutation, the error is a HistoryIntegrityError, not just a HistoryError)
INTEGRITY: dict[str, tuple[str, Callable[[corpus.Lines], Mutated], bool]] = {
    "duplicate-ok": ("primary-crash", corpus.duplicate("ok"), True),
    "duplicate-invoke": ("primary-crash", corpus.duplicate("invoke"), True),
    "duplicate-fail": ("switchover", corpus.duplicate("fail"), True),
    "invoke-after-its-ok": ("primary-crash", corpus.invoke_after_its_ok, True),
    "time-backwards": ("switchover", corpus.time_backwards, False),
    "truncated-before-final-reads": ("primary-crash", corpus.drop_tail, True),
    "no-run-end": ("switchover", corpus.drop_run_end, True),
    "line-cut-in-half": ("primary-partition", corpus.cut_line, False),
    "file-ends-mid-line": ("primary-partition", corpus.cut_last_line, False),
    "fail-after-ok": ("primary-crash", corpus.fail_after_ok, True),
    "info-then-ok": ("switchover", corpus.info_then_ok, True),
    "ok-without-invoke": ("agent-pause-no-watchdog", corpus.ok_without_invoke, True),
    "second-final-read": ("switchover", corpus.duplicate_first("final_read"), True),
    "missing-replica-final-read": ("primary-crash", corpus.drop_final_read("replica"), True),
    "missing-primary-final-read": ("switchover", corpus.drop_final_read("primary"), True),
    "no-final-read-at-all": ("primary-partition", corpus.drop_final_reads, True),
    "second-run-start": ("switchover", corpus.second_run_start, True),
    "event-after-run-end": ("primary-crash", corpus.event_after_run_end, True),
    "second-fault-start": ("primary-crash", corpus.duplicate_first("fault", phase="start"), True),
    "second-fault-end": ("primary-crash", corpus.duplicate_first("fault", phase="end"), True),
}


@pytest.mark.parametrize("name", list(INTEGRITY))
def test_contradictory_history_is_a_located_error(
    name: str, originals: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    scenario, mutation, integrity = INTEGRITY[name]
    m = mutation(list(originals[scenario]))
    path = corpus.dump(m.lines, tmp_path / "history.jsonl")
    where = f"{path}:{m.line}: "
    with pytest.raises(HistoryError) as raised:
        run_checks(iter_history(path), source=str(path))
    assert isinstance(raised.value, HistoryIntegrityError) is integrity
    assert str(raised.value).startswith(where)
    message = str(raised.value)[len(where) :]
    for named in m.info.get("names", []):  # the write id, node or fault id at fault
        assert named in message
    code, stdout, stderr = check_cli(path, tmp_path / "out")
    assert code == 2
    assert where in stderr
    assert stdout == ""
    assert not (tmp_path / "out" / "summary.json").exists()
