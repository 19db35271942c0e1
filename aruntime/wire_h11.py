"""The default wire engine: h11 parses the answers and checks them; see `wire.py`.

h11's client state machine allows one request at a time: it refuses a second request until the
first answer is complete. To pipeline, each outstanding request gets its own h11 machine, and
the bytes the answering machine does not consume (the start of the next answer, in the same
read) are handed to the next machine in line. A machine whose cycle ended cleanly is reused.

Requests are framed by `wire.head_bytes` (the same bytes h11 would produce; tests/test_protocol.py
compares them with h11's serialiser); each machine is told of its request through a constant
template event with the same body framing, which is all h11 needs to read the answer (RFC 9112
§6.3: only HEAD and CONNECT requests change how an answer is framed, and we send neither).
"""

from __future__ import annotations

from collections import deque

import h11

from .wire import (CLOSED, CUT, UNANSWERED, Deliver, RequestHead, Response, WireError, blank_prefix,
                   chunk_bytes, end_bytes, head_bytes, only_blank)

_TEMPLATE = h11.Request(method=b"POST", target=b"/", headers=[(b"Host", b"h"), (b"Content-Length", b"0")])
_STREAM_TEMPLATE = h11.Request(method=b"POST", target=b"/",
                               headers=[(b"Host", b"h"), (b"Transfer-Encoding", b"chunked")])
_END = h11.EndOfMessage()
_AWAITING = (h11.SEND_RESPONSE, h11.SEND_BODY)


def _new_h11() -> h11.Connection:
    # Client-context headers can be large; the service allows a few KiB, we allow more.
    return h11.Connection(h11.CLIENT, max_incomplete_event_size=1024 * 1024)


class H11Wire:
    """h11 as the engine: its state machine checks every answer."""

    def __init__(self, deliver: Deliver) -> None:
        self._deliver = deliver
        # One machine per request sent whose answer has not arrived, oldest (answering) first.
        self._queue: deque[h11.Connection] = deque()
        self._idle: h11.Connection | None = _new_h11()
        self._streaming: h11.Connection | None = None  # the machine of a body still being sent
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._started = False  # a byte of the awaited answer arrived
        self._broken = False  # bytes arrived that answer no request: never reuse
        self._closing = False  # an answer ended the connection (Connection: close, HTTP/1.0)
        self._constant: tuple[RequestHead, bytes] | None = None  # the `/next` head, framed once

    def _machine(self, template: h11.Request) -> h11.Connection:
        machine = self._idle
        if machine is None:
            machine = _new_h11()
        else:
            self._idle = None
        machine.send(template)
        self._queue.append(machine)
        return machine

    def request(self, head: RequestHead, body: bytes = b"") -> bytes:
        constant = self._constant
        if constant is not None and constant[0] is head:
            data = constant[1]
        else:
            data = head_bytes(head)
            if head.method == b"GET":
                self._constant = (head, data)
        self._machine(_TEMPLATE).send(_END)
        return data + body if body else data

    def stream_head(self, head: RequestHead) -> bytes:
        data = head_bytes(head)
        self._streaming = self._machine(_STREAM_TEMPLATE)
        return data

    def chunk(self, data: bytes) -> bytes:
        return chunk_bytes(data)

    def end_stream(self, trailers: list[tuple[bytes, bytes]]) -> bytes:
        data = end_bytes(trailers)
        machine, self._streaming = self._streaming, None
        if machine is not None:
            machine.send(_END)
            if (machine.their_state is h11.DONE and machine not in self._queue
                    and not machine.trailing_data[0]):
                self._recycle(machine)  # answered early (a 413 while the body was being sent)
        return data

    def receive(self, data: bytes | memoryview) -> None:
        queue = self._queue
        if not queue or self._closing:
            if data:
                if not only_blank(data):
                    self._broken = True  # an answer to no request (a second answer, a late 408)
                return
            raise WireError(CLOSED)
        machine = queue[0]
        eof = not data
        if not self._started:
            if eof:
                raise WireError(CLOSED)  # before any byte of the answer: nothing was lost
            skip = blank_prefix(data)
            if skip:
                if skip == len(data):
                    return
                data = data[skip:]
            self._started = True
        try:
            machine.receive_data(data)  # type: ignore[arg-type]  # h11 copies any bytes-like
            while True:
                event = machine.next_event()
                if event is h11.NEED_DATA:
                    return
                kind = type(event)
                if kind is h11.Response:
                    self._status = event.status_code  # type: ignore[union-attr]
                    self._headers = list(event.headers)  # type: ignore[union-attr]
                elif kind is h11.Data:
                    self._body.append(event.data)  # type: ignore[union-attr]
                elif kind is h11.EndOfMessage:
                    if self._answered(machine, ended=eof):
                        return
                    machine = queue[0]  # it was just given what followed the answer
                elif kind is h11.ConnectionClosed:
                    raise WireError(CLOSED)
        except h11.RemoteProtocolError as e:
            head = (self._status, self._headers) if self._status else None
            if eof:
                raise WireError(CUT, cut=True, head=head) from e
            raise WireError(str(e), cut=True, head=head) from e

    def _answered(self, machine: h11.Connection, ended: bool) -> bool:
        """Deliver the answer `machine` completed and hand what follows it to the next machine;
        True when there is nothing more to parse now."""
        body = self._body
        # h11 hands out slices of its bytearray: the body must be bytes (bytes() of bytes is free).
        response = Response(self._status, self._headers,
                            bytes(body[0]) if len(body) == 1 else b"".join(body))
        self._status, self._body, self._started = 0, [], False
        self._queue.popleft()
        extra = machine.trailing_data[0]
        if ended or machine.their_state is h11.MUST_CLOSE:
            # The body ended with the connection, or the answer said it ends it.
            self._closing = True
        self._deliver(response)
        if self._closing:
            if self._queue:
                raise WireError(UNANSWERED)
            if extra and not only_blank(extra):
                self._broken = True
            return True
        queue = self._queue
        if not queue:
            if extra and not only_blank(extra):
                self._broken = True  # an answer to no request followed: never reuse
            elif not extra:
                self._recycle(machine)
            return True
        if machine is not self._streaming and not extra:
            self._recycle(machine)
        skip = blank_prefix(extra)
        if skip == len(extra):
            return True
        self._started = True
        queue[0].receive_data(extra[skip:] if skip else extra)
        return False

    def _recycle(self, machine: h11.Connection) -> None:
        # Only a machine whose cycle ended cleanly, with nothing left in its buffer, is reused
        # (h11 would refuse leftover empty lines before the next status line).
        if (self._idle is None and machine.our_state is h11.DONE
                and machine.their_state is h11.DONE):
            machine.start_next_cycle()
            self._idle = machine

    def reusable(self) -> bool:
        return (not self._broken and not self._closing and not self._queue
                and self._streaming is None)
