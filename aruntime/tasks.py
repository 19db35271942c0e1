"""The runtime's own tasks: a cancellation the function's code sends them does not end them.

Handlers share the event loop with the runtime, so `task.cancel()` meant for the handler's own
work can reach the runtime's code: a watchdog `loop.call_later(t, asyncio.current_task().cancel)`
an invocation left behind fires after its handler returned, while its task posts the answer or
waits on `GET /next`; `for t in asyncio.all_tasks(): t.cancel()` reaches the pollers. Delivered
there, the cancellation would lose answers and end the process.

So the runtime runs its code in `RuntimeTask`s. While the handler's own code runs in the task
(from its first step, for a task made with `handler_running`, until `handler_returned`) a
cancel is delivered as usual — the handler's `asyncio.timeout`, `wait_for`, its watchdog firing
in time — and fails only that invocation. Otherwise `cancel()` is refused (returns False, as
for a finished task) with one log line per loop iteration, and the runtime's work goes on. The
runtime cancels its own tasks after setting `stopping`. What the hot path pays: the flags set
when the task is made, and one `handler_returned()` call; the rest happens in `cancel()`.

Consequence for handler code: a handler that cancels every task and then awaits them all
(`gather(*asyncio.all_tasks())`) waits for the runtime's tasks, which do not end: that
invocation runs to its timeout; the runtime and the other invocations are unaffected.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, Coroutine

log = logging.getLogger("aruntime")

# Set once the runtime itself cancels its tasks (shutting down): cancels then go through.
stopping = False
# One invocation at a time: the request id of the invocation not answered yet, or None
# (runtime._runner sets it, _then_next clears it once the answer is sent).
unanswered_alone: str | None = None


class RuntimeTask(asyncio.Task):  # type: ignore[type-arg]
    """A task running the runtime's code (and, while `handler_running`, a handler's).

    Attributes (plain, set by `new`): `handler_running` (bool) — the handler's code runs in
    this task once it has started, so a cancel is the handler's to receive; `request_id` (str
    or None) — the invocation this task answers (concurrent invocations: one task each, done
    once answered); `let_through` (bool) — a cancel was delivered while the handler ran and may
    still be pending when it returns (see `handler_returned`).
    """

    # Slots, all set by `new` (an unset one read with a getattr default raises inside):
    # measured cheaper per invocation than the task's __dict__.
    __slots__ = ("handler_running", "request_id", "let_through")
    handler_running: bool
    request_id: str | None
    let_through: bool

    def cancel(self, msg: Any = None) -> bool:
        # A task not started yet runs the runtime's code first (`invoke` begins the invocation).
        if stopping or (self.handler_running and inspect.getcoroutinestate(
                self.get_coro()) != inspect.CORO_CREATED):  # type: ignore[arg-type]
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
        request_id: str | None = None, handler_running: bool = False) -> RuntimeTask:
    """A `RuntimeTask` running `coro` on `loop` (in a copy of the current context): answering
    invocation `request_id` (until the task is done), if given; with `handler_running`, the
    coroutine runs the handler's code once it has started, until `handler_returned()`."""
    task = RuntimeTask(coro, loop=loop)
    task.request_id = request_id
    task.handler_running = handler_running
    task.let_through = False
    return task


def handler_returned() -> bool:
    """Call in a task once the handler it ran has returned or raised: from now on cancels are
    refused. True when a cancel reached the task while the handler ran, which may still be
    pending (the handler cancelled its own task and returned without awaiting): then
    `await settle()` takes it before the runtime's code awaits anything."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no loop running: a sync handler's answer, sent outside any task
        return False
    if type(task) is not RuntimeTask:
        return False
    task.handler_running = False
    return task.let_through and not stopping


async def settle() -> None:
    """Take a cancellation still pending in the current task (see `handler_returned`)."""
    task = asyncio.current_task()
    assert type(task) is RuntimeTask
    task.let_through = False
    try:
        await asyncio.sleep(0)
    except asyncio.CancelledError:
        uncancel = getattr(task, "uncancel", None)  # Python 3.11+
        if uncancel is not None:
            uncancel()
        log.warning("aruntime: ignored a cancellation of the runtime's own task (answering "
                    "invocation %s): the handler cancelled its task and returned",
                    task.request_id)


def unanswered(loop: asyncio.AbstractEventLoop) -> list[str]:
    """Request ids of the invocations whose answers the runtime has yet to send (on `loop`)."""
    found = [unanswered_alone] if unanswered_alone else []
    return found + [task.request_id for task in asyncio.all_tasks(loop)  # type: ignore[misc]
                    if type(task) is RuntimeTask and task.request_id and not task.done()]
