"""The threads sync handler code runs in when several invocations run at once
(`AWS_LAMBDA_MAX_CONCURRENCY` > 1; one at a time, the runtime calls it on its own thread).

- **One thread per invocation in flight.** An invocation takes an idle worker when it begins and
  gives it back when it ends; a new thread is started when none is idle. So the runtime never
  takes from `/next` an invocation it cannot start at once (the threads grow to the number of
  invocations running together, at most N, each started when first needed), and no invocation's
  deadline runs while it waits in a queue. The reference client forks N processes, one
  invocation each: this is the same in threads.
- **One thread for all of an invocation's sync code**: the handler call, every step of a
  generator it returns (or is), and the generator's close run on that worker, in order. Objects
  tied to the thread that made them (a `sqlite3` connection and its cursors, `threading.local`
  state, thread-affine database drivers) stay usable for the whole stream.
- A worker left running an invocation's code after the invocation ended (its response stream was
  lost mid-step: a running step cannot be stopped) finishes that step, closes the generator and
  ends; the next invocation gets another thread, never a wait.
- **An event loop per worker, never the runtime's.** `asyncio.get_event_loop()` in a worker
  thread gives that thread's own loop, made the first time its code asks (as the main thread's
  loop is made for the reference client's handlers), and a new one if the code closed the last.
  `asyncio.run()` works as anywhere. The loop a module took at import is the runtime's: its
  `run_until_complete` from a worker runs the coroutine there (`_share_with_workers`).
- What cannot work in a thread fails naming the limit: Python lets only the main thread set
  signal handlers (`signal.signal`, `signal.set_wakeup_fd`, `loop.add_signal_handler`), and
  the error a handler gets says so and where the README tells what to do instead. A handler
  set at import raising on the main thread is logged, not let into the runtime's loop
  (`guard_signal_handlers`).
- Async handlers' blocking calls (`asyncio.to_thread`) get a thread per invocation in flight
  too (`widen_default_executor`).

Workers are daemon threads: a handler still running when the runtime exits does not keep the
process alive (its invocation cannot be answered any more).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any, Callable

from . import invocation, lifecycle

# What CPython says when code outside the main thread asks for a signal handler (`signal.signal`,
# `signal.set_wakeup_fd`; asyncio's `add_signal_handler` passes the latter on as a RuntimeError).
_MAIN_THREAD_ONLY = "only works in main thread"
THREAD_LIMIT = ("(aruntime: with AWS_LAMBDA_MAX_CONCURRENCY > 1 sync handlers run in worker "
                "threads, and Python lets only the main thread set signal handlers; see the README's "
                "section 'Many invocations in one process')")

_worker_thread = threading.local()  # `.loop`: the worker's own event loop, once made


class Worker:
    """One thread that runs the sync code of one invocation at a time, call after call, in order.

    Used from the event loop's thread only (`call`, `pending`); the thread answers each call
    on the loop (`loop.call_soon_threadsafe`).
    """

    __slots__ = ("_loop", "_queue", "pending", "name")

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str) -> None:
        self._loop = loop
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # Calls made and not yet answered on the loop: more than 0 when the invocation ends
        # means its code is still running here.
        self.pending = 0
        self.name = name
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def call(self, func: Callable[..., Any], *args: Any) -> asyncio.Future[tuple[bool, Any]]:
        """Run `func(*args)` in this worker; the future's result is `(raised, value)`: the
        return value, or the exception `func` raised (any BaseException: StopIteration,
        GeneratorExit, SystemExit cannot cross an asyncio future as exceptions)."""
        future = self._loop.create_future()
        self.pending += 1
        self._queue.put((func, args, future))
        return future

    def retire(self) -> None:
        """End the thread once the calls already made have run."""
        self._queue.put(None)

    def _answer(self, future: asyncio.Future[tuple[bool, Any]], outcome: tuple[bool, Any]) -> None:
        self.pending -= 1
        if not future.done():  # cancelled: the invocation stopped waiting (a lost stream)
            future.set_result(outcome)

    def _serve(self) -> None:
        # This thread works for whichever invocation's context each call runs in, and for none
        # in between (not for the one that happened to start it: invocation.per_task's hook).
        setattr(threading.current_thread(), invocation._THREAD_ATTR, invocation._NONE)
        _worker_thread.loop = None
        get = self._queue.get
        answer = self._answer
        call_soon_threadsafe = self._loop.call_soon_threadsafe
        while True:
            item = get()
            if item is None:
                break
            func, args, future = item
            try:
                outcome: tuple[bool, Any] = (False, func(*args))
            except BaseException as e:  # noqa: BLE001 - handed to the invocation as a value
                outcome = (True, explain_thread_limit(e))
            if lifecycle.forked:  # the code forked: this is the child, with no loop to answer
                lifecycle.end_forked_child(outcome[1] if outcome[0] else None)
            del item, func, args  # nothing of a finished call is kept alive while we wait
            try:
                call_soon_threadsafe(answer, future, outcome)
            except RuntimeError:  # the loop is closed: the runtime is exiting
                break
            del future, outcome
        own = _worker_thread.loop
        if own is not None and not own.is_closed() and not own.is_running():
            own.close()


class Workers:
    """The idle workers, and new ones when none is idle, for sync code that `loop` (the runtime's,
    running on the calling thread) waits on. Used from the event loop's thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._idle: list[Worker] = []
        self._started = 0
        _own_loop_per_worker()
        _share_with_workers(loop)

    def take(self) -> Worker:
        """An idle worker (the one that ran last: its thread is warm), or a new one."""
        if self._idle:
            return self._idle.pop()
        name = f"aruntime-sync_{self._started}"
        self._started += 1
        return Worker(asyncio.get_running_loop(), name)

    def give_back(self, worker: Worker) -> None:
        """Return a worker whose invocation is over. One still running that invocation's code
        (its stream was lost mid-step) retires once done instead of serving another."""
        if worker.pending:
            worker.retire()
        else:
            self._idle.append(worker)

    def shutdown(self) -> None:
        """Let the idle workers' threads end (busy ones are daemon threads: they do not keep
        the process alive)."""
        idle, self._idle = self._idle, []
        for worker in idle:
            worker.retire()


