"""Histories of real simulated runs, and pure mutations of them.

A history is handled as a list of lines: a dict per JSON line, or a str for a raw (broken) line.
Every mutation takes such a list and returns a new one (`Mutated`), never changing its input, with
what the test needs to know about it: the 1-based line a located error must name, and the ids or
reign it concerns.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgha.cli import main

ROOT = Path(__file__).resolve().parents[2]

# scenario -> the exit code of `pgha sim run` (and of `pgha check` on the untouched history)
SCENARIOS = {
    "primary-crash": 0,  # failover, nothing lost
    "switchover": 0,  # two switchovers, three reigns, no loss bound
    "primary-partition": 0,  # asynchronous loss within the bound
    "agent-pause-no-watchdog": 1,  # a real split-brain
}

Line = dict[str, Any] | str
Lines = list[Line]


@dataclass(frozen=True)
class Mutated:
    lines: Lines
    line: int | None = None  # the line a located error must name (1-based)
    ids: tuple[int, ...] = ()
    reign: tuple[str, int] | None = None  # (node, timeline) concerned
    info: dict[str, Any] = field(default_factory=dict)


Mutation = Callable[[Lines], Mutated]


# ---------------------------------------------------------------- producing and storing runs


def simulate(scenario: str, out: Path) -> tuple[int, Path]:
    """Run a bundled scenario into `out`; its exit code and history. With PGHA_CHECKS_CORPUS set
    (a directory: mutation testing), a run found there is reused instead of simulated again."""
    cache = os.environ.get("PGHA_CHECKS_CORPUS")
    if cache:
        out = Path(cache) / scenario
        code_file = out / "exit_code"
        if code_file.is_file():
            return int(code_file.read_text()), out / "history.jsonl"
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["sim", "run", str(ROOT / "scenarios" / f"{scenario}.yaml"), "--out", str(out)])
    if cache:
        (out / "exit_code").write_text(str(code))
    return code, out / "history.jsonl"


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(text) for text in path.read_text().splitlines() if text.strip()]


def dump(lines: Lines, path: Path) -> Path:
    texts = [
        line if isinstance(line, str) else json.dumps(line, separators=(",", ":"), sort_keys=True)
        for line in lines
    ]
    path.write_text("".join(f"{text}\n" for text in texts))
    return path


# ---------------------------------------------------------------- reading a list of lines


def _d(line: Line) -> dict[str, Any]:
    assert isinstance(line, dict)
    return line


def is_kind(line: Line, kind: str) -> bool:
    return isinstance(line, dict) and line["kind"] == kind


def find(lines: Lines, kind: str, **match: Any) -> list[int]:
    """Indices of the lines of `kind` whose fields equal `match`."""
    return [
        i
        for i, line in enumerate(lines)
        if is_kind(line, kind) and all(_d(line).get(k) == v for k, v in match.items())
    ]


def acks(lines: Lines) -> list[int]:
    return [i for i in find(lines, "ok") if _d(lines[i]).get("op", "write") == "write"]


def reigns(lines: Lines) -> list[tuple[str, int]]:
    """(node, timeline) of every reign, in the order of its first acknowledgement."""
    seen: dict[tuple[str, int], None] = {}
    for i in acks(lines):
        d = _d(lines[i])
        seen.setdefault((d["served_by"], d["timeline"]), None)
    return list(seen)


def reign_acks(lines: Lines, reign: tuple[str, int]) -> list[int]:
    return [
        i for i in acks(lines) if (_d(lines[i])["served_by"], _d(lines[i])["timeline"]) == reign
    ]


def invoke_of(lines: Lines, write_id: int) -> int:
    (i,) = find(lines, "invoke", id=write_id)
    return i


def final_primary(lines: Lines) -> int:
    (i,) = find(lines, "final_read", role="primary")
    return i


def next_id(lines: Lines) -> int:
    return 1 + max(_d(lines[i])["id"] for i in find(lines, "invoke"))


def insert_at_time(lines: Lines, line: dict[str, Any]) -> int:
    """Insert `line` after every line not later than it; its index."""
    at = max((i + 1 for i, other in enumerate(lines) if _d(other)["t"] <= line["t"]), default=0)
    lines.insert(at, line)
    return at


def _middle(indices: list[int]) -> int:
    return indices[len(indices) // 2]


def _write(t: float, kind: str, write_id: int, **fields: Any) -> dict[str, Any]:
    return {"t": round(t, 6), "kind": kind, "node": "c1", "op": "write", "id": write_id, **fields}


def _ok(t: float, write_id: int, reign: tuple[str, int]) -> dict[str, Any]:
    return _write(t, "ok", write_id, served_by=reign[0], timeline=reign[1])


# ---------------------------------------------------------------- verdict mutations


def drop_acknowledged(reign_index: int) -> Mutation:
    """Drop one id acknowledged by the `reign_index`-th reign from the final primary's read."""

    def mutate(lines: Lines) -> Mutated:
        reign = reigns(lines)[reign_index]
        victim = _d(lines[_middle(reign_acks(lines, reign))])["id"]
        out = list(lines)
        k = final_primary(out)
        out[k] = {**_d(out[k]), "ids": [i for i in _d(out[k])["ids"] if i != victim]}
        return Mutated(out, ids=(victim,), reign=reign)

    return mutate


