"""Around the invocations: SnapStart hooks and graceful shutdown on SIGTERM."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import signal
import sys
import threading
from typing import Any, Callable, TypeVar

from . import errors, invocation, protocol, tasks
from .connection import RuntimeClient
from .logs import Logs
from .marshal import dumps

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("aruntime")

_shutdown_hooks: list[Callable[[], Any]] = []
terminated = False
# Lambda gives the runtime 500 ms after SIGTERM (300 ms with external extensions) before SIGKILL.
DEFAULT_SHUTDOWN_BUDGET_MS = 250
# Once the runtime is done, how long Python's own exit may wait for threads the function left
# running (a sync handler still in the pool, a non-daemon thread it started) before the process
# ends anyway (seconds).
EXIT_GRACE_S = 0.5


def on_shutdown(func: F) -> F:
    """Run `func` (sync or `async def`, no arguments) when Lambda shuts the sandbox down.

    Hooks run in registration order on SIGTERM, within the time Lambda allows; then the runtime
    closes its connection and exits 0. Usable as a decorator.
    """
    _shutdown_hooks.append(func)
    return func


async def run_shutdown_hooks(budget_s: float) -> None:
    async def run_all() -> None:
        for hook in list(_shutdown_hooks):
            try:
                result = hook()
                if inspect.isawaitable(result):
                    await result
            except Exception:  # noqa: BLE001 - one failing hook must not stop the others
                log.exception("shutdown hook %r failed", hook)

    try:
        await asyncio.wait_for(run_all(), budget_s)
    except asyncio.TimeoutError:
        log.warning("shutdown hooks did not finish within %.0f ms", budget_s * 1000)


def install_sigterm(loop: asyncio.AbstractEventLoop, clients: list[RuntimeClient]) -> None:
    """On SIGTERM: hooks, close connections, exit 0 — handled on the loop, even during `/next`.

    A SIGTERM handler the handler module installed at import is kept: aruntime's shutdown hooks
    run first, then that handler is called (`previous_sigterm`). `SIG_IGN` means the process
    does not end on SIGTERM: the hooks run and the runtime keeps serving.
    """
    global _previous
    budget_ms = os.environ.get("ARUNTIME_SHUTDOWN_BUDGET_MS", "")
    budget = (int(budget_ms) if budget_ms.isdigit() else DEFAULT_SHUTDOWN_BUDGET_MS) / 1000
    _previous = _previous_disposition(loop)

    async def shutdown() -> None:
        await run_shutdown_hooks(budget)
        if _previous is signal.SIG_IGN:
            return
        if isinstance(_previous, asyncio.Handle):  # added with loop.add_signal_handler
            _previous._run()  # noqa: SLF001 - what the loop itself would have done
        for request_id in tasks.unanswered(loop):
            # Logged as that invocation's record (shutdown itself works for none of them).
            invocation.within(invocation.CurrentInvocation(request_id, None, None, None),
                              log.warning, "aruntime: SIGTERM: invocation %s is abandoned: the "
                              "runtime exits before it was answered", request_id)
        for client in clients:
            client.close()
        # Stopping the loop ends the runtime's run_until_complete wherever it waits; the
        # runtime sees `terminated`, calls `previous_sigterm` and exits.
        global terminated
        terminated = True
        loop.stop()

    def on_sigterm() -> None:
        loop.remove_signal_handler(signal.SIGTERM)
        if _previous is signal.SIG_IGN:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        asyncio.ensure_future(shutdown(), loop=loop)

    try:
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / platform
        pass
    if hasattr(os, "register_at_fork"):
        # SIGTERM is held back across the fork: one sent to the child before it has its own
        # disposition back (Process.terminate() right after start()) would be caught by the
        # runtime's handler and lost, and the child would never end.
        os.register_at_fork(before=_hold_sigterm, after_in_parent=_release_sigterm,
                            after_in_child=_after_fork_in_child)


_previous: Any = None
# True in a process forked from the runtime's by the function's code (os.fork, multiprocessing's
# "fork" start method): it is not the runtime, and never answers an invocation.
forked = False


def _hold_sigterm() -> None:
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    except (OSError, ValueError):  # pragma: no cover
        pass


def _release_sigterm() -> None:
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    except (OSError, ValueError):  # pragma: no cover
        pass


def _after_fork_in_child() -> None:
    """Make a process forked from the runtime's a plain process again. Its SIGTERM gets back the
    disposition it had before aruntime's, and no signal it gets wakes the runtime's loop through
    the wakeup fd it shares with its parent: `Process.terminate()` on a forked child left it
    running (its loop never ran to see the signal; `join()` waited forever), and the byte it
    wrote could be read by the parent as its own SIGTERM (the parent shut down)."""
    global forked
    forked = True
    previous = _previous
    if previous is None or isinstance(previous, asyncio.Handle) or not (
            callable(previous) or previous in (signal.SIG_DFL, signal.SIG_IGN)):
        previous = signal.SIG_DFL
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGTERM, previous)
    except (OSError, ValueError):  # pragma: no cover - the forking thread is the child's main
        pass
    _release_sigterm()  # a SIGTERM that came meanwhile is delivered now, as the child's own


def end_forked_child(exc: BaseException | None) -> None:
    """Called where the runtime would answer an invocation: in a forked child (`forked`), end
    the process as Python would have ended it, instead of answering the parent's invocation
    and serving others on the parent's connection as a second runtime. `exc` is what the
    handler raised (SystemExit: its status; anything else: the traceback on stderr, status 1);
    None when it returned. Returns only in the runtime's own process."""
    if not forked:
        return
    import traceback

    status: Any = 0
    if isinstance(exc, SystemExit):
        status = exc.code
        if status is not None and not isinstance(status, int):
            sys.stderr.write(f"{status}\n")
            status = 1
    elif exc is not None:
        traceback.print_exception(type(exc), exc, exc.__traceback__)
        status = 1
    else:
        sys.stderr.write("aruntime: a process the handler forked returned from it; it exits "
                         "(only the runtime's process answers invocations)\n")
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001, S112
            continue
    os._exit(status or 0)


