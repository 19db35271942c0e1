"""A bare Starlette app served by aruntime.asgi in the web tests."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

import aruntime


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    yield {"greeting": "hello from lifespan"}


async def echo(request: Request) -> PlainTextResponse:
    body = await request.body()
    return PlainTextResponse(f"{request.state.greeting}; {request.method} {request.url.path} "
                             f"{len(body)} bytes: {body.decode()}")


async def stream(request: Request) -> StreamingResponse:
    n = int(request.query_params.get("n", "3"))
    delay = float(request.query_params.get("delay", "0.2"))

    async def chunks() -> AsyncIterator[str]:
        for i in range(n):
            await asyncio.sleep(delay)
            yield f"starlette {i}\n"

    return StreamingResponse(chunks(), media_type="text/plain")


app = Starlette(routes=[Route("/echo", echo, methods=["POST"]), Route("/stream", stream)],
                lifespan=lifespan)
handler = aruntime.asgi(app)
