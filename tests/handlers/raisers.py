"""Handlers of every style that raise what `event["raise"]` names, before or after their first
chunk (`event["after"]`), for tests/test_handler_exceptions.py."""

import asyncio

import aruntime


class Boom(BaseException):
    """A BaseException of the handler's own, outside the Exception hierarchy."""


MAKE = {
    "SystemExit": lambda: SystemExit(3),
    "KeyboardInterrupt": lambda: KeyboardInterrupt("stop"),
    "GeneratorExit": lambda: GeneratorExit("ge"),
    "CancelledError": lambda: asyncio.CancelledError("mine"),
    "StopIteration": lambda: StopIteration("si"),
    "StopAsyncIteration": lambda: StopAsyncIteration("sai"),
    "Boom": lambda: Boom("custom"),
    "ValueError": lambda: ValueError("plain"),
}


def sync(event, context):
    if event.get("raise"):
        raise MAKE[event["raise"]]()
    return {"ok": True}


async def async_(event, context):
    await asyncio.sleep(0)
    if event.get("raise"):
        raise MAKE[event["raise"]]()
    return {"ok": True}


def sync_gen(event, context):
    if event.get("after"):
        yield b"first"
    if event.get("raise"):
        raise MAKE[event["raise"]]()
    yield b"ok"


async def async_gen(event, context):
    if event.get("after"):
        yield b"first"
    await asyncio.sleep(0)
    if event.get("raise"):
        raise MAKE[event["raise"]]()
    yield b"ok"


@aruntime.streaming
async def writer(event, context, stream):
    if event.get("after"):
        await stream.write(b"first")
    await asyncio.sleep(0)
    if event.get("raise"):
        raise MAKE[event["raise"]]()
    await stream.write(b"ok")
