"""The runtime's main loop: load the handler, then serve invocations until the service stops us.

One event loop lives for the whole process. Sync handlers are called between loop runs, with
no loop running — exactly as under the reference client, so `asyncio.run()` inside a handler
works — and everything else (async handlers, generators, writers) runs on that loop, so clients
an async handler created in one invocation are still usable in the next.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import os
import types
from typing import Any, Callable, Coroutine, Generator

from . import errors, invocation, lifecycle, loops, protocol, tasks
from .connection import RuntimeClient
from .errors import RuntimeAPIError, RuntimeAPIUnavailable
from .invoke import Invoker
from .loader import Kind, kind_of, load
from .logs import UNHANDLED_WARNING, Logs, settle_stdio, write_stderr
from .marshal import dumps
from .protocol import Invocation
from .wire import engine_name

log = logging.getLogger("aruntime")


def main(handler_spec: str | None) -> int:
    """Run the runtime; returns the process exit status.

    The process then ends within `lifecycle.EXIT_GRACE_S` whatever threads the function left
    running (`lifecycle.exit_within`), with this status (or the one a module's SIGTERM handler
    gave with `sys.exit`).
    """
    status: Any = 1
    try:
        status = _main(handler_spec)
        return status  # type: ignore[no-any-return]
    except SystemExit as e:  # a handler module's SIGTERM handler called sys.exit(n)
        status = e.code
        raise
    finally:
        lifecycle.exit_within(lifecycle.EXIT_GRACE_S, status)


def _main(handler_spec: str | None) -> int:
    concurrency = max_concurrency(os.environ.get("AWS_LAMBDA_MAX_CONCURRENCY"))
    try:
        try:
            engine: str | None = engine_name(os.environ.get("ARUNTIME_HTTP"))
        except ValueError:
            engine = None  # RuntimeClient says why, below
        kind_of_loop = loops.loop_name(os.environ.get("ARUNTIME_LOOP"), concurrency, engine)
    except ValueError as e:
        write_stderr(f"aruntime: {e}\n")
        return 1
    # Created before logging is set up: its "Using selector" debug record is not the function's.
    loop = loops.new_loop(kind_of_loop)
    # Lambda Managed Instances accept only JSON logs (docs/SPEC.md §5).
    logs = Logs(force_json=concurrency > 1)
    logs.install()
    address = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if not address:
        write_stderr("aruntime: AWS_LAMBDA_RUNTIME_API is not set\n")
        return 1
    try:
        client = RuntimeClient(address)
    except ValueError as e:
        write_stderr(f"aruntime: {e}\n")
        return 1
    # Module-level code that asks for "the" loop gets the one that will run its coroutines.
    asyncio.set_event_loop(loop)
    try:
        try:
            if not handler_spec:
                raise errors.RuntimeFault(errors.MALFORMED_HANDLER_NAME,
                                          "No handler: pass it as an argument or set _HANDLER")
            try:
                handler = load(handler_spec)
            finally:
                loop = _usable_after_import(loop, kind_of_loop)
            # From here on a handler cannot close it (loops.py).
            loop.serving = True  # type: ignore[attr-defined]
            kind = kind_of(handler)
            # A handler object may need the loop before serving (an ASGI app's lifespan
            # startup): it runs here, as part of Init, and failing it fails the init.
            init = getattr(handler, "__aruntime_init__", None)
            if init is not None:
                loop.run_until_complete(init())
        except BaseException as e:  # noqa: BLE001 - whatever init raises is reported
            return _init_failed(loop, client, logs, e)
        if kind is Kind.SYNC:
            _release_current_loop(loop)
        if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start":
            failed = loop.run_until_complete(lifecycle.snap_start(client, logs))
            if failed is not None:
                return failed
        clients = [client] + [RuntimeClient(address) for _ in range(concurrency - 1)]
        for c in clients:  # each poller posts, then asks for the next invocation
            c.pipeline = True
            c.loop = loop
        lifecycle.install_sigterm(loop, clients)
        if concurrency > 1:
            invocation.per_task()
            from .workers import guard_signal_handlers, widen_default_executor

            widen_default_executor(loop, concurrency)
            guard_signal_handlers()
            _serve_concurrently(loop, clients, Invoker(handler, kind, logs, set_trace_env=False,
                                                       workers=_workers(kind, loop)))
        else:
            _serve(loop, client, Invoker(handler, kind, logs))
    except (RuntimeAPIError, RuntimeAPIUnavailable) as e:
        write_stderr(f"aruntime: exiting: {e}\n")
        return 1
    except RuntimeError:
        if lifecycle.terminated:  # SIGTERM: the hooks ran and stopped the loop
            return lifecycle.previous_sigterm()
        raise
    finally:
        loop.serving = False  # type: ignore[attr-defined]
        client.close()
        settle_stdio()
    return 0


def _usable_after_import(loop: asyncio.AbstractEventLoop, name: str) -> asyncio.AbstractEventLoop:
    """`loop`, or a new one if the module closed it at import: code such as
    `loop = asyncio.get_event_loop(); loop.run_until_complete(setup()); loop.close()` works
    under the reference client (its import-time code gets a loop of its own), so it must here."""
    if not loop.is_closed():
        return loop
    fresh = loops.new_loop(name)
    asyncio.set_event_loop(fresh)
    return fresh


def _release_current_loop(loop: asyncio.AbstractEventLoop) -> None:
    """A sync handler runs where no loop runs, as under the reference client: there
    `asyncio.get_event_loop()` must give it a loop of its own (Python's rule for the main thread
    with no loop set: a new one, until 3.14; an error from 3.14), not the runtime's, which the
    handler could close or stop. So once init is over the runtime's loop stops being the
    thread's current loop, unless the module made another one current.

    Undoing `set_event_loop` entirely takes the policy's private `_set_called` flag (3.10-3.13):
    with it still set Python would refuse to make the handler a loop. 3.14 makes no loop
    implicitly (the handler gets Python's RuntimeError, as under the reference)."""
    policy = getattr(asyncio.events, "_event_loop_policy", None)
    local: Any = getattr(policy, "_local", None)
    if getattr(local, "_loop", None) is not loop:
        return
    asyncio.set_event_loop(None)
    if hasattr(local, "_set_called"):
        local._set_called = False  # noqa: SLF001 - see the docstring


def max_concurrency(value: str | None) -> int:
    """`AWS_LAMBDA_MAX_CONCURRENCY` as a number of pollers; absent or unusable means 1."""
    try:
        n = int(value) if value else 1
    except ValueError:
        write_stderr(f"aruntime: ignoring AWS_LAMBDA_MAX_CONCURRENCY={value!r}\n")
        return 1
    return max(n, 1)


def _init_failed(loop: asyncio.AbstractEventLoop, client: RuntimeClient, logs: Logs,
                 exc: BaseException) -> int:
    _, error, _ = errors.error_body(exc)
    # docs/SPEC.md §1: init errors carry the errorType itself (the reference does the same).
    header = error["errorType"]
    logging.warning(UNHANDLED_WARNING)
    logs.error(error, errors.log_stack(exc))
    body = dumps(error)
    request = protocol.error_request(client.host_header, protocol.INIT_ERROR_TARGET, header,
                                     len(body))
    try:
        loop.run_until_complete(client.post(request, body))
    except (RuntimeAPIError, RuntimeAPIUnavailable) as e:
        write_stderr(f"aruntime: could not report the init error: {e}\n")
    return 1


async def _then_next(answer: Coroutine[Any, Any, None] | None, client: RuntimeClient,
                     loop: asyncio.AbstractEventLoop) -> Invocation:
    # One loop run per invocation: answer, then wait for the next event (the answer and the
    # `GET /next` leave in one write: see connection.py). The loop is stopped from here, in
    # the step that finishes, rather than by a done-callback one loop iteration later.
    try:
        if answer is not None:
            await answer
            tasks.unanswered_alone = None
        return await client.next()
    finally:
        loop.stop()


Runner = Callable[..., Invocation]


def _runner(loop: asyncio.AbstractEventLoop) -> Runner:
    """`loop.run_until_complete` for coroutines that stop the loop themselves (`_then_next`),
    in a `tasks.RuntimeTask`: `run(coro, request_id=None, handler_running=False)`, where
    `request_id` is the invocation `coro` answers (`tasks.unanswered_alone` until it has)."""

    def run(coro: Coroutine[Any, Any, Invocation], request_id: str | None = None,
            handler_running: bool = False) -> Invocation:
        tasks.unanswered_alone = request_id
        task = tasks.new(coro, loop, None, handler_running)
        loop.run_forever()
        if not task.done():
            _stopped_early(loop, task)
        return task.result()

    return run


def _stopped_early(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any]) -> None:
    """The loop stopped before `fut` was done. SIGTERM's shutdown stops it (`lifecycle`): raise,
    as `run_until_complete` would (see main). Anyone else is the function's code
    (`asyncio.get_running_loop().stop()`, or a sync handler's `stop()` on the loop it kept from
    import): that stop is not the invocation's to make, so it is logged and the loop runs on."""
    while not fut.done():
        if lifecycle.terminated:
            raise RuntimeError("Event loop stopped before Future completed.")
        log.warning("aruntime: the function's code stopped the event loop (loop.stop()); it is "
                    "the runtime's, shared by every invocation: it runs on")
        loop.run_forever()


