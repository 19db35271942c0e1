"""A recording fake of the AWS Lambda Runtime API, for tests.

A raw asyncio TCP server on 127.0.0.1 that speaks HTTP/1.1 through h11 as a server and keeps the
exact bytes every request arrived with, so tests can assert what a runtime put on the wire. It
serves both aruntime and the reference client (awslambdaric, libcurl + http.client), which is why
it answers `Expect: 100-continue` and accepts a new connection per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import h11

__all__ = ["Exchange", "FakeRuntimeAPI", "RuntimeProcess", "run_runtime", "runtime_env", "scratch_env",
           "refused_port", "REPO_ROOT", "DEFAULT_ARN"]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ARN = "arn:aws:lambda:us-east-1:123456789012:function:test"
_PREFIX = "/2018-06-01/runtime"
_READ_SIZE = 65536


@dataclass
class Exchange:
    """One HTTP request a runtime made, and what the fake answered."""

    conn: int
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    raw: bytes = b""
    # Chunked bodies only: one entry per chunk as framed on the wire; the time is when the
    # chunk's last byte arrived (h11 may split one wire chunk over several Data events).
    chunks: list[tuple[float, bytes]] = field(default_factory=list)
    trailers: list[tuple[str, str]] = field(default_factory=list)
    status: int = 0
    done: float = 0.0

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def trailer(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.trailers:
            if key == name:
                return value
        return None

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def __repr__(self) -> str:  # short, because pytest prints lists of these on failure
        return f"<Exchange conn={self.conn} {self.method} {self.target} -> {self.status} body={self.body[:80]!r}>"


@dataclass
class _Script:
    match: str
    status: int
    body: bytes
    close: bool
    times: int


class _Closed(Exception):
    """The peer closed the connection (or we must stop serving it)."""


def _error_body(message: str, error_type: str) -> bytes:
    return json.dumps({"errorMessage": message, "errorType": error_type}).encode()


class FakeRuntimeAPI:
    """The Runtime API side of a Lambda sandbox, scripted and recording. See module docstring."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        # Requests whose client went away before they were complete (e.g. a /next long-poll of a
        # killed runtime); kept apart so they never count towards wait().
        self.aborted: list[Exchange] = []
        self.connections = 0
        self.probes = 0  # `OPTIONS *` requests answered (the runtime's pipelining probe)
        # GET /next requests whose head arrived and that wait for an invocation right now.
        self.polling = 0
        self._server: asyncio.base_events.Server | None = None
        self._port = 0
        self._queue: asyncio.Queue[tuple[str, dict[str, str], bytes]] = asyncio.Queue()
        self._known_ids: set[str] = set()
        self._scripts: list[_Script] = []
        self._finished = asyncio.Event()
        self._broken = False  # a post was answered 5xx: no more invocations (see _serve_one)
        self._changed = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.processes: list[RuntimeProcess] = []

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_connect, "127.0.0.1", 0)
        self._port = self._server.sockets[0].getsockname()[1]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._port}"

    async def close(self) -> None:
        for proc in self.processes:
            proc.kill()
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)
        for proc in self.processes:
            with contextlib.suppress(Exception):
                await proc.wait(5)

    async def __aenter__(self) -> FakeRuntimeAPI:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- scripting -------------------------------------------------------------------------

    def push(
        self,
        body: bytes | str | Any = b"{}",
        *,
        request_id: str | None = None,
        headers: dict[str, str | None] | None = None,
        content_type: str | None = "application/json",
        deadline_ms: int | None = None,
    ) -> str:
        """Queue an invocation for GET /next; returns its request id."""
        if isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = json.dumps(body).encode()
        rid = request_id if request_id is not None else str(uuid.uuid4())
        if deadline_ms is None:
            deadline_ms = int(time.time() * 1000) + 60_000
        trace = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=1"
        merged: dict[str, str | None] = {
            "Lambda-Runtime-Aws-Request-Id": rid,
            "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": DEFAULT_ARN,
            "Lambda-Runtime-Trace-Id": trace,
            "Content-Type": content_type,
        }
        # Override case-insensitively so headers={"content-type": None} removes the default.
        for key, value in (headers or {}).items():
            for existing in list(merged):
                if existing.lower() == key.lower():
                    del merged[existing]
            merged[key] = value
        final = {k: v for k, v in merged.items() if v is not None}
        self._known_ids.add(rid)
        self._queue.put_nowait((rid, final, data))
        return rid

    def answer(self, match: str, status: int, body: bytes = b"", *, close: bool = False, times: int = 1) -> None:
        """Answer the next `times` requests whose target contains `match` with `status`."""
        if not body and status >= 400:
            body = _error_body(f"scripted {status} for {match}", _default_error_type(status))
        self._scripts.append(_Script(match, status, body, close, times))

    def finish(self) -> None:
        """Once the queue is empty, /next answers 500 Runtime.Exit so runtimes stop."""
        self._finished.set()

    # -- waiting ---------------------------------------------------------------------------

    async def wait(self, n: int, *, timeout: float = 10) -> list[Exchange]:
        async def until() -> None:
            while len(self.exchanges) < n:
                await self._next_change()

        try:
            await asyncio.wait_for(until(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"wanted {n} exchanges, got {len(self.exchanges)}: {self.exchanges}") from None
        return list(self.exchanges)

    async def wait_for(self, pred: Callable[[Exchange], bool], *, timeout: float = 10) -> Exchange:
        async def until() -> Exchange:
            while True:
                for ex in self.exchanges:
                    if pred(ex):
                        return ex
                await self._next_change()

        try:
            return await asyncio.wait_for(until(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no matching exchange among {self.exchanges}") from None

    def posts(self) -> dict[str, Exchange]:
        """Each POST so far (`/response`, `/error`) by the request id in its path."""
        return {ex.path.split("/")[-2]: ex for ex in self.exchanges if ex.method == "POST"}

    async def serve_until_answered(self, proc: RuntimeProcess, expected: set[str], *,
                                   timeout: float = 20) -> dict[str, Exchange]:
        """Wait until every request id in `expected` is answered, then stop `proc` the only way
        a runtime stops (`finish`: /next answers 500, exit status 1, asserted: never a crash or
        a handler's SystemExit); its POSTs by request id, exactly `expected`."""
        try:
            await self.wait_for(lambda _: set(self.posts()) >= expected, timeout=timeout)
        finally:
            self.finish()
            code = await proc.wait(timeout)
        assert code == 1, proc.stderr.decode()
        posts = self.posts()
        assert set(posts) == expected, (posts, proc.stderr.decode())
        return posts

    async def _next_change(self) -> None:
        await self._changed.wait()

    async def wait_polling(self, n: int = 1, *, timeout: float = 10) -> None:
        """Until `n` GET /next long-polls wait at once (a runtime is idle, its set-up done)."""

        async def until() -> None:
            while self.polling < n:
                await self._next_change()

        try:
            await asyncio.wait_for(until(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"wanted {n} waiting /next, got {self.polling}: {self.exchanges}") from None

    def _record(self, ex: Exchange) -> None:
        ex.done = time.monotonic()
        self.exchanges.append(ex)
        self._notify()

    def _notify(self) -> None:
        # Wake every waiter, then arm a fresh event for the next change.
        self._changed.set()
        self._changed = asyncio.Event()

    # -- serving ---------------------------------------------------------------------------

    def _take_script(self, target: str) -> _Script | None:
        for script in self._scripts:
            if script.times > 0 and script.match in target:
                script.times -= 1
                return script
        return None

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = self.connections
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        self._writers.add(writer)
        try:
            await _Connection(self, index, reader, writer).serve()
        except (_Closed, ConnectionError, h11.ProtocolError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)  # type: ignore[arg-type]
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)


def _default_error_type(status: int) -> str:
    return {
        400: "InvalidRequestID",
        403: "InvalidStateTransition",
        404: "NotFound",
        410: "InvocationGone",
        413: "RequestEntityTooLarge",
        500: "Runtime.Exit",
    }.get(status, "Error")


class _Connection:
    """One accepted TCP connection: serves requests one after the other (keep-alive)."""

    def __init__(self, api: FakeRuntimeAPI, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.api = api
        self.index = index
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=4 * 1024 * 1024)
        self.buffer = bytearray()  # every byte not yet attributed to a finished request
        self.pending_read: asyncio.Task[bytes] | None = None

    # Reading is a task that can outlive one await, so a /next long-poll can notice the client
    # hanging up while it waits for an invocation without losing bytes it read meanwhile.
    def _read_task(self) -> asyncio.Task[bytes]:
        if self.pending_read is None:
            self.pending_read = asyncio.ensure_future(self.reader.read(_READ_SIZE))
        return self.pending_read

    async def _receive(self) -> None:
        data = await self._read_task()
        self.pending_read = None
        if not data:
            self.h11.receive_data(b"")
            raise _Closed
        self.buffer += data
        self.h11.receive_data(data)

    def _consumed(self) -> bytes:
        """Bytes of the current request: everything fed to h11 minus what it has not parsed."""
        unparsed = len(self.h11.trailing_data[0])
        raw = bytes(self.buffer[: len(self.buffer) - unparsed])
        del self.buffer[: len(self.buffer) - unparsed]
        return raw

    async def _send(self, *events: h11.Event) -> None:
        for event in events:
            data = self.h11.send(event)
            if data:
                self.writer.write(data)
        await self.writer.drain()

    async def _next_event(self) -> h11.Event:
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                await self._receive()
                continue
            if event is h11.PAUSED:
                raise _Closed  # only after a finished cycle we did not restart; cannot happen
            return event  # type: ignore[return-value]

    async def serve(self) -> None:
        try:
            while True:
                await self._serve_one()
                if self.h11.our_state is h11.MUST_CLOSE or self.h11.their_state is h11.MUST_CLOSE:
                    return
                self.h11.start_next_cycle()
        finally:
            if self.pending_read is not None:
                self.pending_read.cancel()

    async def _serve_one(self) -> None:
        event = await self._next_event()
        if isinstance(event, h11.ConnectionClosed):
            raise _Closed
        assert isinstance(event, h11.Request), event
        if event.method == b"OPTIONS" and event.target == b"*":
            # The runtime's pipelining probe, answered as Go's net/http (Lambda's Runtime API)
            # answers it: 200, no body. Counted, not recorded: it is no Runtime API call.
            while not isinstance(await self._next_event(), h11.EndOfMessage):
                pass
            self._consumed()
            await self._send(h11.Response(status_code=200, headers=[("Content-Length", "0")]),
                             h11.EndOfMessage())
            self.api.probes += 1
            return
        ex = Exchange(
            conn=self.index,
            method=event.method.decode(),
            target=event.target.decode(),
            headers=[(k.decode().lower(), v.decode()) for k, v in event.headers],
        )
        chunked = (ex.header("transfer-encoding") or "").lower() == "chunked"
        script = self.api._take_script(ex.target)
        if script is not None and script.status == 0 and chunked:
            # Drop a streamed request as soon as its head is in: the runtime is mid-stream.
            ex.raw = self._consumed()
            self.api._record(ex)
            raise _Closed
        await self._read_body(ex, chunked)
        if script is not None and script.status == 0:
            self.api._record(ex)
            raise _Closed
        if script is not None:
            status, body, headers = script.status, script.body, [("Content-Type", "application/json")]
            if status >= 500 and ex.method == "POST":
                # "Container error. Non-recoverable state": like the service, hand out no more
                # invocations to this sandbox (a /next already on its way gets the same 500).
                self.api._broken = True
        else:
            status, body, headers = await self._default(ex)
        await self._send(
            h11.Response(status_code=status, headers=[*headers, ("Content-Length", str(len(body)))]),
            h11.Data(data=body),
            h11.EndOfMessage(),
        )
        ex.status = status
        self.api._record(ex)
        if script is not None and script.close:
            raise _Closed

    async def _read_body(self, ex: Exchange, chunked: bool) -> None:
        body = bytearray()
        try:
            while True:
                if self.h11.they_are_waiting_for_100_continue:
                    await self._send(h11.InformationalResponse(status_code=100, headers=[]))
                event = await self._next_event()
                if isinstance(event, h11.Data):
                    body += event.data
                    if chunked:
                        now = time.monotonic()
                        if event.chunk_start or not ex.chunks:
                            ex.chunks.append((now, bytes(event.data)))
                        else:
                            last = ex.chunks[-1]
                            ex.chunks[-1] = (now, last[1] + bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    ex.trailers = [(k.decode().lower(), v.decode()) for k, v in event.headers]
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise _Closed
        except _Closed:
            ex.body = bytes(body)
            ex.raw = bytes(self.buffer)
            ex.done = time.monotonic()
            self.api.aborted.append(ex)
            raise
        ex.body = bytes(body)
        ex.raw = self._consumed()

    async def _default(self, ex: Exchange) -> tuple[int, bytes, list[tuple[str, str]]]:
        json_ct = [("Content-Type", "application/json")]
        path = ex.path
        if not path.startswith(_PREFIX + "/"):
            return 404, _error_body(f"no route {path}", "NotFound"), json_ct
        route = path[len(_PREFIX) :]
        if ex.method == "GET" and route == "/invocation/next":
            return await self._next(ex)
        if ex.method == "POST" and route.startswith("/invocation/"):
            parts = route.split("/")  # ['', 'invocation', id, 'response'|'error']
            if len(parts) == 4 and parts[3] in ("response", "error"):
                if parts[2] not in self.api._known_ids:
                    return 400, _error_body("Invalid request ID", "InvalidRequestID"), json_ct
                return 202, b'{"status":"OK"}', json_ct
        if ex.method == "POST" and route in ("/init/error", "/restore/error"):
            return 202, b'{"status":"OK"}', json_ct
        if ex.method == "GET" and route == "/restore/next":
            return 200, b"", []
        return 404, _error_body(f"no route {ex.method} {path}", "NotFound"), json_ct

    async def _next(self, ex: Exchange) -> tuple[int, bytes, list[tuple[str, str]]]:
        api = self.api
        api.polling += 1
        api._notify()
        try:
            return await self._poll(ex)
        finally:
            api.polling -= 1
            api._notify()

    async def _poll(self, ex: Exchange) -> tuple[int, bytes, list[tuple[str, str]]]:
        api = self.api
        while True:
            if api._broken:
                return 500, _error_body("the sandbox is broken: a post was answered 500", "Runtime.Exit"), [
                    ("Content-Type", "application/json")
                ]
            if api._queue.empty() and api._finished.is_set():
                return 500, _error_body("no more invocations: the test is over", "Runtime.Exit"), [
                    ("Content-Type", "application/json")
                ]
            getter = asyncio.ensure_future(api._queue.get())
            finished = asyncio.ensure_future(api._finished.wait())
            reading = self._read_task()
            try:
                await asyncio.wait({getter, finished, reading}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                finished.cancel()
                if not getter.done():
                    getter.cancel()
            if getter.done() and not getter.cancelled():
                rid, headers, body = getter.result()
                return 200, body, list(headers.items())
            if reading.done():
                # A client sends nothing while it waits for /next, so this is a hang-up
                # (or a pipelined request, which h11 keeps for the next cycle).
                await self._receive()
                if self.h11.their_state is h11.ERROR:
                    raise _Closed


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections while the block runs.

    The socket is bound but never listens: Linux answers a connect with a reset, and no other
    process can take the port meanwhile (a port that was free a moment ago may not be).
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


# -- running a runtime process ---------------------------------------------------------------


class RuntimeProcess:
    """A runtime subprocess with its output collected in the background."""

    def __init__(self, proc: asyncio.subprocess.Process, timeout: float):
        self._proc = proc
        self._timeout = timeout
        self.stdout = b""
        self.stderr = b""
        self._out = asyncio.ensure_future(self._drain(proc.stdout, "stdout"))
        self._err = asyncio.ensure_future(self._drain(proc.stderr, "stderr"))

    async def _drain(self, stream: asyncio.StreamReader | None, name: str) -> None:
        if stream is None:
            return
        chunks = []
        while True:
            data = await stream.read(_READ_SIZE)
            if not data:
                break
            chunks.append(data)
            setattr(self, name, b"".join(chunks))

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    def kill(self) -> None:
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()

    async def wait(self, timeout: float | None = None) -> int:
        """Wait for exit; on timeout kill the process and raise TimeoutError with its output."""
        try:
            code = await asyncio.wait_for(self._proc.wait(), timeout if timeout is not None else self._timeout)
        except asyncio.TimeoutError:
            self.kill()
            await self._proc.wait()
            await asyncio.wait([self._out, self._err], timeout=2)
            raise TimeoutError(
                f"runtime pid {self.pid} did not exit; killed.\nstdout={self.stdout[-2000:]!r}\nstderr={self.stderr[-4000:]!r}"
            ) from None
        await asyncio.wait([self._out, self._err], timeout=5)
        return code


# What a child process may take from the host: where programs and shared libraries are, and
# where temporary files go. Nothing else crosses over, so a host that exports PYTHONUNBUFFERED,
# AWS_REGION, AWS_LAMBDA_LOG_FORMAT, PYTHONIOENCODING... cannot change what a test sees.
HOST_NEEDS = ("PATH", "LD_LIBRARY_PATH", "TMPDIR")

WIRE_ENGINE = "h11"
"""ARUNTIME_HTTP for the processes tests start; conftest sets it from `pytest --wire`."""


def scratch_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """An environment built from scratch for a process a test starts, then `env` over it.

    It holds HOST_NEEDS (as the host has them), `LANG=C.UTF-8`, this checkout first on
    `PYTHONPATH` (so `-m aruntime` and `tests.handlers.*` import from here) and `ARUNTIME_HTTP`
    (the engine under test). A value of `env` wins; an empty `PYTHONPATH` there drops the checkout.
    """
    clean = {name: os.environ[name] for name in HOST_NEEDS if name in os.environ}
    clean.setdefault("PATH", os.defpath)
    clean["LANG"] = "C.UTF-8"
    clean["PYTHONPATH"] = str(REPO_ROOT)
    clean["ARUNTIME_HTTP"] = WIRE_ENGINE
    clean.update(env or {})
    return clean


def runtime_env(api: FakeRuntimeAPI, env: dict[str, str] | None = None) -> dict[str, str]:
    """`scratch_env` with the fake's address as `AWS_LAMBDA_RUNTIME_API`, then `env` over it."""
    return scratch_env({"AWS_LAMBDA_RUNTIME_API": api.address, **(env or {})})


async def run_runtime(
    cmd: list[str],
    api: FakeRuntimeAPI,
    *,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    timeout: float = 20,
) -> RuntimeProcess:
    """Start a runtime process talking to `api`; it is killed when `api` closes."""
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        env=runtime_env(api, env),
        cwd=cwd if cwd is not None else str(REPO_ROOT),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    rp = RuntimeProcess(proc, timeout)
    api.processes.append(rp)
    return rp


PY = sys.executable
