"""HTTP/1.1 framing for one client connection, sans-IO: requests to bytes, bytes to responses.

Two engines read the Runtime API's answers: `H11Wire` (`wire_h11.py`, h11: the default) and
`FastWire` (`wire_httptools.py`, httptools/llhttp in C: the `fast` extra, used when installed
unless `ARUNTIME_HTTP=h11`). Only the engine in use is imported. Both frame requests with the
functions below (tests/test_protocol.py checks the bytes against h11's own serialiser) and give
the same answers for the same bytes (tests/test_wire.py, end of stream and odd framing included).

Requests may be pipelined (RFC 9112 §9.3): several can be outstanding on one connection, and
their answers are handed to the `deliver` callback given at construction, one call per answer,
in order, as soon as each is complete.

What both engines do with the bytes a Runtime API sends (RFC 9112):
- One answer per request, in order. Interim (1xx) answers are skipped; trailers of a chunked
  answer are ignored; empty lines before a status line are skipped (llhttp's rule).
- A body with neither Content-Length nor chunked framing ends when the server closes the
  connection (HTTP/1.0 style): it is delivered at end of stream, and the connection is not reused.
- `Connection: close`, an HTTP/1.0 answer, or bytes that arrive when no answer is awaited (an
  extra answer in the same read, a late `408`) make the connection not reusable; the unsolicited
  bytes are never taken for the answer to the next request. When such an answer leaves requests
  unanswered behind it, they are a `WireError` (not `cut`): the server will not answer them.
- Heads are read by h11's rules (RFC 9110 §5.5, §8.6; RFC 9112 §5.2): control characters other
  than NUL, CR, LF, VT and FF are kept in values; obs-fold lines are joined with one space; a
  Content-Length repeated, or listed, with one value is that value. A head larger than
  `HEAD_LIMIT` (1 MiB) is refused. Trailer sections are checked by the same rules, then
  dropped. (httptools reads such heads and trailer sections again with h11.)
- End of stream part-way through an answer (in its head, in its body, in a chunk) is a
  `WireError` whose `cut` is true and whose `head` holds the status and headers if they arrived,
  so the caller can say which invocation was lost.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, NamedTuple, Protocol


class RequestHead(NamedTuple):
    """A request line and headers, as `protocol` builds them."""

    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]


class Response(NamedTuple):
    status: int
    headers: list[tuple[bytes, bytes]]  # names lower-cased
    body: bytes


class WireError(ConnectionError):
    """The peer sent bytes that are not HTTP/1.1, or closed mid-response: the connection is done.

    `cut` is true when part of an answer had arrived (the answer is lost, not merely never
    sent); `head` is `(status, headers)` of that answer when its head was complete.
    """

    def __init__(self, message: str, *, cut: bool = False,
                 head: tuple[int, list[tuple[bytes, bytes]]] | None = None) -> None:
        super().__init__(message)
        self.cut = cut
        self.head = head


# The largest answer head either engine reads (h11's max_incomplete_event_size): the service
# sends a few KiB; a peer sending more than this is broken.
HEAD_LIMIT = 1024 * 1024
HEAD_TOO_LARGE = "the Runtime API's answer has a head larger than 1 MiB"
CLOSED = "the Runtime API closed the connection"
CUT = "the Runtime API closed the connection in the middle of its answer"
UNANSWERED = "the Runtime API ended the connection with requests left unanswered"

Deliver = Callable[[Response], Any]


class Wire(Protocol):
    def request(self, head: RequestHead, body: bytes = b"") -> bytes: ...
    def stream_head(self, head: RequestHead) -> bytes: ...
    def chunk(self, data: bytes) -> bytes: ...
    def end_stream(self, trailers: list[tuple[bytes, bytes]]) -> bytes: ...
    def receive(self, data: bytes | memoryview) -> None: ...
    def reusable(self) -> bool: ...


def _unsafe(value: bytes) -> bool:
    return b"\r" in value or b"\n" in value or b"\0" in value


# The last GET framed, with its bytes: the `/next` head is one RequestHead built once
# (protocol.get_request) and sent before every invocation, by every connection: framed once.
_framed_get: tuple[RequestHead, bytes] | None = None


def head_bytes(head: RequestHead) -> bytes:
    """The request line and headers; `ValueError` for a header no HTTP/1.1 peer may receive
    (CR, LF or NUL in a name or value: a hostile value could otherwise inject a header)."""
    global _framed_get
    framed = _framed_get
    if framed is not None and framed[0] is head:
        return framed[1]
    headers = head.headers
    parts = [head.method, b" ", head.target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    data = b"".join(parts)
    # One line end per line, and no NUL: checked on the whole head at once (three scans in C
    # rather than three per header); the rare failure then names the culprit.
    lines = len(headers) + 2
    if data.count(b"\n") != lines or data.count(b"\r") != lines or b"\0" in data:
        for name, value in [(b"request-target", head.target), *headers]:
            if _unsafe(value) or _unsafe(name):
                raise ValueError(f"cannot send this request: bad header {name!r}: {value!r}")
        raise ValueError(f"cannot send this request: bad method {head.method!r}")
    if head.method == b"GET":
        _framed_get = (head, data)
    return data


def chunk_bytes(data: bytes) -> bytes:
    """One chunk of a chunked body (never empty: an empty chunk would end the body)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def end_bytes(trailers: list[tuple[bytes, bytes]]) -> bytes:
    """The last chunk and the trailer section; `ValueError` for an unsafe trailer."""
    parts = [b"0\r\n"]
    for name, value in trailers:
        if _unsafe(value) or _unsafe(name):
            raise ValueError(f"cannot send this trailer: {name!r}: {value!r}")
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def blank_prefix(data: bytes | memoryview) -> int:
    """How many bytes at the start of `data` are CR or LF (empty lines before a status line)."""
    n = 0
    for byte in data:
        if byte != 13 and byte != 10:
            return n
        n += 1
    return n


