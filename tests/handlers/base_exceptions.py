"""Handlers of every style that raise a BaseException before or after their first byte.

For tests/test_base_exceptions.py. `event["raise"]` names the exception (see `_raise`),
`event["when"]` is "before" or "after" the first chunk (buffered handlers have only "before"),
and an event without "raise" is answered normally.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aruntime


class HandlerAbort(BaseException):
    """A BaseException no library defines: only `except BaseException` catches it."""


def _raise(event: Any, when: str) -> None:
    # One raise per line, so no Python version adds "^^^" markers to the stack trace.
    if event.get("when") != when:
        return
    name = event.get("raise")
    if name == "system_exit":
        raise SystemExit(3)
    if name == "keyboard_interrupt":
        raise KeyboardInterrupt("stop")
    if name == "handler_abort":
        raise HandlerAbort("abort")
    if name == "cancelled":
        raise asyncio.CancelledError("cancelled by the handler")


def sync_buffered(event: Any, context: Any) -> Any:
    _raise(event, "before")
    return {"ok": context.aws_request_id}


async def async_buffered(event: Any, context: Any) -> Any:
    await asyncio.sleep(0)
    _raise(event, "before")
    return {"ok": context.aws_request_id}


def sync_returning_coroutine(event: Any, context: Any) -> Any:
    # A plain def that returns an awaitable (what a sync decorator around an async def does).
    return async_buffered(event, context)


def sync_generator(event: Any, context: Any) -> Any:
    _raise(event, "before")
    yield b"first"
    _raise(event, "after")
    yield b"ok"


async def async_generator(event: Any, context: Any) -> Any:
    _raise(event, "before")
    yield b"first"
    await asyncio.sleep(0)
    _raise(event, "after")
    yield b"ok"


@aruntime.streaming
async def writer(event: Any, context: Any, stream: Any) -> None:
    _raise(event, "before")
    await stream.write(b"first")
    await asyncio.sleep(0)
    _raise(event, "after")
    await stream.write(b"ok")
    await stream.close()
