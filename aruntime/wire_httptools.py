"""The `fast` wire engine: httptools (llhttp, in C) parses the answers; see `wire.py`."""

from __future__ import annotations

import httptools

from .wire import (CLOSED, CUT, UNANSWERED, Deliver, RequestHead, Response, WireError, chunk_bytes,
                   end_bytes, head_bytes, only_blank)


class _Unsolicited(Exception):
    """Raised from a parser callback to stop parsing an answer no request is waiting for."""


class FastWire:
    """httptools as the parser; requests framed by `wire.head_bytes`, as h11 would frame them."""

    def __init__(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._parser = httptools.HttpResponseParser(self)
        # h11 accepts a bare LF as a line end (RFC 9112 §2.2 allows it); so must we.
        self._parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True)
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
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
        if not self._outstanding or not self._keep_alive:
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

    def _finish(self, keep_alive: bool) -> None:
        status, headers = self._head  # type: ignore[misc]
        body = b"".join(self._body)
        self._body, self._head, self._started = [], None, False
        if self._headers:  # trailers
            self._headers = []
        self._outstanding -= 1
        if not keep_alive:
            self._keep_alive = False
        self._deliver(Response(status, headers, body))

    def request(self, head: RequestHead, body: bytes = b"") -> bytes:
        constant = self._constant
        if constant is not None and constant[0] is head:
            data = constant[1]
        else:
            data = head_bytes(head)
            if head.method == b"GET":
                self._constant = (head, data)
        self._outstanding += 1
        return data + body if body else data

    def stream_head(self, head: RequestHead) -> bytes:
        data = head_bytes(head)
        self._outstanding += 1
        self._sending = True
        return data

    def chunk(self, data: bytes) -> bytes:
        return chunk_bytes(data)

    def end_stream(self, trailers: list[tuple[bytes, bytes]]) -> bytes:
        data = end_bytes(trailers)
        self._sending = False
        return data

    def receive(self, data: bytes | memoryview) -> None:
        if not data:
            self._eof()
            return
        if self._outstanding == 0 or self._broken or not self._keep_alive:
            _unsolicited(self, data)
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as e:
            # Bytes after the last answer we asked for, or after one that ended the connection
            # (`Connection: close`), answer nothing; anything else is a broken answer.
            if not (self._broken or not self._keep_alive):
                raise WireError(str(e), cut=True, head=self._head) from e
        if not self._keep_alive and self._outstanding:
            raise WireError(UNANSWERED)

    def _eof(self) -> None:
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
            self._finish(False)  # RFC 9112 §6.3: the body ended with the connection
            if self._outstanding:
                raise WireError(UNANSWERED)
            return
        raise WireError(CUT, cut=True, head=head)

    def reusable(self) -> bool:
        return (self._keep_alive and not self._broken and not self._outstanding
                and not self._sending)


def _unsolicited(wire: FastWire, data: bytes | memoryview) -> None:
    """Bytes while no answer is awaited: empty lines are harmless; anything else (a second
    answer, a late 408) answers no request, so the connection must not be reused."""
    if not only_blank(data):
        wire._broken = True