def only_blank(data: bytes | memoryview) -> bool:
    return blank_prefix(data) == len(data)


ENGINES = ("h11", "httptools")


def engine_name(value: str | None) -> str:
    """The wire engine an `ARUNTIME_HTTP` value selects: `"h11"` or `"httptools"`.

    Unset or empty: httptools when it is installed (the `fast` extra), else h11. The value is
    case-insensitive. Raises `ValueError` (a one-line message) for any other value, or for
    `httptools` when it is not installed.
    """
    choice = (value or "").strip().lower()
    if choice == "h11":
        return "h11"
    if choice not in ("", "httptools"):
        raise ValueError(f"ARUNTIME_HTTP must be one of {', '.join(ENGINES)} (or unset), "
                         f"got {value!r}")
    try:
        import httptools  # noqa: F401 - the engine in use: imported once, here
    except ImportError:
        if choice:
            raise ValueError("ARUNTIME_HTTP=httptools, but httptools is not installed: "
                             "install the fast extra (not on PyPI yet: from a checkout of "
                             "aruntime, pip install -e '.[fast]')") from None
        return "h11"
    return "httptools"


def engine_description(env: Mapping[str, str] | None = None) -> str:
    """For start-up banners: the engine a runtime started with this process's environment
    updated by `env` would use, or why it would refuse to start."""
    value = (env or {}).get("ARUNTIME_HTTP", os.environ.get("ARUNTIME_HTTP"))
    try:
        return engine_name(value)
    except ValueError as e:
        return f"none: {e}"


def wire_class(engine: str) -> Callable[[Deliver], Wire]:
    """The wire class of the engine `engine_name` chose, importing that engine (and only that
    one): the runtime calls it at start, so the first invocation imports nothing."""
    if engine == "httptools":
        from .wire_httptools import FastWire

        return FastWire
    from .wire_h11 import H11Wire

    return H11Wire


def new_wire(engine: str, deliver: Deliver) -> Wire:
    """A wire for a new connection, with the engine `engine_name` chose; each answer goes to
    `deliver`."""
    return wire_class(engine)(deliver)


def __getattr__(name: str) -> Any:
    # `from aruntime.wire import H11Wire, FastWire` still works, importing only what is named.
    if name == "H11Wire":
        from .wire_h11 import H11Wire

        return H11Wire
    if name == "FastWire":
        from .wire_httptools import FastWire

        return FastWire
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
