"""A FastAPI app with what real apps do, served by aruntime.asgi in the web tests."""

from __future__ import annotations

import asyncio
import hashlib
import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sse_starlette.sse import EventSourceResponse

import aruntime

STARTUPS = 0


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    global STARTUPS
    STARTUPS += 1
    if os.environ.get("WEB_TEST_FAIL_STARTUP"):
        raise ConnectionError("database unreachable")
    print(f"lifespan startup {STARTUPS} pid {os.getpid()}", flush=True)
    yield {"db": "connected", "startups": STARTUPS, "loop": id(asyncio.get_running_loop())}
    print("lifespan shutdown", flush=True)
    marker = os.environ.get("WEB_TEST_SHUTDOWN_MARKER")
    if marker:
        with open(marker, "w") as f:
            f.write("shutdown ran")


app = FastAPI(lifespan=lifespan)


@app.get("/items/{item_id}")
async def item(item_id: int, request: Request, q: str | None = None) -> dict[str, Any]:
    return {"item_id": item_id, "q": q, "db": request.state.db,
            "startups": request.state.startups,
            "same_loop": request.state.loop == id(asyncio.get_running_loop())}


@app.post("/json")
async def echo_json(payload: dict[str, Any]) -> dict[str, Any]:
    return {"got": payload}


@app.post("/form")
async def form(name: str = Form(...), upload: UploadFile = File(...)) -> dict[str, Any]:
    data = await upload.read()
    return {"name": name, "filename": upload.filename, "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "type": upload.content_type}


@app.get("/scope")
async def scope(request: Request) -> dict[str, Any]:
    s = request.scope
    return {"path": s["path"], "raw_path": s["raw_path"].decode(), "root_path": s["root_path"],
            "query_string": s["query_string"].decode(), "method": s["method"],
            "headers": [[k.decode(), v.decode()] for k, v in s["headers"]],
            "client": list(s["client"]) if s["client"] else None, "server": list(s["server"]),
            "scheme": s["scheme"], "http_version": s["http_version"],
            "url": str(request.url), "url_for": str(request.url_for("item", item_id=7)),
            "cookies": dict(request.cookies),
            "request_id": s["aws.context"].aws_request_id,
            "event_keys": sorted(s["aws.event"])}


@app.get("/stream")
async def stream(n: int = 4, delay: float = 0.5) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(n):
            await asyncio.sleep(delay)
            yield f"chunk {i}\n".encode()

    return StreamingResponse(chunks(), media_type="text/plain")


@app.get("/sse")
async def sse(n: int = 3, delay: float = 0.05) -> EventSourceResponse:
    async def events() -> AsyncIterator[dict[str, Any]]:
        for i in range(n):
            await asyncio.sleep(delay)
            yield {"event": "token", "id": str(i), "data": f"word{i}"}

    return EventSourceResponse(events(), ping=600)


@app.get("/watch")
async def watch(request: Request, marker: str) -> StreamingResponse:
    """Sends its head, then waits for the caller to go away; records how it learnt of it."""

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while True:  # as Starlette's and sse-starlette's disconnect listeners do
                message = await request.receive()  # first the (empty) body, then it waits
                if message["type"] == "http.disconnect":
                    _write(marker, "disconnected")
                    return
            yield b""  # never reached: it makes this an async generator
        except asyncio.CancelledError:
            _write(marker, "cancelled")
            raise

    return StreamingResponse(chunks(), media_type="text/plain")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


@app.get("/midway")
async def midway() -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"first part\n"
        raise RuntimeError("the model went away")

    return StreamingResponse(chunks(), media_type="text/plain")


@app.get("/boom")
async def boom() -> None:
    raise KeyError("boom")


@app.get("/cookies")
async def cookies() -> Response:
    response = JSONResponse({"ok": True})
    response.set_cookie("a", "1", httponly=True)
    response.set_cookie("b", "2", expires="Wed, 21 Oct 2037 07:28:00 GMT")
    response.headers.append("vary", "Accept")
    response.headers.append("vary", "Origin")
    return response


BINARY = bytes(range(256)) * 4


@app.get("/binary")
async def binary() -> Response:
    return Response(BINARY, media_type="application/octet-stream",
                    headers={"Content-Disposition": 'attachment; filename="b.bin"'})


@app.delete("/empty", status_code=204)
async def empty() -> None:
    return None


handler = aruntime.asgi(app)
handler_stream = aruntime.asgi(app, invoke_mode="response_stream")
handler_buffered = aruntime.asgi(app, invoke_mode="buffered")
