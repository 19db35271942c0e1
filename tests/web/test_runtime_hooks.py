"""Two generic pieces of the runtime the web adapters stand on.

- A streaming handler that returns a value without having written anything answers that value
  buffered (so one handler can stream some invocations and buffer others).
- A handler object's `__aruntime_init__()` is awaited on the runtime's loop after loading and
  before the first `/next`, as part of Init; raising fails the init like an import error.
"""

from __future__ import annotations

import sys

from fakeapi import FakeRuntimeAPI, run_runtime

H = "tests.handlers.hooks_handlers."


async def _run(api: FakeRuntimeAPI, handler: str, *events: object) -> tuple[list, object]:
    for event in events:
        api.push(event)
    api.finish()
    proc = await run_runtime([sys.executable, "-m", "aruntime", H + handler], api)
    assert await proc.wait(20) == 1, proc.stderr  # /next answered 500 by finish(): the end
    return [ex for ex in api.exchanges if ex.method == "POST"], proc


async def test_writer_returning_a_value_unwritten_answers_buffered(fake_api):
    posts, proc = await _run(fake_api, "writer_or_buffered",
                             {"n": 1}, {"n": 2, "buffered": True}, {"n": 3})
    streamed, buffered, streamed_again = posts
    assert streamed.header("lambda-runtime-function-response-mode") == "streaming"
    assert streamed.body == b"streamed 1" and streamed.header("content-type") == "text/plain"
    assert buffered.header("lambda-runtime-function-response-mode") is None
    assert buffered.header("transfer-encoding") is None
    assert buffered.header("content-type") == "application/json"
    assert buffered.body == b'{"answer":"buffered","n":2}' and buffered.status == 202
    assert streamed_again.body == b"streamed 3"
    assert b"the value is ignored" not in proc.stdout


async def test_generator_returning_a_value_unyielded_answers_buffered(fake_api):
    posts, _ = await _run(fake_api, "generator_or_buffered", {"buffered": True}, {})
    assert posts[0].body == b'{"answer":"buffered"}'
    assert posts[0].header("content-type") == "application/json"
    assert posts[1].header("lambda-runtime-function-response-mode") == "streaming"
    assert posts[1].body == b"streamed"


async def test_init_hook_runs_on_the_loop_before_the_first_next(fake_api):
    posts, proc = await _run(fake_api, "with_init", {})
    assert posts[0].json() == {"init_ran": True, "same_loop": True}
    assert proc.stdout.count(b"init hook ran") == 1


async def test_failing_init_hook_is_an_init_error(fake_api):
    fake_api.push({})
    proc = await run_runtime([sys.executable, "-m", "aruntime", H + "with_failing_init"], fake_api)
    assert await proc.wait(20) == 1
    (post,) = [ex for ex in fake_api.exchanges if ex.method == "POST"]
    assert post.target == "/2018-06-01/runtime/init/error"
    assert post.header("lambda-runtime-function-error-type") == "ValueError"
    error = post.json()
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "the start-up hook failed"
    assert any("hooks_handlers.py" in frame for frame in error["stackTrace"])
    # No invocation was taken: init failed before the first /next.
    assert not [ex for ex in fake_api.exchanges if ex.target.endswith("/next")]
    assert b"[ERROR] ValueError: the start-up hook failed" in proc.stdout
