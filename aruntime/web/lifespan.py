"""The ASGI lifespan protocol, run once per process on the runtime's persistent event loop.

`startup` runs during Init (the runtime awaits the handler's `__aruntime_init__` before its
first `/next`); a failure there is an init error. `shutdown` runs as a shutdown hook on SIGTERM.
The `state` dict the app fills at startup is copied into each request's scope (ASGI lifespan
spec 2.0, "Lifespan State").

Modes, as uvicorn's: "on" requires the protocol; "auto" treats an app that raises (or returns)
before answering `lifespan.startup` as one without lifespan support; "off" skips it.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from typing import Any

from .. import errors
from ..errors import RuntimeFault
from .cycle import ASGIApp, Message

log = logging.getLogger("aruntime.web")
MODES = ("auto", "on", "off")


class Lifespan:
    """One app's lifespan: `await startup()` once, `await shutdown()` at the end."""

    def __init__(self, app: ASGIApp, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"lifespan must be one of {', '.join(MODES)}, not {mode!r}")
        self.app = app
        self.mode = mode
        self.state: dict[str, Any] = {}
        self.supported = False  # the app answered lifespan.startup
        self._inbox: asyncio.Queue[Message] | None = None
        self._answer: asyncio.Future[Message] | None = None
        self._task: asyncio.Future[None] | None = None

    async def startup(self) -> None:
        """Run the app's startup. Raises `RuntimeFault(Runtime.LifespanStartupError)`."""
        if self.mode == "off":
            return
        self._inbox = asyncio.Queue()
        self._answer = asyncio.get_running_loop().create_future()
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                 "state": self.state}
        self._task = asyncio.ensure_future(self._main(scope))
        self._inbox.put_nowait({"type": "lifespan.startup"})
        answer = await self._next_answer()
        if answer is None:
            self._unanswered()
            return
        if answer["type"] == "lifespan.startup.failed":
            # Starlette sends the whole traceback as the message: its last line is the error.
            lines = str(answer.get("message") or "").strip().splitlines() or ["(no message)"]
            raise RuntimeFault(errors.LIFESPAN_STARTUP_ERROR,
                               "ASGI lifespan startup failed: " + lines[-1],
                               [line + "\n" for line in lines[:-1]] or None)
        if answer["type"] != "lifespan.startup.complete":
            raise RuntimeFault(errors.LIFESPAN_STARTUP_ERROR,
                               f"ASGI lifespan: the app answered lifespan.startup with "
                               f"{answer['type']!r}")
        self.supported = True

    async def shutdown(self) -> None:
        """Run the app's shutdown (after a successful startup); failures are logged."""
        if not self.supported or self._inbox is None or self._task is None:
            return
        self._answer = asyncio.get_running_loop().create_future()
        self._inbox.put_nowait({"type": "lifespan.shutdown"})
        answer = await self._next_answer()
        if answer is None:
            log.error("ASGI lifespan shutdown failed: %s", _describe(self._task.exception()))
        elif answer["type"] == "lifespan.shutdown.failed":
            log.error("ASGI lifespan shutdown failed: %s", answer.get("message") or "(no message)")

    async def _next_answer(self) -> Message | None:
        """The app's answer, or None if its lifespan coroutine ended without one."""
        assert self._answer is not None and self._task is not None
        waiting: set[asyncio.Future[Any]] = {self._answer, self._task}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        return self._answer.result() if self._answer.done() else None

    def _unanswered(self) -> None:
        """Startup got no answer: fine in "auto" mode, an init error in "on" mode."""
        assert self._task is not None
        error = self._task.exception()
        if self.mode == "auto":
            log.debug("ASGI lifespan not supported by the app (%s); going on without it",
                      _describe(error))
            return
        stack = _stack(error) if error is not None else None
        raise RuntimeFault(errors.LIFESPAN_STARTUP_ERROR,
                           f"ASGI lifespan startup failed: {_describe(error)}", stack)

    async def _main(self, scope: dict[str, Any]) -> None:
        await self.app(scope, self._receive, self._send)

    async def _receive(self) -> Message:
        assert self._inbox is not None
        return await self._inbox.get()

    async def _send(self, message: Message) -> None:
        if self._answer is None or self._answer.done():
            raise RuntimeError(f"ASGI lifespan: unexpected message {message.get('type')!r}")
        self._answer.set_result(message)


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "the app returned without answering"
    return "%s: %s" % errors.describe(error)  # its str() may raise anything


def _stack(error: BaseException) -> list[str]:
    frames = errors.user_frames(error.__traceback__)
    return traceback.format_list([(f.filename, f.lineno or 0, f.name, f.line) for f in frames])
