# summary.json and junit.xml: what CI and scripts read. Nothing here needs matplotlib, so
# `pgha check` writes them on a host without the `sim` extra (the HTML report needs it).
"""The machine-readable report files of a run: summary.json and junit.xml."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from pgha.checks import CheckReport


def verdict(report: CheckReport) -> str:
    return "pass" if report.ok else "fail"


def summary_of(
    run: Mapping[str, Any], report: CheckReport, *, history_name: str | None = None
) -> dict[str, Any]:
    """What summary.json holds: verdict, run, per-check results, summary metrics."""
    run_keys = ("scenario", "seed", "world", "nodes", "etcd", "duration", "checks")
    return {
        "verdict": verdict(report),
        "ok": report.ok,
        "history": history_name,
        "run": {k: run[k] for k in run_keys if k in run},
        "checks_applied": asdict(report.spec),  # what was checked (`pgha check --set` may differ)
        "checks": [r.to_dict() for r in report.results],
        "summary": dict(report.summary),
    }


def _suite_name(run: Mapping[str, Any]) -> str:
    return f"pgha.{run.get('world', 'run')}.{run.get('scenario', 'scenario')}"


def junit_xml_of(run: Mapping[str, Any], report: CheckReport) -> bytes:
    """One testsuite, one testcase per check, a failure element listing the violations."""
    failures = sum(1 for r in report.results if not r.ok)
    suite_name = _suite_name(run)
    counts = {"tests": str(len(report.results)), "failures": str(failures), "errors": "0"}
    root = ET.Element("testsuites", {"name": "pgha", "time": "0", **counts})
    suite = ET.SubElement(
        root, "testsuite", {"name": suite_name, "skipped": "0", "time": "0", **counts}
    )
    props = ET.SubElement(suite, "properties")
    for key in ("scenario", "seed", "world"):
        if key in run:
            ET.SubElement(props, "property", name=key, value=str(run[key]))
    for r in report.results:
        case = ET.SubElement(suite, "testcase", classname=suite_name, name=r.name, time="0")
        if not r.ok:
            first = r.violations[0].detail.get("summary", "") if r.violations else ""
            failure = ET.SubElement(
                case, "failure", message=f"{len(r.violations)} violation(s): {first}", type=r.name
            )
            failure.text = "\n".join(json.dumps(v.to_dict(), sort_keys=True) for v in r.violations)
    out = ET.SubElement(suite, "system-out")
    out.text = json.dumps(dict(report.summary), sort_keys=True)
    ET.indent(root)
    buffer = io.BytesIO()
    ET.ElementTree(root).write(buffer, encoding="utf-8", xml_declaration=True)
    return buffer.getvalue() + b"\n"
