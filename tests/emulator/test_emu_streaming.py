"""Streamed responses reach callers chunk by chunk (a test-only h11 runtime streams them)."""

from __future__ import annotations

import asyncio
import logging
import json
import time

import aiohttp
import pytest

from .helpers import ECHO, LIMIT, STREAM_RUNTIME, emulator, invoke, sent_times, stream_invoke

CHUNKS = ["c0", "c1", "c2", "c3"]


def stream_emulator(**kwargs):  # type: ignore[no-untyped-def]
    kwargs.setdefault("runtime_command", STREAM_RUNTIME)
    return emulator(ECHO, **kwargs)


async def test_stream_invoke_forwards_each_chunk_as_it_arrives() -> None:
    async with stream_emulator() as emu:
        headers, messages = await stream_invoke(emu, {"chunks": CHUNKS, "delay": 0.4})
        assert headers["Content-Type"] == "application/vnd.amazon.eventstream"
        assert headers["X-Amz-Executed-Version"] == "$LATEST"
        kinds = [m.headers[":event-type"] for _, m in messages]
        assert kinds == ["PayloadChunk"] * 4 + ["InvokeComplete"]
        # One PayloadChunk per runtime chunk, bytes intact.
        assert [m.payload for _, m in messages[:4]] == [c.encode() for c in CHUNKS]
        assert json.loads(messages[-1][1].payload) == {}
        sent = sent_times(emu.logs)
        arrived = [t for t, _ in messages[:4]]
        # The first chunk reached the caller well before the last one was even written.
        assert arrived[0] < sent[3] - 0.8
        assert all(arrived[i] >= sent[i] - 0.05 for i in range(4))
        await emu.logs.wait_for("RESPONSE 202")


async def test_midstream_error_trailers_surface_in_invoke_complete() -> None:
    error_body = {"errorMessage": "broke midway", "errorType": "ValueError", "stackTrace": []}
    event = {"chunks": ["part1", "part2"], "error": {"type": "Function.ValueError", "body": error_body}}
    async with stream_emulator() as emu:
        _, messages = await stream_invoke(emu, event)
        assert [m.payload for _, m in messages[:2]] == [b"part1", b"part2"]
        complete = messages[-1][1]
        assert complete.headers[":event-type"] == "InvokeComplete"
        payload = json.loads(complete.payload)
        assert payload["ErrorCode"] == "Function.ValueError"
        assert json.loads(payload["ErrorDetails"]) == error_body
        assert "Status: error\tError Type: Function.ValueError" in await emu.logs.wait_for("REPORT")
        # Plain Invoke of the same function: the buffered body is the error.
        status, headers, body = await invoke(emu, event)
        assert status == 200 and headers["X-Amz-Function-Error"] == "Unhandled"
        assert json.loads(body) == error_body


async def test_plain_invoke_buffers_a_streamed_body() -> None:
    async with stream_emulator() as emu:
        status, headers, body = await invoke(emu, {"chunks": ["ab", "cd", "ef"], "delay": 0.05})
        assert status == 200 and "X-Amz-Function-Error" not in headers
        assert body == b"abcdef"


async def test_function_url_applies_prelude_and_streams_sse() -> None:
    prelude = {
        "statusCode": 201,
        "headers": {"Content-Type": "text/event-stream", "X-Custom": "yes"},
        "cookies": ["session=abc; Path=/", "theme=dark"],
    }
    events = [f"data: event {i}\n\n" for i in range(4)]
    payload = {
        "chunks": events,
        "delay": 0.4,
        "content_type": "application/vnd.awslambda.http-integration-response",
        "prelude": prelude,
    }
    async with stream_emulator() as emu:
        # stream_runtime.py reads its script from the URL event's body.
        async def call() -> tuple[aiohttp.ClientResponse, list[tuple[float, bytes]]]:
            got: list[tuple[float, bytes]] = []
            async with aiohttp.ClientSession() as session:
                async with session.post(emu.url + "/chat?x=1", json=payload) as r:
                    async for data in r.content.iter_any():
                        got.append((time.time(), data))
                    return r, got

        response, got = await asyncio.wait_for(call(), LIMIT)
        assert response.status == 201
        assert response.headers["Content-Type"] == "text/event-stream"
        assert response.headers["X-Custom"] == "yes"
        assert response.headers.getall("Set-Cookie") == prelude["cookies"]
        assert b"".join(d for _, d in got).decode() == "".join(events)
        sent = sent_times(emu.logs)
        first_event_at = next(t for t, d in got if b"event 0" in d)
        assert first_event_at < sent[3] - 0.8
        # SSE events arrive one by one, not as one block at the end.
        assert len(got) >= 3


