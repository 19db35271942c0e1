"""Example aruntime function: a Function URL that streams its answer while it is produced.

`GET <function url>?n=5` answers `text/plain` lines one by one; each line leaves Lambda as soon
as it is yielded (InvokeMode RESPONSE_STREAM). A bad `n` fails before the first byte, so the
caller gets a plain error instead of a half-written body.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aruntime import HttpResponse, LambdaContext

DELAY_S = 0.05  # long enough to see the lines arrive one by one with `curl -N`
MAX_LINES = 100


async def handler(event: dict[str, Any], context: LambdaContext) -> AsyncIterator[Any]:
    params = event.get("queryStringParameters") or {}
    count = int(params.get("n", "5"))
    if not 1 <= count <= MAX_LINES:
        raise ValueError(f"n must be between 1 and {MAX_LINES}, got {count}")
    # The first item sets status and headers of the Function URL's HTTP answer.
    yield HttpResponse(200, {"content-type": "text/plain; charset=utf-8"})
    for i in range(1, count + 1):
        yield f"line {i} of {count}\n"
        await asyncio.sleep(DELAY_S)
    yield f"done: {context.aws_request_id}\n"
