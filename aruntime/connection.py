"""The asyncio shell: one kept-alive HTTP/1.1 connection to the Runtime API.

`Connection` is an `asyncio.BufferedProtocol`: the kernel copies received bytes straight into
one buffer that every connection on the event loop shares (`receive_buffer`; N pollers do not
cost N buffers, and no read allocates one), and the sans-IO wire (`wire.py`: h11, or httptools
with the `fast` extra) parses them before the read returns. `RuntimeClient` owns the
connection, reconnects when the server closed it, and retries a dead connection a bounded
number of times.

Pipelining (RFC 9112 §9.3). With `RuntimeClient.pipeline` on (the runtime turns it on for its
serving loops, which always ask for the next invocation after a post), `post` sends a buffered
`/response` or `/error` with the `GET /next` behind it in the same write, and the `next` that
follows reads both answers: the next long-poll is on the wire as soon as the answer is, and one
wake-up of the event loop reads both. (Whatever runs between the two, such as an OpenTelemetry
flush, no longer delays the answer.) Lambda's Runtime API (Go net/http, as in its emulator)
and cargo-lambda answer pipelined requests in order (docs/SPEC.md §8). What happens when something
goes wrong:
- The server must first show it reads a request sent behind another: the first `GET /next` on a
  connection carries `OPTIONS *` behind it (`protocol.probe_request`, harmless: RFC 9110
  §9.3.7), and nothing is pipelined until its answer (any status) has arrived. If the connection
  ends after the `/next` answer but before the probe's, or the probe is still unanswered
  `PROBE_WAIT_S` after the invocation is ready to be answered, the server is taken as one that
  cannot pipeline: that connection (with nothing but the probe pending) is closed, and from then
  on every request waits for the previous answer. No invocation can be lost on the way: the
  probe only ever follows a `/next`, and a `/next` only follows a post on a server that has
  answered a probe.
- The server answers the post and closes (`Connection: close`, HTTP/1.0, or it just goes): the
  `/next` it never answered is sent again on a new connection (a `GET /next` that got no answer
  handed out no invocation).
- The connection fails before the post's answer (or was gone before the write): the post is
  sent again on a new connection, as for any request, then the `/next`.
- The post is answered 4xx (410 gone, 413 too large, 400, 403): logged, that invocation failed,
  and the `/next` behind it is answered as usual; 5xx: `next` raises `RuntimeAPIError`, the
  runtime exits (the service's rule, docs/SPEC.md §2).
- The pipelined `/next` is refused as a request (400, 405, 411, 414, 431, 501, 505): pipelining
  is turned off and the `/next` is asked again on a new connection.
- SIGTERM while the `/next` waits closes the connection as before (the hooks run, the runtime
  exits). SnapStart's restore happens before pipelining starts; the first `/next` after it, on
  a new connection, carries the probe. A server that showed it pipelines keeps being trusted on
  later connections of the same client.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
from collections import deque
from typing import Callable, NamedTuple

from . import invocation, protocol
from .errors import RuntimeAPIError, RuntimeAPIUnavailable
from .protocol import Invocation
from .wire import Deliver, RequestHead, Response, Wire, WireError, engine_name, wire_class

log = logging.getLogger("aruntime")

# Attempts at reaching the Runtime API before giving up, and the first wait between two of them
# (doubled after each failure): connecting waits 50, 100, 200, 400 ms; a request whose
# connection dies is retried at once (a kept-alive connection the server closed), then after
# 100, 200, 400 ms. tests/test_core_api_failures.py pins both schedules.
CONNECT_ATTEMPTS = 5
BACKOFF_S = 0.05
# How long the probe's answer may still be missing once the connection is needed again. A
# server that pipelines answers it right behind the `/next` answer, long before that.
PROBE_WAIT_S = 1.0
# Answers a server gives to a request it cannot take; to a pipelined `/next`, they mean it does
# not read requests sent behind another.
_REFUSALS = frozenset((400, 405, 411, 414, 431, 501, 505))
# poll() reports a reset (POLLERR/POLLHUP) unasked; a plain close (FIN) only as POLLRDHUP (Linux).
_HANGUP_EVENTS = getattr(select, "POLLRDHUP", 0)
# What asyncio reads at most per call with a plain Protocol (its `max_size`).
BUFFER_SIZE = 256 * 1024
_shared: tuple[asyncio.AbstractEventLoop, memoryview] | None = None


def receive_buffer(loop: asyncio.AbstractEventLoop) -> memoryview:
    """The receive buffer of every connection on `loop` (`BUFFER_SIZE` bytes, made once).

    Sharing is safe: a read fills it and the wire has parsed (copied) every byte before the
    loop can start another read. Connections on another loop get another buffer.
    """
    global _shared
    shared = _shared
    if shared is None or shared[0] is not loop:
        shared = _shared = (loop, memoryview(bytearray(BUFFER_SIZE)))
    return shared[1]


def _hold_stdio_numbers() -> None:
    """Reopen any of fds 0-2 that is closed on /dev/null. A new socket takes the lowest free
    number: after a handler (or a library that daemonizes) closed fd 1, a Runtime API
    connection opened later would be numbered 1, and every write to "stdout" (print, a C
    library, a subprocess inheriting it) would go into the HTTP stream. Three fstat calls, on
    connecting only."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)  # inheritable, as stdio is
                os.close(null)
            else:
                os.set_inheritable(fd, True)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def _sleep(loop: asyncio.AbstractEventLoop, seconds: float) -> None:
    # asyncio.sleep, on a given loop: it need not be the running one yet (see RuntimeClient.loop).
    fut = loop.create_future()
    timer = loop.call_later(seconds, _wake, fut)
    try:
        await fut
    finally:
        timer.cancel()


