"""The invoke pipeline: one invocation from event to answer, for every kind of handler.

`begin` turns an `Invocation` into the handler's arguments; `answer` sends what the handler
produced: a buffered result, an error, or a stream (generator items or writer chunks). Sync
handlers are called by the runtime loop itself, outside the event loop (see `runtime.py`);
everything else runs here, on the one event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import os
from base64 import b64encode
from concurrent.futures import Executor
from typing import Any, Awaitable, Callable

from . import errors, protocol
from .connection import RuntimeClient, StreamedRequest
from .context import LambdaContext
from .errors import RuntimeAPIError, RuntimeFault, _Escaped
from .loader import Kind
from .logs import Logs, request_id, tenant_id, trace_id
from .marshal import dumps, marshal, unmarshal
from .stream import ResponseStream, StreamDisconnectedError, StreamOptions

log = logging.getLogger("aruntime")
_TRACE_ENV = "_X_AMZN_TRACE_ID"


class Invoker:
    """Runs invocations through one handler."""

    def __init__(self, handler: Callable[..., Any], kind: Kind, logs: Logs,
                 set_trace_env: bool = True, executor: Executor | None = None) -> None:
        self.handler = handler
        # Under concurrency, sync code (handlers, generator steps) runs in this thread pool so
        # it cannot block the other invocations' pollers.
        self.executor = executor
        self.kind = kind
        self.logs = logs
        self.options: StreamOptions = getattr(handler, "__aruntime_streaming__", None) or StreamOptions()
        # With several invocations in flight a process-wide variable cannot be right for all.
        self.set_trace_env = set_trace_env

    # -- arguments ---------------------------------------------------------------------
    def begin(self, inv: protocol.Invocation) -> tuple[Any, LambdaContext]:
        """(event, context) for `inv`; sets the request id, tenant and trace for its logs."""
        request_id.set(inv.request_id)
        tenant_id.set(inv.tenant_id)
        trace_id.set(inv.trace_id)
        if self.set_trace_env:
            if inv.trace_id is not None:
                os.environ[_TRACE_ENV] = inv.trace_id
            else:
                os.environ.pop(_TRACE_ENV, None)
        if not inv.request_id:
            raise RuntimeFault(errors.MISSING_REQUEST_ID,
                               "The Runtime API sent an invocation without "
                               "Lambda-Runtime-Aws-Request-Id; it cannot be answered")
        context = LambdaContext(inv)
        return unmarshal(inv.body, inv.content_type), context

    # -- whole invocations on the loop -------------------------------------------------
    async def invoke(self, client: RuntimeClient, inv: protocol.Invocation) -> None:
        """Run a non-sync handler (or any handler, under concurrency) and answer."""
        try:
            event, context = self.begin(inv)
            if self.kind is Kind.WRITER:
                handler = self.handler
                produce = lambda stream: handler(event, context, stream)  # noqa: E731
            elif self.kind is Kind.SYNC and self.executor is not None:
                result = await self._in_thread(self.handler, event, context)
            else:
                result = self.handler(event, context)
                if self.kind is Kind.ASYNC:
                    result = await result
        except BaseException as e:  # noqa: BLE001 - every handler failure is reported
            await self.fail(client, inv, e)
            return
        if self.kind is Kind.WRITER:
            await self.stream(client, inv, produce)
        else:
            await self.answer(client, inv, result)

    async def answer(self, client: RuntimeClient, inv: protocol.Invocation, result: Any) -> None:
        """Send a handler's result: await it, stream it, or post it buffered."""
        gen = None
        try:
            if inspect.isawaitable(result):
                result = await result
            if inspect.isgenerator(result) or inspect.isasyncgen(result):
                gen = result
            else:
                body, content_type = marshal(result)
        except BaseException as e:  # noqa: BLE001
            await self.fail(client, inv, e)
            return
        if gen is not None:
            await self.stream(client, inv, lambda s: self._drain_generator(gen, s))
            return
        await self._post(client, protocol.response_request(client.host_header, inv, content_type,
                                                           len(body)), body)

    def _in_thread(self, func: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        # The invocation's context variables (request id for logs) follow it into the thread.
        ctx = contextvars.copy_context()
        return asyncio.get_running_loop().run_in_executor(self.executor, ctx.run, func, *args)

    async def _drain_generator(self, gen: Any, stream: ResponseStream) -> Any:
        """Write each item a generator yields as one chunk; return its return value."""
        if inspect.isasyncgen(gen):
            chunk: Any  # any item; `write` refuses what it cannot send, in the handler's name
            try:
                async for chunk in gen:
                    await stream.write(chunk)
            finally:
                await gen.aclose()
            return None
        item: Any
        try:
            while True:
                if self.executor is None:
                    done, item = _step(gen)
                else:
                    done, item = await self._in_thread(_step, gen)
                if done:
                    return item
                await stream.write(item)
        finally:
            gen.close()

    async def fail(self, client: RuntimeClient, inv: protocol.Invocation,
                   exc: BaseException) -> None:
        """Log a failed invocation and post it to `/error`."""
        header, error, cause = errors.error_body(exc, inv.request_id)
        self.logs.error(error)
        if not inv.request_id:
            return  # nothing to answer; the service times the invocation out
        body = dumps(error)
        request = protocol.error_request(client.host_header,
                                         protocol.invocation_target(inv.request_id, "error"),
                                         header, len(body), cause, inv)
        await self._post(client, request, body)

    async def _post(self, client: RuntimeClient, request: Any, body: bytes) -> None:
        try:
            await client.post(request, body)
        except RuntimeAPIError as e:
            if e.fatal:
                raise
            # 410 gone, 413 too large, 400/403: this invocation failed, the service goes on.
            log.warning("%s", e)
        except ValueError as e:  # a header no HTTP/1.1 peer may receive: unanswerable
            log.error("cannot answer %s: %s", request.target.decode(), e)

    # -- streaming ---------------------------------------------------------------------
    async def stream(self, client: RuntimeClient, inv: protocol.Invocation,
                     produce: Callable[[ResponseStream], Any]) -> None:
        """Run `produce(stream)` in its own task, so a hang-up can cancel it, and finish."""
        sink = _StreamSink(client, inv)
        stream = ResponseStream(sink, self.options.content_type)
        task = asyncio.ensure_future(_guard(produce(stream)))
        sink.task = task
        try:
            returned = await task
        except BaseException as e:  # noqa: BLE001
            await self._stream_failed(client, inv, sink, stream, e)
            return
        if returned is not None:
            if not stream.started:
                # Nothing was written: the return value is the answer, sent buffered. One
                # handler can so stream some invocations and buffer others (the ASGI adapter's
                # buffered invoke mode).
                await self.answer(client, inv, returned)
                return
            log.warning("streaming handler returned %r; the value is ignored (write it to the "
                        "stream instead)", type(returned).__name__)
        await self._ending(inv, stream.close())

    async def _ending(self, inv: protocol.Invocation, ending: Awaitable[None]) -> None:
        """Finish a stream: a lost connection or a non-fatal answer fails only this invocation."""
        try:
            await ending
        except (ConnectionError, StreamDisconnectedError) as e:
            log.warning("response stream for %s lost: %s", inv.request_id, e)
        except RuntimeAPIError as e:
            if e.fatal:
                raise
            log.warning("%s", e)

    async def _stream_failed(self, client: RuntimeClient, inv: protocol.Invocation,
                             sink: _StreamSink, stream: ResponseStream,
                             exc: BaseException) -> None:
        if sink.disconnected or isinstance(exc, StreamDisconnectedError):
            log.warning("the Runtime API closed the response stream of %s; the handler was "
                        "cancelled", inv.request_id)
            return
        if isinstance(exc, RuntimeAPIError):
            if exc.fatal:
                raise exc
            log.warning("%s", exc)
            return
        if not stream.started:
            await self.fail(client, inv, exc)
            return
        header, error, _ = errors.error_body(exc, inv.request_id)
        self.logs.error(error)
        if stream.closed:
            return  # the response already ended; the log line is all that can be said
        trailers = protocol.error_trailers(header, b64encode(dumps(error)))
        await self._ending(inv, sink.end(trailers))


class _StreamSink:
    """Connects a `ResponseStream` to a streamed `/response` request."""

    def __init__(self, client: RuntimeClient, inv: protocol.Invocation) -> None:
        self.client = client
        self.inv = inv
        self.request: StreamedRequest | None = None
        self.task: asyncio.Future[Any] | None = None
        self.disconnected = False

    def _lost(self) -> None:
        self.disconnected = True
        if self.task is not None:
            self.task.cancel()

    async def open(self, content_type: str) -> None:
        try:
            self.request = await self.client.open_stream(self.inv, content_type.encode())
        except ConnectionError as e:
            raise StreamDisconnectedError("the Runtime API closed the connection") from e
        self.request.conn.on_lost = self._lost

    async def send(self, data: bytes) -> None:
        try:
            await self.request.send(data)  # type: ignore[union-attr]
        except ConnectionError as e:
            raise StreamDisconnectedError("the Runtime API closed the response stream") from e

    async def finish(self, content_type: str) -> None:
        if self.request is None:
            await self.open(content_type)
        await self.end(None)

    async def end(self, trailers: list[tuple[bytes, bytes]] | None) -> None:
        request = self.request
        assert request is not None
        try:
            await request.finish(trailers)
        finally:
            request.conn.on_lost = None


def _step(gen: Any) -> tuple[bool, Any]:
    """(finished, item or return value): StopIteration cannot cross into an asyncio future."""
    try:
        return False, next(gen)
    except StopIteration as stop:
        return True, stop.value


async def _guard(coro: Any) -> Any:
    # SystemExit/KeyboardInterrupt escaping a task would stop the event loop itself.
    try:
        return await coro
    except (SystemExit, KeyboardInterrupt) as e:
        raise _Escaped(e) from e
