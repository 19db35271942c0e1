"""The current invocation: one small record, visible to the code working on that invocation.

Log records take their request id and tenant id from here, `aruntime.trace_id()` its trace
header. Two modes, chosen once at start:

- One invocation at a time (the default, and `AWS_LAMBDA_MAX_CONCURRENCY` unset or 1): the
  record is process-wide, so every thread of the process sees the invocation running now,
  whoever started it. This is the reference client's rule (it keeps the request id in a global).
- Several at once (`per_task()`, under `AWS_LAMBDA_MAX_CONCURRENCY` > 1): the record lives in one
  context variable, so each invocation's task sees its own. Threads do not inherit context
  variables (before Python 3.14's `-X thread_inherit_context`), so `per_task()` also installs,
  once, two hooks that carry the record over: a `threading.Thread` started by an invocation's
  code works for that invocation for its whole life, and a task submitted to a
  `ThreadPoolExecutor` (`submit`, `map`, `loop.run_in_executor`; `asyncio.to_thread` copies the
  context by itself) works for the invocation that submitted it. Code outside every invocation
  sees none.
"""

from __future__ import annotations

import contextvars
import threading
from typing import Any, Callable


class CurrentInvocation:
    """What identifies the invocation a piece of code is working for (SPEC §2 headers).

    A plain slotted class (a NamedTuple costs start-up time and twice the construction time);
    treat it as read-only.
    """

    __slots__ = ("request_id", "tenant_id", "trace_id", "invocation_id")

    def __init__(self, request_id: str, tenant_id: str | None, trace_id: str | None,
                 invocation_id: str | None) -> None:
        self.request_id = request_id
        self.tenant_id = tenant_id
        self.trace_id = trace_id  # the X-Ray header, `Lambda-Runtime-Trace-Id`
        self.invocation_id = invocation_id  # `Lambda-Runtime-Invocation-Id`, when sent

    def __repr__(self) -> str:
        return (f"CurrentInvocation(request_id={self.request_id!r}, tenant_id={self.tenant_id!r}, "
                f"trace_id={self.trace_id!r}, invocation_id={self.invocation_id!r})")


# Marks "explicitly no invocation" in the variable, so no fallback applies (see `_Carry`).
_NONE = CurrentInvocation("", None, None, None)
_THREAD_ATTR = "_aruntime_invocation"

_var: contextvars.ContextVar[CurrentInvocation | None] = contextvars.ContextVar(
    "aruntime_current_invocation", default=None)
_process: CurrentInvocation | None = None
_per_task = False


def get() -> CurrentInvocation | None:
    """The invocation the calling code works for, or None outside every invocation."""
    record = _var.get()
    if record is None:
        if not _per_task:
            return _process
        record = getattr(threading.current_thread(), _THREAD_ATTR, None)
    return None if record is _NONE else record


def begin(record: CurrentInvocation) -> None:
    """Make `record` the current invocation (of the process, or of the calling task)."""
    if _per_task:
        _var.set(record)
    else:
        global _process
        _process = record


def per_task() -> None:
    """Switch to one current invocation per task, and carry it into threads (see above).

    Called once, before the first invocation, only when invocations run concurrently.
    """
    global _per_task
    if _per_task:
        return
    _per_task = True
    from concurrent.futures import thread

    start = threading.Thread.start
    submit = thread.ThreadPoolExecutor.submit

    def start_for_invocation(self: threading.Thread) -> None:
        setattr(self, _THREAD_ATTR, get())
        start(self)

    def submit_for_invocation(self: Any, fn: Callable[..., Any], /, *args: Any,
                              **kwargs: Any) -> Any:
        return submit(self, _Carry(get() or _NONE, fn), *args, **kwargs)

    threading.Thread.start = start_for_invocation  # type: ignore[method-assign]
    thread.ThreadPoolExecutor.submit = submit_for_invocation  # type: ignore[method-assign]


class _Carry:
    """A pool task that runs with the invocation that submitted it (or explicitly none: a
    pool thread must not fall back to the invocation that happened to start it)."""

    __slots__ = ("record", "fn")

    def __init__(self, record: CurrentInvocation, fn: Callable[..., Any]) -> None:
        self.record = record
        self.fn = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        token = _var.set(self.record)
        try:
            return self.fn(*args, **kwargs)
        finally:
            _var.reset(token)