class Connection(asyncio.BufferedProtocol):
    """One TCP connection: a sans-IO wire, the answers it delivered, and one waiter.

    Requests may be pipelined; their answers are taken in order with `response()`. A waiting
    coroutine wakes once: when the answers it waits for are all in, when one of them is not
    2xx, or when the connection fails.
    """

    def __init__(self, wire: Callable[[Deliver], Wire], loop: asyncio.AbstractEventLoop,
                 buffer: memoryview) -> None:
        self.wire = wire(self._deliver)
        self.loop = loop
        self._buffer = buffer
        self.transport: asyncio.Transport | None = None
        self.lost = False
        # Called once if the connection is lost: cancels a streaming invocation's work.
        self.on_lost: Callable[[], object] | None = None
        self._expect: deque[bool] = deque()  # per request on the wire, oldest first: a probe?
        self._answers: deque[Response] = deque()  # delivered, not yet taken
        self._waiter: asyncio.Future[None] | None = None
        self._want = 1
        self._error: Exception | None = None
        self._drain: asyncio.Future[None] | None = None
        self._paused = False
        self._eof = False
        self._poller: select.poll | None = None
        # The pipelining probe: `probing` while its answer is awaited; `pipelines` True once it
        # came, False when the server showed it will not answer it, None when nothing is known.
        self.probing = False
        self.pipelines: bool | None = None
        self._probe_waiter: asyncio.Future[None] | None = None
        # Set by `RuntimeClient.stop_loop_when_answered`: waking the waiter also stops the loop.
        self.stops_loop = False

    # -- asyncio.BufferedProtocol ------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        try:
            self.wire.receive(self._buffer[:nbytes])
        except WireError as e:
            self._fail(e)
            self.transport.close()  # type: ignore[union-attr]

    def eof_received(self) -> bool:
        self._feed_eof()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._feed_eof()
        self._fail(ConnectionResetError("Runtime API connection lost"))
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None
        on_lost, self.on_lost = self.on_lost, None
        if on_lost is not None:
            on_lost()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None

    # -- answers -----------------------------------------------------------------------
    def _deliver(self, response: Response) -> None:
        expect = self._expect
        if expect and expect.popleft():  # the probe's answer: the server pipelines
            self.probing = False
            self.pipelines = True
            if self._probe_waiter is not None:
                _wake(self._probe_waiter)
            return
        answers = self._answers
        answers.append(response)
        waiter = self._waiter
        if waiter is not None and (len(answers) >= self._want
                                   or not 200 <= response.status < 300):
            self._waiter = None
            self._wake(waiter)

    def _feed_eof(self) -> None:
        if self._eof:
            return
        self._eof = True
        try:
            self.wire.receive(b"")
        except WireError as e:
            self._fail(e)

    def _fail(self, exc: Exception) -> None:
        if self._error is None:
            self._error = exc
        if self.probing:
            self.probing = False
            # Known only if every answer before the probe's came: then the server read the
            # probe and will not answer it. Otherwise the connection failed for its own reasons.
            if self._expect and self._expect[0]:
                self.pipelines = False
            if self._probe_waiter is not None:
                _wake(self._probe_waiter)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            self._wake(waiter)

    def _wake(self, waiter: asyncio.Future[None]) -> None:
        _wake(waiter)
        if self.stops_loop:
            # The runtime drives the waiting coroutine itself (runtime._drive): stop the loop in
            # this iteration rather than let a callback do it in the next.
            self.stops_loop = False
            self.loop.stop()

    # -- used by RuntimeClient ---------------------------------------------------------
    def request(self, head: RequestHead, body: bytes = b"") -> bytes:
        """Frame a request whose answer `response()` will return (`ValueError`: unsendable)."""
        data = self.wire.request(head, body)
        self._expect.append(False)
        return data

    def probe_request(self, head: RequestHead) -> bytes:
        """Frame the pipelining probe: its answer is taken here, never by `response()`."""
        data = self.wire.request(head)
        self._expect.append(True)
        self.probing = True
        return data

    def stream_head(self, head: RequestHead) -> bytes:
        data = self.wire.stream_head(head)
        self._expect.append(False)
        return data

    def write(self, data: bytes) -> None:
        if self.lost:
            raise ConnectionResetError("Runtime API connection lost")
        self.transport.write(data)  # type: ignore[union-attr]

    async def drain(self) -> None:
        """Wait while the socket buffer is full: the handler's producer waits with us."""
        if self._paused and not self.lost:
            fut = self._drain = self.loop.create_future()
            await fut
        if self.lost:
            raise ConnectionResetError("Runtime API connection lost")

    async def response(self, want: int = 1) -> Response:
        """The next answer, in request order. With `want` > 1 (pipelined requests) the caller
        wakes once, when `want` answers are in (or one of them is not 2xx, or the connection
        failed); the others are then taken without waiting."""
        answers = self._answers
        if (len(answers) < want and self._error is None and not self.lost
                and not (answers and not 200 <= answers[0].status < 300)):
            self._want = want
            fut = self._waiter = self.loop.create_future()
            await fut
        if answers:
            return answers.popleft()
        if self._error is not None:
            raise self._error
        raise ConnectionResetError("Runtime API connection lost")

    async def settle_probe(self, timeout: float) -> None:
        """Wait (at most `timeout` seconds) for the probe's answer; without it, `pipelines`
        becomes False."""
        if not self.probing:
            return
        fut = self._probe_waiter = self.loop.create_future()
        timer = self.loop.call_later(timeout, _wake, fut)
        try:
            await fut
        finally:
            timer.cancel()
            self._probe_waiter = None
        if self.probing:
            self.probing = False
            self.pipelines = False

    def peer_gone(self) -> bool:
        """Ask the kernel now whether the peer closed or reset the connection (one poll(0)).

        A producer that never yields to the loop (a sync generator with one invocation at a
        time) would not see `connection_lost` until it finished. A gone connection is aborted
        and no longer reusable; `connection_lost` follows on the loop.
        """
        if self.lost:
            return True
        transport = self.transport
        if transport is None or transport.is_closing():
            return True
        poller = self._poller
        if poller is None:
            sock = transport.get_extra_info("socket")
            if sock is None or not hasattr(select, "poll"):
                return False
            poller = self._poller = select.poll()
            poller.register(sock.fileno(), _HANGUP_EVENTS)
        if not poller.poll(0):
            return False
        self.lost = True
        transport.abort()
        return True

    def reusable(self) -> bool:
        return (not self.lost and self._error is None and not self._expect
                and self.wire.reusable())

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class StreamedRequest:
    """A streamed `/response` in flight: chunks out, then the terminator and trailers."""

    def __init__(self, conn: Connection, target: str) -> None:
        self.conn = conn
        self.target = target

    async def send(self, data: bytes) -> None:
        conn = self.conn
        conn.write(b"%x\r\n%s\r\n" % (len(data), data))  # wire.chunk_bytes, inlined: per chunk
        if conn._paused or conn.lost:
            await conn.drain()

    def send_now(self, data: bytes) -> bool:
        """Send one chunk if the socket's buffer has room (True); else nothing (False): the
        caller then awaits `send`, which waits for room."""
        conn = self.conn
        if conn._paused or conn.lost:
            return False
        conn.transport.write(b"%x\r\n%s\r\n" % (len(data), data))  # type: ignore[union-attr]
        return True

    async def finish(self, trailers: list[tuple[bytes, bytes]] | None = None) -> None:
        """End the body and check the service's answer, which comes only after the terminator."""
        conn = self.conn
        conn.write(conn.wire.end_stream(trailers or []))
        status, _, body = await conn.response()
        if not protocol.is_success(status):
            raise RuntimeAPIError(self.target, status, body)


