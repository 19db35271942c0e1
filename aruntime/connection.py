"""The asyncio shell around `h11`: one kept-alive HTTP/1.1 connection to the Runtime API.

An `asyncio.Protocol` (not streams: fewer objects and awaits per request) feeds received bytes to
`h11` and writes what `h11` produces. `RuntimeClient` owns the connection, reconnects when the
server closed it, and retries a dead connection a bounded number of times.
"""

from __future__ import annotations

import asyncio
from typing import Callable

import h11

from . import protocol
from .errors import RuntimeAPIError, RuntimeAPIUnavailable
from .protocol import Invocation

CONNECT_ATTEMPTS = 5
BACKOFF_S = 0.05
# Client-context headers can be large; the service allows a few KiB, we allow far more.
MAX_HEAD_BYTES = 1024 * 1024


class Connection(asyncio.Protocol):
    """One TCP connection; `h11` state plus the futures a coroutine waits on."""

    def __init__(self) -> None:
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.transport: asyncio.Transport | None = None
        self.lost = False
        # Called once if the connection is lost: cancels a streaming invocation's work.
        self.on_lost: Callable[[], object] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._paused = False

    # -- asyncio.Protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.h11.receive_data(data)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def eof_received(self) -> bool:
        self._feed_eof()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._feed_eof()
        for fut in (self._waiter, self._drain):
            if fut is not None and not fut.done():
                fut.set_result(None)
        self._waiter = self._drain = None
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
    def _feed_eof(self) -> None:
        try:
            self.h11.receive_data(b"")
        except RuntimeError:  # already fed
            pass
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def send(self, event: h11.Event) -> None:
        if self.lost:
            raise ConnectionResetError("Runtime API connection lost")
        data = self.h11.send(event)
        if data:
            self.transport.write(data)  # type: ignore[union-attr]

    async def drain(self) -> None:
        """Wait while the socket buffer is full: the handler's producer waits with us."""
        if self._paused and not self.lost:
            fut = self._drain = asyncio.get_running_loop().create_future()
            await fut
        if self.lost:
            raise ConnectionResetError("Runtime API connection lost")

    async def next_event(self) -> h11.Event:
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                if self.lost:
                    raise ConnectionResetError("Runtime API connection lost")
                fut = self._waiter = asyncio.get_running_loop().create_future()
                await fut
                continue
            if type(event) is h11.ConnectionClosed:
                raise ConnectionResetError("Runtime API closed the connection")
            return event  # type: ignore[return-value]

    async def read_response(self) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        status = 0
        headers: list[tuple[bytes, bytes]] = []
        body = b""
        while True:
            event = await self.next_event()
            kind = type(event)
            if kind is h11.Response:
                status = event.status_code  # type: ignore[union-attr]
                headers = event.headers  # type: ignore[union-attr, assignment]
            elif kind is h11.Data:
                body += event.data  # type: ignore[union-attr]
            elif kind is h11.EndOfMessage:
                return status, headers, body

    def reusable(self) -> bool:
        if self.lost:
            return False
        conn = self.h11
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            return True
        return conn.our_state is h11.IDLE and conn.their_state is h11.IDLE

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class StreamedRequest:
    """A streamed `/response` in flight: chunks out, then the terminator and trailers."""

    def __init__(self, conn: Connection, target: str) -> None:
        self.conn = conn
        self.target = target

    async def send(self, data: bytes) -> None:
        self.conn.send(h11.Data(data=data))
        await self.conn.drain()

    async def finish(self, trailers: list[tuple[bytes, bytes]] | None = None) -> None:
        """End the body and check the service's answer, which comes only after the terminator."""
        self.conn.send(h11.EndOfMessage(headers=trailers or []))
        status, _, body = await self.conn.read_response()
        if status != 202:
            raise RuntimeAPIError(self.target, status, body)


class RuntimeClient:
    """The Runtime API over one keep-alive connection."""

    def __init__(self, address: str) -> None:
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"AWS_LAMBDA_RUNTIME_API must be host:port, got {address!r}")
        self.host = host.strip("[]")
        self.port = int(port)
        self.host_header = address.encode()
        self._conn: Connection | None = None
        self._next = protocol.get_request(self.host_header, protocol.NEXT_TARGET)

    async def _connection(self) -> Connection:
        conn = self._conn
        if conn is not None:
            if conn.reusable():
                return conn
            conn.close()
            self._conn = None
        loop = asyncio.get_running_loop()
        error: Exception | None = None
        for attempt in range(CONNECT_ATTEMPTS):
            try:
                _, conn = await loop.create_connection(Connection, self.host, self.port)
            except OSError as e:
                error = e
                await asyncio.sleep(BACKOFF_S * 2**attempt)
                continue
            self._conn = conn
            return conn
        raise RuntimeAPIUnavailable(
            f"cannot connect to the Runtime API at {self.host}:{self.port}: {error}")

    async def exchange(self, request: h11.Request, body: bytes = b"") -> tuple[int, list, bytes]:
        """Send one request and read its answer, on a fresh connection if the old one died."""
        error: Exception | None = None
        for attempt in range(CONNECT_ATTEMPTS):
            conn = await self._connection()
            try:
                conn.send(request)
                if body:
                    conn.send(h11.Data(data=body))
                conn.send(h11.EndOfMessage())
                return await conn.read_response()
            except (ConnectionError, h11.RemoteProtocolError) as e:
                error = e
                conn.close()
                self._conn = None
                if attempt:
                    await asyncio.sleep(BACKOFF_S * 2**attempt)
        raise RuntimeAPIUnavailable(f"Runtime API {request.target.decode()}: {error}")

    async def next(self) -> Invocation:
        status, headers, body = await self.exchange(self._next)
        if status != 200:
            raise RuntimeAPIError(protocol.NEXT_TARGET, status, body)
        return protocol.parse_invocation(headers, body)

    async def post(self, request: h11.Request, body: bytes) -> None:
        status, _, answer = await self.exchange(request, body)
        if status != 202:
            raise RuntimeAPIError(request.target.decode(), status, answer)

    async def get(self, target: str) -> None:
        status, _, answer = await self.exchange(protocol.get_request(self.host_header, target))
        if status != 200:
            raise RuntimeAPIError(target, status, answer)

    async def open_stream(self, inv: Invocation, content_type: bytes) -> StreamedRequest:
        """Send the head of a streamed `/response`; the body follows chunk by chunk."""
        request = protocol.stream_request(self.host_header, inv, content_type)
        conn = await self._connection()
        conn.send(request)
        return StreamedRequest(conn, request.target.decode())

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
