"""Sync handlers that need their thread, for tests/test_sync_workers.py (run at N > 1, where
aruntime runs sync code in worker threads)."""

import asyncio
import json
import signal
import sqlite3
import threading
import time

# At import, on the main thread: the runtime's own loop (set for module-level code).
RUNTIME_LOOP = asyncio.get_event_loop()


def get_loop(event, context):
    # The common pattern of sync code calling async libraries.
    if event.get("run_first"):  # asyncio.run() leaves the thread with no loop set
        assert asyncio.run(asyncio.sleep(0, result="ran")) == "ran"
    loop = asyncio.get_event_loop()
    time.sleep(event.get("s", 0))  # keep the thread busy: the others get threads of their own
    value = loop.run_until_complete(asyncio.sleep(0.01, result=event["i"]))
    if event.get("close"):
        loop.close()
    return {"value": value, "thread": threading.get_ident(), "loop": id(loop),
            "runtime_loop": loop is RUNTIME_LOOP, "closed": loop.is_closed()}


def set_signal(event, context):
    # The "soft timeout" pattern: SIGALRM raises in the handler when time is nearly up.
    old = signal.signal(signal.SIGALRM, lambda *_: None)
    signal.signal(signal.SIGALRM, old)
    return {"ok": event["i"]}


def loop_signal(event, context):
    asyncio.get_event_loop().add_signal_handler(signal.SIGUSR1, lambda: None)
    return {"ok": event["i"]}


def _rows(db):
    db.execute("create table t(x)")
    db.executemany("insert into t values (?)", [(i,) for i in range(5)])
    return db.execute("select x from t")


def sqlite_rows(event, context):
    # A generator handler streaming rows: sqlite3 objects belong to the thread that made them.
    local = threading.local()
    local.tag = event["tag"]
    for (x,) in _rows(sqlite3.connect(":memory:")):
        time.sleep(0.02)
        yield f"{local.tag}{x}:{threading.get_ident()};"


def sqlite_cursor(event, context):
    # A plain handler returning a generator over a cursor it made: the steps run where it ran.
    cursor = _rows(sqlite3.connect(":memory:"))
    made_in = threading.get_ident()

    def rows():
        for (x,) in cursor:
            time.sleep(0.02)
            yield f"{event['tag']}{x}:{made_in}:{threading.get_ident()};"

    return rows()


def started(event, context):
    # An I/O-bound sync handler (a boto3 call, an HTTP request): when did it start, where?
    at = time.time()
    time.sleep(event.get("s", 0.5))
    return {"started": at, "thread": threading.current_thread().name,
            "ident": threading.get_ident()}


def stuck_stream(event, context):
    # One chunk, then a step the stream's hang-up cannot stop (it blocks in its thread).
    thread = threading.get_ident()
    finished = None
    try:
        yield "0;"
        time.sleep(event["stuck"])
        yield "1;"
    finally:
        finished = {"step_thread": thread, "finally_thread": threading.get_ident(),
                    "finally_at": time.time()}
        with open(event["marker"], "w") as f:
            json.dump(finished, f)


def _started_in_thread(s):
    at = time.time()
    time.sleep(s)
    return {"started": at, "thread": threading.current_thread().name,
            "ident": threading.get_ident()}


async def offloads(event, context):
    # An async handler handing its blocking call (boto3, a file) to a thread: asyncio.to_thread
    # uses the loop's default executor.
    return await asyncio.to_thread(_started_in_thread, event.get("s", 0.5))


async def _on_the_loop(s):
    await asyncio.sleep(s)
    return {"on_module_loop": asyncio.get_running_loop() is RUNTIME_LOOP,
            "thread": threading.current_thread().name}


def module_loop(event, context):
    # The older pattern: the loop taken at import, driven by every invocation.
    started = time.time()
    out = RUNTIME_LOOP.run_until_complete(_on_the_loop(event["s"]))
    return {**out, "started": started, "ended": time.time()}
