"""A Runtime API peer for the pipelining tests: it records which read of which connection each
request's bytes arrived in (so a test can tell requests sent in one write), and can behave like
servers that do not pipeline.

Modes:
- "pipeline": requests are served in order, however they arrive (as Go's net/http and hyper).
- "one-per-read": one request is taken from each read and the rest of that read is dropped, as a
  naive server that calls recv() per request does: a pipelined request is silently lost.
- "close": the connection is closed after every answer (an HTTP/1.0-minded server).
- "refuse": a request that arrived in the same read as the one before it gets `400 Bad Request`
  and the connection is closed (a server that refuses pipelining outright).

`/next` answers come from `push` (raw bytes) and wait when none is queued; other requests get
`ACCEPTED` unless `script` says otherwise. `OPTIONS *` is answered 200 (Go's answer) and
recorded like any request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable

ACCEPTED = b'HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{"status":"OK"}\n'
OPTIONS_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
REFUSED = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
EXIT = b'HTTP/1.1 500 Internal Server Error\r\nContent-Length: 28\r\n\r\n{"errorType":"Runtime.Exit"}'


@dataclass
class Req:
    conn: int
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    first_read: int  # index (per connection) of the read its first byte arrived in
    last_read: int  # ... and its last byte
    head_read: int = 0  # ... the end of its head
    chunk_reads: list[int] = field(default_factory=list)  # chunked body: the end of each chunk
    answered: bytes | None = None
    at: float = 0.0

    @property
    def path(self) -> str:
        return self.target

    def __repr__(self) -> str:
        return f"<Req c{self.conn} r{self.first_read}-{self.last_read} {self.method} {self.target}>"


def invocation(rid: str, body: bytes = b"{}") -> bytes:
    deadline = int(time.time() * 1000) + 60_000
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Lambda-Runtime-Aws-Request-Id: %s\r\nLambda-Runtime-Deadline-Ms: %d\r\n"
            b"Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:1:function:f\r\n"
            b"Content-Length: %d\r\n\r\n%s") % (rid.encode(), deadline, len(body), body)


class PipePeer:
    def __init__(self, mode: str = "pipeline") -> None:
        self.mode = mode
        self.requests: list[Req] = []
        self.connections = 0
        self._next: asyncio.Queue[bytes] = asyncio.Queue()
        self._finished = False
        self._scripts: list[tuple[str, Callable[[Req], tuple[bytes, bool]]]] = []
        self._changed = asyncio.Event()
        self._server: asyncio.base_events.Server | None = None
        self._conns: list[_Conn] = []
        self.port = 0

    async def __aenter__(self) -> PipePeer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Conn(self), "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for conn in self._conns:
            conn.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 5)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def push(self, rid: str, body: bytes = b"{}") -> None:
        self._next.put_nowait(invocation(rid, body))

    def script(self, match: str, reply: Callable[[Req], tuple[bytes, bool]]) -> None:
        """Answer requests whose target contains `match` with `reply(req)`: (bytes, close)."""
        self._scripts.append((match, reply))

    def finish(self) -> None:
        """Once the queued invocations are handed out, `/next` answers 500: the runtime exits."""
        self._finished = True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, pred: Callable[[Req], bool], timeout: float = 10) -> Req:
        async def until() -> Req:
            while True:
                for req in self.requests:
                    if pred(req):
                        return req
                await self._changed.wait()

        return await asyncio.wait_for(until(), timeout)

    def of(self, method: str, suffix: str) -> list[Req]:
        return [r for r in self.requests if r.method == method and r.target.endswith(suffix)]

    async def _reply(self, req: Req) -> tuple[bytes, bool] | None:
        for match, reply in self._scripts:
            if match in req.target:
                return reply(req)
        if req.method == "OPTIONS" and req.target == "*":
            return OPTIONS_OK, False
        if req.method == "GET" and req.target.endswith("/invocation/next"):
            while self._next.empty():
                if self._finished:
                    return EXIT, False
                await self._changed.wait()
            return self._next.get_nowait(), False
        return ACCEPTED, False


class _Conn(asyncio.Protocol):
    def __init__(self, peer: PipePeer) -> None:
        self.peer = peer
        self.index = peer.connections
        peer.connections += 1
        peer._conns.append(self)
        self.reads: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.task = asyncio.ensure_future(self.serve())

    def data_received(self, data: bytes) -> None:
        self.reads.put_nowait(data)

    def eof_received(self) -> bool:
        self.reads.put_nowait(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.reads.put_nowait(None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if self.task is not None:
            self.task.cancel()

    async def serve(self) -> None:
        buf = bytearray()
        base = 0  # offset of buf[0] from the start of the connection
        marks: list[tuple[int, int]] = []  # (offset where a read's bytes start, read index)
        previous_read = -1
        try:
            while True:
                req, used = _parse(buf)
                if req is None:
                    data = await self.reads.get()
                    if data is None:
                        return
                    marks.append((base + len(buf), len(marks)))
                    buf += data
                    continue
                method, target, headers, body, ends = req
                start, end = base, base + used
                first, last = _read_at(marks, start), _read_at(marks, end - 1)
                r = Req(self.index, method, target, headers, body, first, last, at=time.monotonic(),
                        head_read=_read_at(marks, start + ends[0] - 1),
                        chunk_reads=[_read_at(marks, start + e - 1) for e in ends[1:]])
                self.peer.requests.append(r)
                self.peer._wake()
                same_read = first == previous_read
                previous_read = last
                if self.peer.mode == "one-per-read":
                    # recv() per request: what followed this request in its read is lost.
                    later = [off for off, _ in marks if off >= end]
                    cut = (min(later) - base) if later else len(buf)
                else:
                    cut = used
                del buf[:cut]
                base += cut
                if self.peer.mode == "refuse" and same_read:
                    r.answered = REFUSED
                    self.transport.write(REFUSED)  # type: ignore[union-attr]
                    self.transport.close()  # type: ignore[union-attr]
                    return
                reply = await self.peer._reply(r)
                if reply is None or self.transport is None or self.transport.is_closing():
                    return
                data, close = reply
                r.answered = data
                self.transport.write(data)
                if close or self.peer.mode == "close":
                    self.transport.close()
                    return
        except asyncio.CancelledError:
            pass


def _read_at(marks: list[tuple[int, int]], offset: int) -> int:
    """The index of the read that brought the byte at `offset` (from the connection's start)."""
    return max(i for off, i in marks if off <= offset)


Parsed = tuple[str, str, dict[str, str], bytes, list[int]]


def _parse(buf: bytearray) -> tuple[Parsed | None, int]:
    """One complete request at the start of `buf` (Content-Length or chunked body) and the
    bytes it took, or (None, 0). The last item: where its head ends, then where each chunk of a
    chunked body ends (offsets in `buf`)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None, 0
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    pos = end + 4
    ends = [pos]
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            nl = buf.find(b"\r\n", pos)
            if nl < 0:
                return None, 0
            size = int(bytes(buf[pos:nl]).split(b";")[0], 16)
            pos = nl + 2
            if size == 0:
                trailers_end = buf.find(b"\r\n\r\n", pos - 2)
                if trailers_end < 0:
                    return None, 0
                return (method, target, headers, bytes(body), ends), trailers_end + 4
            if len(buf) < pos + size + 2:
                return None, 0
            body += buf[pos:pos + size]
            pos += size + 2
            ends.append(pos - 2)
    length = int(headers.get("content-length", "0"))
    if len(buf) < pos + length:
        return None, 0
    return (method, target, headers, bytes(buf[pos:pos + length]), ends), pos + length
