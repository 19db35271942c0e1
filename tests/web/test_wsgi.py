"""The WSGI bridge in process: PEP 3333 semantics, streaming from a worker thread without
blocking the loop, lost streams releasing the thread (aruntime/web/wsgi_bridge.py)."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time

import pytest

from aruntime.stream import ResponseStream
from aruntime.web import wsgi
from aruntime.web.wsgi_bridge import build_environ
from aruntime.web.events import parse

from . import http_events as E
from .test_cycle import Sink


def sent(sink: Sink) -> list[bytes]:
    return [data for kind, data in sink.events if kind == "send"]  # type: ignore[misc]


async def stream_through(app, event=None, **kwargs) -> Sink:
    sink = Sink()
    handler = wsgi(app, invoke_mode="response_stream", **kwargs)
    await handler(event or E.v2("GET", "/"), None, ResponseStream(sink))  # type: ignore[arg-type]
    return sink


async def test_body_streams_chunk_by_chunk_and_the_loop_runs_meanwhile():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        for i in range(3):
            time.sleep(0.1)  # blocking, as WSGI apps are
            yield b"chunk %d" % i

    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.ensure_future(ticker())
    started = time.monotonic()
    sink = await stream_through(app)
    ticking.cancel()
    assert sent(sink)[2:] == [b"chunk 0", b"chunk 1", b"chunk 2"]
    assert json.loads(sent(sink)[0])["headers"] == {"content-type": "text/plain"}
    assert time.monotonic() - started >= 0.3
    assert ticks >= 10  # the loop kept running while the app slept in its thread


async def test_headers_wait_for_the_first_chunk_so_an_early_error_is_a_500():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        raise RuntimeError("after start_response, before any body")

    sink = await stream_through(app)
    assert json.loads(sent(sink)[0])["statusCode"] == 500
    assert sent(sink)[2] == b"Internal Server Error"


async def test_start_response_with_exc_info_replaces_the_unsent_head():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise KeyError("x")
        except KeyError:
            start_response("503 Service Unavailable", [("Retry-After", "1")], sys.exc_info())
        return [b"try later"]

    sink = await stream_through(app)
    prelude = json.loads(sent(sink)[0])
    assert prelude["statusCode"] == 503 and prelude["headers"] == {"retry-after": "1"}
    assert sent(sink)[2:] == [b"try later"]


async def test_error_after_the_first_chunk_propagates_and_close_is_called():
    closed: list[str] = []

    class Body:
        def __iter__(self):
            yield b"first"
            raise ValueError("midway")

        def close(self):
            closed.append(threading.current_thread().name)

    def app(environ, start_response):
        start_response("200 OK", [])
        return Body()

    with pytest.raises(ValueError, match="midway"):
        await stream_through(app)
    assert len(closed) == 1 and closed[0].startswith("aruntime-wsgi")


async def test_write_callable_and_str_chunks():
    def app(environ, start_response):
        write = start_response("200 OK", [("X-A", "1")])
        write(b"written ")
        return [b"", b"yielded"]

    assert sent(await stream_through(app))[2:] == [b"written ", b"yielded"]

    def bad(environ, start_response):
        start_response("200 OK", [])
        return ["a str"]

    sink = await stream_through(bad)
    assert json.loads(sent(sink)[0])["statusCode"] == 500


async def test_buffered_answer_and_empty_body():
    def app(environ, start_response):
        start_response("204 No Content", [("X-A", "1")])
        return []

    handler = wsgi(app, invoke_mode="buffered")
    out = await handler(E.alb("GET", "/"), None, None)  # type: ignore[arg-type]
    assert out == {"statusCode": 204, "statusDescription": "204 No Content",
                   "headers": {"x-a": "1"}, "body": "", "isBase64Encoded": False}


def test_environ_from_a_rest_event():
    event = E.v1("POST", "/items/3?x=1&y=a%20b",
                 headers=[("Content-Type", "text/plain"), ("Cookie", "a=1"), ("Cookie", "b=2"),
                          ("X-Multi", "m1"), ("X-Multi", "m2")], body=b"hello")
    request = parse(event, "ctx")
    environ = build_environ(request.scope, request.body)
    assert environ["SCRIPT_NAME"] == "/prod" and environ["PATH_INFO"] == "/items/3"
    assert environ["QUERY_STRING"] == "x=1&y=a+b" and environ["REQUEST_METHOD"] == "POST"
    assert environ["CONTENT_TYPE"] == "text/plain" and environ["CONTENT_LENGTH"] == "5"
    assert environ["HTTP_COOKIE"] == "a=1; b=2" and environ["HTTP_X_MULTI"] == "m1,m2"
    assert environ["wsgi.input"].read() == b"hello" and environ["wsgi.url_scheme"] == "https"
    assert environ["REMOTE_ADDR"] == "203.0.113.9"
    assert environ["SERVER_NAME"] == "abc123.execute-api.us-east-1.amazonaws.com"
    assert environ["SERVER_PORT"] == "443" and environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["aws.event"] is event and environ["aws.context"] == "ctx"
    # PEP 3333 strings: UTF-8 bytes as latin-1.
    environ = build_environ(parse(E.v2("GET", "/caf%C3%A9")).scope, b"")
    assert environ["PATH_INFO"] == "/café".encode().decode("latin-1")


async def test_lost_stream_releases_the_thread_and_closes_the_body():
    closed = threading.Event()
    yielded = []

    def app(environ, start_response):
        start_response("200 OK", [])
        try:
            for i in range(1000):
                yielded.append(i)
                yield b"tick"
                time.sleep(0.02)
        finally:
            closed.set()

    handler = wsgi(app, invoke_mode="response_stream")
    task = asyncio.ensure_future(handler(E.v2("GET", "/"), None, ResponseStream(Sink())))  # type: ignore[arg-type]
    await asyncio.sleep(0.1)
    task.cancel()  # the pipeline, when the Runtime API closes the stream
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.get_running_loop().run_in_executor(None, closed.wait, 2)
    count = len(yielded)
    await asyncio.sleep(0.1)
    assert len(yielded) == count  # stopped for good


async def test_concurrency_uses_one_thread_per_invocation(monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_MAX_CONCURRENCY", "4")
    names: set[str] = set()
    together = threading.Barrier(4, timeout=10)  # breaks unless all four run at once

    def app(environ, start_response):
        names.add(threading.current_thread().name)
        together.wait()
        start_response("200 OK", [])
        return [b"ok"]

    handler = wsgi(app, invoke_mode="buffered")
    outs = await asyncio.gather(*(handler(E.v2("GET", "/"), None, None)  # type: ignore[arg-type]
                                  for _ in range(4)))
    assert [o["body"] for o in outs] == ["ok"] * 4 and len(names) == 4
    with pytest.raises(ValueError, match="threads must be at least 1"):
        wsgi(app, threads=0)
