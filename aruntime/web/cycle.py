"""One request through an ASGI app: its `receive` and `send`, streamed or buffered.

Streamed: `http.response.start` writes the prelude (the caller gets status and headers at once),
each `http.response.body` is one chunk on the invocation's `ResponseStream`, sent when sent, and
`send` waits while the network is slower than the app. The final body message closes the
stream; work the app does after it (background tasks) no longer delays the caller.

Buffered: the body is collected and the format's JSON response object returned.

`receive()` gives the request body once, then waits: it returns `http.disconnect` when the
response is complete or the invocation's stream is lost (Runtime API timeout or shutdown); from
then on `send()` raises `ClientDisconnected`, an `OSError` (ASGI HTTP spec 2.4).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, MutableMapping

from ..errors import RuntimeAPIError, _Escaped
from ..stream import HTTP_INTEGRATION, PRELUDE_SEPARATOR, ResponseStream, StreamDisconnectedError
from . import responses
from .events import HttpRequest
from .responses import Head

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

log = logging.getLogger("aruntime.web")
# After the stream is lost the app has this long to notice (its receive() answers
# http.disconnect, its next send raises) and return; then it is cancelled.
DISCONNECT_GRACE_S = 0.5
_ERROR_HEADERS = [(b"content-type", b"text/plain; charset=utf-8")]
_ERROR_BODY = b"Internal Server Error"


class ClientDisconnected(ConnectionError):
    """`send()` after the invocation's response stream was lost (an `OSError`, ASGI 2.4)."""


class Cycle:
    """The ASGI `receive`/`send` pair of one request (see module docstring)."""

    def __init__(self, request: HttpRequest, stream: ResponseStream | None) -> None:
        self.request = request
        self.stream = stream  # None: buffered
        self.head: Head | None = None
        self.complete = False
        self.disconnected = False
        self.chunks: list[bytes] = []
        self._body_taken = False
        self._finished = asyncio.Event()
        self._io: asyncio.Future[None] | None = None
        self._prelude: bytes | None = None
        self._flush: asyncio.Handle | None = None
        self.app_task: asyncio.Future[None] | None = None
        self.api_error: RuntimeAPIError | None = None

    @property
    def started(self) -> bool:
        return self.head is not None

    async def receive(self) -> Message:
        if not self._body_taken:
            self._body_taken = True
            return {"type": "http.request", "body": self.request.body, "more_body": False}
        await self._finished.wait()
        return {"type": "http.disconnect"}

    def lost(self) -> None:
        """The invocation's stream is gone: wake `receive`, fail further `send`s."""
        self.disconnected = True
        self._finished.set()
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None

    async def send(self, message: Message) -> None:
        if self.disconnected:
            raise ClientDisconnected("the invocation's response stream is closed")
        kind = message["type"]
        if kind == "http.response.start":
            if self.head is not None:
                raise RuntimeError("ASGI: http.response.start sent twice")
            self.head = Head(int(message["status"]), message.get("headers") or [])
            if self.stream is not None:
                self._prelude = responses.prelude(self.request.format, self.head)
                self.stream.content_type = HTTP_INTEGRATION
                # Out at the end of this loop step: with the first body if the app sends it
                # at once (one operation for a whole JSON answer), alone if it does not (an
                # event stream's caller gets status and headers before the first event).
                self._flush = asyncio.get_running_loop().call_soon(self._flush_prelude)
        elif kind == "http.response.body":
            if self.head is None:
                raise RuntimeError("ASGI: http.response.body sent before http.response.start")
            if self.complete:
                raise RuntimeError("ASGI: http.response.body sent after the response completed")
            body = message.get("body") or b""
            more = bool(message.get("more_body", False))
            if self.stream is None:
                if body:
                    self.chunks.append(bytes(body))
                if not more:
                    await self.finish()
            else:
                await self._write(bytes(body), final=not more)
        else:
            raise RuntimeError(f"ASGI: unexpected message {kind!r} on an http connection")

    def _take_prelude(self) -> bytes | None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        data, self._prelude = self._prelude, None
        return data

    def _flush_prelude(self) -> None:
        self._flush = None
        if self.app_task is not None and self.app_task.done():
            return  # the app already ended (an error: still time for a clean 500)
        data, self._prelude = self._prelude, None
        if data is not None and self.stream is not None and not self.disconnected:
            self._io = asyncio.ensure_future(_write_all(self.stream, data, b"", False))

    async def _write(self, body: bytes, final: bool) -> None:
        assert self.stream is not None
        prelude = self._take_prelude()
        await self._settle()
        if final:
            self.complete = True
        if prelude is not None or final:
            # These may wait midway (opening the request, the service's answer to the close):
            # shielded, so an app that cancels its own send (a send timeout, an anyio task
            # group) cannot leave the Runtime API connection with a half-done request.
            try:
                await self._guarded(_write_all(self.stream, prelude, body, final))
            finally:
                if final:
                    self._finished.set()
        elif body:
            # A chunk alone is safe to interrupt: its only wait is for buffer space, after
            # the chunk was handed to the transport whole.
            try:
                await self.stream.write(body)
            except ConnectionError:
                self.lost()
                raise

    async def _guarded(self, operation: Awaitable[None]) -> None:
        self._io = asyncio.ensure_future(operation)
        try:
            await asyncio.shield(self._io)
        except ConnectionError:  # StreamDisconnectedError, or the close's write failing
            self.lost()
            raise
        except RuntimeAPIError as e:  # the service refused the answer: the pipeline decides
            self.api_error = e
            raise

    async def _settle(self) -> None:
        """Wait for a shielded operation still running (the head, an abandoned send)."""
        if self._io is not None and not self._io.done():
            await self._guarded(self._io)
        elif self._io is not None and not self._io.cancelled() and self._io.exception():
            await self._guarded(self._io)  # raises its error, as the app's send would have

    @property
    def head_sent(self) -> bool:
        """The status and headers are on their way: too late to answer 500 instead."""
        return self.head is not None and self._prelude is None

    async def drain(self) -> None:
        """Wait for a shielded operation the app stopped waiting for."""
        if self._io is not None and not self._io.done():
            await asyncio.wait({self._io})
        error = None if self._io is None or self._io.cancelled() else self._io.exception()
        if isinstance(error, RuntimeAPIError):
            self.api_error = error
        elif error is not None:
            self.lost()

    async def finish(self) -> None:
        """The response is complete: close the stream, then let `receive` answer disconnect."""
        if self.stream is not None:
            await self._write(b"", final=True)
            return
        self.complete = True
        self._finished.set()

    def answer(self) -> dict[str, Any]:
        """The buffered answer (buffered mode)."""
        assert self.head is not None
        return responses.buffered(self.request.format, self.head, b"".join(self.chunks),
                                  self.request.multi_value)

    async def fail(self) -> None:
        """Answer 500, the app having failed before its response's head went out."""
        self._take_prelude()
        self.head = None
        self.chunks.clear()
        await self.send({"type": "http.response.start", "status": 500, "headers": _ERROR_HEADERS})
        await self.send({"type": "http.response.body", "body": _ERROR_BODY})


