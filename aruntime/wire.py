"""HTTP/1.1 framing for one client connection, sans-IO: requests to bytes, bytes to responses.

`H11Wire` is the default engine. `FastWire` gives the same bytes and the same responses with
`httptools` (llhttp, in C) as the parser; it is used when the `fast` extra is installed
(`pip install aruntime[fast]`), unless `ARUNTIME_HTTP=h11`. tests/test_wire.py feeds both the
same bytes and asserts they agree, end of stream and odd framing included.

What both engines do with the bytes a Runtime API sends (RFC 9112):
- One answer per request, in order. Interim (1xx) answers are skipped; trailers of a chunked
  answer are ignored; empty lines before a status line are skipped (llhttp's rule).
- A body with neither Content-Length nor chunked framing ends when the server closes the
  connection (HTTP/1.0 style): it is delivered at end of stream, and the connection is not reused.
- `Connection: close`, an HTTP/1.0 answer, or bytes that arrive when no answer is awaited (an
  extra answer in the same read, a late `408`) make the connection not reusable; the unsolicited
  bytes are never taken for the answer to the next request.
- End of stream part-way through an answer (in its head, in its body, in a chunk) is a
  `WireError` whose `cut` is true and whose `head` holds the status and headers if they arrived,
  so the caller can say which invocation was lost.
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping, NamedTuple, Protocol

import h11


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


CLOSED = "the Runtime API closed the connection"
CUT = "the Runtime API closed the connection in the middle of its answer"


class Wire(Protocol):
    def request(self, head: RequestHead, body: bytes = b"") -> bytes: ...
    def stream_head(self, head: RequestHead) -> bytes: ...
    def chunk(self, data: bytes) -> bytes: ...
    def end_stream(self, trailers: list[tuple[bytes, bytes]]) -> bytes: ...
    def receive(self, data: bytes) -> Response | None: ...
    def reusable(self) -> bool: ...


_AWAITING = (h11.SEND_RESPONSE, h11.SEND_BODY)


def _new_h11() -> h11.Connection:
    # Client-context headers can be large; the service allows a few KiB, we allow more.
    return h11.Connection(h11.CLIENT, max_incomplete_event_size=1024 * 1024)


class H11Wire:
    """h11 as the engine: its state machine checks every request and response."""

    def __init__(self) -> None:
        self.conn = _new_h11()
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._body = b""
        self._started = False  # a byte of the awaited answer arrived
        self._broken = False  # bytes arrived that answer no request: never reuse
        # The `/next` head is the same object every time: validate it into an h11 event once.
        self._constant: tuple[RequestHead, h11.Request] | None = None

    def _send(self, event: Any) -> bytes:
        try:
            return self.conn.send(event) or b""
        except h11.LocalProtocolError as e:
            raise ValueError(f"cannot send this request: {e}") from e

    def _head(self, head: RequestHead) -> bytes:
        self._next_cycle()
        constant = self._constant
        if constant is not None and constant[0] is head:
            return self._send(constant[1])
        try:
            event = h11.Request(method=head.method, target=head.target, headers=head.headers)
        except h11.LocalProtocolError as e:
            raise ValueError(f"cannot send this request: {e}") from e
        if head.method == b"GET":
            self._constant = (head, event)
        return self._send(event)

    def request(self, head: RequestHead, body: bytes = b"") -> bytes:
        out = self._head(head)
        if body:
            out += self._send(h11.Data(data=body))
        return out + self._send(h11.EndOfMessage())

    def stream_head(self, head: RequestHead) -> bytes:
        return self._head(head)

    def chunk(self, data: bytes) -> bytes:
        return self._send(h11.Data(data=data))

    def end_stream(self, trailers: list[tuple[bytes, bytes]]) -> bytes:
        return self._send(h11.EndOfMessage(headers=trailers))

    def receive(self, data: bytes) -> Response | None:
        conn = self.conn
        if conn.their_state not in _AWAITING:  # no answer awaited (or its head and body)
            if data:
                _unsolicited(self, data)
                return None
            raise WireError(CLOSED)
        if not self._started:
            if not data:
                raise WireError(CLOSED)  # before any byte of the answer: nothing was lost
            data = data.lstrip(b"\r\n")
            if not data:
                return None
            self._started = True
        try:
            conn.receive_data(data)
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    return None
                kind = type(event)
                if kind is h11.Response:
                    self._status = event.status_code  # type: ignore[union-attr]
                    self._headers = list(event.headers)  # type: ignore[union-attr]
                elif kind is h11.Data:
                    self._body += event.data  # type: ignore[union-attr]
                elif kind is h11.EndOfMessage:
                    response = Response(self._status, self._headers, self._body)
                    self._status, self._body, self._started = 0, b"", False
                    extra = conn.trailing_data[0]
                    if not data or (extra and extra.strip(b"\r\n")):
                        # The body ended with the connection, or an answer to no request
                        # followed it (see _unsolicited): either way, never reuse it.
                        self._broken = True
                    return response
                elif kind is h11.ConnectionClosed:
                    raise WireError(CLOSED)
        except h11.RemoteProtocolError as e:
            head = (self._status, self._headers) if self._status else None
            if not data:
                raise WireError(CUT, cut=True, head=head) from e
            raise WireError(str(e), cut=True, head=head) from e

    def reusable(self) -> bool:
        conn = self.conn
        if self._broken:
            return False
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            return True
        return conn.our_state is h11.IDLE and conn.their_state is h11.IDLE

    def _next_cycle(self) -> None:
        conn = self.conn
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            if conn.trailing_data[0]:
                # Only empty lines can be left here (anything else broke the connection), and
                # h11 would refuse them before the next status line: start a fresh machine.
                self.conn = _new_h11()
            else:
                conn.start_next_cycle()


def _unsolicited(wire: H11Wire | FastWire, data: bytes) -> None:
    """Bytes while no answer is awaited: empty lines are harmless; anything else (a second
    answer, a late 408) answers no request, so the connection must not be reused."""
    if data.strip(b"\r\n"):
        wire._broken = True


_UNSAFE = re.compile(rb"[\r\n\0]")


def _head_bytes(head: RequestHead) -> bytes:
    parts = [head.method, b" ", head.target, b" HTTP/1.1\r\n"]
    for name, value in head.headers:
        if _UNSAFE.search(value) or _UNSAFE.search(name):
            raise ValueError(f"cannot send this request: bad header {name!r}: {value!r}")
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


class _Unsolicited(Exception):
    """Raised from a parser callback to stop parsing an answer no request is waiting for."""


class FastWire:
    """httptools as the parser; requests formatted directly, as h11 would format them."""

    def __init__(self) -> None:
        import httptools

        self._errors = (httptools.HttpParserError,)
        self._parser = httptools.HttpResponseParser(self)
        # h11 accepts a bare LF as a line end (RFC 9112 §2.2 allows it); so must we.
        self._parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True)
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._done: Response | None = None
        self._head: tuple[int, list[tuple[bytes, bytes]]] | None = None  # final answer's head
        self._sending = False
        self._outstanding = 0  # requests sent whose answer has not arrived
        self._started = False
        self._broken = False
        self._keep_alive = True
        self._version_unchecked = True
        self._constant: tuple[RequestHead, bytes] | None = None  # the `/next` head, framed once

    # httptools callbacks. They run for every answer: keep them lean (the rare cases, such as
    # a body that ends at close, are sorted out at end of stream instead).
    def on_message_begin(self) -> None:
        if not self._outstanding:
            self._broken = True
            raise _Unsolicited
        self._started = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value.rstrip(b" \t")))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status >= 200:
            self._head = (status, self._headers)
        # Interim answers' headers are dropped; a final answer's trailers land here and are
        # dropped too (h11 ignores both).
        self._headers = []

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._head is None:  # an interim answer ended
            return
        parser = self._parser
        keep_alive = parser.should_keep_alive()
        if self._version_unchecked:  # once per connection: the call is not cheap
            self._version_unchecked = False
            # h11 never keeps an HTTP/1.0 connection, whatever its Connection header says.
            keep_alive = keep_alive and parser.get_http_version() != "1.0"
        self._finish(keep_alive)

    def _finish(self, keep_alive: bool) -> Response:
        status, headers = self._head  # type: ignore[misc]
        body = b"".join(self._body)
        self._body, self._head, self._started = [], None, False
        if self._headers:  # trailers
            self._headers = []
        self._outstanding -= 1
        self._keep_alive = self._keep_alive and keep_alive
        self._done = response = Response(status, headers, body)
        return response

    def request(self, head: RequestHead, body: bytes = b"") -> bytes:
        self._outstanding += 1
        constant = self._constant
        if constant is not None and constant[0] is head:
            return constant[1] + body
        data = _head_bytes(head)
        if head.method == b"GET":
            self._constant = (head, data)
        return data + body

    def stream_head(self, head: RequestHead) -> bytes:
        self._outstanding += 1
        self._sending = True
        return _head_bytes(head)

    def chunk(self, data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data)

    def end_stream(self, trailers: list[tuple[bytes, bytes]]) -> bytes:
        self._sending = False
        parts = [b"0\r\n"]
        for name, value in trailers:
            if _UNSAFE.search(value) or _UNSAFE.search(name):
                raise ValueError(f"cannot send this trailer: {name!r}: {value!r}")
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    def receive(self, data: bytes) -> Response | None:
        if not data:
            return self._eof()
        if self._outstanding == 0 or self._broken:
            _unsolicited(self, data)
            return None
        try:
            self._parser.feed_data(data)
        except self._errors as e:
            if not self._broken:  # a second answer in the same read stopped the parser
                raise WireError(str(e), cut=True, head=self._head) from e
        done, self._done = self._done, None
        return done

    def _eof(self) -> Response:
        if not (self._outstanding and self._started and not self._broken):
            raise WireError(CLOSED)
        head = self._head
        if head is None:
            raise WireError(CUT, cut=True)
        status, headers = head
        names = {name for name, _ in headers}
        if b"transfer-encoding" in names:
            if [v.lower() for n, v in headers if n == b"transfer-encoding"] != [b"chunked"]:
                # llhttp read such a body until the close; h11 refuses the head: as h11.
                raise WireError("only Transfer-Encoding: chunked is supported", cut=True)
        elif b"content-length" not in names and status not in (204, 304):
            self._done = None
            return self._finish(False)  # RFC 9112 §6.3: the body ended with the connection
        raise WireError(CUT, cut=True, head=head)

    def reusable(self) -> bool:
        return (self._keep_alive and not self._broken and not self._outstanding
                and not self._sending)


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
        import httptools  # noqa: F401
    except ImportError:
        if choice:
            raise ValueError("ARUNTIME_HTTP=httptools, but httptools is not installed: "
                             "pip install 'aruntime[fast]'") from None
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


def new_wire(engine: str = "h11") -> H11Wire | FastWire:
    """A wire for a new connection, with the engine `engine_name` chose."""
    return FastWire() if engine == "httptools" else H11Wire()