def stale_ack(count: int = 1, *, survives: bool = True) -> Mutation:
    """Writes sent after the second reign's first ok, acknowledged by the first reign's node on
    its old timeline (in the final data when `survives`)."""

    def mutate(lines: Lines) -> Mutated:
        old, new = reigns(lines)[:2]
        t0 = _d(lines[reign_acks(lines, new)[0]])["t"]
        out, first = list(lines), next_id(lines)
        ids = tuple(range(first, first + count))
        for n, write_id in enumerate(ids):
            t = t0 + 0.001 + 0.01 * n
            insert_at_time(out, _write(t, "invoke", write_id, target="haproxy"))
            insert_at_time(out, _ok(t + 0.002, write_id, old))
        if survives:
            k = final_primary(out)
            out[k] = {**_d(out[k]), "ids": sorted([*_d(out[k])["ids"], *ids])}
        return Mutated(out, ids=ids, reign=old, info={"newer": new})

    return mutate


def resume_old_branch(lines: Lines, count: int = 5) -> Mutated:
    """The first reign's node acknowledges `count` writes after every other reign, and the final
    data is its branch: every id acknowledged by a later reign is gone from the final read."""
    old = reigns(lines)[0]
    later = {_d(lines[i])["id"] for i in acks(lines)} - {
        _d(lines[i])["id"] for i in reign_acks(lines, old)
    }
    t0 = _d(lines[acks(lines)[-1]])["t"] + 0.5
    out, first = list(lines), next_id(lines)
    ids = tuple(range(first, first + count))
    for n, write_id in enumerate(ids):
        t = t0 + 0.1 * n
        insert_at_time(out, _write(t, "invoke", write_id, target="haproxy"))
        insert_at_time(out, _ok(t + 0.01, write_id, old))
    k = final_primary(out)
    kept = [i for i in _d(out[k])["ids"] if i not in later]
    out[k] = {**_d(out[k]), "ids": sorted([*kept, *ids])}
    return Mutated(out, ids=ids, reign=old, info={"lost": len(later)})


def delay_honest_ack(lines: Lines) -> Mutated:
    """Move the `ok` of the first reign's last write to just after the second reign's first ok."""
    old, new = reigns(lines)[:2]
    last = reign_acks(lines, old)[-1]
    t0 = _d(lines[reign_acks(lines, new)[0]])["t"]
    out = list(lines)
    moved = {**_d(out.pop(last)), "t": round(t0 + 0.000001, 6)}
    at = insert_at_time(out, moved)
    return Mutated(out, line=at + 1, ids=(moved["id"],), reign=old)


def second_final_primary(lines: Lines) -> Mutated:
    out = list(lines)
    k = next(i for i in find(out, "final_read") if _d(out[i])["role"] != "primary")
    out[k] = {**_d(out[k]), "role": "primary"}
    return Mutated(out, info={"node": _d(out[k])["node"]})


# ---------------------------------------------------------------- integrity mutations


def duplicate(kind: str) -> Mutation:
    """Repeat a line of `kind` (the middle one) right after itself."""

    def mutate(lines: Lines) -> Mutated:
        k = _middle(acks(lines) if kind == "ok" else find(lines, kind))
        copy = [*lines[: k + 1], lines[k], *lines[k + 1 :]]
        return Mutated(copy, line=k + 2, info={"names": [str(_d(lines[k])["id"])]})

    return mutate


