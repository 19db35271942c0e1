"""Streaming handlers of every style, for tests/test_stream_hangup.py.

Each writes one item per `event["gap"]` seconds (blocking or awaiting, as its name says) until
`event["n"]` items (the first after `event["delay"]` seconds), and records in the file
`event["marker"]` how many items it produced and when its `finally` block ran. With
`event["mib"]` it produces that many 1 MiB chunks as fast as it can instead, recording the count
so far in the marker after each one.
"""

import asyncio
import json
import time

import aruntime

MIB = b"x" * (1 << 20)


def _record(event, produced, finished):
    with open(event["marker"], "w") as f:
        json.dump({"produced": produced, "finally_at": time.time() if finished else None}, f)


def sync_gen(event, context):
    produced = 0
    try:
        if "mib" in event:
            for _ in range(event["mib"]):
                produced += 1
                _record(event, produced, False)
                yield MIB
            return
        time.sleep(event.get("delay", 0))
        for i in range(event["n"]):
            if i:
                time.sleep(event["gap"])
            produced += 1
            yield f"{i};"
    finally:
        _record(event, produced, True)


async def async_gen_blocking(event, context):
    # Blocks the loop between yields: a hang-up is only seen at the next write.
    produced = 0
    try:
        time.sleep(event.get("delay", 0))
        for i in range(event["n"]):
            if i:
                time.sleep(event["gap"])
            produced += 1
            yield f"{i};"
    finally:
        _record(event, produced, True)


async def async_gen(event, context):
    produced = 0
    try:
        if "mib" in event:
            for _ in range(event["mib"]):
                produced += 1
                _record(event, produced, False)
                yield MIB
            return
        await asyncio.sleep(event.get("delay", 0))
        for i in range(event["n"]):
            if i:
                await asyncio.sleep(event["gap"])
            produced += 1
            yield f"{i};"
    finally:
        _record(event, produced, True)


@aruntime.streaming
async def writer_blocking(event, context, stream):
    produced = 0
    try:
        time.sleep(event.get("delay", 0))
        for i in range(event["n"]):
            if i:
                time.sleep(event["gap"])
            produced += 1
            await stream.write(f"{i};")
    finally:
        _record(event, produced, True)


@aruntime.streaming
async def writer(event, context, stream):
    produced = 0
    try:
        if "mib" in event:
            for _ in range(event["mib"]):
                produced += 1
                _record(event, produced, False)
                await stream.write(MIB)
            return
        await asyncio.sleep(event.get("delay", 0))
        for i in range(event["n"]):
            if i:
                await asyncio.sleep(event["gap"])
            produced += 1
            await stream.write(f"{i};")
    finally:
        _record(event, produced, True)