async def _write_all(stream: ResponseStream, prelude: bytes | None, body: bytes,
                     final: bool) -> None:
    if prelude is not None:
        # Two chunks, as cargo-lambda reads the JSON and the separator (docs/SPEC.md §8).
        await stream.write(prelude)
        await stream.write(PRELUDE_SEPARATOR)
    if body:
        await stream.write(body)
    if final:
        await stream.close()


async def serve_streaming(app: ASGIApp, request: HttpRequest, stream: ResponseStream) -> None:
    """Run `app` for `request`, its answer written to `stream` as produced."""
    cycle = Cycle(request, stream)
    task = cycle.app_task = asyncio.ensure_future(_call(app, request.scope, cycle.receive,
                                                        cycle.send))
    try:
        # wait(), not `await task`: our own cancellation must not cancel the app outright.
        await asyncio.wait({task})
        await cycle.drain()
    except asyncio.CancelledError:
        # The pipeline cancels us when the Runtime API closed the stream (timeout, shutdown).
        cycle.lost()
        await _wind_down(task)
        await cycle.drain()  # its error is the lost stream's: retrieved, not reported
        raise
    if cycle.api_error is not None:
        raise cycle.api_error  # a non-2xx for the streamed answer: logged, or fatal (500)
    error = (asyncio.CancelledError("the ASGI app's task was cancelled") if task.cancelled()
             else task.exception())
    if error is None:
        if not cycle.started:
            log.error("ASGI app returned without starting a response; answered 500")
            await cycle.fail()
        elif not cycle.complete:
            log.warning("ASGI app returned without completing its response; ending it")
            await cycle.finish()
        return
    if cycle.disconnected:
        raise StreamDisconnectedError("the Runtime API closed the response stream") from error
    if cycle.complete:
        # The caller has its whole answer (Starlette sends its 500 before re-raising).
        _log_failure(error, "after its response completed")
        return
    if not cycle.head_sent:
        _log_failure(error, "before its response started; answered 500")
        await cycle.fail()
        return
    # Midway: the stream ends with the error trailers, so the caller can tell (docs/SPEC.md §3).
    raise error


async def serve_buffered(app: ASGIApp, request: HttpRequest) -> dict[str, Any]:
    """Run `app` for `request`; its whole answer as the format's JSON response object."""
    cycle = Cycle(request, None)
    try:
        await _call(app, request.scope, cycle.receive, cycle.send)
    except Exception as e:  # noqa: BLE001 - the caller gets a 500, the log the traceback
        if cycle.complete:
            _log_failure(e, "after its response completed")
            return cycle.answer()
        _log_failure(e, "before its response completed; answered 500")
        await cycle.fail()
        return cycle.answer()
    if not cycle.started:
        log.error("ASGI app returned without starting a response; answered 500")
        await cycle.fail()
    elif not cycle.complete:
        log.warning("ASGI app returned without completing its response; ending it")
    return cycle.answer()


async def _call(app: ASGIApp, scope: MutableMapping[str, Any], receive: Receive,
                send: Send) -> None:
    try:
        await app(scope, receive, send)
    except (SystemExit, KeyboardInterrupt) as e:
        # Escaping a task they would stop the event loop itself; here they fail one request.
        raise _Escaped(e) from e


def _log_failure(error: BaseException, when: str) -> None:
    if isinstance(error, _Escaped):
        error = error.exc
    log.error("Exception in ASGI app %s", when, exc_info=(type(error), error, error.__traceback__))


async def _wind_down(task: asyncio.Future[Any]) -> None:
    done, _ = await asyncio.wait({task}, timeout=DISCONNECT_GRACE_S)
    if not done:
        task.cancel()
        await asyncio.wait({task})
    if not task.cancelled():
        task.exception()  # retrieved: the stream is gone, there is nobody to report it to