async def test_function_url_without_prelude_streams_with_the_runtime_content_type() -> None:
    async with stream_emulator() as emu:
        async with aiohttp.ClientSession() as session:
            body = {"chunks": ["x", "y"], "content_type": "text/plain"}
            async with session.post(emu.url + "/", json=body, timeout=aiohttp.ClientTimeout(total=LIMIT)) as r:
                assert r.status == 200
                assert r.headers["Content-Type"] == "text/plain"
                assert await r.read() == b"xy"


async def test_max_concurrency_runs_invocations_in_parallel() -> None:
    event = {"chunks": ["a", "b"], "delay": 1.0}
    async with stream_emulator(env={"AWS_LAMBDA_MAX_CONCURRENCY": "2"}) as emu:
        await invoke(emu, {"chunks": ["warm"]})
        started = time.monotonic()
        results = await asyncio.gather(invoke(emu, event), invoke(emu, event))
        assert [r[2] for r in results] == [b"ab", b"ab"]
        assert time.monotonic() - started < 1.8  # two 1 s streams overlapped


async def test_timeout_mid_stream_ends_with_sandbox_timedout() -> None:
    async with stream_emulator(timeout=1.0) as emu:
        _, messages = await stream_invoke(emu, {"chunks": ["early", "late"], "delay": 5})
        assert messages[0][1].payload == b"early"
        complete = json.loads(messages[-1][1].payload)
        assert complete["ErrorCode"] == "Sandbox.Timedout"
        assert "Task timed out after 1.00 seconds" in complete["ErrorDetails"]
        # Restarted: the next stream works.
        _, messages = await stream_invoke(emu, {"chunks": ["again"]})
        assert messages[0][1].payload == b"again"


async def test_caller_leaving_mid_stream_does_not_block_the_function(caplog: pytest.LogCaptureFixture) -> None:
    async with stream_emulator(timeout=10) as emu:
        async def leave_early() -> None:
            async with aiohttp.ClientSession() as session:
                body = {"chunks": ["x" * 65536] * 40, "delay": 0.02}
                async with session.post(emu.url + "/", json=body) as r:
                    await r.content.readexactly(10)  # then hang up

        await asyncio.wait_for(leave_early(), LIMIT)
        await emu.logs.wait_for("RESPONSE 202")  # the runtime still finished its stream
        status, _, body = await invoke(emu, {"chunks": ["next"], "buffered": True})
        assert (status, body) == (200, b"next")
        await emu.logs.wait_for("the caller of the Function URL (POST /) hung up before the end of the answer")
    # A caller hanging up is ordinary: one log line, no aiohttp traceback.
    assert not [r for r in caplog.records if r.name.startswith("aiohttp") and r.levelno >= logging.ERROR]


async def test_stream_invoke_of_an_http_answer_starts_with_the_prelude() -> None:
    """InvokeWithResponseStream of a Function-URL-style function: the first PayloadChunk holds
    the prelude's JSON and its 8 NULs (as on Lambda, where callers strip it themselves), however
    the runtime split them; the body's chunks follow one by one."""
    prelude = {"statusCode": 200, "headers": {"content-type": "text/plain"}, "cookies": []}
    for split in (False, True):
        event = {"chunks": ["body1", "body2"], "prelude": prelude, "split_prelude": split,
                 "content_type": "application/vnd.awslambda.http-integration-response"}
        async with stream_emulator() as emu:
            _, messages = await stream_invoke(emu, event)
        payloads = [m.payload for _, m in messages if m.headers[":event-type"] == "PayloadChunk"]
        assert payloads == [json.dumps(prelude).encode() + b"\0" * 8, b"body1", b"body2"], split
