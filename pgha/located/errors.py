# One error for every file pgha reads with line numbers (scenarios, agent configurations): the
# file, the 1-based line, the dotted field, what was expected, what was found and a hint. Parsers
# raise `Problem` at a node and the loader adds the file name; each format has its own subclass so
# that callers can tell them apart, with one message shape and one set of attributes.
"""`LocatedError` (file, line, field, expected, got, hint) and the `Problem` it is built from."""

from __future__ import annotations

import functools
from typing import Any, TypeVar

_FIELDS = ("path", "line", "field", "expected", "got", "hint")


class LocatedError(ValueError):
    """A file is invalid at one place.

    The message reads `file:line: field: expected X, got Y; hint` (`file: ...` when there is no
    line, e.g. a document that did not come from a file).

    Attributes:
        path: the file (or the source name given to the parser).
        line: 1-based line of the offending YAML node; 0 when there is none.
        field: dotted path of the offending value, e.g. `faults[2].partition.isolate`.
        expected: what was expected there.
        got: a short description of what was found.
        hint: a suggestion ("did you mean 'isolate'?"), or "".
    """

    def __init__(
        self, *, path: str, line: int, field: str, expected: str, got: str, hint: str = ""
    ) -> None:
        where = f"{path}:{line}" if line > 0 else path
        message = f"{where}: {field}: expected {expected}, got {got}"
        super().__init__(f"{message}; {hint}" if hint else message)
        self.path = path
        self.line = line
        self.field = field
        self.expected = expected
        self.got = got
        self.hint = hint

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments: rebuild through a partial so the error crosses processes.
        fields = {name: getattr(self, name) for name in _FIELDS}
        return (functools.partial(type(self), **fields), ())


_E = TypeVar("_E", bound=LocatedError)


class Problem(Exception):
    """Raised inside a parser at a node; the loader adds the file name (`at`)."""

    def __init__(self, *, line: int, field: str, expected: str, got: str, hint: str = "") -> None:
        super().__init__(field, expected, got)
        self.line = line
        self.field = field
        self.expected = expected
        self.got = got
        self.hint = hint

    def at(self, path: str, error: type[_E]) -> _E:
        """This problem as the file format's public error `error`, in the file `path`."""
        return error(
            path=path,
            line=self.line,
            field=self.field,
            expected=self.expected,
            got=self.got,
            hint=self.hint,
        )
