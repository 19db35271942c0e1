"""A Runtime API peer that answers with exact bytes a test scripts, for servers unlike our fake.

`FakeRuntimeAPI` (fakeapi.py) answers the way the service does. Real peers differ: a path prefix
(cargo-lambda serves under `/.rt`), `200` where the service says `202`, `Connection: close` on
every answer, HTTP/1.0 answers whose body ends at close, interim `1xx` answers, chunked `/next`
answers, answers cut short. `RawPeer` listens on loopback, parses each request itself (keeping
its raw bytes and each chunk as framed), and writes back whatever bytes the test chose.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable, Union

__all__ = ["RawPeer", "Request", "answer", "ACCEPTED"]


@dataclass
class Request:
    """One request as it arrived: head, body (chunks de-framed), and its raw bytes."""

    conn: int
    method: str
    target: str
    headers: list[tuple[str, str]]  # names lower-cased
    body: bytes = b""
    chunks: list[bytes] = field(default_factory=list)  # chunked bodies: one entry per chunk
    trailers: list[tuple[str, str]] = field(default_factory=list)
    raw: bytes = b""
    answered: bytes | None = None  # what the peer wrote back (None: it closed instead)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name.lower():
                return value
        return None

    def __repr__(self) -> str:
        return f"<Request conn={self.conn} {self.method} {self.target} body={self.body[:60]!r}>"


def answer(status: int = 200, body: bytes = b"", headers: list[tuple[str, str]] | None = None, *,
           framing: str = "length", version: str = "1.1", reason: str = "OK") -> bytes:
    """The bytes of one answer. framing: "length" (Content-Length), "chunked", "close"
    (neither: the body ends when the connection closes) or "none" (no body, no framing: 204)."""
    lines = [f"HTTP/{version} {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers or []]
    if framing == "length":
        lines.append(f"Content-Length: {len(body)}")
    elif framing == "chunked":
        lines.append("Transfer-Encoding: chunked")
        body = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return head + body


ACCEPTED = answer(202, b'{"status":"OK"}', [("Content-Type", "application/json")], reason="Accepted")

# What a script returns: bytes to write, then whether to close; or None: close without answering.
Reply = Union[tuple[bytes, bool], None]
Script = Callable[[Request], Reply]


class _Closed(Exception):
    pass


class RawPeer:
    """A scripted Runtime API on loopback. `/next` answers come from `push`; every other
    request gets `ACCEPTED` unless `script` says otherwise."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.requests: list[Request] = []
        self.connections = 0
        self.probes = 0  # `OPTIONS *` requests answered (the runtime's pipelining probe)
        self._next: asyncio.Queue[Reply] = asyncio.Queue()
        self._finished = False
        self._scripts: list[tuple[str, Script]] = []
        self._changed = asyncio.Event()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def __aenter__(self) -> RawPeer:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 5)

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    # -- scripting ---------------------------------------------------------------------
    def push(self, data: bytes | None, *, close: bool = False) -> None:
        """Queue one `/next` answer (raw bytes; None closes the connection instead)."""
        self._next.put_nowait(None if data is None else (data, close))

    def invocation(self, rid: str, body: bytes = b"{}", *, status: int = 200,
                   headers: list[tuple[str, str]] | None = None, **kw: str) -> bytes:
        """A `/next` answer as the service frames it, with `rid` as request id."""
        base = [("Content-Type", "application/json"), ("Lambda-Runtime-Aws-Request-Id", rid),
                ("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60_000)),
                ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:1:function:f")]
        return answer(status, body, base + (headers or []), **kw)

    def script(self, match: str, reply: Script) -> None:
        """Answer requests whose target contains `match` with `reply(request)`."""
        self._scripts.append((match, reply))

    def finish(self) -> None:
        """Once the queued `/next` answers are used, `/next` answers 500: the runtime exits."""
        self._finished = True
        self._wake()

    async def wait_for(self, pred: Callable[[Request], bool], timeout: float = 10) -> Request:
        async def until() -> Request:
            while True:
                for req in self.requests:
                    if pred(req):
                        return req
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(until(), timeout)

    def _wake(self) -> None:
        self._changed.set()

    # -- serving -----------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = self.connections
        self.connections += 1
        self._writers.add(writer)
        try:
            while True:
                req = await _read_request(reader, index)
                if req is None:
                    return
                if req.method == "OPTIONS" and req.target == "*":
                    # The runtime's pipelining probe, answered as Go's net/http answers it.
                    # Counted, not recorded: it is no Runtime API call.
                    self.probes += 1
                    writer.write(answer(200))
                    await writer.drain()
                    continue
                self.requests.append(req)
                self._wake()
                reply = await self._reply(req)
                if reply is None:
                    return
                data, close = reply
                req.answered = data
                writer.write(data)
                await writer.drain()
                if close:
                    return
        except (_Closed, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _reply(self, req: Request) -> Reply:
        for match, reply in self._scripts:
            if match in req.target:
                return reply(req)
        if req.method == "GET" and req.target.endswith("/invocation/next"):
            while self._next.empty():
                if self._finished:
                    return answer(500, b'{"errorType":"Runtime.Exit"}'), False
                self._changed.clear()
                waiter = asyncio.ensure_future(self._next.get())
                changed = asyncio.ensure_future(self._changed.wait())
                done, _ = await asyncio.wait({waiter, changed}, return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
                if waiter in done:
                    return waiter.result()
                waiter.cancel()
            return self._next.get_nowait()
        return ACCEPTED, False


async def _read_request(reader: asyncio.StreamReader, conn: int) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
    req = Request(conn, method, target, headers)
    raw = bytearray(head)
    if (req.header("transfer-encoding") or "").lower() == "chunked":
        body = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            raw += size_line
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            data = await reader.readexactly(size + 2)
            raw += data
            req.chunks.append(data[:-2])
            body += data[:-2]
        while True:  # trailers, then the empty line
            line = await reader.readuntil(b"\r\n")
            raw += line
            if line == b"\r\n":
                break
            name, _, value = line.decode("latin-1").partition(":")
            req.trailers.append((name.strip().lower(), value.strip()))
        req.body = bytes(body)
    else:
        length = int(req.header("content-length") or 0)
        req.body = await reader.readexactly(length) if length else b""
        raw += req.body
    req.raw = bytes(raw)
    return req
