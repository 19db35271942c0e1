"""Streamed responses on the wire (docs/SPEC.md §3): head, chunks, terminator, trailers, timing, hang-ups."""

from __future__ import annotations

import asyncio
import base64
import json
import sys

import pytest

from fakeapi import FakeRuntimeAPI, run_runtime

H = "tests.handlers.stream_handlers."
TRAILER = "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body"


async def serve(api: FakeRuntimeAPI, handler: str, *events, env=None, n_exchanges=None):
    """Run the runtime on `events`, wait for it to exit, return (exchanges, process)."""
    ids = [api.push(e) for e in events]
    api.finish()
    proc = await run_runtime([sys.executable, "-m", "aruntime", H + handler], api, env=env)
    code = await proc.wait(20)
    assert code == 1, proc.stderr  # /next answered 500 by finish(): the normal end
    return ids, [ex for ex in api.exchanges if ex.method == "POST"], proc


def chunked(*chunks: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)


async def test_generator_chunks_byte_exact(fake_api):
    (rid,), (post,), _ = await serve(fake_api, "two_chunks", {})
    head = (
        f"POST /2018-06-01/runtime/invocation/{rid}/response HTTP/1.1\r\n"
        f"Host: {fake_api.address}\r\n"
        f"User-Agent: aruntime/0.1.0 (python/{'.'.join(map(str, sys.version_info[:3]))})\r\n"
        "Lambda-Runtime-Function-Response-Mode: streaming\r\n"
        "Transfer-Encoding: chunked\r\n"
        f"Trailer: {TRAILER}\r\n"
        "Content-Type: application/octet-stream\r\n"
        "\r\n"
    ).encode()
    assert post.raw == head + chunked(b"a", b"bc") + b"0\r\n\r\n"
    assert [c for _, c in post.chunks] == [b"a", b"bc"]
    assert post.status == 202 and post.trailers == []


async def test_http_prelude_sse(fake_api):
    _, (post,), _ = await serve(fake_api, "sse_prelude", {})
    assert post.header("content-type") == "application/vnd.awslambda.http-integration-response"
    prelude = b'{"statusCode":201,"headers":{"x-a":"1"},"cookies":["k=v"]}'
    assert [c for _, c in post.chunks] == [  # the JSON and its separator: two chunks (docs/SPEC.md §8)
        prelude, b"\0" * 8, b'event: tok\nid: 1\ndata: {"n":1}\n\n', b"data: bye\n\n"]


async def test_prelude_sent_with_empty_body(fake_api):
    _, (post,), _ = await serve(fake_api, "prelude_only", {})
    assert post.body == b'{"statusCode":204,"headers":{},"cookies":[]}' + b"\0" * 8
    assert post.raw.endswith(b"\r\n0\r\n\r\n")


async def test_error_before_first_byte_goes_to_error(fake_api):
    (rid,), (post,), _ = await serve(fake_api, "fail_before_first_byte", {})
    assert post.target.endswith(f"/{rid}/error")
    assert post.header("lambda-runtime-function-error-type") == "Function.ValueError"
    assert post.header("transfer-encoding") is None
    body = post.json()
    assert (body["errorType"], body["errorMessage"], body["requestId"]) == ("ValueError", "before", rid)
    assert "fail_before_first_byte" in body["stackTrace"][0]


async def test_error_midstream_trailers_then_next_invocation(fake_api):
    (rid, rid2), (post, post2), _ = await serve(fake_api, "fail_midstream", {}, {})
    assert [c for _, c in post.chunks] == [b"part"]
    assert post.trailers[0] == ("lambda-runtime-function-error-type", "Function.KeyError")
    name, value = post.trailers[1]
    assert name == "lambda-runtime-function-error-body"
    error = json.loads(base64.b64decode(value, validate=True))
    assert list(error) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert (error["errorType"], error["errorMessage"], error["requestId"]) == ("KeyError", "'midway'", rid)
    assert 'raise KeyError("midway")' in error["stackTrace"][-1]
    # The trailer section on the wire: terminator, both trailers, blank line.
    assert post.raw.endswith(
        b"0\r\nLambda-Runtime-Function-Error-Type: Function.KeyError\r\n"
        b"Lambda-Runtime-Function-Error-Body: " + value.encode() + b"\r\n\r\n")
    assert post2.target.endswith(f"/{rid2}/response") and post2.status == 202


