"""The default wire engine: h11 parses the answers and checks them; see `wire.py`.

h11's client state machine follows one request at a time: it will not take a second request
before the first answer is complete. To pipeline, requests sent behind the one h11 is reading
are only counted; when that answer ends, the machine starts its next cycle, is told of the next
request, and goes on parsing the bytes already in its buffer (the start of the next answer, read
together with the previous one) as that request's answer. (A second h11 machine fed the
leftover bytes works too, but costs a machine and a copy per invoke: 14k instructions more.)

h11 is told of each request through a constant template event with the same body framing, which
is all it needs to read the answer (RFC 9112 §6.3: only HEAD and CONNECT requests change how an
answer is framed, and we send neither), and only when that answer starts to arrive, so its
bookkeeping never delays the bytes going out. The bytes on the wire come from `wire.head_bytes`,
the same bytes h11 would produce (tests/test_protocol.py compares them with h11's serialiser).
What h11 costs (callgrind, CPython 3.11): a post and a `/next` framed and both answers read take
708k instructions with this engine and 76k with httptools: about 315k more per answer, its state
machine's ~100 Python calls per answer. That is why the `fast` extra exists.
"""

from __future__ import annotations

import h11

from .wire import (CLOSED, CUT, UNANSWERED, Deliver, RequestHead, Response, WireError, blank_prefix,
                   chunk_bytes, end_bytes, head_bytes, only_blank)

_TEMPLATE = h11.Request(method=b"POST", target=b"/", headers=[(b"Host", b"h"), (b"Content-Length", b"0")])
_STREAM_TEMPLATE = h11.Request(method=b"POST", target=b"/",
                               headers=[(b"Host", b"h"), (b"Transfer-Encoding", b"chunked")])
_END = h11.EndOfMessage()


def _new_h11() -> h11.Connection:
    # Client-context headers can be large; the service allows a few KiB, we allow more.
    return h11.Connection(h11.CLIENT, max_incomplete_event_size=1024 * 1024)


class H11Wire:
    """h11 as the engine: its state machine checks every answer."""

    def __init__(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self.conn = _new_h11()
        self._reading = False  # h11 knows of a request whose answer has not ended
        self._waiting = 0  # requests sent behind it, not yet told to h11
        self._streaming = False  # the request h11 knows of still has body to send
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._started = False  # a byte of the awaited answer arrived
        self._broken = False  # bytes arrived that answer no request: never reuse
        self._closing = False  # an answer ended the connection (Connection: close, HTTP/1.0)
        self._untold: h11.Request | None = None  # the template of a request h11 has not heard of

    def _begin(self, template: h11.Request) -> None:
        """The request whose answer comes next is sent; h11 hears of it (`_tell`) only when
        its answer starts to arrive: its bookkeeping then costs nothing before the bytes leave
        (the first byte of a stream, the answer to a post)."""
        self._reading = True
        self._untold = template

    def _tell(self) -> None:
        template, self._untold = self._untold, None
        if template is None:
            return
        conn = self.conn
        if conn.our_state is h11.DONE:
            conn.start_next_cycle()
        conn.send(template)
        if template is _TEMPLATE:
            conn.send(_END)

    def request(self, head: RequestHead, body: bytes = b"") -> bytes:
        data = head_bytes(head)
        if self._reading:
            self._waiting += 1  # pipelined: h11 hears of it when the answer before it ends
        else:
            self._begin(_TEMPLATE)
        return data + body if body else data

    def stream_head(self, head: RequestHead) -> bytes:
        data = head_bytes(head)
        self._begin(_STREAM_TEMPLATE)
        self._streaming = True
        return data

    def chunk(self, data: bytes) -> bytes:
        return chunk_bytes(data)

    def end_stream(self, trailers: list[tuple[bytes, bytes]]) -> bytes:
        data = end_bytes(trailers)
        if self._streaming:
            self._streaming = False
            self._tell()
            if self.conn.our_state is h11.SEND_BODY:  # not a fresh machine after an early answer
                self.conn.send(_END)
        return data

    def receive(self, data: bytes | memoryview) -> None:
        if not self._reading or self._closing:
            if data:
                if not only_blank(data):
                    self._broken = True  # an answer to no request (a second answer, a late 408)
                return
            raise WireError(CLOSED)
        eof = not data
        if self._untold is not None:
            self._tell()
        if not self._started:
            if eof:
                raise WireError(CLOSED)  # before any byte of the answer: nothing was lost
            skip = blank_prefix(data)
            if skip:
                if skip == len(data):
                    return
                data = data[skip:]
            self._started = True
        conn = self.conn
        try:
            conn.receive_data(data)  # type: ignore[arg-type]  # h11 copies any bytes-like
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    return
                kind = type(event)
                if kind is h11.Response:
                    self._status = event.status_code  # type: ignore[union-attr]
                    self._headers = headers = list(event.headers)  # type: ignore[union-attr]
                    if _both_framings(headers):
                        # Read as chunked (RFC 9112 §6.3), then the connection is not used
                        # again: such framing "ought to be handled as an error" (llhttp too).
                        self._broken = True
                elif kind is h11.Data:
                    self._body.append(event.data)  # type: ignore[union-attr]
                elif kind is h11.EndOfMessage:
                    if self._answered(eof):
                        return
                    conn = self.conn
                elif kind is h11.ConnectionClosed:
                    raise WireError(CLOSED)
        except h11.RemoteProtocolError as e:
            head = (self._status, self._headers) if self._status else None
            if eof:
                raise WireError(CUT, cut=True, head=head) from e
            raise WireError(str(e), cut=True, head=head) from e

    def _answered(self, eof: bool) -> bool:
        """Deliver the answer that just ended and start reading the next pipelined one; True
        when there is nothing more to parse now."""
        conn = self.conn
        body = self._body
        # h11 hands out slices of its bytearray: the body must be bytes (bytes() of bytes is free).
        response = Response(self._status, self._headers,
                            bytes(body[0]) if len(body) == 1 else b"".join(body))
        self._status, self._body, self._started, self._reading = 0, [], False, False
        if eof or conn.their_state is h11.MUST_CLOSE:
            # The body ended with the connection, or the answer said it ends it.
            self._closing = True
        extra = conn.trailing_data[0]
        self._deliver(response)
        if self._closing:
            if self._waiting:
                raise WireError(UNANSWERED)
            if not only_blank(extra):
                self._broken = True
            return True
        skip = blank_prefix(extra)
        if not self._waiting:
            if skip != len(extra):
                self._broken = True  # an answer to no request followed: never reuse
            elif extra:
                # Only empty lines are left, and h11 would refuse them before the next status
                # line: the next request gets a fresh machine.
                self.conn = _new_h11()
            return True
        self._waiting -= 1
        if skip:
            self.conn = _new_h11()  # as above: the rest goes to a fresh machine, blanks dropped
            self._begin(_TEMPLATE)
            if skip == len(extra):
                return True
            self._tell()
            self.conn.receive_data(extra[skip:])
        else:
            self._begin(_TEMPLATE)  # the rest is already in this machine's buffer
            if not extra:
                return True
            self._tell()
        self._started = True
        return False

    def reusable(self) -> bool:
        return not (self._broken or self._closing or self._reading or self._waiting
                    or self._streaming)


def _both_framings(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether an answer's (lower-cased) headers carry both Transfer-Encoding and
    Content-Length."""
    te = cl = False
    for name, _ in headers:
        if name == b"transfer-encoding":
            te = True
        elif name == b"content-length":
            cl = True
    return te and cl
