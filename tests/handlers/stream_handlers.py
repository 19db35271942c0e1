"""Streaming handlers for tests/test_streaming.py."""

import asyncio
import os
import time

import aruntime
from aruntime import HttpResponse, sse


def two_chunks(event, context):
    yield "a"
    yield b"bc"


@aruntime.streaming(content_type="text/event-stream")
async def sse_prelude(event, context):
    yield HttpResponse(status_code=201, headers={"x-a": "1"}, cookies=["k=v"])
    yield sse({"n": 1}, event="tok", id="1")
    yield sse("bye")


def prelude_only(event, context):
    yield HttpResponse(status_code=204)


def fail_before_first_byte(event, context):
    raise ValueError("before")
    yield b"never"  # pragma: no cover


async def fail_midstream(event, context):
    yield b"part"
    raise KeyError("midway")


def slow(event, context):
    # Chunks must leave as produced: the timing test compares arrival times.
    for i in range(event.get("n", 3)):
        if i:
            time.sleep(event.get("gap", 0.3))
        yield f"chunk{i}".encode()


async def cancellable(event, context):
    # Blocks forever after one chunk; a hang-up must cancel it and run the finally block.
    marker = event["marker"]
    try:
        yield b"first"
        await asyncio.sleep(3600)
    finally:
        with open(marker, "w") as f:
            f.write("cancelled")


def firehose(event, context):
    # As fast as possible: memory must stay bounded by backpressure.
    block = b"x" * (1 << 20)
    for _ in range(event["mib"]):
        yield block


@aruntime.streaming(content_type="text/plain")
async def writer(event, context, stream):
    stream.content_type = "text/x-log"

    async def part(tag):
        for i in range(3):
            await stream.write(f"{tag}{i};")
            await asyncio.sleep(0)

    await asyncio.gather(part("A"), part("B"))
    await stream.close()
    try:
        await stream.write("late")
    except aruntime.StreamClosedError as e:
        print("write after close:", e)
    return {"ignored": True}


@aruntime.streaming
async def writer_no_close(event, context, stream):
    await stream.write(HttpResponse(status_code=200, headers={"content-type": "text/plain"}))
    await stream.write("body")


@aruntime.streaming
async def writer_silent(event, context, stream):
    return None


def bad_item(event, context):
    yield b"ok"
    yield {"not": "bytes"}


def returns_value(event, context):
    yield b"x"
    return "dropped"


def pid_file(event, context):
    yield str(os.getpid()).encode()
