# The report page: self-contained HTML (the timeline PNG inline) with the verdict, every check
# with its violations and metrics, the split-brain windows, the operator requests and the faults.
"""The HTML page of a run's report."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable, Sequence
from typing import Any

from pgha.checks import SPLIT_BRAIN, CheckReport, RunFacts

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
.pass { color: #1a7f37; font-weight: bold; }
.fail { color: #d6001c; font-weight: bold; }
pre { background: #f7f7f7; padding: 6px; white-space: pre-wrap; font-size: 12px; margin: 0; }
img { max-width: 100%; }
"""


def _e(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return html.escape(text)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _ok_cell(ok: bool) -> str:
    return '<span class="pass">pass</span>' if ok else '<span class="fail">FAIL</span>'


def _checks_html(report: CheckReport) -> str:
    rows = []
    for r in report.results:
        violations = "".join(
            f"<pre>t={v.t_start:.3f}..{v.t_end:.3f} nodes={_e(list(v.nodes))}\n"
            f"{_e(dict(v.detail))}</pre>"
            for v in r.violations
        )
        rows.append(
            [_e(r.name), _ok_cell(r.ok), violations or "none", f"<pre>{_e(dict(r.metrics))}</pre>"]
        )
    return _table(["check", "result", "violations", "metrics"], rows)


def _metrics_html(report: CheckReport) -> str:
    return _table(["metric", "value"], ([_e(k), _e(v)] for k, v in sorted(report.summary.items())))


def _faults_html(facts: RunFacts) -> str:
    rows = [
        [
            str(f.id),
            _e(f.kind),
            _e(", ".join(f.targets)),
            f"{f.t_start:.3f}",
            "" if f.t_end is None else f"{f.t_end:.3f}",
            _e(f.label),
            _e(dict(f.params)),
            "skipped: " + _e(f.error or "") if f.skipped else "applied",
        ]
        for f in facts.faults
    ]
    header = ["id", "fault", "targets", "start (s)", "end (s)", "label", "params", "status"]
    return _table(header, rows) if rows else "<p>No faults.</p>"


def _split_brain_html(report: CheckReport) -> str:
    result = report.result(SPLIT_BRAIN)
    if result is None:
        return "<p>Not checked.</p>"
    rows = [
        [
            f"{v.t_start:.3f}",
            f"{v.t_end:.3f}",
            _e(", ".join(v.nodes)),
            _e(v.detail.get("timelines")),
            _e(v.detail["reason"]),
            _e(v.detail.get("stale_acks", "")),
            _e(v.detail.get("summary", "")),
        ]
        for v in result.violations
    ]
    total = f"<p>{result.metrics['split_brain_s']:.3f} s in all.</p>"
    header = ["start (s)", "end (s)", "nodes", "timelines", "reason", "stale acks", "what"]
    return _table(header, rows) + total if rows else "<p>None.</p>"


def _outcome_class(succeeded: bool) -> str:
    return "pass" if succeeded else "fail"


def _operators_html(facts: RunFacts) -> str:
    rows = [
        [
            f"{r.t:.3f}",
            _e(r.request),
            "" if r.fault_id is None else str(r.fault_id),
            _e(r.leader or ""),
            _e(r.candidate or ""),
            f'<span class="{_outcome_class(r.succeeded)}">{_e(r.outcome)}</span>',
            "" if r.status is None else str(r.status),
            _e(r.error or ""),
        ]
        for r in facts.operator_requests
    ]
    header = ["t (s)", "request", "fault", "leader", "candidate", "outcome", "HTTP", "error"]
    return _table(header, rows) if rows else "<p>None.</p>"


def report_html(facts: RunFacts, report: CheckReport, png: bytes) -> str:
    """The self-contained HTML page: verdict, checks, metrics, faults, timeline (PNG inline)."""
    title = _e(f"pgha report: {facts.run.get('scenario', 'run')}")
    image = base64.b64encode(png).decode("ascii")
    run = {k: facts.run[k] for k in ("scenario", "seed", "world", "duration") if k in facts.run}
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{title}</title><style>{_CSS}</style></head><body>",
            f"<h1>{title}</h1>",
            f"<p>Verdict: {_ok_cell(report.ok)} &nbsp; <code>{_e(run)}</code></p>",
            "<h2>Timeline</h2>",
            f'<img alt="timeline" src="data:image/png;base64,{image}">',
            "<h2>Checks</h2>",
            _checks_html(report),
            "<h2>Split-brain windows</h2>",
            _split_brain_html(report),
            "<h2>Operator requests</h2>",
            _operators_html(facts),
            "<h2>Metrics</h2>",
            _metrics_html(report),
            "<h2>Faults</h2>",
            _faults_html(facts),
            "</body></html>",
            "",
        ]
    )
