"""The asyncio shell: one kept-alive HTTP/1.1 connection to the Runtime API.

An `asyncio.Protocol` (not streams: fewer objects and awaits per request) feeds received bytes to
the sans-IO wire (`wire.py`: h11, or httptools with the `fast` extra) and writes what it
produces. `RuntimeClient` owns the connection, reconnects when the server closed it, and retries
a dead connection a bounded number of times.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
from typing import Callable

from . import protocol
from .errors import RuntimeAPIError, RuntimeAPIUnavailable
from .protocol import Invocation
from .wire import RequestHead, Response, WireError, engine_name, new_wire

log = logging.getLogger("aruntime")

# Attempts at reaching the Runtime API before giving up, and the first wait between two of them
# (doubled after each failure): connecting waits 50, 100, 200, 400 ms; a request whose
# connection dies is retried at once (a kept-alive connection the server closed), then after
# 100, 200, 400 ms. tests/test_core_api_failures.py pins both schedules.
CONNECT_ATTEMPTS = 5
BACKOFF_S = 0.05
# poll() reports a reset (POLLERR/POLLHUP) unasked; a plain close (FIN) only as POLLRDHUP (Linux).
_HANGUP_EVENTS = getattr(select, "POLLRDHUP", 0)


class Connection(asyncio.Protocol):
    """One TCP connection: a sans-IO wire plus the future a coroutine waits on.

    Received bytes are parsed as they arrive; the waiting coroutine wakes once, when the
    whole answer is in.
    """

    def __init__(self, engine: str = "h11") -> None:
        self.wire = new_wire(engine)
        self.transport: asyncio.Transport | None = None
        self.lost = False
        # Called once if the connection is lost: cancels a streaming invocation's work.
        self.on_lost: Callable[[], object] | None = None
        self._waiter: asyncio.Future[Response] | None = None
        self._early: Response | None = None
        self._error: Exception | None = None
        self._drain: asyncio.Future[None] | None = None
        self._paused = False
        self._eof = False
        self._poller: select.poll | None = None

    # -- asyncio.Protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            response = self.wire.receive(data)
        except WireError as e:
            self._fail(e)
            self.transport.close()  # type: ignore[union-attr]
            return
        if response is not None:
            self._deliver(response)

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

    # -- used by RuntimeClient ---------------------------------------------------------
    def _deliver(self, response: Response) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._waiter = None
            waiter.set_result(response)
        else:  # an answer while a stream is still being sent (e.g. 413, 410)
            self._early = response

    def _feed_eof(self) -> None:
        if self._eof:
            return
        self._eof = True
        try:
            response = self.wire.receive(b"")
        except WireError as e:
            self._fail(e)
            return
        if response is not None:
            self._deliver(response)

    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._waiter = None
            waiter.set_exception(exc)
        elif self._error is None:
            self._error = exc

    def write(self, data: bytes) -> None:
        if self.lost:
            raise ConnectionResetError("Runtime API connection lost")
        self.transport.write(data)  # type: ignore[union-attr]

    async def drain(self) -> None:
        """Wait while the socket buffer is full: the handler's producer waits with us."""
        if self._paused and not self.lost:
            fut = self._drain = asyncio.get_running_loop().create_future()
            await fut
        if self.lost:
            raise ConnectionResetError("Runtime API connection lost")

    async def response(self) -> Response:
        """The answer to the request just sent."""
        early, self._early = self._early, None
        if early is not None:
            return early
        if self._error is not None:
            raise self._error
        if self.lost:
            raise ConnectionResetError("Runtime API connection lost")
        fut = self._waiter = asyncio.get_running_loop().create_future()
        return await fut

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
        return not self.lost and self._error is None and self.wire.reusable()

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
        conn.write(conn.wire.chunk(data))
        await conn.drain()

    async def finish(self, trailers: list[tuple[bytes, bytes]] | None = None) -> None:
        """End the body and check the service's answer, which comes only after the terminator."""
        conn = self.conn
        conn.write(conn.wire.end_stream(trailers or []))
        status, _, body = await conn.response()
        if not protocol.is_success(status):
            raise RuntimeAPIError(self.target, status, body)


