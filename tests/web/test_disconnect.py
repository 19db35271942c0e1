"""A lost invocation stream (the Runtime API closes the connection: timeout, shutdown) as real
apps see it: a FastAPI stream learns of it through http.disconnect and ends; a Flask stream's
thread is released; the runtime serves the next invocation."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from fakeapi import FakeRuntimeAPI, run_runtime

from . import http_events as E


async def _lost_then_next(api: FakeRuntimeAPI, handler: str, target: str) -> tuple[str, str, object]:
    api.answer("/response", 0, times=1)  # close the connection as soon as the stream's head arrives
    lost = api.push(E.v2("GET", target))
    after = api.push(E.v2("GET", "/items/2" if "fastapi" in handler else "/hello"))
    proc = await run_runtime([sys.executable, "-m", "aruntime", handler], api)
    await api.wait_for(lambda ex: ex.target.endswith(f"{after}/response") and ex.status == 202,
                       timeout=30)
    return lost, after, proc


async def _wait_file(path: Path) -> str:
    for _ in range(200):
        if path.exists() and path.read_text():
            return path.read_text()
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path} never written")


async def test_fastapi_stream_sees_http_disconnect_and_the_runtime_goes_on(fake_api, tmp_path):
    marker = tmp_path / "how"
    lost, after, proc = await _lost_then_next(fake_api, "tests.web.fastapi_app.handler",
                                              f"/watch?marker={marker}")
    # The app's generator polled request.is_disconnected() and ended by itself.
    assert await _wait_file(marker) == "disconnected"
    out = proc.stdout.decode()  # type: ignore[attr-defined]
    assert f"the Runtime API closed the response stream of {lost}" in out
    assert proc.returncode is None  # type: ignore[attr-defined]


async def test_flask_stream_thread_released_on_a_lost_stream(fake_api):
    # One worker thread (no AWS_LAMBDA_MAX_CONCURRENCY): the next request is served only if the
    # lost stream's thread was given back.
    lost, after, proc = await _lost_then_next(fake_api, "tests.web.flask_app.handler",
                                              "/stream?n=100&delay=0.05")
    out = proc.stdout.decode()  # type: ignore[attr-defined]
    assert f"the Runtime API closed the response stream of {lost}" in out
    assert proc.returncode is None  # type: ignore[attr-defined]


async def test_refused_streamed_answer_is_the_runtime_apis_word_not_an_app_error(fake_api):
    fake_api.answer("/response", 413, times=1)  # the service refuses the first answer
    refused = fake_api.push(E.v2("GET", "/items/1"))
    fake_api.push(E.v2("GET", "/items/2"))
    fake_api.finish()
    proc = await run_runtime([sys.executable, "-m", "aruntime", "tests.web.fastapi_app.handler"],
                             fake_api)
    assert await proc.wait(30) == 1  # the normal end: /next answered 500 by finish()
    posts = [ex for ex in fake_api.exchanges if ex.method == "POST"]
    assert [p.status for p in posts] == [413, 202]
    out = proc.stdout.decode()
    assert f"/invocation/{refused}/response answered 413" in out
    assert "Exception in ASGI app" not in out


async def test_fatal_answer_to_a_streamed_response_ends_the_runtime(fake_api):
    fake_api.answer("/response", 500, times=1)
    fake_api.push(E.v2("GET", "/items/1"))
    fake_api.push(E.v2("GET", "/items/2"))
    proc = await run_runtime([sys.executable, "-m", "aruntime", "tests.web.fastapi_app.handler"],
                             fake_api)
    assert await proc.wait(30) == 1
    assert len([ex for ex in fake_api.exchanges if ex.method == "POST"]) == 1
    assert b"answered 500" in proc.stderr and b"Exception in ASGI app" not in proc.stdout
