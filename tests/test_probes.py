"""The polling helper of the real-process tests (tests/probes.py), on fast fake probes."""

from __future__ import annotations

import itertools
import os
import subprocess
import time

import pytest

from tests.probes import holds_for, process_gone, wait_for


def test_wait_for_returns_the_first_truthy_value() -> None:
    answers = iter([None, 0, "", "there", "later"])
    assert wait_for("an answer", lambda: next(answers), 5, every_s=0.001) == "there"


def test_wait_for_names_what_how_long_and_the_last_value_at_the_timeout() -> None:
    calls = itertools.count(1)
    with pytest.raises(AssertionError) as failed:
        wait_for("the moon", lambda: [] if next(calls) else None, 0.05, every_s=0.01)
    message = str(failed.value)
    assert "for the moon" in message
    assert "limit 0.05 s" in message
    assert "last value: []" in message


def test_wait_for_probes_once_more_at_the_deadline() -> None:
    started = time.monotonic()
    seen: list[float] = []

    def probe() -> bool:
        seen.append(time.monotonic() - started)
        return False

    with pytest.raises(AssertionError):
        wait_for("nothing", probe, 0.05, every_s=1.0)
    assert len(seen) == 2
    assert seen[-1] >= 0.05


def test_wait_for_counts_ignored_errors_as_not_yet_and_shows_the_last() -> None:
    answers = iter([KeyError("a"), KeyError("b"), "ok"])

    def probe() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert wait_for("ok", probe, 5, every_s=0.001, ignoring=(KeyError,)) == "ok"

    def failing() -> None:
        raise KeyError("still starting")

    with pytest.raises(AssertionError, match=r"last error: KeyError\('still starting'\)"):
        wait_for("a server", failing, 0.02, every_s=0.01, ignoring=(KeyError,))


def test_wait_for_lets_other_errors_and_asserts_in_the_probe_escape_at_once() -> None:
    def probe() -> bool:
        raise AssertionError("a dead agent")

    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"^a dead agent$"):
        wait_for("anything", probe, 10, ignoring=(KeyError,))
    assert time.monotonic() - started < 1


def test_wait_for_appends_details_on_timeout() -> None:
    with pytest.raises(AssertionError, match="logs of the processes"):
        wait_for("x", lambda: False, 0.01, details=lambda: "logs of the processes")


def test_holds_for_checks_throughout_and_last_at_the_end() -> None:
    started = time.monotonic()
    seen: list[float] = []

    def probe() -> bool:
        seen.append(time.monotonic() - started)
        return True

    holds_for("always", probe, 0.05, every_s=0.02)
    assert seen[0] < 0.02
    assert seen[-1] >= 0.05
    assert len(seen) >= 3


def test_holds_for_fails_at_the_first_falsy_value() -> None:
    answers = iter([True, True, 0])
    with pytest.raises(AssertionError, match=r"one primary stopped holding .* value: 0"):
        holds_for("one primary", lambda: next(answers), 5, every_s=0.001)


def test_process_gone() -> None:
    assert not process_gone(os.getpid())
    child = subprocess.Popen(["true"])
    wait_for("the exited child", lambda: process_gone(child.pid), 5, every_s=0.01)  # a zombie
    child.wait()
    assert process_gone(child.pid)