def _share_with_workers(loop: asyncio.AbstractEventLoop) -> None:
    """Let a worker drive `loop` as one invocation at a time can: `loop.run_until_complete(aw)`
    called from a worker thread runs `aw` on `loop`, in its own thread, and waits for it there.

    A handler module that took "the" loop at import (`LOOP = asyncio.get_event_loop()`, then
    `LOOP.run_until_complete(main(event))` in the handler, the older pattern) got the runtime's
    loop, which the runtime leaves idle while a sync handler runs one at a time; under
    concurrency it runs all the time, and asyncio refuses a second `run_until_complete`
    ("This event loop is already running"). Its coroutines run where its import-time objects
    (clients, sessions) were made, as with one invocation at a time; the worker thread blocks
    until the result (or the exception) is there. Called from the loop's own thread, or while
    the loop does not run, `run_until_complete` is asyncio's own.
    """
    if getattr(loop, "_aruntime_shared", False):
        return
    own = loop.run_until_complete
    owner = threading.get_ident()

    def run_until_complete(future: Any) -> Any:
        if threading.get_ident() == owner or not loop.is_running():
            return own(future)
        return asyncio.run_coroutine_threadsafe(_awaited(future), loop).result()

    loop.run_until_complete = run_until_complete  # type: ignore[method-assign]
    loop._aruntime_shared = True  # type: ignore[attr-defined]


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def own_event_loop() -> None:
    """Give the calling thread the workers' rule for `asyncio.get_event_loop()`: a loop of its
    own, made when first asked for (a `ThreadPoolExecutor` initializer: the WSGI bridge's)."""
    _own_loop_per_worker()
    _worker_thread.loop = None


def explain_thread_limit(exc: BaseException) -> BaseException:
    """`exc`, its message extended with `THREAD_LIMIT` when it is Python refusing a signal
    handler outside the main thread (ValueError from `signal`, RuntimeError from asyncio)."""
    if isinstance(exc, (ValueError, RuntimeError)) and len(exc.args) == 1:
        message = exc.args[0]
        if isinstance(message, str) and _MAIN_THREAD_ONLY in message and "aruntime" not in message:
            exc.args = (f"{message} {THREAD_LIMIT}",)
    return exc


