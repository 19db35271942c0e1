"""Handlers for tests/test_concurrency.py."""

import asyncio
import logging
import os
import threading
import time

import aruntime

log = logging.getLogger("conc")


async def sleepy(event, context):
    log.info("start %s", event["i"])
    await asyncio.sleep(event.get("s", 0.5))
    if event.get("boom"):
        raise RuntimeError(f"boom {event['i']}")
    log.info("end %s", event["i"])
    return {"i": event["i"], "rid": context.aws_request_id}


def blocking(event, context):
    # Sync handlers go to the thread pool: they must not block each other's pollers.
    time.sleep(event.get("s", 0.5))
    return {"i": event["i"], "thread": threading.current_thread().name}


async def streams(event, context):
    for k in range(4):
        yield f"{event['tag']}{k};"
        await asyncio.sleep(0.15)


def sync_stream(event, context):
    # Sync generator steps run in the thread pool under concurrency.
    for k in range(3):
        time.sleep(0.1)
        yield f"{event['tag']}{k};{threading.current_thread().name.startswith('aruntime-sync')};"
    return "ignored"


def _trace(context):
    return {"rid": context.aws_request_id, "env": os.environ.get("_X_AMZN_TRACE_ID"),
            "trace_id": aruntime.trace_id()}


async def traced(event, context):
    # Read after the others have begun: a process-wide variable would hold another's value.
    await asyncio.sleep(event.get("s", 0.3))
    return _trace(context)


def traced_sync(event, context):
    time.sleep(event.get("s", 0.3))
    return _trace(context)
