"""The token-streaming chat of `chat.py`, written as a FastAPI app and served by aruntime.asgi.

Run it locally (FastAPI installed next to aruntime) and watch the tokens arrive one by one:

    aruntime serve examples/fastapi_chat.py:handler
    curl -N 'http://127.0.0.1:9000/chat?prompt=hello'

Deploy it like any handler (`fastapi_chat.handler`, FastAPI in the zip, layer or image) behind a
Function URL with `InvokeMode: RESPONSE_STREAM`: the same app runs under uvicorn unchanged.
"""

from __future__ import annotations

import asyncio
import random
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

import aruntime


class FakeModel:
    """Tokens at a language model's pace (about 25 per second, with jitter)."""

    def __init__(self) -> None:
        self.rng = random.Random(7)

    async def tokens(self, prompt: str) -> AsyncIterator[str]:
        answer = (f"You asked about {prompt!r}. Here is an answer streamed token by token, the "
                  "way a large language model produces it, so the first words reach you at once.")
        for word in answer.split(" "):
            await asyncio.sleep(0.02 + self.rng.random() * 0.04)
            yield word + " "


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    # Runs once per execution environment, at Init: a real model client is created here and
    # reused by every invocation (they share one event loop).
    yield {"model": FakeModel()}


app = FastAPI(lifespan=lifespan)


@app.get("/chat")
async def chat(request: Request, prompt: str = "nothing") -> StreamingResponse:
    model: FakeModel = request.state.model
    context = request.scope.get("aws.context")  # the Lambda context, under aruntime
    request_id = context.aws_request_id if context else None

    async def events() -> AsyncIterator[bytes]:
        n = 0
        async for token in model.tokens(prompt):
            yield aruntime.sse({"token": token}, event="token", id=str(n))
            n += 1
        yield aruntime.sse({"tokens": n, "request_id": request_id}, event="done")

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})


handler = aruntime.asgi(app)
