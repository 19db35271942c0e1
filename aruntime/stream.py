"""The public streaming API: `streaming`, `ResponseStream`, `HttpResponse`, `sse`.

A generator handler yields chunks; a writer handler (`async def handler(event, context,
stream)`, marked `@aruntime.streaming`) writes them. Both feed the same `ResponseStream`, which
opens the streamed `/response` at the first byte (docs/SPEC.md §3).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Callable, Mapping, Protocol, Sequence, TypeVar, overload

import orjson

OCTET_STREAM = "application/octet-stream"
HTTP_INTEGRATION = "application/vnd.awslambda.http-integration-response"
PRELUDE_SEPARATOR = b"\x00" * 8
PRELUDE_LIMIT = 16 * 1024

F = TypeVar("F", bound=Callable[..., Any])


class StreamOptions:
    """What `@streaming` attaches to a handler."""

    __slots__ = ("content_type",)

    def __init__(self, content_type: str = OCTET_STREAM) -> None:
        self.content_type = content_type


@overload
def streaming(func: F) -> F: ...
@overload
def streaming(*, content_type: str = OCTET_STREAM) -> Callable[[F], F]: ...


def streaming(func: Any = None, *, content_type: str = OCTET_STREAM) -> Any:
    """Mark a handler as streaming and set its content type.

    On a generator (`yield`) handler it only sets the content type. On an `async def
    handler(event, context, stream)` it makes a writer handler that gets a `ResponseStream`.
    Usable bare (`@streaming`) or called (`@streaming(content_type="text/event-stream")`).
    """

    _check_content_type(content_type)

    def mark(f: F) -> F:
        f.__aruntime_streaming__ = StreamOptions(content_type)  # type: ignore[attr-defined]
        return f

    return mark(func) if func is not None else mark


class HttpResponse:
    """Status, headers and cookies of a Function URL / API Gateway streamed response.

    Yield it first (or `await stream.write(...)` it first): the response then goes out as
    `application/vnd.awslambda.http-integration-response`, a JSON prelude, 8 NUL bytes, body.
    """

    # A plain class, not a dataclass: building dataclasses costs start-up time.
    __slots__ = ("status_code", "headers", "cookies")

    def __init__(self, status_code: int = 200, headers: Mapping[str, str] | None = None,
                 cookies: Sequence[str] | None = None) -> None:
        self.status_code = status_code
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        self.cookies: Sequence[str] = cookies if cookies is not None else []

    def __repr__(self) -> str:
        return (f"HttpResponse(status_code={self.status_code!r}, headers={self.headers!r}, "
                f"cookies={self.cookies!r})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HttpResponse):
            return NotImplemented
        return (self.status_code, dict(self.headers), list(self.cookies)) == (
            other.status_code, dict(other.headers), list(other.cookies))

    def prelude(self) -> bytes:
        """The JSON prelude and its separator. JSON escapes NUL, so none can appear raw."""
        data = orjson.dumps({"statusCode": int(self.status_code), "headers": dict(self.headers),
                             "cookies": list(self.cookies)})
        if len(data) > PRELUDE_LIMIT:
            raise ValueError(f"HttpResponse prelude is {len(data)} bytes; Lambda allows "
                             f"{PRELUDE_LIMIT}")
        return data + PRELUDE_SEPARATOR


def sse(data: Any, *, event: str | None = None, id: str | None = None,
        retry: int | None = None) -> bytes:
    """One Server-Sent Event. `data` that is not `str`/`bytes` is sent as JSON."""
    if isinstance(data, bytes):
        text = data.decode("utf-8")
    elif isinstance(data, str):
        text = data
    else:
        text = orjson.dumps(data).decode()
    out = []
    for name, value in (("event", event), ("id", id)):
        if value is not None:
            if "\n" in value or "\r" in value or (name == "id" and "\0" in value):
                raise ValueError(f"SSE {name} may not contain a line break")
            out.append(f"{name}: {value}\n")
    if retry is not None:
        out.append(f"retry: {int(retry)}\n")
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        out.append(f"data: {line}\n")
    out.append("\n")
    return "".join(out).encode("utf-8")


def _check_content_type(value: str) -> None:
    if not value or value != value.strip() or any(c < " " or c == "\x7f" for c in value):
        raise ValueError(f"not a usable Content-Type: {value!r}")


class StreamClosedError(RuntimeError):
    """Written to a response stream that is already closed."""


class StreamDisconnectedError(ConnectionError):
    """The Runtime API hung up while the response was streaming (timeout, caller gone)."""


class _Sink(Protocol):
    """What `ResponseStream` writes to; implemented by the invoke pipeline."""

    async def open(self, content_type: str, first: bytes = b"") -> None: ...
    async def send(self, data: bytes) -> None: ...
    async def finish(self, content_type: str) -> None: ...


class ResponseStream:
    """The response of a streaming invocation, written chunk by chunk.

    Each `write` is one chunk on the wire, sent when written; `write` waits while the network
    is slower than the producer. Writes from several tasks are serialised. The stream is
    closed for the handler when it returns.
    """

    def __init__(self, sink: _Sink, content_type: str = OCTET_STREAM) -> None:
        self._sink = sink
        self._content_type = content_type
        self._opened = False
        self._closed = False
        # Writes take turns (an asyncio.Lock's rules, without its coroutine calls when, as
        # usual, one producer writes): `_busy` while one is sending, later ones wait in line.
        self._busy = False
        self._waiters: deque[asyncio.Future[None]] = deque()
        # The sink's `send_now(data) -> bool` when it has one: a chunk sent without a coroutine.
        self._send_now: Callable[[bytes], bool] | None = getattr(sink, "send_now", None)

    @property
    def content_type(self) -> str:
        return self._content_type

    @content_type.setter
    def content_type(self, value: str) -> None:
        if self._opened:
            raise StreamClosedError("content_type cannot change after the first write")
        _check_content_type(value)
        self._content_type = value

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def started(self) -> bool:
        """True once the response began (its head is on the wire)."""
        return self._opened

    async def write(self, data: bytes | str | bytearray | memoryview | HttpResponse) -> None:
        """Send one chunk (`str` as UTF-8), or an `HttpResponse` before any chunk."""
        if self._closed:
            raise StreamClosedError("write to a response stream that is closed")
        prelude = b""
        if type(data) is bytes:
            chunk = data
        elif isinstance(data, HttpResponse):
            if self._opened:
                raise StreamClosedError("HttpResponse must be written before any body byte")
            self._content_type = HTTP_INTEGRATION
            # The JSON and its separator go out as two chunks (docs/SPEC.md §8: cargo-lambda parses the
            # prelude per chunk; the Node.js runtime writes them apart too).
            prelude, chunk = data.prelude()[:-len(PRELUDE_SEPARATOR)], PRELUDE_SEPARATOR
        elif isinstance(data, str):
            chunk = data.encode("utf-8")
        elif isinstance(data, (bytes, bytearray, memoryview)):
            chunk = bytes(data)
        else:
            raise TypeError(f"a response stream takes bytes, str or HttpResponse, not "
                            f"{type(data).__name__}")
        if self._busy or self._waiters:
            await self._turn()
        else:
            self._busy = True
        try:
            if self._closed:
                raise StreamClosedError("write to a response stream that is closed")
            if not self._opened:
                self._opened = True
                # The head of the response and its first chunk leave in one write.
                await self._sink.open(self._content_type, prelude or chunk)
                if prelude and chunk:
                    await self._sink.send(chunk)
            else:
                if prelude:
                    await self._sink.send(prelude)
                send_now = self._send_now
                if chunk and not (send_now is not None and send_now(chunk)):
                    await self._sink.send(chunk)
        finally:
            self._release()

    def _write_now(self, data: object) -> bool:
        """`write` when it need not wait: True if `data` (bytes) was sent now, as one chunk;
        False (nothing done) when `write` must send it. Raises as `write` would (a hung-up
        stream). For the runtime's own loops, which would otherwise pay a coroutine per chunk."""
        send_now = self._send_now
        if (type(data) is not bytes or send_now is None or not self._opened or self._closed
                or self._busy or self._waiters):
            return False
        return send_now(data) if data else True

    async def _turn(self) -> None:
        """Wait until the writes before this one are done; then this one holds the turn."""
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            try:
                await fut
            finally:
                self._waiters.remove(fut)
        except asyncio.CancelledError:
            if not self._busy:  # the turn may have been handed to us: pass it on
                self._wake_next()
            raise
        self._busy = True

    def _release(self) -> None:
        self._busy = False
        if self._waiters:
            self._wake_next()

    def _wake_next(self) -> None:
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
            return

    async def close(self) -> None:
        """End the response now; further writes raise `StreamClosedError`.

        Closing is optional: the stream is closed for the handler when it returns.
        """
        if self._busy or self._waiters:
            await self._turn()
        else:
            self._busy = True
        try:
            if self._closed:
                return
            self._closed = True
            self._opened = True
            await self._sink.finish(self._content_type)
        finally:
            self._release()
