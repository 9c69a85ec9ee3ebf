"""Polling for the tests that run real processes (tests/agent, tests/chaos): the one helper.

A test that waits for something to happen asks for the thing itself, again and again, instead of
sleeping a fixed time and hoping:

    primary = wait_for("a primary", cluster.primary, 60)
    wait_for("the row on n2", lambda: cluster.ids("n2") == {1}, 10, ignoring=(psycopg.Error,))

and a test whose point is that nothing happens during a period checks that throughout it:

    holds_for("one primary, every agent alive", lambda: sane(cluster), 6, every_s=0.5)

Both fail with an AssertionError that says what was awaited (or held), for how long, and the last
value or exception the probe gave. `process_gone(pid)` is a ready-made probe for a process that must
exit. A fixed `time.sleep` in a test is only for a period that is the point of the test (a pace of
kicks or writes, a program that must take long), with a comment saying so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

SHOWN_CHARS = 300  # of the last value in a failure message


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout_s: float,
    *,
    every_s: float = 0.1,
    ignoring: tuple[type[BaseException], ...] = (),
    details: Callable[[], str] | None = None,
) -> T:
    """Call `probe` every `every_s` until it returns something truthy, and return that value.

    The probe is called at once and, if the wait lasts that long, once more at `timeout_s`. An
    exception of a type in `ignoring` counts as "not yet" (say psycopg.Error while a server starts);
    any other exception, an assert inside the probe included, escapes at once. At the timeout this
    raises AssertionError naming `what`, the time waited and the last value or exception seen,
    followed by `details()` when given (logs of the processes under test).
    """
    started = time.monotonic()
    deadline = started + timeout_s
    while True:
        try:
            value = probe()
        except ignoring as error:
            last = f"last error: {error!r}"
        else:
            if value:
                return value
            last = f"last value: {_shown(value)}"
        now = time.monotonic()
        if now >= deadline:
            message = f"waited {now - started:.1f} s (limit {timeout_s:g} s) for {what}; {last}"
            raise AssertionError(message if details is None else f"{message}\n{details()}")
        time.sleep(min(every_s, deadline - now))  # the polling tick


def holds_for(
    what: str,
    probe: Callable[[], object],
    duration_s: float,
    *,
    every_s: float = 0.1,
    details: Callable[[], str] | None = None,
) -> None:
    """Call `probe` every `every_s` for `duration_s`: it must return something truthy every time.

    For a test whose point is that nothing happens during a period (or that something keeps
    working): the probe is called at once, every `every_s`, and last at the end of the period, so
    this is at least as strict as sleeping `duration_s` and checking once. The first falsy value
    raises AssertionError naming `what`, when it was seen and the value; exceptions escape.
    """
    started = time.monotonic()
    end = started + duration_s
    while True:
        seen_s = time.monotonic() - started
        value = probe()
        if not value:
            message = (
                f"{what} stopped holding {seen_s:.1f} s into {duration_s:g} s; "
                f"value: {_shown(value)}"
            )
            raise AssertionError(message if details is None else f"{message}\n{details()}")
        now = time.monotonic()
        if now >= end:
            return
        time.sleep(min(every_s, end - now))  # the pace of the checks: the period is the point


def process_gone(pid: int) -> bool:
    """A probe: process `pid` no longer runs (no such process, or a zombie not yet reaped); by then
    the kernel has closed its files and sockets."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."
