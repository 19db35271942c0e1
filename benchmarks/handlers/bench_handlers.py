"""Handlers every runtime under test runs. Kept import-free so init measures the runtime."""

import time

_CHUNK = b"x" * 65536
_SSE = b'event: tick\ndata: {"n": 1}\n\n'


def echo(event, context):
    return event


def sleepy(event, context):
    # The reference's concurrency model: one blocking invoke per forked process.
    time.sleep(event["sleep_ms"] / 1000)
    return event


async def asleepy(event, context):
    import asyncio

    await asyncio.sleep(event["sleep_ms"] / 1000)
    return event


def stream(event, context):
    """Streaming handler (aruntime only); what it yields is chosen by the event."""
    mode = event["mode"]
    if mode == "stamp":
        # The server subtracts this from its own clock at the first body byte.
        yield b"T%d\n" % time.monotonic_ns()
        # A runtime that holds chunks back until the end shows up as >= 2 ms here.
        time.sleep(0.002)
        yield b"end\n"
    elif mode == "bulk":
        chunk = _CHUNK
        for _ in range(event["n"]):
            yield chunk
    else:
        sse = _SSE
        for _ in range(event["n"]):
            yield sse