def _previous_disposition(loop: asyncio.AbstractEventLoop) -> Any:
    """SIGTERM's disposition before aruntime's: SIG_DFL, SIG_IGN, None (set from C), a Python
    callable (`signal.signal`, `default_int_handler` included), or the loop's Handle when the
    module used `loop.add_signal_handler` on aruntime's loop (shown as asyncio's no-op)."""
    disposition = signal.getsignal(signal.SIGTERM)
    handle = getattr(loop, "_signal_handlers", {}).get(signal.SIGTERM)
    if handle is not None:
        return handle
    if getattr(disposition, "__module__", None) == "asyncio.unix_events":
        return signal.SIG_DFL  # a loop that is not ours registered it; nothing we can call
    return disposition


def previous_sigterm() -> int:
    """After aruntime's shutdown: call the SIGTERM handler the module installed, as Python would
    have (signal number, frame None); the exit status. What it raises (`sys.exit(n)`,
    `KeyboardInterrupt` from `default_int_handler`) ends the process as without aruntime."""
    previous = _previous
    if callable(previous) and not isinstance(previous, asyncio.Handle):
        previous(signal.SIGTERM, None)
    return 0


def exit_within(seconds: float, status: Any) -> None:
    """Make sure the process ends: if Python's exit is still waiting for threads after
    `seconds` (a sync handler stuck in the thread pool, a non-daemon thread the function
    started: Python joins both before exiting), say which on stderr, flush, and end the
    process with `status` (`sys.exit`'s argument: None is 0, an int itself, anything else 1).
    Exit handlers (`atexit`) run after those joins, and are not cut short: they are the
    function's, as under the reference client."""
    import atexit

    joined = threading.Event()
    atexit.register(joined.set)  # registered last, so run first: right after the joins
    code = 0 if status is None else status if isinstance(status, int) else 1

    def force() -> None:
        if joined.wait(seconds):
            return
        names = sorted(t.name for t in threading.enumerate()
                       if not t.daemon and t is not threading.main_thread())
        try:
            sys.stderr.write(f"aruntime: exiting without waiting for threads still running: "
                             f"{', '.join(names) or 'none'}\n")
            sys.stderr.flush()
            sys.stdout.flush()
        except Exception:  # noqa: BLE001 - the exit must happen whatever stdio has become
            pass
        os._exit(code)

    threading.Thread(target=force, name="aruntime-exit", daemon=True).start()


# -- SnapStart -----------------------------------------------------------------------------


def _hooks() -> tuple[list[Any], list[Any]]:
    try:
        from snapshot_restore_py import get_after_restore, get_before_snapshot
    except ImportError:  # nobody can have registered hooks without the package
        return [], []
    return get_before_snapshot(), get_after_restore()


async def _call(func: Callable[..., Any], args: Any, kwargs: Any) -> None:
    result = func(*args, **kwargs)
    if inspect.isawaitable(result):
        await result


async def snap_start(client: RuntimeClient, logs: Logs) -> int | None:
    """Before-snapshot hooks, `/restore/next`, after-restore hooks. An exit status on failure."""
    before, after = _hooks()
    try:
        # The reference runs before-snapshot hooks in reverse registration order.
        while before:
            func, args, kwargs = before.pop()
            await _call(func, args, kwargs)
    except Exception as e:  # noqa: BLE001 - reported to the service
        await _report(client, logs, e, protocol.INIT_ERROR_TARGET, errors.BEFORE_SNAPSHOT_ERROR)
        return 64
    await client.get(protocol.RESTORE_NEXT_TARGET)
    # The connection from before the snapshot is not one to trust after a restore.
    client.close()
    try:
        for func, args, kwargs in after:
            await _call(func, args, kwargs)
    except Exception as e:  # noqa: BLE001
        await _report(client, logs, e, protocol.RESTORE_ERROR_TARGET, errors.AFTER_RESTORE_ERROR)
        return 65
    return None


async def _report(client: RuntimeClient, logs: Logs, exc: BaseException, target: str,
                  error_type: str) -> None:
    _, error, _ = errors.error_body(exc)
    logs.error(error, errors.log_stack(exc))
    body = dumps(error)
    await client.post(protocol.error_request(client.host_header, target, error_type, len(body)),
                      body)
