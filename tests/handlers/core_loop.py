"""Async handler state that must survive between invocations on the one event loop.

Invocation 1 creates an asyncio.Queue, an Event and a background task bound to the running loop;
invocation 2 wakes the task and awaits the queue while it is empty. Under a fresh loop per
invocation the task is gone and the await fails ("bound to a different event loop") or times out.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

_state: dict[str, Any] = {}


async def _producer(queue: asyncio.Queue[int], wake: asyncio.Event, value: int) -> None:
    await wake.wait()
    await queue.put(value)


async def handler(event: Any, context: Any) -> Any:
    loop_id = id(asyncio.get_running_loop())
    if "queue" not in _state:
        queue: asyncio.Queue[int] = asyncio.Queue()
        wake = asyncio.Event()
        _state.update(queue=queue, wake=wake,
                      task=asyncio.ensure_future(_producer(queue, wake, event["n"])))
        await asyncio.sleep(0)  # the task now waits on the event, on this loop
        return {"loop": loop_id, "got": None}
    _state["wake"].set()
    try:
        got = await asyncio.wait_for(_state["queue"].get(), 2)
    except Exception as e:  # noqa: BLE001 - reported to the test as data
        return {"loop": loop_id, "got": None, "error": f"{type(e).__name__}: {e}"}
    return {"loop": loop_id, "got": got}


def sync_with_asyncio_run(event: Any, context: Any) -> Any:
    async def add(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    # Sync handlers run with no loop running, as under the reference client.
    return {"sum": asyncio.run(add(event["a"], event["b"])),
            "main_thread": threading.current_thread() is threading.main_thread()}