async def _answer_then_next(answer: Coroutine[Any, Any, None] | None,
                            client: RuntimeClient) -> Invocation:
    if answer is not None:
        await answer
    return await client.next()


def _drive(loop: asyncio.AbstractEventLoop, client: RuntimeClient, run: Runner,
           coro: Coroutine[Any, Any, Invocation]) -> Invocation:
    """Run `coro` (the runtime's own code: answer a sync handler's invocation, ask for the next)
    with one event-loop iteration where a task would take three.

    Its steps run here, between loop runs, as a task's would inside them. When it suspends on
    the connection's wait for its answers, the loop runs until the connection, as it wakes the
    wait, stops it (`RuntimeClient.stop_loop_when_answered`), and the coroutine is resumed
    here. When it suspends on anything else (a reconnect, a stream, a shutdown hook) it is
    handed to a task (`_adopted`) and finished the usual way. Nothing here needs a running
    loop (the client connects on `client.loop`); user code never runs here.
    """
    try:
        awaited = coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    while client.stop_loop_when_answered(awaited):
        loop.run_forever()
        if not awaited.done():  # type: ignore[union-attr]
            _stopped_early(loop, awaited)  # type: ignore[arg-type]
        try:
            awaited = coro.send(None)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
    return run(_adopted(coro, awaited, loop))


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], awaited: Any) -> Generator[Any, Any, Any]:
    """Inside a task, the rest of a coroutine that suspended on `awaited` outside one: the task
    waits on it, and what the task sends or throws is passed on, as `await` would pass it."""
    while True:
        try:
            sent = yield awaited
        except BaseException as e:  # noqa: BLE001 - a cancellation, thrown in by the task
            try:
                awaited = coro.throw(e)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                awaited = coro.send(sent)
            except StopIteration as stop:
                return stop.value


