"""Handlers for the interop tests (tests/test_peers.py, tests/test_interop_cargo_lambda.py)."""

import asyncio
import time

import aruntime
from aruntime import HttpResponse


def echo(event, context):
    """Buffered: the event back with the request id; `{"raise": msg}` raises ValueError(msg)."""
    if isinstance(event, dict) and "raise" in event:
        raise ValueError(event["raise"])
    return {"event": event, "rid": context.aws_request_id}


async def async_echo(event, context):
    await asyncio.sleep(0)
    return {"async": True, "event": event, "remaining_ms": context.get_remaining_time_in_millis()}


def stream(event, context):
    """Streamed: an optional prelude (`event["prelude"]`: status, headers, cookies), then
    `event["chunks"]`, `event["gap"]` seconds apart; `{"raise": msg}` raises before any byte."""
    if "raise" in event:
        raise ValueError(event["raise"])
    prelude = event.get("prelude")
    if prelude is not None:
        yield HttpResponse(status_code=prelude.get("status", 200), headers=prelude.get("headers"),
                           cookies=prelude.get("cookies"))
    for i, chunk in enumerate(event.get("chunks", [])):
        if i and event.get("gap"):
            time.sleep(event["gap"])
        yield chunk


@aruntime.streaming(content_type="text/plain")
async def url_stream(event, context):
    """A Function URL handler: status, headers and cookies from the query string's `status`,
    then three lines 0.3 s apart."""
    query = event.get("queryStringParameters") or {}
    yield HttpResponse(status_code=int(query.get("status", "200")),
                       headers={"content-type": "text/plain", "x-path": event.get("rawPath", "")},
                       cookies=["a=1; Path=/", "b=2"])
    for i in range(3):
        if i:
            await asyncio.sleep(0.3)
        yield f"line {i}\n"