class RuntimeClient:
    """The Runtime API over one keep-alive connection.

    `address` is `AWS_LAMBDA_RUNTIME_API` (`host:port[/prefix]`, see `protocol.parse_address`);
    `engine` a wire engine name (default: the one `ARUNTIME_HTTP` selects). Raises `ValueError`
    with a one-line message for a bad address or engine.
    """

    def __init__(self, address: str, engine: str | None = None) -> None:
        parsed = protocol.parse_address(address)
        self.host = parsed.host
        self.port = parsed.port
        self.host_header = parsed.host_header
        self.prefix = parsed.prefix
        self.engine = engine_name(os.environ.get("ARUNTIME_HTTP")) if engine is None else engine
        self._conn: Connection | None = None
        self._next = protocol.get_request(self.host_header, self.prefix + protocol.NEXT_TARGET)

    async def _connection(self) -> Connection:
        conn = self._conn
        if conn is not None:
            if conn.reusable():
                return conn
            conn.close()
            self._conn = None
        loop = asyncio.get_running_loop()
        engine = self.engine
        error: Exception | None = None
        for attempt in range(CONNECT_ATTEMPTS):
            try:
                _, conn = await loop.create_connection(lambda: Connection(engine), self.host,
                                                       self.port)
            except OSError as e:
                error = e
                if attempt + 1 < CONNECT_ATTEMPTS:  # no wait once the last attempt failed
                    await asyncio.sleep(BACKOFF_S * 2**attempt)
                continue
            self._conn = conn
            return conn
        raise RuntimeAPIUnavailable(
            f"cannot connect to the Runtime API at {self.host_header.decode()}: {error}")

    async def exchange(self, head: RequestHead, body: bytes = b"") -> Response:
        """Send one request and read its answer, on a fresh connection if the old one died.

        `head.target` is sent as it is (the caller put it under the address's prefix). An
        answer cut short is logged at WARNING before the request is sent again.
        """
        error: Exception | None = None
        for attempt in range(CONNECT_ATTEMPTS):
            conn = await self._connection()
            try:
                data = conn.wire.request(head, body)
                conn.write(data)
                return await conn.response()
            except ConnectionError as e:  # WireError included: a peer speaking non-HTTP
                error = e
                conn.close()
                self._conn = None
                if isinstance(e, WireError) and e.cut:
                    log.warning("%s", protocol.cut_answer_warning(head, e))
                # A kept-alive connection the server closed is retried at once; after that,
                # back off, and give up without waiting once the last attempt failed.
                if 0 < attempt < CONNECT_ATTEMPTS - 1:
                    await asyncio.sleep(BACKOFF_S * 2**attempt)
        raise RuntimeAPIUnavailable(f"Runtime API {head.target.decode()}: {error}")

    async def next(self) -> Invocation:
        """`GET /next`: the next invocation (any 2xx answer carries one, docs/SPEC.md §8)."""
        status, headers, body = await self.exchange(self._next)
        if not protocol.is_success(status):
            raise RuntimeAPIError(self._next.target.decode(), status, body)
        return protocol.parse_invocation(headers, body)

    async def post(self, request: RequestHead, body: bytes) -> None:
        """Send a `/response` or `/error` post; raises `RuntimeAPIError` unless answered 2xx."""
        request = protocol.prefixed(request, self.prefix)
        status, _, answer = await self.exchange(request, body)
        if not protocol.is_success(status):
            raise RuntimeAPIError(request.target.decode(), status, answer)

    async def get(self, target: str) -> None:
        """A `GET` whose answer carries nothing (`/restore/next`); raises unless 2xx."""
        target = self.prefix + target
        status, _, answer = await self.exchange(protocol.get_request(self.host_header, target))
        if not protocol.is_success(status):
            raise RuntimeAPIError(target, status, answer)

    async def open_stream(self, inv: Invocation, content_type: bytes) -> StreamedRequest:
        """Send the head of a streamed `/response`; the body follows chunk by chunk."""
        request = protocol.prefixed(protocol.stream_request(self.host_header, inv, content_type),
                                    self.prefix)
        conn = await self._connection()
        if conn.peer_gone():  # closed by the server since its last answer: a body cannot be resent
            conn = await self._connection()
        conn.write(conn.wire.stream_head(request))
        return StreamedRequest(conn, request.target.decode())

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
