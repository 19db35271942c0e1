"""Handlers that log from threads they start, pool tasks they submit and a thread started at
import, for tests/test_thread_request_ids.py. Every record's message is `<where> <i>`."""

import asyncio
import logging
import queue
import threading
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("threads")
POOL = ThreadPoolExecutor(2, thread_name_prefix="user-pool")  # made at import: no invocation

_asks: "queue.Queue[tuple[str, threading.Event]]" = queue.Queue()


def _background():
    # Started at import, outside every invocation: logs whenever asked.
    while True:
        tag, done = _asks.get()
        log.info(tag)
        done.set()


threading.Thread(target=_background, daemon=True).start()


def _log(tag):
    log.info(tag)


def _thread(tag):
    thread = threading.Thread(target=_log, args=(tag,))
    thread.start()
    thread.join()


def _thread_with_child(i):
    # A thread that starts a thread and submits a pool task: both work for the invocation too.
    _thread(f"grandchild {i}")
    POOL.submit(_log, f"pool from thread {i}").result()


def _background_says(tag):
    done = threading.Event()
    _asks.put((tag, done))
    done.wait(5)


def sync(event, context):
    i = event["i"]
    _thread(f"thread {i}")
    _thread_with_child(i)
    POOL.submit(_log, f"pool {i}").result()
    _background_says(f"background {i}")
    return {"i": i}


async def async_(event, context):
    i = event["i"]
    loop = asyncio.get_running_loop()
    steps = [
        lambda: loop.run_in_executor(None, _thread, f"thread {i}"),
        lambda: loop.run_in_executor(None, _thread_with_child, i),
        lambda: asyncio.wrap_future(POOL.submit(_log, f"pool {i}")),
        lambda: loop.run_in_executor(None, _log, f"executor {i}"),
        lambda: asyncio.to_thread(_log, f"to_thread {i}"),
        lambda: loop.run_in_executor(None, _background_says, f"background {i}"),
    ]
    for step in steps:
        await step()
        await asyncio.sleep(event.get("gap", 0))  # the other invocation runs meanwhile
    return {"i": i}
