"""The Runtime API (`/2018-06-01/runtime/...`) as the service gives it, on h11.

Not on aiohttp: aiohttp's server parses request trailers and throws them away, and the
streamed response's error arrives exactly there (`Lambda-Runtime-Function-Error-Type`,
`Lambda-Runtime-Function-Error-Body`). h11 hands them over in `EndOfMessage.headers`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from typing import TYPE_CHECKING, Protocol

import h11
import orjson

from .config import FunctionConfig
from .invocation import Invocation, Outcome, ResponseHead, State, error_outcome
from .limits import MAX_BUFFERED, MAX_STREAMED

if TYPE_CHECKING:
    from .process import RuntimeProcess

PREFIX = "/2018-06-01/runtime/"
# The Runtime API is for the runtime process this emulator starts, on this machine only:
# whatever --host the invoke surfaces use, it listens on loopback, on a port the kernel picks
# and only that process is told (AWS_LAMBDA_RUNTIME_API).
LOOPBACK = "127.0.0.1"
FLUSH_AT = 1 << 20  # forward a partly received chunk once this much is waiting
_INVOKE_PATH = re.compile(re.escape(PREFIX) + r"invocation/([^/]+)/(response|error)")
_ERROR_TYPE = re.compile(r"(Runtime|Function|Extension)\.[A-Za-z0-9_.\-]+")
_TOO_LARGE = f"Response payload size exceeded maximum allowed payload size ({MAX_BUFFERED} bytes)."


class Dispatcher(Protocol):
    """What the Runtime API needs from the execution environment (`sandbox.Sandbox`)."""

    config: FunctionConfig

    async def next_invocation(self, proc: RuntimeProcess) -> Invocation: ...

    def requeue(self, inv: Invocation) -> None: ...

    def lookup(self, request_id: str) -> Invocation | None: ...

    def complete(self, inv: Invocation, outcome: Outcome, status: str | None = None) -> None: ...

    def init_error(self, proc: RuntimeProcess, error_type: str, body: bytes, phase: str = "init") -> None: ...


def normalize_error_type(value: str | None) -> str:
    # The service keeps only types shaped like `Runtime.X` / `Function.X`.
    return value if value and _ERROR_TYPE.fullmatch(value) else "Runtime.Unknown"


def _error(error_type: str, message: str) -> bytes:
    return orjson.dumps({"errorMessage": message, "errorType": error_type})


class _Closed(Exception):
    """The runtime closed the connection."""


class RuntimeAPIServer:
    """One listener per runtime process; closing it drops that process's connections."""

    def __init__(self, sandbox: Dispatcher) -> None:
        self.sandbox = sandbox
        self.host = LOOPBACK
        self.proc: RuntimeProcess | None = None
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def has_connections(self) -> bool:
        return bool(self._writers)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self, abort: bool = True) -> None:
        """Stop accepting. Open connections are dropped only with `abort`: after its
        process died, a late /response still gets its honest 410/403 answer."""
        if self._server is not None:
            self._server.close()
            self._server = None
        if abort:
            for writer in list(self._writers):
                writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await _Connection(self, reader, writer).run()
        finally:
            self._writers.discard(writer)
            writer.close()


