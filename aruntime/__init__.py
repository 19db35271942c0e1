"""aruntime: an asyncio runtime for AWS Lambda functions in Python.

Public API: the streaming helpers (`streaming`, `ResponseStream`, `HttpResponse`, `sse`), the
`LambdaContext` type, `on_shutdown` hooks, `trace_id()` for the X-Ray trace of the current
invocation, and `asgi(app)` / `wsgi(app)` to serve web apps (loaded on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from . import current as _current
from .context import LambdaContext
from .lifecycle import on_shutdown
from .stream import HttpResponse, ResponseStream, StreamClosedError, sse, streaming


def trace_id() -> str | None:
    """The X-Ray trace header of the invocation this task or thread works for, or None.

    Unlike `os.environ["_X_AMZN_TRACE_ID"]` it stays right when invocations run concurrently
    (threads and pool tasks started by an invocation's code included; README, "Logging").
    """
    invocation = _current.get()
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


__all__ = ["HttpResponse", "LambdaContext", "ResponseStream", "StreamClosedError", "asgi",
           "on_shutdown", "sse", "streaming", "trace_id", "wsgi", "__version__"]
