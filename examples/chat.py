"""A token-streaming chat function: a fake language model answered as Server-Sent Events.

Run it locally and watch the tokens arrive one by one:

    aruntime serve examples/chat.py:handler
    curl -N 'http://127.0.0.1:9000/?prompt=hello'

Deployed behind a Function URL with `InvokeMode: RESPONSE_STREAM` it streams the same way.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
from typing import Any, AsyncIterator
from urllib.parse import parse_qs

import aruntime
from aruntime import HttpResponse, sse

# A real model client would be created once, here, and reused by every invocation: async
# handlers run on one event loop for the life of the process.
_rng = random.Random(7)


async def fake_model(prompt: str) -> AsyncIterator[str]:
    """Tokens at a language model's pace (about 25 per second, with jitter)."""
    answer = (f"You asked about {prompt!r}. Here is an answer streamed token by token, the way a "
              "large language model produces it, so the first words reach you at once.")
    for word in answer.split(" "):
        await asyncio.sleep(0.02 + _rng.random() * 0.04)
        yield word + " "


def prompt_of(event: Any) -> str:
    """The prompt from a Function URL request (query or JSON body) or a direct invoke."""
    if not isinstance(event, dict):
        return "nothing"
    if "prompt" in event:
        return str(event["prompt"])
    query = parse_qs(event.get("rawQueryString") or "")
    if "prompt" in query:
        return query["prompt"][0]
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    try:
        return str(json.loads(body).get("prompt", "nothing"))
    except (ValueError, AttributeError):
        return body or "nothing"


@aruntime.streaming(content_type="text/event-stream")
async def handler(event: Any, context: Any) -> AsyncIterator[Any]:
    yield HttpResponse(status_code=200, headers={"Content-Type": "text/event-stream",
                                                 "Cache-Control": "no-cache"})
    n = 0
    async for token in fake_model(prompt_of(event)):
        yield sse({"token": token}, event="token", id=str(n))
        n += 1
    yield sse({"tokens": n, "request_id": context.aws_request_id}, event="done")
