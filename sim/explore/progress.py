"""The explorer's progress line: schedules run, failures found, schedules per second."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    """Schedules run, failures found, schedules per second: one updating line on a terminal,
    a plain line every few seconds otherwise."""

    def __init__(
        self,
        stream: TextIO | None,
        label: str,
        *,
        every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.label = label
        self.clock = clock
        self.started = clock()
        self.tty = bool(stream is not None and stream.isatty())
        self.every_s = 0.1 if self.tty else every_s
        self._last = self.started
        self.runs = 0
        self.failures = 0

    def line(self) -> str:
        elapsed = self.clock() - self.started
        rate = self.runs / elapsed if elapsed > 0 else 0.0
        return (
            f"{self.label}: {self.runs} schedules, {self.failures} failures, "
            f"{rate:.1f} schedules/s, {elapsed:.0f} s"
        )

    def update(self, runs: int, failures: int) -> None:
        self.runs, self.failures = runs, failures
        now = self.clock()
        if self.stream is None or now - self._last < self.every_s:
            return
        self._last = now
        self._show()

    def _show(self) -> None:
        assert self.stream is not None
        if self.tty:
            self.stream.write("\r\033[K" + self.line())
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line of its own (after the progress line)."""
        if self.stream is not None:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.stream is None:
            return
        self._show()
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()
