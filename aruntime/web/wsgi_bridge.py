"""WSGI apps as ASGI apps: the app runs in a worker thread, its body streams chunk by chunk.

Why not a2wsgi (the well-kept WSGI-to-ASGI bridge): it sends the response head as soon as the app
calls `start_response`, where PEP 3333 defers it to the first non-empty body chunk (so an error
before the body cannot become a 500, and `start_response(..., exc_info)` cannot replace the
head); and when `send` fails — the invocation's stream lost — its worker thread stays blocked on
a full queue and the request never ends. This bridge is small because Lambda hands over the
whole request body at once.

One thread runs the whole request — the app call, the iteration of its body, `close()` — so
thread-locals and context variables the app sets stay valid throughout. Each chunk is handed to
the event loop and the thread waits until it is written: backpressure, and the loop is never
blocked. The threads: one per concurrent invocation (`AWS_LAMBDA_MAX_CONCURRENCY`, default 1),
or `threads`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import io
import os
import sys
import weakref
from typing import Any, Callable, Iterable, MutableMapping

from .. import lifecycle
from .cycle import ClientDisconnected, Message, Receive, Send

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class WSGIBridge:
    """An ASGI app that runs the WSGI app `app` (see module docstring)."""

    def __init__(self, app: WSGIApp, threads: int | None = None) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, not {threads}")
        self.app = app
        self.threads = threads
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._active: weakref.WeakSet[_Response] = weakref.WeakSet()

    def __repr__(self) -> str:
        return f"<WSGI app {self.app!r}>"

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._executor is None:
            from ..workers import own_event_loop

            threads = self.threads or _concurrency()
            # An app that asks for "the" event loop gets one of its thread's own, as sync
            # handlers' worker threads do (aruntime/workers.py), never the runtime's.
            self._executor = concurrent.futures.ThreadPoolExecutor(
                threads, "aruntime-wsgi", initializer=own_event_loop)
            lifecycle.on_shutdown(self._shutdown)
        return self._executor

    def _shutdown(self) -> None:
        # A thread waiting for the loop at exit would keep the process alive: release them.
        for response in list(self._active):
            response.abandon()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive,
                       send: Send) -> None:
        if scope["type"] != "http":
            return  # no lifespan, no websockets in WSGI
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # gone before the request arrived
            body += message.get("body") or b""
            if not message.get("more_body"):
                break
        response = _Response(asyncio.get_running_loop(), send)
        self._active.add(response)
        environ = build_environ(scope, bytes(body))
        work = self._pool().submit(contextvars.copy_context().run, response.run, self.app,
                                   environ)
        try:
            await asyncio.wrap_future(work)
        except asyncio.CancelledError:
            response.abandon()
            raise


def _concurrency() -> int:
    value = os.environ.get("AWS_LAMBDA_MAX_CONCURRENCY", "")
    return int(value) if value.isdigit() and int(value) > 0 else 1


def _wsgi_str(text: str) -> str:
    # PEP 3333: environ strings hold bytes decoded as latin-1.
    return text.encode("utf-8").decode("latin-1")


def build_environ(scope: MutableMapping[str, Any], body: bytes) -> dict[str, Any]:
    """The PEP 3333 environ of an ASGI http scope and its whole body."""
    root = scope.get("root_path") or ""
    path = scope["path"]
    if root and (path == root or path.startswith(root + "/")):
        path = path[len(root):]  # ASGI's path includes root_path; WSGI's PATH_INFO does not
    server = scope.get("server") or ("localhost", 80)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": _wsgi_str(root),
        "PATH_INFO": _wsgi_str(path),
        "QUERY_STRING": bytes(scope.get("query_string") or b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] if server[1] is not None else ""),
        "SERVER_PROTOCOL": "HTTP/" + scope.get("http_version", "1.1"),
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "https"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "aws.event": scope.get("aws.event"),
        "aws.context": scope.get("aws.context"),
    }
    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"] = str(client[0])
        environ["REMOTE_PORT"] = str(client[1])
    for raw_name, raw_value in scope.get("headers") or []:
        key = bytes(raw_name).decode("latin-1").upper().replace("-", "_")
        value = bytes(raw_value).decode("latin-1")
        if key == "CONTENT_LENGTH":
            continue  # the body's real length is set above
        if key != "CONTENT_TYPE":
            key = "HTTP_" + key
        if key in environ:
            value = environ[key] + ("; " if key == "HTTP_COOKIE" else ",") + value
        environ[key] = value
    return environ


class _Response:
    """The WSGI side of one request: `start_response`, `write`, and the body iteration."""

    def __init__(self, loop: asyncio.AbstractEventLoop, send: Send) -> None:
        self.loop = loop
        self.send = send
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_sent = False
        self.abandoned = False
        self.pending: concurrent.futures.Future[None] | None = None

    # -- in the worker thread ------------------------------------------------------------
    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no reference cycle through the traceback
        elif self.status is not None:
            raise RuntimeError("WSGI: start_response called a second time without exc_info")
        code = str(status).split(" ", 1)[0]
        if len(code) != 3 or not code.isdigit():
            raise ValueError(f"WSGI: bad status {status!r}")
        self.status = int(code)
        self.headers = [(str(n).lower().encode("latin-1"), str(v).encode("latin-1"))
                        for n, v in headers]
        return self.write

    def write(self, data: bytes) -> None:
        """A body chunk (the legacy `write` callable, and each item of the body iterable)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"WSGI: a body chunk must be bytes, not {type(data).__name__}")
        if data:
            self._deliver(self._head() + [{"type": "http.response.body", "body": bytes(data),
                                           "more_body": True}])

    def _head(self) -> list[Message]:
        if self.headers_sent:
            return []
        if self.status is None:
            raise RuntimeError("WSGI: the app sent a body before calling start_response")
        self.headers_sent = True
        return [{"type": "http.response.start", "status": self.status, "headers": self.headers}]

    def run(self, app: WSGIApp, environ: dict[str, Any]) -> None:
        iterable = app(environ, self.start_response)
        try:
            for chunk in iterable:
                self.write(chunk)
            self._deliver(self._head() + [{"type": "http.response.body", "body": b""}])
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()

    def _deliver(self, messages: list[Message]) -> None:
        if self.abandoned:
            raise ClientDisconnected("the invocation's response stream is closed")
        future = asyncio.run_coroutine_threadsafe(self._send_all(messages), self.loop)
        self.pending = future
        if self.abandoned:  # abandoned between the check above and now
            future.cancel()
        try:
            future.result()
        except concurrent.futures.CancelledError:
            raise ClientDisconnected("the invocation's response stream is closed") from None
        finally:
            self.pending = None

    async def _send_all(self, messages: list[Message]) -> None:
        for message in messages:
            await self.send(message)

    # -- on the event loop ---------------------------------------------------------------
    def abandon(self) -> None:
        """The request is over for the loop: release the thread, fail its further sends."""
        self.abandoned = True
        pending = self.pending
        if pending is not None:
            pending.cancel()
