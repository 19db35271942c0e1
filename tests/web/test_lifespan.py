"""ASGI lifespan: once per process at Init, on the runtime's loop; failure is an init error;
shutdown on SIGTERM; state into every request (aruntime/web/lifespan.py)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import pytest

from aruntime.errors import RuntimeFault
from aruntime.web import asgi
from aruntime.web.lifespan import Lifespan
from fakeapi import run_runtime

from . import http_events as E

APP = "tests.web.fastapi_app."


def no_lifespan_app(calls: list[str]):
    async def app(scope, receive, send):
        calls.append(scope["type"])
        if scope["type"] != "http":
            raise ValueError(f"cannot handle {scope['type']}")  # as Django does
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": repr(scope.get("state")).encode()})
    return app


def lifespan_app(events: list[str], fail: str | None = None):
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            assert (await receive())["type"] == "lifespan.startup"
            if fail == "startup":
                await send({"type": "lifespan.startup.failed",
                            "message": "Traceback (most recent call last):\n  File \"x.py\", "
                                       "line 1, in <module>\nConnectionError: db down\n"})
                return
            scope["state"]["pool"] = {"connections": 1}
            events.append("startup")
            await send({"type": "lifespan.startup.complete"})
            assert (await receive())["type"] == "lifespan.shutdown"
            events.append("shutdown")
            if fail == "shutdown":
                await send({"type": "lifespan.shutdown.failed", "message": "flush failed"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
            return
        await receive()
        scope["state"]["mine"] = True  # a request's changes stay in its own copy
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": repr(sorted(scope["state"])).encode()})
    return app


async def test_auto_goes_on_without_lifespan_and_on_refuses():
    calls: list[str] = []
    life = Lifespan(no_lifespan_app(calls), "auto")
    await life.startup()
    assert not life.supported and calls == ["lifespan"]
    with pytest.raises(RuntimeFault) as info:
        await Lifespan(no_lifespan_app(calls), "on").startup()
    assert info.value.error_type == "Runtime.LifespanStartupError"
    assert info.value.message == "ASGI lifespan startup failed: ValueError: cannot handle lifespan"
    assert info.value.stack and "test_lifespan.py" in info.value.stack[-1]
    off: list[str] = []
    await Lifespan(no_lifespan_app(off), "off").startup()
    assert off == []
    with pytest.raises(ValueError, match="lifespan must be one of auto, on, off"):
        Lifespan(no_lifespan_app(off), "yes")


async def test_startup_failed_message_becomes_the_init_error():
    with pytest.raises(RuntimeFault) as info:
        await Lifespan(lifespan_app([], fail="startup"), "auto").startup()
    assert info.value.message == "ASGI lifespan startup failed: ConnectionError: db down"
    assert info.value.stack == ["Traceback (most recent call last):\n",
                                '  File "x.py", line 1, in <module>\n']


async def test_state_copied_into_each_request_and_shutdown(caplog):
    events: list[str] = []
    handler = asgi(lifespan_app(events), invoke_mode="buffered")
    await handler.__aruntime_init__()
    await handler.__aruntime_init__()  # idempotent: once per process
    assert events == ["startup"]
    for _ in range(2):
        out = await handler(E.v2("GET", "/"), None, None)  # type: ignore[arg-type]
        assert out["body"] == "['mine', 'pool']"
    assert handler.lifespan.state == {"pool": {"connections": 1}}
    await handler.lifespan.shutdown()
    assert events == ["startup", "shutdown"]

    failing = Lifespan(lifespan_app([], fail="shutdown"), "on")
    await failing.startup()
    with caplog.at_level(logging.ERROR, "aruntime.web"):
        await failing.shutdown()
    assert caplog.records[0].getMessage() == "ASGI lifespan shutdown failed: flush failed"


async def test_without_lifespan_requests_get_no_state():
    handler = asgi(no_lifespan_app([]), invoke_mode="buffered")
    out = await handler(E.v2("GET", "/"), None, None)  # type: ignore[arg-type]
    assert out["body"] == "None"


async def test_failing_startup_fails_the_init_of_the_runtime(fake_api):
    fake_api.push(E.v2("GET", "/items/1"))
    proc = await run_runtime([sys.executable, "-m", "aruntime", APP + "handler"], fake_api,
                             env={"WEB_TEST_FAIL_STARTUP": "1"})
    assert await proc.wait(30) == 1
    (post,) = [ex for ex in fake_api.exchanges if ex.method == "POST"]
    assert post.target == "/2018-06-01/runtime/init/error"
    assert post.header("lambda-runtime-function-error-type") == "Runtime.LifespanStartupError"
    error = post.json()
    assert error["errorMessage"] == "ASGI lifespan startup failed: ConnectionError: database unreachable"
    assert any("fastapi_app.py" in line for line in error["stackTrace"])
    assert not [ex for ex in fake_api.exchanges if ex.target.endswith("/next")]


async def test_shutdown_runs_on_sigterm(fake_api, tmp_path):
    marker = tmp_path / "shutdown"
    rid = fake_api.push(E.v2("GET", "/items/1"))
    proc = await run_runtime([sys.executable, "-m", "aruntime", APP + "handler"], fake_api,
                             env={"WEB_TEST_SHUTDOWN_MARKER": str(marker)})
    await fake_api.wait_for(lambda ex: ex.target.endswith(f"{rid}/response"), timeout=30)
    # Parked in the next /next: SIGTERM now, as Lambda's Shutdown phase does.
    await asyncio.sleep(0.2)
    proc._proc.send_signal(signal.SIGTERM)
    assert await proc.wait(10) == 0
    assert marker.read_text() == "shutdown ran"
    assert proc.stdout.count(b"lifespan startup") == 1 and b"lifespan shutdown" in proc.stdout
