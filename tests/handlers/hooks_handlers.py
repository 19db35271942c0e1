"""Handlers for tests/web/test_runtime_hooks.py: a streaming handler that answers some
invocations buffered, and handler objects with an `__aruntime_init__` start-up hook."""

from __future__ import annotations

import asyncio
import os

import aruntime


@aruntime.streaming(content_type="text/plain")
async def writer_or_buffered(event, context, stream):
    if event.get("buffered"):
        return {"answer": "buffered", "n": event["n"]}
    await stream.write(f"streamed {event['n']}")


def generator_or_buffered(event, context):
    if event.get("buffered"):
        return {"answer": "buffered"}
    yield b"streamed"


class WithInit:
    """A writer handler object whose start-up must run on the loop before the first /next."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.init_loop: int | None = None
        self.started_at_init = False
        self.__aruntime_streaming__ = None

    async def __aruntime_init__(self) -> None:
        await asyncio.sleep(0.05)
        if self.fail:
            raise ValueError("the start-up hook failed")
        self.init_loop = id(asyncio.get_running_loop())
        print(f"init hook ran in pid {os.getpid()}", flush=True)

    async def __call__(self, event, context):
        return {"init_ran": self.init_loop is not None,
                "same_loop": self.init_loop == id(asyncio.get_running_loop())}


with_init = WithInit()
with_failing_init = WithInit(fail=True)
