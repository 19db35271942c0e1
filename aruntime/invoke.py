"""The invoke pipeline: one invocation from event to answer, for every kind of handler.

`begin` turns an `Invocation` into the handler's arguments; `answer` sends what the handler
produced: a buffered result, an error, or a stream (generator items or writer chunks). Sync
handlers are called by the runtime loop itself, outside the event loop (see `runtime.py`);
everything else runs here, on the one event loop. Under concurrency, sync code (handlers,
generator steps) runs in a worker thread of its invocation's own (`workers.py`).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import os
from base64 import b64encode
from time import monotonic
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from . import errors, invocation, lifecycle, protocol, tasks
from .connection import RuntimeClient, StreamedRequest
from .context import LambdaContext
from .errors import RuntimeAPIError, RuntimeFault, _Escaped
from .loader import Kind, stream_options
from .logs import Logs
from .marshal import dumps, marshal, unmarshal
from .stream import ResponseStream, StreamDisconnectedError, StreamOptions

if TYPE_CHECKING:  # imported by the runtime only under concurrency (start-up: README)
    from .workers import Worker, Workers

log = logging.getLogger("aruntime")
_TRACE_ENV = "_X_AMZN_TRACE_ID"
# Per-invocation instrumentation (`aruntime.otel`), set once before the runtime starts serving:
# an object with `begin(inv, arguments) -> (event, context)` and `end(exception or None)`.
observer: Any = None
# How often a stream write asks the kernel whether the Runtime API hung up, at most (seconds).
# A producer slower than this is checked at every write; a faster one at most once a period,
# so the hot path pays a clock read, not a syscall, per chunk.
HANGUP_CHECK_S = 0.001


class Invoker:
    """Runs invocations through one handler."""

    def __init__(self, handler: Callable[..., Any], kind: Kind, logs: Logs,
                 set_trace_env: bool = True, workers: Workers | None = None) -> None:
        self.handler = handler
        # Under concurrency, sync code (handlers, generator steps) runs in these threads, one
        # per invocation in flight, so it cannot block the other invocations' pollers.
        self.workers = workers
        self.kind = kind
        self.logs = logs
        self.options: StreamOptions = stream_options(handler) or StreamOptions()
        # With several invocations in flight a process-wide variable cannot be right for all.
        self.set_trace_env = set_trace_env
        # Set when the runtime itself cancels its pollers (shutting down): a CancelledError is
        # then the runtime's, not the handler's.
        self.stopping = False
        if observer is None and os.environ.get("ARUNTIME_OTEL", "") not in ("", "0", "false"):
            from . import otel  # only now: off, it costs no import

            otel.instrument()
        # When None (instrumentation off) an invocation pays one check here where it begins
        # and one where it ends.
        self.observer = observer

    # -- arguments ---------------------------------------------------------------------
    def begin(self, inv: protocol.Invocation) -> tuple[Any, LambdaContext]:
        """(event, context) for `inv`; makes it the current invocation (logs, trace)."""
        invocation_id = inv.invocation_id
        invocation.begin(invocation.CurrentInvocation(
            inv.request_id, inv.tenant_id, inv.trace_id,
            invocation_id.decode("latin-1") if invocation_id is not None else None))
        if self.set_trace_env:
            if inv.trace_id is not None:
                os.environ[_TRACE_ENV] = inv.trace_id
            else:
                os.environ.pop(_TRACE_ENV, None)
        if self.observer is not None:
            return self.observer.begin(inv, _arguments)  # type: ignore[no-any-return]
        return _arguments(inv)

    # -- whole invocations on the loop -------------------------------------------------
    async def invoke(self, client: RuntimeClient, inv: protocol.Invocation) -> None:
        """Run a non-sync handler (or any handler, under concurrency) and answer."""
        if self.workers is None:
            await self._invoke(client, inv, None)
            return
        # All of this invocation's sync code runs on one worker thread (workers.py).
        try:
            worker = self.workers.take()
        except RuntimeError as e:  # "can't start new thread": a process or memory limit
            await self.fail(client, inv, RuntimeFault(
                errors.NO_WORKER_THREAD, f"No thread could be started for this invocation: {e}"))
            return
        try:
            await self._invoke(client, inv, worker)
        finally:
            self.workers.give_back(worker)

    async def _invoke(self, client: RuntimeClient, inv: protocol.Invocation,
                      worker: Worker | None) -> None:
        carried = None
        try:
            event, context = self.begin(inv)
            if self.kind is Kind.WRITER:
                handler = self.handler
                produce = lambda stream: handler(event, context, stream)  # noqa: E731
            elif self.kind is Kind.SYNC and worker is not None:
                wrapper_context = contextvars.copy_context()
                raised, result = await worker.call(wrapper_context.run, self.handler, event,
                                                   context)
                if raised:
                    raise result
                if (inspect.isawaitable(result) or inspect.isasyncgen(result)
                        or inspect.isgenerator(result)):
                    # A sync wrapper (Powertools' decorators) returned the work of an async or
                    # streaming handler: what the wrapper set in its context (context variables:
                    # Powertools' thread-safe keys, a span) holds for that work, as it does when
                    # one invocation at a time runs the wrapper on the loop's thread.
                    carried = wrapper_context
            else:
                result = self.handler(event, context)
                if self.kind is Kind.ASYNC:
                    result = await result
        except BaseException as e:  # noqa: BLE001 - every handler failure is reported
            if tasks.handler_returned():
                await tasks.settle()
            self._own_cancel(e)
            await self.fail(client, inv, e)
            return
        # From here on the task runs the runtime's code: cancels are refused (tasks.py).
        if tasks.handler_returned():
            await tasks.settle()
        if self.kind is Kind.WRITER:
            await self.stream(client, inv, produce)
        elif carried is not None:
            await carried.run(tasks.new, self.answer(client, inv, result, worker),
                              asyncio.get_running_loop(), None, inspect.isawaitable(result))
        else:
            await self.answer(client, inv, result, worker)

    async def answer(self, client: RuntimeClient, inv: protocol.Invocation, result: Any,
                     worker: Worker | None = None) -> None:
        """Send a handler's result: await it, stream it, or post it buffered. A sync generator
        steps in `worker` when one is given (the thread its handler ran in)."""
        if lifecycle.forked:
            lifecycle.end_forked_child(None)
        gen = None
        try:
            if inspect.isawaitable(result):
                result = await result  # the handler's code (a sync wrapper's coroutine)
                if tasks.handler_returned():
                    await tasks.settle()
            if inspect.isgenerator(result) or inspect.isasyncgen(result):
                gen = result
            else:
                body, content_type = marshal(result)
        except BaseException as e:  # noqa: BLE001
            if tasks.handler_returned():
                await tasks.settle()
            self._own_cancel(e)
            await self.fail(client, inv, e)
            return
        if gen is not None:
            await self.stream(client, inv, lambda s: self._drain_generator(gen, s, worker))
            return
        await self._post(client, protocol.response_request(client.host_header, inv, content_type,
                                                           len(body)), body)
        if self.observer is not None:
            self.observer.end(None)

    def _own_cancel(self, exc: BaseException) -> None:
        """Re-raise a cancellation that is the runtime's own (shutting down); any other one the
        handler raised is its error, and its task must not stay marked as cancelling."""
        if not isinstance(exc, asyncio.CancelledError):
            return
        if self.stopping:
            raise exc
        try:
            task = asyncio.current_task()
        except RuntimeError:  # no loop running: a sync handler's result, answered by runtime._drive
            return
        uncancel = getattr(task, "uncancel", None)  # Python 3.11+
        if uncancel is not None and task.cancelling():  # type: ignore[union-attr]
            uncancel()

    async def _drain_generator(self, gen: Any, stream: ResponseStream,
                               worker: Worker | None) -> Any:
        """Write each item a generator yields as one chunk; return its return value."""
        if inspect.isasyncgen(gen):
            chunk: Any  # any item; `write` refuses what it cannot send, in the handler's name
            try:
                async for chunk in gen:
                    if not stream._write_now(chunk):
                        await stream.write(chunk)
            finally:
                await gen.aclose()
            return None
        item: Any
        if worker is None:
            try:
                while True:
                    try:
                        item = next(gen)
                    except StopIteration as stop:
                        return stop.value
                    if not stream._write_now(item):
                        await stream.write(item)
            finally:
                gen.close()
        return await self._drain_in_worker(gen, stream, worker)

    async def _drain_in_worker(self, gen: Any, stream: ResponseStream, worker: Worker) -> Any:
        # Under concurrency every step runs in the invocation's worker thread, the one its
        # handler ran in; StopIteration and the other BaseExceptions come back as values.
        ctx = contextvars.copy_context()
        finished = False
        try:
            while True:
                raised, value = await worker.call(ctx.run, _step, gen)
                if raised:
                    finished = True
                    raise value
                if value.__class__ is _Returned:
                    finished = True
                    return value.value
                await stream.write(value)
        except asyncio.CancelledError:
            if not finished:
                # The stream's connection is gone. A step still running in the worker cannot be
                # stopped: the generator is closed there once that step is over (calls run in
                # order), and the poller goes on to the next invocation without waiting for it.
                worker.call(ctx.run, _close_logged, gen)
            raise
        except BaseException:
            if not finished:
                # A write failed: the generator's finally blocks run in the worker, as its steps
                # did. Shielded: a cancellation arriving meanwhile (the loss of the connection,
                # seen late by the loop) must not drop the close while it waits for the thread.
                await asyncio.shield(worker.call(ctx.run, gen.close))
            raise

    async def fail(self, client: RuntimeClient, inv: protocol.Invocation,
                   exc: BaseException) -> None:
        """Log a failed invocation and post it to `/error`."""
        if lifecycle.forked:
            lifecycle.end_forked_child(exc)
        header, error, cause = errors.error_body(exc, inv.request_id)
        self.logs.error(error, errors.log_stack(exc))
        if not inv.request_id:
            if self.observer is not None:
                self.observer.end(exc)
            return  # nothing to answer; the service times the invocation out
        body = dumps(error)
        request = protocol.error_request(client.host_header,
                                         protocol.answer_target(inv, "error"),
                                         header, len(body), cause, inv)
        await self._post(client, request, body)
        if self.observer is not None:
            self.observer.end(exc)

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
        task = asyncio.ensure_future(self._guard(produce, stream, sink))
        sink.task = task
        try:
            returned = await task
        except BaseException as e:  # noqa: BLE001
            if lifecycle.forked:
                lifecycle.end_forked_child(e.__cause__ if isinstance(e, _Escaped) else e)
            self._own_cancel(e)
            try:
                await self._stream_failed(client, inv, sink, stream, e)
            finally:
                if self.observer is not None:
                    self.observer.end(_hung_up_error() if sink.disconnected else e)
            return
        if lifecycle.forked:
            lifecycle.end_forked_child(None)
        if sink.disconnected:  # the handler caught the hang-up and returned
            self._hung_up(inv)
            if self.observer is not None:
                self.observer.end(_hung_up_error())
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
        if self.observer is not None:
            self.observer.end(None)

    async def _guard(self, produce: Callable[[ResponseStream], Any], stream: ResponseStream,
                     sink: _StreamSink) -> Any:
        """Run the stream's producer in its task. BaseExceptions other than the runtime's own
        cancellations leave the task wrapped: SystemExit/KeyboardInterrupt escaping a task would
        stop the event loop, a GeneratorExit would close the coroutine awaiting the task."""
        try:
            result = produce(stream)  # a sync wrapper's own code runs here too
            if inspect.isawaitable(result):
                result = await result
            return result
        except Exception:
            raise
        except asyncio.CancelledError as e:
            if sink.disconnected or self.stopping:
                raise
            raise _Escaped(e) from e
        except BaseException as e:
            raise _Escaped(e) from e

    def _hung_up(self, inv: protocol.Invocation) -> None:
        log.warning("the Runtime API closed the response stream of %s; the handler was "
                    "cancelled", inv.request_id)

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
            self._hung_up(inv)
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
        self.logs.error(error, errors.log_stack(exc))
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
        self._checked = 0.0  # monotonic time the kernel was last asked about a hang-up

    def _lost(self) -> None:
        self.disconnected = True
        if self.task is not None:
            self.task.cancel()

    async def open(self, content_type: str, first: bytes = b"") -> None:
        try:
            self.request = await self.client.open_stream(self.inv, content_type.encode(), first)
        except ConnectionError as e:
            raise StreamDisconnectedError("the Runtime API closed the connection") from e
        self.request.conn.on_lost = self._lost
        self._checked = monotonic()  # open_stream has just asked the kernel

    def _check(self, conn: Any) -> None:
        # A write that never yields to the loop (a sync generator, or any producer that blocks
        # between writes) would never see connection_lost: ask at the write itself.
        gone = self.disconnected or conn.transport.is_closing()
        now = monotonic()
        if not gone and now - self._checked >= HANGUP_CHECK_S:
            self._checked = now
            gone = conn.peer_gone()
        if gone:
            self.disconnected = True
            raise StreamDisconnectedError("the Runtime API closed the response stream")

    async def send(self, data: bytes) -> None:
        request = self.request
        assert request is not None
        self._check(request.conn)
        try:
            await request.send(data)
        except ConnectionError as e:
            self.disconnected = True
            raise StreamDisconnectedError("the Runtime API closed the response stream") from e

    def send_now(self, data: bytes) -> bool:
        """`send` without a coroutine when the network keeps up: True if `data` went out;
        False (nothing sent) while the socket's buffer is full."""
        request = self.request
        assert request is not None
        self._check(request.conn)
        return request.send_now(data)

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


def _arguments(inv: protocol.Invocation) -> tuple[Any, LambdaContext]:
    if not inv.request_id:
        raise RuntimeFault(errors.MISSING_REQUEST_ID,
                           "The Runtime API sent an invocation without "
                           "Lambda-Runtime-Aws-Request-Id; it cannot be answered")
    context = LambdaContext(inv)
    return unmarshal(inv.body, inv.content_type), context


class _Returned:
    """A generator's return value, as `_step` hands it back (any other value is an item)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _step(gen: Any) -> Any:
    """One generator step in a worker thread: the item, or `_Returned(value)` at its end
    (StopIteration cannot cross a future); what else it raises goes back as the worker's."""
    try:
        return next(gen)
    except StopIteration as stop:
        return _Returned(stop.value)


def _hung_up_error() -> StreamDisconnectedError:
    return StreamDisconnectedError("the Runtime API closed the response stream")


def _close_logged(gen: Any) -> None:
    try:
        gen.close()
    except BaseException:  # noqa: BLE001 - nobody awaits this close any more
        log.exception("closing the generator of a cancelled stream raised")
