"""aruntime: an asyncio runtime for AWS Lambda functions in Python.

Public API: the streaming helpers (`streaming`, `ResponseStream`, `HttpResponse`, `sse`), the
`LambdaContext` type, `on_shutdown` hooks, `current()` for the ids of the invocation the calling
code works for, `trace_id()` for its X-Ray trace header, and `asgi(app)` / `wsgi(app)` to serve
web apps (loaded on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from . import invocation as _invocation
from .context import LambdaContext
from .invocation import CurrentInvocation
from .lifecycle import on_shutdown
from .stream import HttpResponse, ResponseStream, StreamClosedError, sse, streaming


def current() -> CurrentInvocation | None:
    """The invocation the calling task or thread works for, or None outside every invocation.

    Its `request_id`, `tenant_id`, `trace_id` (the X-Ray header) and `invocation_id`
    (`Lambda-Runtime-Invocation-Id`) come from the invocation's `/next` headers (docs/SPEC.md §2). It
    stays right when invocations run concurrently: a task, a thread an invocation's code
    started, and a pool task it submitted work for that invocation (README, "Tracing and
    observability"). With one invocation at a time every thread sees the one running.
    """
    return _invocation.get()


def trace_id() -> str | None:
    """The X-Ray trace header of the invocation this task or thread works for, or None.

    The same value as `current().trace_id`; like `os.environ["_X_AMZN_TRACE_ID"]`, but without
    touching the environment (README, "Tracing and observability").
    """
    invocation = _invocation.get()
    return invocation.trace_id if invocation is not None else None


if TYPE_CHECKING:
    from .web import asgi, wsgi


def __getattr__(name: str) -> Any:
    # The ASGI / WSGI adapters load only when a handler module asks for them: the runtime's
    # own start-up never imports them.
    if name in ("asgi", "wsgi"):
        from . import web

        return getattr(web, name)
    raise AttributeError(f"module 'aruntime' has no attribute {name!r}")


__all__ = ["CurrentInvocation", "HttpResponse", "LambdaContext", "ResponseStream",
           "StreamClosedError", "asgi", "current", "on_shutdown", "sse", "streaming", "trace_id",
           "wsgi", "__version__"]
