"""Report files (summary.json, junit.xml, report.html) and the timeline figure."""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from matplotlib.figure import Figure

from pgha.checks import collect_facts, run_checks
from pgha.history import HistoryWriter
from pgha.report import (
    bin_width_s,
    junit_xml,
    timeline_figure,
    write_counts,
    write_report,
)
from pgha.scenario import ChecksSpec
from tests.history.histories import Run, clean_failover, split_brain, steady

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _history_file(run: Run, path: Path) -> Path:
    with HistoryWriter(path) as writer:
        for e in run.events():
            writer.write_event(e)
    return path


def _split_brain_with_extras() -> Run:
    run, _ = split_brain()
    run.ev(0.0, "lock", "n1", event="acquired", deadline=30.0)
    run.ev(10.0, "lock", "n1", event="renewed", deadline=40.0)
    run.ev(25.0, "lock", "n1", event="lost")
    run.ev(19.0, "lock", "n2", event="acquired")  # held until the end
    run.ev(19.5, "lock", "n3", event="released")  # never held: ignored
    run.ev(19.0, "lock", "etcd1", event="expired")
    run.ev(5.0, "decision", "n1", reason="renew_lock", role="primary", actions=[])
    run.ev(15.0, "decision", "n1", reason="renew_lock", role="primary", actions=[])
    run.ev(19.0, "decision", "n2", reason="promote", role="promoting", actions=["Promote"])
    run.ev(19.0, "decision", "etcd1", reason="x", role="x", actions=[])
    run.ev(21.0, "fault", phase="skipped", fault="latency", targets=["n3"], id=7, error="no netem")
    run.fault(22.0, 23.0, "etcd", ["etcd1"], what="kill")
    run.writes([45.0], "n4")  # a node outside the declared lanes
    run.ev(41.0, "lock", "n4", event="acquired").writable(41.0, "n4", True)
    run.writable(41.5, "n4", False)
    return run


def test_split_brain_report_files(tmp_path: Path) -> None:
    history = _history_file(_split_brain_with_extras(), tmp_path / "history.jsonl")
    files = write_report(history, None, tmp_path / "out", show_decisions=True)  # checks: history's

    summary = json.loads(files.summary_json.read_text())
    assert summary["verdict"] == "fail"
    assert summary["ok"] is False
    assert summary["history"] == str(history)
    assert summary["run"]["scenario"] == "synthetic"
    names = [c["name"] for c in summary["checks"]]
    assert names == ["no_split_brain", "no_lost_acknowledged_writes"]
    assert summary["checks"][0]["violations"][0]["nodes"] == ["n1", "n2"]
    assert summary["summary"]["dual_writable_s"] == 10.5  # n1+n2 for 10 s, n2+n4 for 0.5 s
    assert list(summary) == sorted(summary)  # stable key order

    root = ET.parse(files.junit_xml).getroot()
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.get("name") == "pgha.sim.synthetic"
    assert (suite.get("tests"), suite.get("failures")) == ("2", "2")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == names
    failure = cases[0].find("failure")
    assert failure is not None
    assert "2 violation(s)" in (failure.get("message") or "")
    assert "interleaved_reigns" in (failure.text or "")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props == {"scenario": "synthetic", "seed": "7", "world": "sim"}

    page = files.report_html.read_text()
    match = re.search(r'<img alt="timeline" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', page)
    assert match is not None
    assert base64.b64decode(match.group(1)).startswith(PNG_MAGIC)
    assert "FAIL" in page
    assert "latency" in page
    assert "skipped: no netem" in page
    assert "http://" not in page
    assert "https://" not in page


def test_passing_report_from_events(tmp_path: Path) -> None:
    run, _ = clean_failover()
    events = run.events()
    report = run_checks(events, ChecksSpec(failover_within_s=15.0, eventually_healthy_s=5.0))
    files = write_report(events, report, tmp_path)
    summary = json.loads(files.summary_json.read_text())
    assert summary["verdict"] == "pass"
    assert summary["history"] is None
    assert summary["summary"]["failover_times_s"] == [11.71]
    suite = ET.parse(files.junit_xml).getroot().find("testsuite")
    assert suite is not None
    assert suite.get("failures") == "0"
    assert all(c.find("failure") is None for c in suite.findall("testcase"))
    page = files.report_html.read_text()
    assert '<span class="pass">pass</span>' in page
    assert "<td>none</td>" in page


def test_report_without_faults_or_run_start(tmp_path: Path) -> None:
    run = steady(Run())
    run.writes([1.0, 2.0], "n1")
    events = [e for e in run.events() if e.kind != "run_start"]
    nothing = ChecksSpec(no_split_brain=False, no_lost_acknowledged_writes=False)
    files = write_report(events, run_checks(events, nothing), tmp_path)
    assert "No faults." in files.report_html.read_text()
    suite = ET.parse(files.junit_xml).getroot().find("testsuite")
    assert suite is not None
    assert suite.get("name") == "pgha.run.scenario"
    assert suite.get("tests") == "0"


def test_a_check_failing_without_violations_still_reports(tmp_path: Path) -> None:
    from pgha.checks import CheckReport, CheckResult

    report = CheckReport((CheckResult("custom", False),))
    root = ET.fromstring(junit_xml(collect_facts([]), report))
    failure = root.find("testsuite/testcase/failure")
    assert failure is not None
    assert failure.get("message") == "0 violation(s): "


def test_timeline_figure_is_a_figure_with_one_lane_per_node() -> None:
    run = _split_brain_with_extras()
    fig = timeline_figure(run.events(), show_decisions=True)
    assert isinstance(fig, Figure)
    [ax] = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["n1", "n2", "n3"]
    texts = [t.get_text() for t in ax.texts]
    assert "failover 10.0 s" in texts
    assert "promote" in texts
    assert "renew_lock" in texts
    assert texts.count("renew_lock") == 1  # only where the reason changed
    zoomed = timeline_figure(run.events(), t_range=(15.0, 35.0))
    assert zoomed.axes[0].get_xlim() == (15.0, 35.0)
    assert not any(t.get_text() == "promote" for t in zoomed.axes[0].texts)


def test_no_failover_is_written_on_the_figure() -> None:
    run = steady(Run())
    run.writes([1.0], "n1")
    run.fault(5.0, None, "kill", ["n1"])
    run.role(5.0, "n1", "crashed").role(6.0, "n2", "weird").ev(20.0, "run_end")
    texts = [t.get_text() for t in timeline_figure(run.events()).axes[0].texts]
    assert "no failover" in texts


def test_lanes_without_roles_and_kept_serving_faults() -> None:
    run = Run()
    run.role(0.0, "n1", "primary").role(0.0, "n2", "replica")  # n3 never reports
    run.fault(5.0, 6.0, "pause", ["n1"])
    run.writes([7.0], "n1")
    fig = timeline_figure(run.events())
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["n1", "n2", "n3"]
    assert not any("failover" in t.get_text() for t in fig.axes[0].texts)


def test_write_counts_bins() -> None:
    assert bin_width_s(60.0) == 1.0
    assert bin_width_s(86_400.0) == 144.0
    run = steady(Run())
    run.writes([0.1, 0.5, 1.2, 9.0], "n1")
    run.writes([0.7], "n2")
    width, counts = write_counts(collect_facts(run.events()), 0.0, 5.0)
    assert width == 1.0
    assert counts == {"n1": {0: 2, 1: 1}, "n2": {0: 1}}