async def _adopted(coro: Coroutine[Any, Any, Invocation], awaited: Any,
                   loop: asyncio.AbstractEventLoop) -> Invocation:
    try:
        return await _resume(coro, awaited)  # type: ignore[no-any-return]
    finally:
        loop.stop()  # as _then_next does


def _serve(loop: asyncio.AbstractEventLoop, client: RuntimeClient, invoker: Invoker) -> None:
    run = _runner(loop)
    inv = _drive(loop, client, run, _answer_then_next(None, client))
    if invoker.kind is not Kind.SYNC:
        while True:  # async handlers run in a task (they may need one: asyncio.timeout, anyio)
            inv = run(_then_next(invoker.invoke(client, inv), client, loop), inv.request_id, True)
    handler = invoker.handler
    while True:
        try:
            event, context = invoker.begin(inv)
            result = handler(event, context)
        except BaseException as e:  # noqa: BLE001 - reported as this invocation's error
            inv = _drive(loop, client, run, _answer_then_next(invoker.fail(client, inv, e), client))
            continue
        if inspect.isawaitable(result) or inspect.isgenerator(result) or inspect.isasyncgen(result):
            # The handler's own code runs on: in a task, as any coroutine or stream does.
            inv = run(_then_next(invoker.answer(client, inv, result), client, loop),
                      inv.request_id, inspect.isawaitable(result))
        else:
            inv = _drive(loop, client, run,
                         _answer_then_next(invoker.answer(client, inv, result), client))


def _workers(kind: Kind, loop: asyncio.AbstractEventLoop) -> Any:
    if kind not in (Kind.SYNC, Kind.GENERATOR):
        return None
    from .workers import Workers

    return Workers(loop)


def _serve_concurrently(loop: asyncio.AbstractEventLoop, clients: list[RuntimeClient],
                        invoker: Invoker) -> None:
    """N pollers on one loop, each with its own connection: no head-of-line blocking."""

    async def poll(client: RuntimeClient) -> None:
        # Each invocation runs in a task of its own made from a fresh copy of the poller's first
        # context, as each one at N = 1 does: context variables one invocation sets (Powertools'
        # thread-safe keys, OpenTelemetry baggage, the handler's own) never reach the next.
        # Its task and the invocations' are `tasks.RuntimeTask`s: a handler's stray cancel
        # (`asyncio.all_tasks()`, a timer left behind) cannot end a poller or cut an answer.
        base = contextvars.copy_context()
        while True:
            inv = await client.next()
            await base.copy().run(tasks.new, invoker.invoke(client, inv), loop, inv.request_id,
                                  True)

    async def all_pollers() -> None:
        pollers = [tasks.new(poll(c), loop) for c in clients]
        try:
            # A poller only ends on a fatal Runtime API answer or an unreachable API.
            done, _ = await asyncio.wait(pollers, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            invoker.stopping = True  # a CancelledError from here on is the runtime's own
            tasks.stopping = True
            for task in pollers:
                task.cancel()
            for c in clients:
                c.close()

    main_task = tasks.new(all_pollers(), loop)
    main_task.add_done_callback(lambda _: loop.stop())
    try:
        loop.run_forever()
        if not main_task.done():
            _stopped_early(loop, main_task)
        main_task.result()
    finally:
        if invoker.workers is not None:
            invoker.workers.shutdown()
