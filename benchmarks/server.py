"""A lean Lambda Runtime API server for timing runtimes.

Every answer is pre-built bytes; requests are parsed only as far as framing needs
(Content-Length, chunked bodies with trailers, `Expect: 100-continue` from the
reference's libcurl). Bodies are counted, never stored, so a 1 MiB response or a
streamed 256 MiB one costs the server next to nothing.

The server also takes the measurements, because it is the only party that knows
exactly when a runtime has finished an invoke: when `GET /next` number *i*
arrives, the runtime has posted *i* responses and is blocked waiting, so its CPU
clock read at that moment holds exactly the work for those *i* invokes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from . import procstat

NEXT_PATH = b"/2018-06-01/runtime/invocation/next"
_ACCEPTED = b'HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{"status":"OK"}\n'
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_MAX_HEAD = 64 * 1024
_ID_VARIANTS = 128  # distinct request ids, so concurrent invocations never share one


def build_next_answers(body: bytes, content_type: bytes = b"application/json") -> list[bytes]:
    """Pre-built `GET /next` answers carrying `body`, one per request id variant."""
    deadline = int(time.time() * 1000) + 3_600_000  # an hour: no run gets near it
    out = []
    for i in range(_ID_VARIANTS):
        rid = b"8476a536-e9f4-11e8-9739-%012d" % i
        head = (
            b"HTTP/1.1 200 OK\r\n"
            b"Content-Type: " + content_type + b"\r\n"
            b"Lambda-Runtime-Aws-Request-Id: " + rid + b"\r\n"
            b"Lambda-Runtime-Deadline-Ms: %d\r\n"
            b"Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:bench\r\n"
            b"Lambda-Runtime-Trace-Id: Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1\r\n"
            b"Content-Length: %d\r\n\r\n"
        ) % (deadline, len(body))
        out.append(head + body)
    return out


@dataclass
class Sample:
    t_ns: int  # time.monotonic_ns() at the server
    cpu_s: float | None  # CPU seconds of the runtime (summed over its process tree if `tree`)
    mem_kib: int | None  # VmRSS (or summed PSS when `tree`)
    finished: int = 0  # invokes answered by /response or /error so far
    server_cpu_s: float = 0.0  # this (server) process's CPU: proves it is not the bottleneck


@dataclass
class Session:
    """One runtime process's life: which events it gets and where to take samples.

    `segments` is a list of (invokes, answers): the first `invokes` GETs get
    `segments[0]` answers, and so on. GETs past the total are held unanswered, which
    parks the runtime; the harness then kills it.
    """

    segments: list[tuple[int, list[bytes]]]
    marks: set[int]  # GET indices at which to sample
    tree: bool = False  # sample the whole process tree (the reference forks workers)
    concurrent: bool = False  # finish on the last response rather than on a GET
    # Answer the GET after the last invoke with this status instead of parking the runtime:
    # 500 makes both runtimes exit by themselves (so a profiler in them can write its output).
    exit_status: int | None = None
    pid: int | None = None
    spawn_ns: int = 0
    first_response_ns: int = 0  # when the first /response or /error was complete at the server
    samples: dict[int, Sample] = field(default_factory=dict)
    gets: int = 0
    responses: int = 0
    errors: int = 0
    error_types: list[str] = field(default_factory=list)
    init_errors: int = 0
    stream_responses: int = 0
    stream_bytes: int = 0
    stream_latency_ns: list[int] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    connections: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    _seg: int = 0
    _seg_end: int = 0

    def __post_init__(self) -> None:
        self.total = sum(n for n, _ in self.segments)
        self._seg_end = self.segments[0][0] if self.segments else 0

    def sample(self, index: int, now: int) -> None:
        pid = self.pid
        finished = self.responses + self.errors
        if pid is None:
            self.samples[index] = Sample(now, None, None, finished, time.process_time())
            return
        if self.tree:
            pids = procstat.group_members(pid)
            cpu = sum(_cpu_or_zero(p) for p in pids)
            mem = sum(procstat.pss_kib(p) for p in pids)
        else:
            cpu = procstat.cpu_seconds(pid)
            mem = procstat.rss_kib(pid)
        self.samples[index] = Sample(now, cpu, mem, finished, time.process_time())

    def answer_for(self, i: int) -> bytes:
        while i >= self._seg_end:
            self._seg += 1
            self._seg_end += self.segments[self._seg][0]
        answers = self.segments[self._seg][1]
        return answers[i % len(answers)]

    def end_invoke(self, now: int) -> None:
        self.in_flight -= 1
        if self.concurrent and self.responses + self.errors >= self.total:
            self.sample(self.total, now)
            self.done.set()


def _cpu_or_zero(pid: int) -> float:
    try:
        return procstat.cpu_seconds(pid)
    except OSError:
        return 0.0


class RuntimeAPIServer:
    """Holds the listening socket; `session` is swapped by the harness per runtime process."""

    def __init__(self) -> None:
        self.session: Session | None = None
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Conn(self), "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await asyncio.wait_for(self._server.wait_closed(), 5)


# Parser states.
_HEAD, _BODY, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILERS = range(6)


class _Conn(asyncio.Protocol):
    """One keep-alive connection from a runtime."""

    def __init__(self, server: RuntimeAPIServer) -> None:
        self.server = server
        self.buf = bytearray()
        self.state = _HEAD
        self.remaining = 0
        self.kind = b""  # b"response", b"error", b"init"
        self.streaming = False
        self.first_chunk = False
        self.error_trailer = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        s = self.server.session
        if s is not None:
            s.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        buf = self.buf
        buf += data
        while buf:
            state = self.state
            if state == _HEAD:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > _MAX_HEAD and self.transport is not None:
                        self.transport.close()
                    return
                head = bytes(buf[:end])
                del buf[: end + 4]
                self._on_head(head, now)
            elif state == _BODY or state == _CHUNK_DATA:
                take = min(self.remaining, len(buf))
                if state == _CHUNK_DATA and self.streaming:
                    self._on_stream_data(buf, take, now)
                del buf[:take]
                self.remaining -= take
                if self.remaining == 0:
                    if state == _BODY:
                        self._on_request_done(now)
                    else:
                        self.state = _CHUNK_CRLF
            elif state == _CHUNK_SIZE:
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                size = int(bytes(buf[:end]).split(b";", 1)[0], 16)
                del buf[: end + 2]
                if size == 0:
                    self.state = _TRAILERS
                else:
                    self.remaining = size
                    self.state = _CHUNK_DATA
            elif state == _CHUNK_CRLF:
                if len(buf) < 2:
                    return
                del buf[:2]
                self.state = _CHUNK_SIZE
            else:  # _TRAILERS: lines until an empty one
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                line = bytes(buf[:end]).lower()
                del buf[: end + 2]
                if not line:
                    self._on_request_done(now)
                elif line.startswith(b"lambda-runtime-function-error-type:"):
                    self.error_trailer = True

    def _on_head(self, head: bytes, now: int) -> None:
        s = self.server.session
        t = self.transport
        if s is None or t is None:
            return
        if head.startswith(b"GET "):
            # Header-free fast path: every GET a runtime sends here is /next.
            if head[4 : 4 + len(NEXT_PATH)] == NEXT_PATH:
                i = s.gets
                s.gets = i + 1
                # Under concurrency the end is sampled at the last response (end_invoke).
                if i in s.marks and not (s.concurrent and i >= s.total):
                    s.sample(i, now)
                if i >= s.total:
                    if not s.concurrent and i == s.total:
                        s.done.set()
                    if s.exit_status is not None:
                        t.write(b"HTTP/1.1 %d Stop\r\nContent-Length: 0\r\n\r\n" % s.exit_status)
                    return  # park the runtime
                s.in_flight += 1
                if s.in_flight > s.max_in_flight:
                    s.max_in_flight = s.in_flight
                t.write(s.answer_for(i))
            else:
                t.write(_NOT_FOUND)
            return
        lines = head.split(b"\r\n")
        path = lines[0].split(b" ", 2)[1] if b" " in lines[0] else b""
        if path.endswith(b"/response"):
            self.kind = b"response"
        elif path.endswith(b"/error"):
            self.kind = b"init" if b"/init/" in path else b"error"
        else:
            self.kind = b"other"
        length = 0
        chunked = expect = False
        self.streaming = self.error_trailer = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"expect":
                expect = b"100-continue" in value.lower()
            elif name == b"lambda-runtime-function-response-mode":
                self.streaming = value.strip() == b"streaming"
            elif name == b"lambda-runtime-function-error-type" and self.kind == b"error":
                s.error_types.append(value.strip().decode("latin-1"))
        if expect:
            t.write(_CONTINUE)
        if self.streaming:
            self.first_chunk = True
        if chunked:
            self.state = _CHUNK_SIZE
        elif length:
            self.remaining = length
            self.state = _BODY
        else:
            self._on_request_done(now)

    def _on_stream_data(self, buf: bytearray, take: int, now: int) -> None:
        s = self.server.session
        if s is None:
            return
        s.stream_bytes += take
        if self.first_chunk:
            self.first_chunk = False
            # Handlers stamp their first yield as b"T<monotonic_ns>\n" (same clock, any process).
            if buf[:1] == b"T":
                nl = buf.find(b"\n", 0, 40)
                if nl > 1:
                    s.stream_latency_ns.append(now - int(bytes(buf[1:nl])))

    def _on_request_done(self, now: int) -> None:
        self.state = _HEAD
        s = self.server.session
        t = self.transport
        if t is not None:
            t.write(_ACCEPTED)
        if s is None:
            return
        if self.kind in (b"response", b"error") and not s.first_response_ns:
            s.first_response_ns = now
        if self.kind == b"response":
            if self.streaming:
                s.stream_responses += 1
            if self.error_trailer:
                s.errors += 1
                s.error_types.append("stream-trailer")
            else:
                s.responses += 1
            s.end_invoke(now)
        elif self.kind == b"error":
            s.errors += 1
            s.end_invoke(now)
        elif self.kind == b"init":
            s.init_errors += 1
