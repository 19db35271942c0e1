"""HTTP/1.1 framing for one client connection, sans-IO: requests to bytes, bytes to responses.

`H11Wire` is the default engine. `FastWire` gives the same bytes and the same responses with
`httptools` (llhttp, in C) as the parser; it is used when the `fast` extra is installed
(`pip install aruntime[fast]`), unless `ARUNTIME_HTTP=h11`. tests/test_wire.py feeds both the
same bytes and asserts they agree.
"""

from __future__ import annotations

import os
import re
from typing import Any, NamedTuple, Protocol

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
    """The peer sent bytes that are not HTTP/1.1, or closed mid-response: the connection is done."""


class Wire(Protocol):
    def request(self, head: RequestHead, body: bytes = b"") -> bytes: ...
    def stream_head(self, head: RequestHead) -> bytes: ...
    def chunk(self, data: bytes) -> bytes: ...
    def end_stream(self, trailers: list[tuple[bytes, bytes]]) -> bytes: ...
    def receive(self, data: bytes) -> Response | None: ...
    def reusable(self) -> bool: ...


class H11Wire:
    """h11 as the engine: its state machine checks every request and response."""

    def __init__(self) -> None:
        # Client-context headers can be large; the service allows a few KiB, we allow more.
        self.conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=1024 * 1024)
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._body = b""
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
        try:
            conn.receive_data(data)
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    return None
                if isinstance(event, h11.Response):
                    self._status = event.status_code
                    self._headers = list(event.headers)
                elif isinstance(event, h11.Data):
                    self._body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    response = Response(self._status, self._headers, self._body)
                    self._body = b""
                    return response
                elif isinstance(event, h11.ConnectionClosed):
                    raise WireError("the Runtime API closed the connection")
        except h11.RemoteProtocolError as e:
            raise WireError(str(e)) from e

    def reusable(self) -> bool:
        conn = self.conn
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            return True
        return conn.our_state is h11.IDLE and conn.their_state is h11.IDLE

    def _next_cycle(self) -> None:
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()


_UNSAFE = re.compile(rb"[\r\n\0]")


def _head_bytes(head: RequestHead) -> bytes:
    parts = [head.method, b" ", head.target, b" HTTP/1.1\r\n"]
    for name, value in head.headers:
        if _UNSAFE.search(value) or _UNSAFE.search(name):
            raise ValueError(f"cannot send this request: bad header {name!r}: {value!r}")
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


class FastWire:
    """httptools as the parser; requests formatted directly, as h11 would format them."""

    def __init__(self) -> None:
        import httptools

        self._errors = (httptools.HttpParserError,)
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._done: Response | None = None
        self._sending = False
        self._awaiting = False
        self._keep_alive = True
        self._constant: tuple[RequestHead, bytes] | None = None  # the `/next` head, framed once

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        headers, self._headers = self._headers, []
        body = b"".join(self._body)
        self._body = []
        if status < 200:  # 100 Continue and friends: not the answer
            return
        self._keep_alive = self._parser.should_keep_alive()
        self._done = Response(status, headers, body)

    def request(self, head: RequestHead, body: bytes = b"") -> bytes:
        self._awaiting = True
        constant = self._constant
        if constant is not None and constant[0] is head:
            return constant[1] + body
        data = _head_bytes(head)
        if head.method == b"GET":
            self._constant = (head, data)
        return data + body

    def stream_head(self, head: RequestHead) -> bytes:
        self._awaiting = self._sending = True
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
            raise WireError("the Runtime API closed the connection")
        try:
            self._parser.feed_data(data)
        except self._errors as e:
            raise WireError(str(e)) from e
        done, self._done = self._done, None
        if done is not None:
            self._awaiting = False
        return done

    def reusable(self) -> bool:
        return self._keep_alive and not self._awaiting and not self._sending


def new_wire() -> H11Wire | FastWire:
    """The engine for a new connection: httptools when installed, unless ARUNTIME_HTTP=h11."""
    if _use_fast():
        return FastWire()
    return H11Wire()


_fast: bool | None = None


def _use_fast() -> bool:
    global _fast
    if _fast is None:
        choice = os.environ.get("ARUNTIME_HTTP", "").lower()
        if choice == "h11":
            _fast = False
        else:
            try:
                import httptools  # noqa: F401
            except ImportError:
                if choice == "httptools":
                    raise
                _fast = False
            else:
                _fast = True
    return _fast
