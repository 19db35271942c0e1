"""ASGI and WSGI apps as Lambda handlers: `aruntime.asgi(app)`, `aruntime.wsgi(app)`.

The handler takes Function URL / API Gateway payload 2.0, API Gateway payload 1.0 and ALB events
(docs/SPEC.md §9), runs the app on the runtime's one event loop (a WSGI app in a worker thread), and
answers streamed — status and headers in the prelude, each `http.response.body` one chunk — or
buffered, as the format's JSON response object. Nothing here imports a web framework; the
runtime imports this package only when a handler module asks for it.
"""

from __future__ import annotations

import os
from typing import Any

from ..context import LambdaContext
from ..lifecycle import on_shutdown
from ..stream import ResponseStream, StreamOptions
from . import cycle
from .cycle import ASGIApp, ClientDisconnected
from .events import Format, parse
from .lifespan import Lifespan
from .wsgi_bridge import WSGIApp, WSGIBridge

__all__ = ["ASGIHandler", "ClientDisconnected", "asgi", "wsgi", "INVOKE_MODE_ENV"]

INVOKE_MODE_ENV = "ARUNTIME_INVOKE_MODE"
# The Lambda Web Adapter's and Function URLs' names for the two modes, plus "auto".
INVOKE_MODES = ("auto", "buffered", "response_stream")


def _invoke_mode(value: str | None) -> str:
    source = "invoke_mode"
    if value is None:
        source = INVOKE_MODE_ENV
        value = os.environ.get(INVOKE_MODE_ENV) or "auto"
    mode = value.strip().lower()
    if mode not in INVOKE_MODES:
        raise ValueError(f"{source} must be one of {', '.join(INVOKE_MODES)} (any case), "
                         f"not {value!r}")
    return mode


class ASGIHandler:
    """A Lambda handler serving an ASGI app; made by `asgi()` and `wsgi()`.

    aruntime calls it as a writer handler, `await handler(event, context, stream)`: it streams
    the answer to `stream`, or returns the buffered response object without writing.
    """

    def __init__(self, app: ASGIApp, *, lifespan: str = "auto",
                 invoke_mode: str | None = None) -> None:
        self.app = app
        self.lifespan = Lifespan(app, lifespan)
        self.invoke_mode = _invoke_mode(invoke_mode)
        self.__aruntime_streaming__ = StreamOptions()
        self._started = False

    async def __aruntime_init__(self) -> None:
        """Lifespan startup, awaited by the runtime during Init (once per process)."""
        if self._started:
            return
        self._started = True
        await self.lifespan.startup()
        if self.lifespan.supported:
            on_shutdown(self.lifespan.shutdown)

    def streams(self, fmt: Format) -> bool:
        """Whether an event of format `fmt` is answered streamed, under this invoke mode."""
        if fmt is Format.ALB:
            return False  # ALB cannot take a stream (docs/SPEC.md §7)
        if self.invoke_mode == "auto":
            return fmt is Format.V2
        return self.invoke_mode == "response_stream"

    async def __call__(self, event: Any, context: LambdaContext,
                       stream: ResponseStream) -> dict[str, Any] | None:
        # Started by the runtime at Init; here too for hosts that do not know the hook.
        if not self._started:
            await self.__aruntime_init__()
        request = parse(event, context)
        if self.lifespan.supported:
            request.scope["state"] = dict(self.lifespan.state)
        if self.streams(request.format):
            await cycle.serve_streaming(self.app, request, stream)
            return None
        return await cycle.serve_buffered(self.app, request)

    def __repr__(self) -> str:
        return (f"<aruntime ASGI handler of {self.app!r}, lifespan={self.lifespan.mode!r}, "
                f"invoke_mode={self.invoke_mode!r}>")


def asgi(app: Any, *, lifespan: str = "auto", invoke_mode: str | None = None) -> ASGIHandler:
    """A Lambda handler that serves the ASGI 3 app `app` (FastAPI, Starlette, Django, …).

    - `lifespan`: "auto" (run the app's lifespan if it has one), "on" (it must), "off".
      Startup runs once, at Init, on the runtime's event loop; a failure is an init error
      (`Runtime.LifespanStartupError`). Shutdown runs on SIGTERM, as an `on_shutdown` hook.
      The startup's `state` reaches every request as `scope["state"]`.
    - `invoke_mode`: how answers leave. "response_stream": the prelude and the body as it is
      produced (a Function URL in `RESPONSE_STREAM` mode, a REST API whose integration has
      response transfer mode `STREAM`). "buffered": the format's JSON response object (a
      `BUFFERED` Function URL, an HTTP API, a REST API). "auto" (default): payload 2.0
      streams, payload 1.0 is buffered. ALB answers are always buffered. Default: the
      `ARUNTIME_INVOKE_MODE` environment variable, else "auto".

    Raises `ValueError` for an unknown `lifespan` or `invoke_mode`. An event that is not an
    HTTP request fails its invocation with `Runtime.InvalidEvent`.
    """
    return ASGIHandler(app, lifespan=lifespan, invoke_mode=invoke_mode)


def wsgi(app: WSGIApp, *, invoke_mode: str | None = None,
         threads: int | None = None) -> ASGIHandler:
    """A Lambda handler that serves the WSGI app `app` (Flask, Django, …).

    The app runs in a worker thread; its body iterable is streamed chunk by chunk (or buffered,
    per `invoke_mode` as for `asgi`), the event loop never blocked. `threads`: the size of the
    thread pool, default `AWS_LAMBDA_MAX_CONCURRENCY` (1 when unset). Raises `ValueError` for
    an unknown `invoke_mode` or `threads` < 1.
    """
    return ASGIHandler(WSGIBridge(app, threads), lifespan="off", invoke_mode=invoke_mode)