async def test_chunks_arrive_when_produced(fake_api):
    _, (post,), _ = await serve(fake_api, "slow", {"n": 3, "gap": 0.4})
    times = [t for t, _ in post.chunks]
    assert [c for _, c in post.chunks] == [b"chunk0", b"chunk1", b"chunk2"]
    gaps = [b - a for a, b in zip(times, times[1:])]
    # Each chunk was on the wire ~0.4 s before the next one: none were held back.
    assert all(g > 0.3 for g in gaps), gaps
    assert post.done - times[-1] < 0.3


async def test_hangup_cancels_handler_and_runtime_goes_on(fake_api, tmp_path):
    marker = tmp_path / "marker"
    fake_api.answer("/response", 0, times=1)  # close the connection as soon as the head arrives
    rid = fake_api.push({"marker": str(marker)})
    rid2 = fake_api.push({"marker": str(tmp_path / "second")})
    proc = await run_runtime([sys.executable, "-m", "aruntime", H + "cancellable"], fake_api)
    # The second invocation proves the loop went on; its stream is never closed by the fake.
    await fake_api.wait_for(lambda ex: ex.target.endswith("/next") and ex.status == 200 and
                            len([e for e in fake_api.exchanges if e.target.endswith("/next")]) >= 2,
                            timeout=10)
    for _ in range(100):
        if marker.exists():
            break
        await asyncio.sleep(0.05)
    assert marker.read_text() == "cancelled"
    for _ in range(100):
        if f"closed the response stream of {rid}".encode() in proc.stdout:
            break
        await asyncio.sleep(0.05)
    assert f"the Runtime API closed the response stream of {rid}; the handler was cancelled".encode() in proc.stdout
    assert proc.returncode is None  # still serving
    proc.kill()


async def test_writer_handler_serialises_writes_and_closes(fake_api):
    _, (post,), proc = await serve(fake_api, "writer", {})
    assert post.header("content-type") == "text/x-log"
    chunks = [c for _, c in post.chunks]
    assert sorted(chunks) == sorted([f"{t}{i};".encode() for t in "AB" for i in range(3)])
    assert len(chunks) == 6  # one chunk per write, none merged
    out = proc.stdout.decode()
    assert "write after close: write to a response stream that is closed" in out
    assert "streaming handler returned 'dict'; the value is ignored" in out


async def test_writer_closed_for_the_handler(fake_api):
    _, (a,), _ = await serve(fake_api, "writer_no_close", {})
    assert a.body == b'{"statusCode":200,"headers":{"content-type":"text/plain"},"cookies":[]}' + b"\0" * 8 + b"body"


async def test_writer_that_writes_nothing_sends_empty_stream(fake_api):
    _, (a,), _ = await serve(fake_api, "writer_silent", {})
    assert a.header("transfer-encoding") == "chunked" and a.body == b"" and a.status == 202


async def test_bad_item_reported_in_trailers(fake_api):
    _, (post,), _ = await serve(fake_api, "bad_item", {})
    assert post.body == b"ok"
    assert post.trailer("lambda-runtime-function-error-type") == "Function.TypeError"
    error = json.loads(base64.b64decode(post.trailer("lambda-runtime-function-error-body")))
    assert error["errorMessage"] == "a response stream takes bytes, str or HttpResponse, not dict"


async def test_non_202_after_stream_is_checked_and_loop_goes_on(fake_api):
    fake_api.answer("/response", 413, times=1)
    _, posts, proc = await serve(fake_api, "two_chunks", {}, {})
    assert [p.status for p in posts] == [413, 202]
    assert b"answered 413" in proc.stdout


async def test_500_after_stream_exits(fake_api):
    fake_api.answer("/response", 500, times=1)
    fake_api.push({})
    fake_api.push({})
    proc = await run_runtime([sys.executable, "-m", "aruntime", H + "two_chunks"], fake_api)
    assert await proc.wait(15) == 1
    assert len([e for e in fake_api.exchanges if e.method == "POST"]) == 1
    assert b"answered 500" in proc.stderr


async def test_generator_return_value_is_logged_as_ignored(fake_api):
    _, (post,), proc = await serve(fake_api, "returns_value", {})
    assert post.body == b"x" and post.status == 202
    assert b"[WARNING]\t" in proc.stdout
    assert b"streaming handler returned 'str'; the value is ignored" in proc.stdout
