"""Whatever a handler raises — every BaseException, through every handler style, before or after
its first streamed chunk, one invocation at a time or several — is that invocation's error, with
its type and message, and the runtime serves the next invocation (issue #10 item 8, #15 item 1).
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from typing import Any

import pytest

from fakeapi import Exchange, FakeRuntimeAPI, run_runtime

H = "tests.handlers.raisers."
RAISE_LINE = '    raise MAKE[event["raise"]]()\n'
RAISED = {
    "SystemExit": "3",
    "KeyboardInterrupt": "stop",
    "GeneratorExit": "ge",
    "CancelledError": "mine",
    "StopIteration": "si",
    "StopAsyncIteration": "sai",
    "Boom": "custom",
    "ValueError": "plain",
}
# What Python itself turns these into when they leave a coroutine or a generator (PEP 479).
CONVERTED = {
    ("async_", "StopIteration"): "coroutine raised StopIteration",
    ("writer", "StopIteration"): "coroutine raised StopIteration",
    ("sync_gen", "StopIteration"): "generator raised StopIteration",
    ("async_gen", "StopIteration"): "async generator raised StopIteration",
    ("async_gen", "StopAsyncIteration"): "async generator raised StopAsyncIteration",
}
STREAMING = {"sync_gen", "async_gen", "writer"}


def expected(style: str, name: str) -> tuple[str, str]:
    if (style, name) in CONVERTED:
        return "RuntimeError", CONVERTED[(style, name)]
    return name, RAISED[name]


def check_error(body: dict[str, Any], rid: str, style: str, name: str) -> None:
    error_type, message = expected(style, name)
    assert list(body) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert (body["errorType"], body["errorMessage"], body["requestId"]) == (error_type, message, rid)
    if (style, name) in CONVERTED:
        # Python raised the RuntimeError where the runtime resumed the handler: it has no user
        # frame of its own (the body keeps the reference's shape: this exception only); the
        # handler's frames are in its cause, which the log line shows.
        assert body["stackTrace"] == [], body
        return
    # Only the handler's own frames, ending where it raised.
    assert all(frame.startswith('  File "') and "/tests/handlers/raisers.py" in frame
               for frame in body["stackTrace"]), body["stackTrace"]
    assert body["stackTrace"][-1].endswith(RAISE_LINE), body["stackTrace"]


async def _run(style: str, concurrency: int) -> None:
    async with FakeRuntimeAPI() as api:
        cases: dict[str, tuple[str, bool]] = {}
        for name in RAISED:
            for after in ([False, True] if style in STREAMING else [False]):
                rid = api.push({"raise": name, "after": after})
                cases[rid] = (name, after)
        last = api.push({})
        proc = await run_runtime([sys.executable, "-m", "aruntime", H + style], api,
                                 env={"AWS_LAMBDA_MAX_CONCURRENCY": str(concurrency)})
        posts: dict[str, Exchange] = {}
        while set(posts) != {*cases, last}:
            await api.wait_for(lambda ex: ex.method == "POST" and ex.path.split("/")[-2] not in posts)
            posts = {ex.path.split("/")[-2]: ex for ex in api.exchanges if ex.method == "POST"}
        # The runtime lived through all of them; it ends only on the fake's final 500.
        api.finish()
        assert await proc.wait(30) == 1, proc.stderr
        where = f"{style} N={concurrency}"
        for rid, (name, after) in cases.items():
            post = posts[rid]
            error_type, _ = expected(style, name)
            if after:
                # After the first chunk: the stream ends with the error in its trailers.
                assert post.path.endswith("/response") and post.body == b"first", (where, name)
                assert post.trailer("lambda-runtime-function-error-type") == f"Function.{error_type}"
                body = json.loads(base64.b64decode(post.trailer("lambda-runtime-function-error-body")))
            else:
                assert post.path.endswith("/error"), (where, name, post)
                assert post.header("lambda-runtime-function-error-type") == f"Function.{error_type}"
                body = post.json()
            check_error(body, rid, style, name)
            assert post.status == 202
        final = posts[last]
        assert final.path.endswith("/response") and final.status == 202
        assert final.body in (b'{"ok":true}', b"ok"), final
        assert b"Traceback" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("style", ["sync", "async_", "sync_gen", "async_gen", "writer"])
async def test_every_base_exception_is_the_invocations_error(style: str) -> None:
    await asyncio.gather(_run(style, 1), _run(style, 2))