class _Connection:
    def __init__(self, api: RuntimeAPIServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.api = api
        self.sandbox = api.sandbox
        self.reader = reader
        self.writer = writer
        # Error bodies travel base64-encoded in a trailer: allow big header blocks.
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=4 * 1024 * 1024)

    async def run(self) -> None:
        try:
            while True:
                event = await self._next_event()
                if not isinstance(event, h11.Request):
                    return
                await self._route(event)
                if self.conn.our_state is not h11.DONE or self.conn.their_state is not h11.DONE:
                    return
                self.conn.start_next_cycle()
        except h11.RemoteProtocolError as e:
            if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                await self._send(400, _error("InvalidRequestFormat", str(e)), close=True)
        except (_Closed, ConnectionError, asyncio.CancelledError):
            pass

    # -- h11 plumbing -------------------------------------------------------------------
    async def _next_event(self) -> h11.Event | type[h11.PAUSED]:
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                if self.conn.they_are_waiting_for_100_continue:
                    self.writer.write(self.conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")
                self.conn.receive_data(await self.reader.read(65536))
                continue
            if isinstance(event, h11.ConnectionClosed):
                raise _Closed
            return event  # type: ignore[return-value]  # NEED_DATA was handled above

    async def _send(
        self, status: int, body: bytes, headers: list[tuple[str, str]] | None = None,
        content_type: str = "application/json", close: bool = False,
    ) -> None:
        hdrs = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        if close:
            hdrs.append(("Connection", "close"))
        out = self.conn.send(h11.Response(status_code=status, headers=hdrs + (headers or [])))
        out = (out or b"") + (self.conn.send(h11.Data(data=body)) or b"")
        out += self.conn.send(h11.EndOfMessage()) or b""
        self.writer.write(out)
        await self.writer.drain()

    async def _read_body(self, limit: int) -> tuple[bytes, bool]:
        """The whole body, or its first `limit` bytes and True if it was longer (the rest
        is read and dropped so the connection stays usable)."""
        buf = bytearray()
        over = False
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                if len(buf) + len(event.data) > limit:
                    over = True
                else:
                    buf += event.data
            elif isinstance(event, h11.EndOfMessage):
                return bytes(buf), over

    async def _accepted(self) -> None:
        await self._send(202, b'{"status":"OK"}')

    # -- routes ------------------------------------------------------------------------
    async def _route(self, request: h11.Request) -> None:
        path = request.target.decode("latin-1").split("?", 1)[0]
        method = request.method.decode("latin-1")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
        match = _INVOKE_PATH.fullmatch(path)
        if method == "OPTIONS" and path == "*":
            # As the service's Go net/http answers it (aruntime's pipelining probe, RFC 9110
            # §9.3.7): 200, no body, no route involved.
            await self._read_body(0)
            await self._send(200, b"", content_type="text/plain")
        elif path == PREFIX + "invocation/next" and method == "GET":
            await self._read_body(0)
            await self._next()
        elif match and method == "POST":
            request_id, kind = match.groups()
            if kind == "response":
                await self._response(request_id, headers)
            else:
                await self._invocation_error(request_id, headers)
        elif path in (PREFIX + "init/error", PREFIX + "restore/error") and method == "POST":
            await self._init_error(headers, phase="init" if path.endswith("init/error") else "restore")
        elif path == PREFIX + "restore/next" and method == "GET":
            await self._read_body(0)
            if self.sandbox.config.snap_start:
                await self._send(200, b"")
            else:
                await self._send(403, _error("InvalidStateTransition", "SnapStart is not enabled for this function"))
        else:
            await self._read_body(0)
            status = 405 if path.startswith(PREFIX) and (match or path.endswith(("/next", "/error"))) else 404
            await self._send(status, _error("InvalidRequestFormat", f"{method} {path} is not a Runtime API route"))

    async def _next(self) -> None:
        assert self.api.proc is not None
        take = asyncio.ensure_future(self.sandbox.next_invocation(self.api.proc))
        gone = asyncio.ensure_future(self._wait_eof())
        await asyncio.wait({take, gone}, return_when=asyncio.FIRST_COMPLETED)
        for task in (take, gone):
            task.cancel()
        await asyncio.gather(take, gone, return_exceptions=True)
        if take.cancelled() or take.exception() is not None:
            raise _Closed
        inv = take.result()
        if gone.done() and not gone.cancelled():
            self.sandbox.requeue(inv)  # the poller left: the event goes to the next one
            raise _Closed
        await self._send(200, inv.payload, self._event_headers(inv))

    async def _wait_eof(self) -> None:
        # Nothing is expected while /next waits; a pipelined byte is kept for h11.
        while data := await self.reader.read(65536):
            self.conn.receive_data(data)

    def _event_headers(self, inv: Invocation) -> list[tuple[str, str]]:
        headers = [
            ("Lambda-Runtime-Aws-Request-Id", inv.request_id),
            ("Lambda-Runtime-Deadline-Ms", str(inv.deadline_ms)),
            ("Lambda-Runtime-Invoked-Function-Arn", self.sandbox.config.arn),
            ("Lambda-Runtime-Trace-Id", inv.trace_id),
        ]
        if inv.client_context:
            headers.append(("Lambda-Runtime-Client-Context", inv.client_context))
        if inv.cognito_identity:
            headers.append(("Lambda-Runtime-Cognito-Identity", inv.cognito_identity))
        return headers

    def _check(self, request_id: str) -> tuple[Invocation | None, int, bytes]:
        """The invocation a /response or /error may settle, or the refusal to give."""
        inv = self.sandbox.lookup(request_id)
        if inv is None or inv.state is State.QUEUED:
            return None, 400, _error("InvalidRequestID", "Invalid request ID")
        if inv.timed_out:
            return None, 410, _error("InvocationTimedOut", f"Invocation {request_id} timed out")
        if inv.state is not State.RUNNING:
            state = "InvocationResponse" if inv.state is State.RESPONDING else "ResponseSent"
            message = f"State transition from {state} to InvocationResponse failed for runtime. Error: State transition is not allowed"
            return None, 403, _error("InvalidStateTransition", message)
        return inv, 202, b""

    async def _response(self, request_id: str, headers: dict[str, str]) -> None:
        mode = headers.get("lambda-runtime-function-response-mode")
        inv, status, refusal = self._check(request_id)
        if mode is not None and mode != "streaming":
            inv, status, refusal = None, 400, _error("InvalidFunctionResponseMode", "Invalid function response mode")
        if inv is None:
            await self._read_body(0)
            await self._send(status, refusal)
        elif mode == "streaming":
            await self._streamed(inv, headers)
        else:
            body, over = await self._read_body(MAX_BUFFERED)
            inv, status, refusal = self._check(request_id)
            if inv is None:
                await self._send(status, refusal)
            elif over:
                self.sandbox.complete(inv, error_outcome("Function.ResponseSizeTooLarge", _TOO_LARGE))
                await self._send(413, _error("RequestEntityTooLarge", f"Exceeded maximum allowed payload size ({MAX_BUFFERED} bytes)."))
            else:
                inv.begin(ResponseHead(headers.get("content-type", "application/json"), streaming=False))
                await inv.write(body)
                self.sandbox.complete(inv, Outcome())
                await self._accepted()

    async def _streamed(self, inv: Invocation, headers: dict[str, str]) -> None:
        inv.begin(ResponseHead(headers.get("content-type", "application/octet-stream"), streaming=True))
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        pending = bytearray()
        total = 0
        too_large = f"Response payload size exceeded maximum allowed payload size ({MAX_STREAMED} bytes)."
        try:
            while True:
                event = await self._next_event()
                if isinstance(event, h11.Data):
                    if total > MAX_STREAMED:
                        continue  # already cut off: drain the rest, keep the connection usable
                    room = MAX_STREAMED - total
                    total += len(event.data)
                    if total > MAX_STREAMED:
                        # The stream stops at the limit: the caller gets the bytes up to it,
                        # then a stream that visibly ends short, now, not when the upload ends.
                        await inv.write(bytes(pending) + event.data[:room])
                        pending.clear()
                        self.sandbox.complete(inv, error_outcome("Function.ResponseSizeTooLarge", too_large))
                        continue
                    pending += event.data
                    # One runtime chunk becomes one forwarded piece, as soon as it is whole.
                    if not chunked or event.chunk_end or len(pending) >= FLUSH_AT:
                        await inv.write(bytes(pending))
                        pending.clear()
                elif isinstance(event, h11.EndOfMessage):
                    await inv.write(bytes(pending))
                    trailers = {k.decode("latin-1").lower(): v for k, v in event.headers}
                    break
        except _Closed:
            message = f"RequestId: {inv.request_id} Error: the runtime closed the response stream before its end"
            self.sandbox.complete(inv, error_outcome("Runtime.TruncatedResponse", message))
            raise
        if total > MAX_STREAMED:
            await self._send(413, _error("RequestEntityTooLarge", too_large))
            return
        self.sandbox.complete(inv, _trailer_outcome(trailers))
        if inv.timed_out:
            await self._send(410, _error("InvocationTimedOut", f"Invocation {inv.request_id} timed out"))
        else:
            await self._accepted()

    async def _invocation_error(self, request_id: str, headers: dict[str, str]) -> None:
        body, over = await self._read_body(MAX_BUFFERED)
        inv, status, refusal = self._check(request_id)
        if inv is None:
            await self._send(status, refusal)
            return
        error_type = normalize_error_type(headers.get("lambda-runtime-function-error-type"))
        if over:
            self.sandbox.complete(inv, error_outcome("Function.ResponseSizeTooLarge", _TOO_LARGE))
            await self._send(413, _error("RequestEntityTooLarge", f"Exceeded maximum allowed payload size ({MAX_BUFFERED} bytes)."))
            return
        self.sandbox.complete(inv, Outcome(error_type, body or _error(error_type, "")))
        await self._accepted()

    async def _init_error(self, headers: dict[str, str], phase: str) -> None:
        body, _ = await self._read_body(MAX_BUFFERED)
        proc = self.api.proc
        assert proc is not None
        if phase == "init" and (proc.init_done_at is not None or proc.init_failed):
            message = "State transition from Ready to InitError failed for runtime. Error: State transition is not allowed"
            await self._send(403, _error("InvalidStateTransition", message))
            return
        error_type = normalize_error_type(headers.get("lambda-runtime-function-error-type"))
        self.sandbox.init_error(proc, error_type, body or _error(error_type, ""), phase)
        await self._accepted()


def _trailer_outcome(trailers: dict[str, bytes]) -> Outcome:
    raw_type = trailers.get("lambda-runtime-function-error-type")
    raw_body = trailers.get("lambda-runtime-function-error-body")
    if raw_type is None and raw_body is None:
        return Outcome()
    error_type = normalize_error_type(raw_type.decode("latin-1") if raw_type else None)
    try:
        body = base64.b64decode(raw_body or b"", validate=True)
    except (binascii.Error, ValueError):
        body = raw_body or b""
    return Outcome(error_type, body or _error(error_type, ""))
