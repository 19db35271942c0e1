"""The FastAPI app both adapters serve in `python -m benchmarks.web`."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from fastapi import FastAPI
from fastapi.responses import StreamingResponse


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    # Counted by the harness: Mangum runs this for every invocation, aruntime once per process.
    print("bench-web lifespan startup", flush=True)
    yield {"client": object()}


app = FastAPI(lifespan=lifespan)


@app.get("/json")
async def small_json() -> dict[str, Any]:
    return {"ok": True, "items": list(range(10))}


@app.get("/stream")
async def stream(n: int = 4, delay: float = 0.5) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(n):
            await asyncio.sleep(delay)
            yield b"chunk %d\n" % i

    return StreamingResponse(chunks(), media_type="text/plain")