def _own_loop_per_worker() -> None:
    """Make `asyncio.get_event_loop()` in a worker thread give that thread's own loop (see the
    module docstring), by extending the process's event loop policy in place: its class becomes
    a subclass with this one method changed, so its state (the main thread's loop), its kind
    (uvloop's policy) and `isinstance` checks on it are kept. Once per process."""
    events: Any = asyncio.events
    # Python 3.14 deprecates the public policy getter; the private one is what asyncio itself uses.
    get_policy = getattr(events, "_get_event_loop_policy", None) or events.get_event_loop_policy
    policy = get_policy()
    base = type(policy)
    if getattr(base, "_aruntime_own_loop", False):
        return

    class LoopPerWorker(base):  # type: ignore[valid-type,misc]
        _aruntime_own_loop = True

        def get_event_loop(self) -> asyncio.AbstractEventLoop:
            if not hasattr(_worker_thread, "loop"):  # not a worker thread: unchanged
                return super().get_event_loop()  # type: ignore[no-any-return]
            try:
                loop = super().get_event_loop()
            except RuntimeError:  # none set (or `asyncio.run` unset it when it finished)
                loop = None
            if loop is None or loop.is_closed():
                loop = self.new_event_loop()
                self.set_event_loop(loop)
                _worker_thread.loop = loop
            return loop  # type: ignore[no-any-return]

    try:
        policy.__class__ = LoopPerWorker
    except TypeError:  # a policy whose class cannot be extended: workers have no loop of their own
        pass


def widen_default_executor(loop: asyncio.AbstractEventLoop, concurrency: int) -> None:
    """Give `loop`'s default executor (`asyncio.to_thread`, `loop.run_in_executor(None, ...)`)
    a thread for each of the `concurrency` invocations in flight on top of Python's default
    `min(32, CPUs + 4)`: under the reference each invocation's process has that whole pool, and
    16 async handlers each blocked in `to_thread` must not run 6 at a time on 2 CPUs. Threads
    are started only when a call finds none idle, so the headroom costs nothing unused."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    threads = concurrency + min(32, (os.cpu_count() or 1) + 4)
    loop.set_default_executor(ThreadPoolExecutor(threads, thread_name_prefix="asyncio"))


def guard_signal_handlers() -> None:
    """Under concurrency, keep an exception a Python signal handler raises from ending the runtime.

    Python runs signal handlers in the main thread, which then runs the event loop, not a
    handler: the SIGALRM "soft timeout" pattern (`signal.signal(SIGALRM, raise_timeout)` at
    import, `signal.alarm(n)` in the handler) would raise into the runtime's loop and end the
    process, every invocation in flight lost. Each Python handler set by then (SIGTERM's and
    SIGINT's aside: they end the process by design, see lifecycle.py) is wrapped so that what it
    raises (an `Exception`; SystemExit and KeyboardInterrupt still end the process) is logged
    as an error instead. Call once, on the main thread, after the handler module's import.
    """
    import logging
    import signal

    log = logging.getLogger("aruntime")

    def guarded(number: int, handler: Callable[..., Any]) -> Callable[..., Any]:
        def run_handler(signum: int, frame: Any) -> Any:
            try:
                return handler(signum, frame)
            except Exception as e:  # noqa: BLE001 - it has nowhere else to go
                log.error("the %s handler %s raised %s: %s; ignored: with "
                          "AWS_LAMBDA_MAX_CONCURRENCY > 1 signal handlers run on the main thread, "
                          "which runs the event loop, not your handler (see the README's section "
                          "'Many invocations in one process')", signal.Signals(number).name,
                          getattr(handler, "__qualname__", repr(handler)), type(e).__name__, e)
            return None

        run_handler._aruntime_guarded = True  # type: ignore[attr-defined]
        return run_handler

    for number in signal.valid_signals():
        if number in (signal.SIGTERM, signal.SIGINT):
            continue
        try:
            handler = signal.getsignal(number)
        except (OSError, ValueError):
            continue
        if (not callable(handler) or getattr(handler, "_aruntime_guarded", False)
                or getattr(handler, "__module__", "").startswith(("asyncio", "uvloop"))):
            continue  # SIG_DFL / SIG_IGN / set from C, already wrapped, or an event loop's
        signal.signal(number, guarded(number, handler))
