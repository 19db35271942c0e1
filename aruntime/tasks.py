"""The runtime's own tasks: a cancellation the function's code sends them does not end them.

Handlers share the event loop with the runtime, so `task.cancel()` meant for the handler's own
work can reach the runtime's code: a watchdog `loop.call_later(t, asyncio.current_task().cancel)`
an invocation left behind fires after its handler returned, while its task posts the answer or
waits on `GET /next`; `for t in asyncio.all_tasks(): t.cancel()` reaches the pollers. Delivered
there, the cancellation would lose answers and end the process.

So the runtime runs its code in `RuntimeTask`s. While `handler_running` is set (the handler's
own code runs in the task: an async handler awaited in it) a cancel is delivered as usual — the
handler's `asyncio.timeout`, `wait_for`, its watchdog firing in time — and fails only that
invocation. Otherwise `cancel()` is refused (returns False, as for a finished task) with one
log line, and the runtime's work goes on. The runtime cancels its own tasks after setting
`stopping`.

Consequence for handler code: a handler that cancels every task and then awaits them all
(`gather(*asyncio.all_tasks())`) waits for the runtime's tasks, which do not end: that
invocation runs to its timeout; the runtime and the other invocations are unaffected.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Coroutine

log = logging.getLogger("aruntime")

# Set once the runtime itself cancels its tasks (shutting down): cancels then go through.
stopping = False


class RuntimeTask(asyncio.Task):  # type: ignore[type-arg]
    """A task running the runtime's code (and, while `handler_running`, a handler's).

    Attributes (plain, set by the runtime): `handler_running` (bool) — the handler's code runs
    in this task now, so a cancel is the handler's to receive; `request_id` (str or None) — the
    invocation this task has yet to answer; `let_through` (bool) — a cancel was delivered while
    the handler ran and may still be pending when it returns (see `handler_returned`).
    """

    handler_running = False
    request_id: str | None = None
    let_through = False

    def cancel(self, msg: Any = None) -> bool:
        if self.handler_running or stopping:
            self.let_through = True
            return super().cancel(msg)
        if self.done():
            return False
        if not _refused:  # one log line for all the cancels refused in one loop iteration
            self.get_loop().call_soon(_report_refused)
        _refused.append(self.request_id)
        return False


_refused: list[str | None] = []


def _report_refused() -> None:
    answering = sorted({rid for rid in _refused if rid})
    count = len(_refused)
    _refused.clear()
    log.warning("aruntime: ignored %s of the runtime's own task%s%s: the function's code "
                "cancelled tasks it does not own (a timer an invocation left behind, or a "
                "cancel of every task); nothing was interrupted",
                "a cancellation" if count == 1 else f"{count} cancellations",
                "" if count == 1 else "s",
                f" (answering {', '.join(answering)})" if answering else "")


def new(coro: Coroutine[Any, Any, Any], loop: asyncio.AbstractEventLoop,
        request_id: str | None = None) -> RuntimeTask:
    """A `RuntimeTask` running `coro` on `loop` (in a copy of the current context), answering
    invocation `request_id` if given."""
    task = RuntimeTask(coro, loop=loop)
    if request_id is not None:
        task.request_id = request_id
    return task


def handler_starts() -> None:
    """Call in a task right before it runs the handler's code: cancels now reach it."""
    task = asyncio.current_task()
    if task.__class__ is RuntimeTask:
        task.handler_running = True  # type: ignore[union-attr]


def handler_returned() -> bool:
    """Call in a task once the handler it ran has returned or raised: from now on cancels are
    refused. True when a cancel reached the task while the handler ran, which may still be
    pending (the handler cancelled its own task and returned without awaiting): then
    `await settle()` takes it before the runtime's code awaits anything."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no loop running: a sync handler's answer, sent outside any task
        return False
    if task.__class__ is not RuntimeTask:
        return False
    task.handler_running = False  # type: ignore[union-attr]
    return task.let_through and not stopping  # type: ignore[union-attr]


async def settle() -> None:
    """Take a cancellation still pending in the current task (see `handler_returned`)."""
    task = asyncio.current_task()
    task.let_through = False  # type: ignore[union-attr]
    try:
        await asyncio.sleep(0)
    except asyncio.CancelledError:
        uncancel = getattr(task, "uncancel", None)  # Python 3.11+
        if uncancel is not None:
            uncancel()
        log.warning("aruntime: ignored a cancellation of the runtime's own task (answering "
                    "invocation %s): the handler cancelled its task and returned",
                    getattr(task, "request_id", None))


def answered() -> None:
    """The current task's invocation is answered (SIGTERM no longer abandons it)."""
    task = asyncio.current_task()
    if task.__class__ is RuntimeTask:
        task.request_id = None  # type: ignore[union-attr]


def unanswered(loop: asyncio.AbstractEventLoop) -> list[str]:
    """Request ids of the invocations whose answers the runtime's tasks have yet to send."""
    return [t.request_id for t in asyncio.all_tasks(loop)
            if t.__class__ is RuntimeTask and t.request_id and not t.done()]  # type: ignore[attr-defined]