def duplicate_first(kind: str, **match: Any) -> Mutation:
    def mutate(lines: Lines) -> Mutated:
        k = find(lines, kind, **match)[0]
        name = str(_d(lines[k])["node"] if kind == "final_read" else _d(lines[k])["id"])
        copy = [*lines[: k + 1], lines[k], *lines[k + 1 :]]
        return Mutated(copy, line=k + 2, info={"names": [name]})

    return mutate


def invoke_after_its_ok(lines: Lines) -> Mutated:
    """An ok at its invoke's time, written before the invoke."""
    j = _middle(acks(lines))
    i = invoke_of(lines, _d(lines[j])["id"])
    ok = {**_d(lines[j]), "t": _d(lines[i])["t"]}
    out = [line for n, line in enumerate(lines) if n != j]
    out[i:i] = [ok]  # the invoke now follows it
    return Mutated(out, line=i + 1, info={"names": [str(ok["id"])]})


def time_backwards(lines: Lines) -> Mutated:
    """Swap an ok with the next line, which is later."""
    j = next(j for j in acks(lines)[10:] if _d(lines[j + 1])["t"] > _d(lines[j])["t"])
    out = list(lines)
    out[j], out[j + 1] = out[j + 1], out[j]
    return Mutated(out, line=j + 2)


def drop_tail(lines: Lines) -> Mutated:
    """The history stops before its final reads (and run_end)."""
    k = find(lines, "final_read")[0]
    return Mutated(lines[:k], line=k)


def drop_run_end(lines: Lines) -> Mutated:
    assert is_kind(lines[-1], "run_end")
    return Mutated(lines[:-1], line=len(lines) - 1)


def _half(line: Line) -> str:
    text = json.dumps(line, separators=(",", ":"), sort_keys=True)
    return text[: len(text) // 2]


def cut_line(lines: Lines) -> Mutated:
    """A line cut in half in the middle of the file."""
    k = _middle(acks(lines))
    return Mutated([*lines[:k], _half(lines[k]), *lines[k + 1 :]], line=k + 1)


def cut_last_line(lines: Lines) -> Mutated:
    """The file stops in the middle of a line (a writer killed mid-write)."""
    k = _middle(acks(lines))
    return Mutated([*lines[:k], _half(lines[k])], line=k + 1)


def fail_after_ok(lines: Lines) -> Mutated:
    j = _middle(acks(lines))
    fail = _write(_d(lines[j])["t"], "fail", _d(lines[j])["id"], error="late")
    return Mutated(
        [*lines[: j + 1], fail, *lines[j + 1 :]], line=j + 2, info={"names": [str(fail["id"])]}
    )


def info_then_ok(lines: Lines) -> Mutated:
    j = _middle(acks(lines))
    info = _write(_d(lines[j])["t"], "info", _d(lines[j])["id"], error="timeout")
    return Mutated([*lines[:j], info, *lines[j:]], line=j + 2, info={"names": [str(info["id"])]})


def ok_without_invoke(lines: Lines) -> Mutated:
    j = _middle(acks(lines))
    d = _d(lines[j])
    orphan = _ok(d["t"], next_id(lines), (d["served_by"], d["timeline"]))
    names = [str(orphan["id"])]
    return Mutated([*lines[: j + 1], orphan, *lines[j + 1 :]], line=j + 2, info={"names": names})


def drop_final_read(role: str) -> Mutation:
    def mutate(lines: Lines) -> Mutated:
        k = find(lines, "final_read", role=role)[0]
        out = [line for n, line in enumerate(lines) if n != k]
        return Mutated(out, line=len(out), info={"names": [_d(lines[k])["node"]]})

    return mutate


def drop_final_reads(lines: Lines) -> Mutated:
    out = [line for line in lines if not is_kind(line, "final_read")]
    return Mutated(out, line=len(out))


def second_run_start(lines: Lines) -> Mutated:
    return Mutated([lines[0], lines[0], *lines[1:]], line=2)


def event_after_run_end(lines: Lines) -> Mutated:
    extra = {"t": _d(lines[-1])["t"], "kind": "writable", "node": "n1", "writable": False}
    return Mutated([*lines, extra], line=len(lines) + 1)