class _InFlight(NamedTuple):
    """A buffered post written with a `GET /next` behind it on `conn`; `next` reads both answers."""

    conn: Connection
    head: RequestHead
    body: bytes


class RuntimeClient:
    """The Runtime API over one keep-alive connection.

    `address` is `AWS_LAMBDA_RUNTIME_API` (`host:port[/prefix]`, see `protocol.parse_address`);
    `engine` a wire engine name (default: the one `ARUNTIME_HTTP` selects). Raises `ValueError`
    with a one-line message for a bad address or engine. `pipeline`: see the module docstring.
    """

    def __init__(self, address: str, engine: str | None = None) -> None:
        parsed = protocol.parse_address(address)
        self.host = parsed.host
        self.port = parsed.port
        self.host_header = parsed.host_header
        self.prefix = parsed.prefix
        self.engine = engine_name(os.environ.get("ARUNTIME_HTTP")) if engine is None else engine
        self._wire = wire_class(self.engine)  # imported now, at start, not in an invocation
        self._conn: Connection | None = None
        self._next = protocol.get_request(self.host_header, self.prefix + protocol.NEXT_TARGET)
        self._probe = protocol.probe_request(self.host_header)
        # Set by a caller that always calls `next()` after `post()` (the serving loops).
        self.pipeline = False
        # Whether the server answers pipelined requests: None until a probe has told.
        self.pipelining: bool | None = None
        self._in_flight: _InFlight | None = None
        # The event loop to connect on; None: the running one. The runtime sets it, so a step
        # of its serving coroutine can run outside the loop (runtime._drive).
        self.loop: asyncio.AbstractEventLoop | None = None

    async def _connection(self) -> Connection:
        conn = self._conn
        if conn is not None:
            if conn.probing:
                await conn.settle_probe(PROBE_WAIT_S)
            if conn.pipelines is not None and self.pipelining is None:
                self.pipelining = conn.pipelines
                if not conn.pipelines:
                    log.info("the Runtime API does not answer pipelined requests: each request "
                             "now waits for the previous answer")
            if conn.reusable():
                return conn
            conn.close()
            self._conn = None
        loop = self.loop or asyncio.get_running_loop()
        buffer = receive_buffer(loop)
        wire = self._wire
        error: Exception | None = None
        _hold_stdio_numbers()
        for attempt in range(CONNECT_ATTEMPTS):
            try:
                _, conn = await loop.create_connection(lambda: Connection(wire, loop, buffer),
                                                       self.host, self.port)
            except OSError as e:
                error = e
                if attempt + 1 < CONNECT_ATTEMPTS:  # no wait once the last attempt failed
                    await _sleep(loop, BACKOFF_S * 2**attempt)
                continue
            self._conn = conn
            return conn
        raise RuntimeAPIUnavailable(
            f"cannot connect to the Runtime API at {self.host_header.decode()}: {error}")

    def _drop(self, conn: Connection, head: RequestHead, error: Exception | None = None) -> None:
        """Give up on `conn`; say so when it lost part of the answer to `head`."""
        conn.close()
        if self._conn is conn:
            self._conn = None
        if isinstance(error, WireError) and error.cut:
            if head.method == b"GET":
                # An answer to `/next` belongs to no invocation yet: the one the logging
                # context holds is the previous invocation's, not this answer's.
                invocation.outside(log.warning, "%s", protocol.cut_answer_warning(head, error))
            else:
                log.warning("%s", protocol.cut_answer_warning(head, error))

    async def exchange(self, head: RequestHead, body: bytes = b"", probe: bool = False) -> Response:
        """Send one request and read its answer, on a fresh connection if the old one died.

        `head.target` is sent as it is (the caller put it under the address's prefix). An
        answer cut short is logged at WARNING before the request is sent again. With `probe`,
        the pipelining probe follows the request in the same write.
        """
        error: Exception | None = None
        for attempt in range(CONNECT_ATTEMPTS):
            conn = await self._connection()
            try:
                data = conn.request(head, body)
                if probe:
                    data += conn.probe_request(self._probe)
                conn.write(data)
                return await conn.response()
            except ConnectionError as e:  # WireError included: a peer speaking non-HTTP
                error = e
                self._drop(conn, head, e)
                # A kept-alive connection the server closed is retried at once; after that,
                # back off, and give up without waiting once the last attempt failed.
                if 0 < attempt < CONNECT_ATTEMPTS - 1:
                    await _sleep(conn.loop, BACKOFF_S * 2**attempt)
        raise RuntimeAPIUnavailable(f"Runtime API {head.target.decode()}: {error}")

    async def next(self) -> Invocation:
        """`GET /next`: the next invocation (any 2xx answer carries one, docs/SPEC.md §8). After a post
        that `pipeline` sent with a `/next` behind it, the answers to both; see the module
        docstring."""
        flight = self._in_flight
        if flight is not None:
            self._in_flight = None
            return await self._answers(flight)
        return await self._next_alone()

    async def _next_alone(self) -> Invocation:
        probe = self.pipeline and self.pipelining is None
        status, headers, body = await self.exchange(self._next, probe=probe)
        if not protocol.is_success(status):
            raise RuntimeAPIError(self._next.target.decode(), status, body)
        return protocol.parse_invocation(headers, body)

    async def _answers(self, flight: _InFlight) -> Invocation:
        conn, head, body = flight
        try:
            answer = await conn.response(2)
        except ConnectionError as e:
            # No answer to the post: as for any request, it is sent again on a new connection.
            self._drop(conn, head, e)
            self._posted(head, await self.exchange(head, body))
            return await self._next_alone()
        self._posted(head, answer)
        try:
            status, headers, answer_body = await conn.response()
        except ConnectionError as e:
            # The post was answered, then the connection ended: the `/next` behind it was never
            # answered, so it handed out no invocation; ask again on a new connection.
            self._drop(conn, self._next, e)
            return await self._next_alone()
        if not protocol.is_success(status):
            if status in _REFUSALS:
                log.info("the Runtime API refused a pipelined GET /next (%d): each request now "
                         "waits for the previous answer", status)
                self.pipelining = False
                self._drop(conn, self._next)
                return await self._next_alone()
            raise RuntimeAPIError(self._next.target.decode(), status, answer_body)
        return protocol.parse_invocation(headers, answer_body)

    def _posted(self, head: RequestHead, answer: Response) -> None:
        """The answer to a post sent by `next`: 4xx fails that invocation only (logged), 5xx
        is raised (the runtime exits), as `invoke` does for the posts it sends itself."""
        status, _, body = answer
        if protocol.is_success(status):
            return
        error = RuntimeAPIError(head.target.decode(), status, body)
        if error.fatal:
            raise error
        log.warning("%s", error)

    def _check_idle(self) -> None:
        if self._in_flight is not None:
            # A `/next` is on its way: its answer is an invocation, which only `next` may take.
            raise RuntimeError("RuntimeClient: a GET /next is in flight behind a post; call next()")

    async def post(self, request: RequestHead, body: bytes) -> None:
        """Send a `/response` or `/error` post; raises `RuntimeAPIError` unless answered 2xx.

        With `pipeline` on and a server that pipelines, the post leaves now with the `GET /next`
        behind it in the same write (`ValueError` for a header that cannot be sent), and the
        following `next()` checks its answer (see `_posted`) before it returns the invocation.
        """
        self._check_idle()
        request = protocol.prefixed(request, self.prefix)
        if self.pipeline:
            conn = self._conn  # the usual case, without a coroutine: a proven, idle connection
            if conn is None or self.pipelining is None or not conn.reusable():
                conn = await self._connection()  # learns whether the server pipelines
            if self.pipelining:
                data = conn.request(request, body) + conn.request(self._next)
                try:
                    conn.write(data)
                except ConnectionError as e:  # gone since its last answer: as exchange() does
                    self._drop(conn, request, e)
                else:
                    self._in_flight = _InFlight(conn, request, body)
                    return
        status, _, answer = await self.exchange(request, body)
        if not protocol.is_success(status):
            raise RuntimeAPIError(request.target.decode(), status, answer)

    async def get(self, target: str) -> None:
        """A `GET` whose answer carries nothing (`/restore/next`); raises unless 2xx."""
        self._check_idle()
        target = self.prefix + target
        status, _, answer = await self.exchange(protocol.get_request(self.host_header, target))
        if not protocol.is_success(status):
            raise RuntimeAPIError(target, status, answer)

    async def open_stream(self, inv: Invocation, content_type: bytes,
                          first: bytes = b"") -> StreamedRequest:
        """Send the head of a streamed `/response` and its `first` chunk (if any) in one write;
        the body follows chunk by chunk."""
        self._check_idle()
        request = protocol.prefixed(protocol.stream_request(self.host_header, inv, content_type),
                                    self.prefix)
        conn = self._conn
        if conn is None or self.pipelining is None or not conn.reusable():
            conn = await self._connection()
        if conn.peer_gone():  # closed by the server since its last answer: a body cannot be resent
            conn = await self._connection()
        data = conn.stream_head(request)
        conn.write(data + conn.wire.chunk(first) if first else data)
        return StreamedRequest(conn, request.target.decode())

    def stop_loop_when_answered(self, awaited: object) -> bool:
        """If `awaited` (what a coroutine using this client suspended on) is the connection's
        wait for its answers, make the connection stop the event loop as it wakes it, and
        return True. The runtime then runs the loop with `run_forever` and resumes the
        coroutine itself: one loop iteration for the whole wait."""
        conn = self._conn
        if conn is None or awaited is None or conn._waiter is not awaited:
            return False
        conn.stops_loop = True
        return True

    def close(self) -> None:
        self._in_flight = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
