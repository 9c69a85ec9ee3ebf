# What every `pgha ctl` command shares: the one error type that carries an exit code, and the
# console (output streams, prompts and confirmations). Safety rule: nothing that changes the
# cluster runs on a guess: a prompt or a confirmation is only ever answered by a person at a
# terminal; without one, a missing value or a missing `--force` is a usage error (exit 2), so a
# script can never switch over a cluster because a prompt read the next line of its input.
"""Errors with exit codes, and the console (streams, prompts, confirmations) of `pgha ctl`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TextIO

EXIT_OK = 0
EXIT_FAILED = 1  # the operation failed or was refused (by the cluster or by the operator)
EXIT_USAGE = 2  # bad usage or configuration


class CtlError(Exception):
    """A command could not do its job: `message` for the operator, `code` the exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def usage_error(message: str) -> CtlError:
    """A CtlError with exit code 2 (bad usage or configuration)."""
    return CtlError(message, EXIT_USAGE)


@dataclass(frozen=True, slots=True, kw_only=True)
class Console:
    """Where a command writes, and how it asks. `interactive`: stdin is a terminal."""

    out: TextIO
    err: TextIO
    stdin: TextIO
    interactive: bool

    def echo(self, text: str = "") -> None:
        """A line (or several) on stdout."""
        print(text, file=self.out, flush=True)

    def warn(self, text: str) -> None:
        """A line on stderr."""
        print(text, file=self.err, flush=True)

    def _read(self, question: str) -> str:
        print(question, end="", file=self.out, flush=True)
        line = self.stdin.readline()
        if not line:
            raise CtlError("aborted: no answer (end of input)")
        return line.strip()

    def ask(self, question: str, default: str = "", *, option: str) -> str:
        """Ask for a value at the terminal (`default` when the answer is empty).

        Raises:
            CtlError: exit 2 naming `option` when stdin is not a terminal.
        """
        if not self.interactive:
            raise usage_error(f"stdin is not a terminal: give {option} (and --force)")
        shown = f" [{default}]" if default else ""
        return self._read(f"{question}{shown}: ") or default

    def confirm(self, question: str, *, force: bool) -> None:
        """Go on when `force` or the person answers yes.

        Raises:
            CtlError: exit 1 when the answer is no; exit 2 when stdin is not a terminal and
                `force` was not given.
        """
        if force:
            return
        if not self.interactive:
            raise usage_error("stdin is not a terminal: pass --force to go on without confirmation")
        answer = self._read(f"{question} [y/N]: ").lower()
        if answer not in ("y", "yes"):
            raise CtlError("aborted")
