"""Handlers that reach for the runtime's event loop or its tasks (tests/test_loop_safety.py)."""

import asyncio
import threading
import time

# Module code that asks for "the" loop at import gets the runtime's (and may keep it).
KEPT = asyncio.get_event_loop()


async def watchdog(event, context):
    """Leaves a timer that cancels this invocation's task `after` seconds from now; with
    `self`, cancels its task itself and returns before the cancellation is delivered."""
    task = asyncio.current_task()
    if event.get("self"):
        task.cancel()
        return {"n": event["n"]}
    if "after" in event:
        asyncio.get_running_loop().call_later(event["after"], task.cancel)
    if event.get("sleep"):
        await asyncio.sleep(event["sleep"])
    return {"n": event["n"]}


async def cancel_others(event, context):
    """With `do`: after `wait` seconds, cancels every other task of the loop."""
    await asyncio.sleep(event.get("wait", 0))
    if event.get("do"):
        me = asyncio.current_task()
        for task in asyncio.all_tasks():
            if task is not me:
                task.cancel()
    await asyncio.sleep(event.get("sleep", 0))
    return {"n": event["n"]}


def sync_loops(event, context):
    """A sync handler using "its" event loop, or the one it kept from import."""
    op = event["op"]
    if op == "own":
        try:
            loop = asyncio.get_event_loop()
        except RuntimeError as e:  # Python 3.14+: no implicit loop (as under the reference)
            return {"n": event["n"], "no_loop": str(e)}
        value = loop.run_until_complete(asyncio.sleep(0, result=event["n"]))
        loop.stop()
        loop.close()
        return {"n": value, "runtime_loop": loop is KEPT}
    if op == "kept_stop":
        KEPT.stop()
    elif op == "kept_close":
        KEPT.close()
    return {"n": event["n"]}


async def async_stop(event, context):
    """Stops the running loop (the runtime's), then goes on."""
    asyncio.get_running_loop().stop()
    await asyncio.sleep(0.01)
    return {"n": event["n"]}


async def slow(event, context):
    await asyncio.sleep(event.get("sleep", 0))
    return {"n": event["n"]}


def sync_slow(event, context):
    time.sleep(event.get("sleep", 0))
    return {"n": event["n"]}


def leaves_thread(event, context):
    """Starts a non-daemon thread that outlives the invocation by far."""
    threading.Thread(target=time.sleep, args=(60,), name="left-behind").start()
    return {"n": event["n"]}


class _CancelsWhenMarshalled:
    def _asdict(self):  # called by the runtime while it marshals the result
        raise asyncio.CancelledError("raised while the result was marshalled")


def sync_cancelled_result(event, context):
    """Returns a value whose marshalling raises CancelledError (outside any task at N=1)."""
    return {"x": _CancelsWhenMarshalled()} if event.get("bad") else {"n": event["n"]}


async def stream_cancel_others(event, context):
    """A streamed answer whose producer cancels every other task between two chunks."""
    yield "a"
    me = asyncio.current_task()
    for task in asyncio.all_tasks():
        if task is not me:
            task.cancel()
    await asyncio.sleep(0.05)
    yield "b"
