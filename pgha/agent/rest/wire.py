# The REST API's wire format, as pure functions over bytes: where a request head ends, what its
# request line and header lines say, how long its body is, and the bytes of an answer. pgha speaks
# HTTP/1.0 and closes the connection after every answer, as it always has (Patroni's clients and
# HAProxy's checks are happy with that). Safety rules, against request smuggling and ambiguous
# framing: a body's length comes from exactly one Content-Length whose value is a plain decimal
# (optional spaces around it); two Content-Length lines (even equal ones), any other value, or a
# Transfer-Encoding next to a Content-Length is a 400; a Transfer-Encoding alone (chunked) is a
# 411, send a Content-Length. A header name must be a token with its colon right after it
# ("Content-Length : 5" is a 400), a folded (obsolete continuation) line is a 400, and so are
# control characters in a value. The head is bounded (64 KiB, 100 header lines: 431), the body by
# the settings (413, decided from the header before the body is read).
"""Parse a request head, frame its body and render an answer (HTTP/1.0, one per connection)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import parse_qsl, urlsplit

from pgha import __version__
from pgha.agent.rest.common import HttpError, Reply

MAX_HEAD_B = 64 * 1024  # request line and header lines, as http.server's per-line limit
MAX_HEADERS = 100  # header lines, as http.server
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SERVER = f"pgha/{__version__}"

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_REQUEST_LINE = re.compile(rf"({_TOKEN}) (\S+) HTTP/([0-9])\.([0-9])")
_HEADER_NAME = re.compile(_TOKEN)
_DIGITS = re.compile(r"[0-9]{1,18}")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_HEAD_END = re.compile(rb"\n\r?\n")


@dataclass(frozen=True, slots=True, kw_only=True)
class Head:
    """A parsed request head: the request line and the header lines in order.

    `path` is the target's path without trailing slashes ("/" for the root), as routed.
    """

    method: str
    target: str
    path: str
    query: Mapping[str, str]
    headers: tuple[tuple[str, str], ...]  # (lower-case name, value without surrounding spaces)

    def values(self, name: str) -> list[str]:
        """Every value of the header `name` (case-insensitive), in order."""
        lower = name.lower()
        return [value for key, value in self.headers if key == lower]

    def first(self, name: str) -> str | None:
        """The first value of the header `name`, or None."""
        found = self.values(name)
        return found[0] if found else None


def head_end(data: bytes | bytearray, start: int = 0) -> int | None:
    """The offset just past the blank line that ends the head in `data`, or None (not yet).

    `start` is where to resume a search (the scan of a head that arrives in pieces stays linear).
    """
    found = _HEAD_END.search(data, max(0, start))
    return None if found is None else found.end()


def check_request_line(line: bytes) -> tuple[str, str]:
    """The method and target of a request line (with or without its line end).

    Raises:
        HttpError: 400 for anything but `METHOD target HTTP/1.0` or `HTTP/1.1`.
    """
    text = line.decode("latin-1").rstrip("\r\n")
    match = _REQUEST_LINE.fullmatch(text)
    if match is None:
        raise HttpError(400, "malformed request line")
    method, target, major, minor = match.groups()
    if (major, minor) not in (("1", "0"), ("1", "1")):
        raise HttpError(400, f"HTTP/{major}.{minor} is not supported (HTTP/1.0 and 1.1 are)")
    return method, target


def parse_head(data: bytes) -> Head:
    """The head in `data` (everything up to and including its blank line).

    Raises:
        HttpError: 400 for a malformed line, 431 for too many header lines.
    """
    lines = [line.removesuffix("\r") for line in data.decode("latin-1").split("\n")]
    method, target = check_request_line(lines[0].encode("latin-1"))
    fields = [line for line in lines[1:] if line]
    if len(fields) > MAX_HEADERS:
        raise HttpError(431, f"more than {MAX_HEADERS} header lines")
    headers = tuple(_header(line) for line in fields)
    try:
        parts = urlsplit(target)
    except ValueError:
        raise HttpError(400, "malformed request target") from None
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    path = parts.path.rstrip("/") or "/"
    return Head(method=method, target=target, path=path, query=query, headers=headers)


def _header(line: str) -> tuple[str, str]:
    name, colon, value = line.partition(":")
    if not colon or _HEADER_NAME.fullmatch(name) is None:
        raise HttpError(400, "malformed header line (a name, then a colon right after it)")
    value = value.strip(" \t")
    if _CONTROL.search(value) is not None:
        raise HttpError(400, f"control character in the {name} header")
    return name.lower(), value


def body_length(head: Head, max_body_b: int) -> int:
    """How many body bytes follow `head`: its single Content-Length, else 0.

    Raises:
        HttpError: 400 for several Content-Length lines, a value that is not a plain decimal, or
            a Transfer-Encoding with a Content-Length; 411 for a Transfer-Encoding alone; 413 for
            a body larger than `max_body_b`.
    """
    lengths, encodings = head.values("Content-Length"), head.values("Transfer-Encoding")
    if encodings and lengths:
        raise HttpError(400, "both Transfer-Encoding and Content-Length: refused (ambiguous)")
    if encodings:
        raise HttpError(411, "a Content-Length is required (Transfer-Encoding is not supported)")
    if not lengths:
        return 0
    if len(lengths) > 1:
        raise HttpError(400, f"{len(lengths)} Content-Length headers: exactly one is allowed")
    if _DIGITS.fullmatch(lengths[0]) is None:
        raise HttpError(400, "malformed Content-Length (a plain decimal number of bytes)")
    length = int(lengths[0])
    if length > max_body_b:
        raise HttpError(413, f"the body is larger than {max_body_b} bytes")
    return length


def render(reply: Reply, *, with_body: bool = True) -> bytes:
    """The bytes of `reply` as an HTTP/1.0 answer; HEAD and OPTIONS answers carry no body."""
    try:
        phrase = HTTPStatus(reply.status).phrase
    except ValueError:
        phrase = ""
    body = reply.body if with_body else b""
    lines = [
        f"HTTP/1.0 {reply.status} {phrase}",
        f"Server: {SERVER}",
        f"Date: {formatdate(usegmt=True)}",
        f"Content-Type: {reply.content_type}",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in reply.headers),
        "Connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
