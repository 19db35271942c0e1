"""The current invocation: one small record, visible to the code working on that invocation.

Log records take their request id and tenant id from here, `aruntime.current()` and
`aruntime.trace_id()` their answers. Two modes, chosen once at start:

- One invocation at a time (the default, and `AWS_LAMBDA_MAX_CONCURRENCY` unset or 1): the
  record is process-wide, so every thread of the process sees the invocation running now,
  whoever started it. This is the reference client's rule (it keeps the request id in a global,
  and writes the trace header to the process's `_X_AMZN_TRACE_ID`: `invoke.py` does that).
- Several at once (`per_task()`, under `AWS_LAMBDA_MAX_CONCURRENCY` > 1): the record lives in one
  context variable, so each invocation's task sees its own. Threads do not inherit context
  variables (before Python 3.14's `-X thread_inherit_context`), so `per_task()` also installs,
  once, two hooks that carry the record over: a `threading.Thread` started by an invocation's
  code works for that invocation for its whole life, and a task submitted to a
  `ThreadPoolExecutor` (`submit`, `map`, `loop.run_in_executor`; `asyncio.to_thread` copies the
  context by itself) works for the invocation that submitted it. Code outside every invocation
  sees none. It also makes `os.environ["_X_AMZN_TRACE_ID"]` (and `.get`, `os.getenv`, `in`)
  answer with the trace header of the invocation the reading code works for (`_TraceEnviron`).
"""

from __future__ import annotations

import contextvars
import os
import threading
from typing import Any, Callable


class CurrentInvocation:
    """What identifies the invocation a piece of code is working for (docs/SPEC.md §2 headers).

    - `request_id` (str): `Lambda-Runtime-Aws-Request-Id`, the context's `aws_request_id`.
    - `tenant_id` (str or None): `Lambda-Runtime-Aws-Tenant-Id`, for tenant-isolated functions.
    - `trace_id` (str or None): the X-Ray trace header, `Lambda-Runtime-Trace-Id`
      (`Root=1-…;Parent=…;Sampled=…`), what `_X_AMZN_TRACE_ID` holds for this invocation.
    - `invocation_id` (str or None): `Lambda-Runtime-Invocation-Id`, when the Runtime API sends
      one (Lambda Managed Instances).

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


def outside(func: Callable[..., Any], *args: Any) -> Any:
    """`func(*args)` as code that works for no invocation: its log lines carry no request id
    (a `/next` answer lost before it named its invocation is no previous invocation's)."""
    return within(_NONE, func, *args)


def within(record: CurrentInvocation, func: Callable[..., Any], *args: Any) -> Any:
    """`func(*args)` as code working for `record`'s invocation (its log lines carry its request
    id), called from code that works for another or for none (the runtime's shutdown)."""
    context = contextvars.Context()
    context.run(_var.set, record)
    return context.run(func, *args)


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
    # A value inherited from whoever started the process belongs to no invocation.
    os.environ.pop(TRACE_ENV, None)
    # The same mapping objects, a different class: every reference to them (`from os import
    # environ` included) answers per invocation from now on.
    os.environ.__class__ = _TraceEnviron
    if hasattr(os, "environb"):
        os.environb.__class__ = _TraceEnvironb


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


TRACE_ENV = "_X_AMZN_TRACE_ID"
_TRACE_ENVB = TRACE_ENV.encode()
_Environ: Any = type(os.environ)


class _TraceEnviron(_Environ):
    """`os.environ` under concurrency: `_X_AMZN_TRACE_ID` is the trace header of the invocation
    the reading code works for (absent when it has none); outside every invocation it is the
    process's value, which the runtime never sets then.

    Reads by key see it (`[]`, `get`, `os.getenv`, `in`: how the X-Ray SDK, OpenTelemetry's
    X-Ray propagators and Powertools read it), and so does `copy()` (the usual way to hand the
    environment to a child process). Iteration, `len` and writes are the process environment's,
    which is also all that C code calling `getenv` and child processes started without `env=`
    see: there the variable is absent. Writing or deleting it changes the process's value only.
    """

    def __getitem__(self, key: Any) -> Any:
        if key == TRACE_ENV:
            current = get()
            if current is not None:
                if current.trace_id is None:
                    raise KeyError(key)
                return current.trace_id
        return _Environ.__getitem__(self, key)

    def __delitem__(self, key: Any) -> None:
        _delete(self, key, TRACE_ENV)

    def copy(self) -> dict[str, str]:
        copied: dict[str, str] = _Environ.copy(self)
        current = get()
        if current is not None:
            copied.pop(TRACE_ENV, None)
            if current.trace_id is not None:
                copied[TRACE_ENV] = current.trace_id
        return copied


class _TraceEnvironb(_Environ):
    """`os.environb` under concurrency: the same rule as `_TraceEnviron`, in bytes."""

    def __getitem__(self, key: Any) -> Any:
        if key == _TRACE_ENVB:
            current = get()
            if current is not None:
                if current.trace_id is None:
                    raise KeyError(key)
                return current.trace_id.encode("utf-8", "surrogateescape")
        return _Environ.__getitem__(self, key)

    def __delitem__(self, key: Any) -> None:
        _delete(self, key, _TRACE_ENVB)


def _delete(environ: Any, key: Any, trace_key: Any) -> None:
    # Inside an invocation the variable reads as the invocation's header whatever the process
    # holds, so deleting it must not fail where the read succeeded (`os.environ.pop(k, None)`
    # reads, then deletes); the process's value, if any, is deleted.
    try:
        _Environ.__delitem__(environ, key)
    except KeyError:
        if key != trace_key or get() is None:
            raise
