"""The one error a scenario can raise, and the internal problem it is built from."""

from __future__ import annotations

import functools
from typing import Any


class ScenarioError(ValueError):
    """A scenario file is invalid.

    Attributes:
        path: the file (or the `source` given to `parse_scenario`).
        line: 1-based line of the offending YAML node.
        field: dotted path of the offending value, e.g. `faults[2].partition.isolate`.
        expected: what was expected there.
        got: a short description of what was found.
        hint: a suggestion ("did you mean 'isolate'?"), or "".
    """

    def __init__(
        self, *, path: str, line: int, field: str, expected: str, got: str, hint: str = ""
    ) -> None:
        message = f"{path}:{line}: {field}: expected {expected}, got {got}"
        super().__init__(f"{message}; {hint}" if hint else message)
        self.path = path
        self.line = line
        self.field = field
        self.expected = expected
        self.got = got
        self.hint = hint

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments: rebuild through a partial so the error crosses processes.
        fields = {k: getattr(self, k) for k in ("path", "line", "field", "expected", "got", "hint")}
        return (functools.partial(ScenarioError, **fields), ())


class Problem(Exception):
    """Raised inside the parser; the loader adds the file name and raises ScenarioError."""

    def __init__(self, *, line: int, field: str, expected: str, got: str, hint: str = "") -> None:
        super().__init__(field, expected, got)
        self.line = line
        self.field = field
        self.expected = expected
        self.got = got
        self.hint = hint

    def at(self, path: str) -> ScenarioError:
        """This problem as the public error, in the file `path`."""
        return ScenarioError(
            path=path,
            line=self.line,
            field=self.field,
            expected=self.expected,
            got=self.got,
            hint=self.hint,
        )
