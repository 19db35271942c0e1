"""The ASGI request cycle in process: what reaches the response stream, when, and what the app
sees of a lost stream (aruntime/web/cycle.py). Raw ASGI apps, no framework."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from aruntime.stream import HTTP_INTEGRATION, ResponseStream, StreamDisconnectedError
from aruntime.web import cycle
from aruntime.web.cycle import ClientDisconnected, serve_buffered, serve_streaming
from aruntime.web.events import parse

from . import http_events as E


class Sink:
    """Records what a ResponseStream writes; `fail_after` sends then raise as a lost stream."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.events: list[tuple[str, object]] = []
        self.fail_after = fail_after

    async def open(self, content_type: str, first: bytes = b"") -> None:
        self.events.append(("open", content_type))
        if first:  # the first chunk travels with the head (one write on the wire)
            await self.send(first)

    async def send(self, data: bytes) -> None:
        if self.fail_after is not None and len(self.events) > self.fail_after:
            raise StreamDisconnectedError("gone")
        self.events.append(("send", data))

    async def finish(self, content_type: str) -> None:
        self.events.append(("finish", content_type))


def request(target: str = "/", body: bytes | None = None, fmt: str = "v2"):
    return parse(E.make(fmt, "POST" if body else "GET", target, body=body))


def start(status: int = 200, headers=((b"content-type", b"text/plain"),)):
    return {"type": "http.response.start", "status": status, "headers": list(headers)}


def body(data: bytes, more: bool = False):
    return {"type": "http.response.body", "body": data, "more_body": more}


async def test_each_body_message_is_one_chunk_after_the_prelude():
    async def app(scope, receive, send):
        assert await receive() == {"type": "http.request", "body": b"in", "more_body": False}
        await send(start(201))
        await send(body(b"a", True))
        await send(body(b"", True))  # nothing to send: no empty chunk
        await send(body(b"b", True))
        await send(body(b""))

    sink = Sink()
    await serve_streaming(app, request(body=b"in"), ResponseStream(sink))
    assert sink.events == [
        ("open", HTTP_INTEGRATION),
        ("send", b'{"statusCode":201,"headers":{"content-type":"text/plain"},"cookies":[]}'),
        ("send", b"\0" * 8), ("send", b"a"), ("send", b"b"), ("finish", HTTP_INTEGRATION)]


async def test_v1_prelude_and_the_stream_ends_before_background_work():
    release = asyncio.Event()
    sink = Sink()

    async def app(scope, receive, send):
        await send(start(200, [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]))
        await send(body(b"done"))
        # Background work (Starlette's BackgroundTasks) runs after the caller has it all.
        assert sink.events[-1] == ("finish", HTTP_INTEGRATION)
        assert (await receive())["type"] == "http.request"
        assert await receive() == {"type": "http.disconnect"}
        await release.wait()

    task = asyncio.ensure_future(serve_streaming(app, request(fmt="v1"), ResponseStream(sink)))
    await asyncio.sleep(0.01)
    assert sink.events[1] == ("send", b'{"statusCode":200,"headers":{},"multiValueHeaders":'
                                      b'{"set-cookie":["a=1","b=2"]}}')
    assert not task.done()
    release.set()
    await task


async def test_failure_before_the_response_is_a_500_and_a_log_line(caplog):
    async def app(scope, receive, send):
        raise KeyError("boom")

    sink = Sink()
    with caplog.at_level(logging.ERROR, "aruntime.web"):
        await serve_streaming(app, request(), ResponseStream(sink))
    assert json.loads(sink.events[1][1])["statusCode"] == 500
    assert sink.events[3] == ("send", b"Internal Server Error")
    (record,) = caplog.records
    assert record.getMessage() == "Exception in ASGI app before its response started; answered 500"
    assert record.exc_info[0] is KeyError


async def test_failure_midstream_propagates_for_the_trailers():
    async def app(scope, receive, send):
        await send(start())
        await send(body(b"part", True))
        raise ValueError("midway")

    sink = Sink()
    with pytest.raises(ValueError, match="midway"):
        await serve_streaming(app, request(), ResponseStream(sink))
    assert ("send", b"part") in sink.events and sink.events[-1][0] == "send"  # not finished


async def test_failure_after_the_response_completed_is_only_logged(caplog):
    async def app(scope, receive, send):
        await send(start(500))
        await send(body(b"Internal Server Error"))
        raise KeyError("re-raised by Starlette's ServerErrorMiddleware")

    sink = Sink()
    with caplog.at_level(logging.ERROR, "aruntime.web"):
        await serve_streaming(app, request(), ResponseStream(sink))
    assert sink.events[-1][0] == "finish"
    assert caplog.records[0].getMessage() == "Exception in ASGI app after its response completed"


async def test_system_exit_in_the_app_is_a_500_not_the_end_of_the_loop(caplog):
    async def app(scope, receive, send):
        raise SystemExit(3)

    sink = Sink()
    with caplog.at_level(logging.ERROR, "aruntime.web"):
        await serve_streaming(app, request(), ResponseStream(sink))
    assert json.loads(sink.events[1][1])["statusCode"] == 500
    assert caplog.records[0].exc_info[0] is SystemExit


async def test_lost_stream_answers_receive_with_disconnect_then_send_raises():
    seen: list[object] = []

    async def app(scope, receive, send):
        await receive()
        await send(start())
        await send(body(b"tick", True))
        seen.append(await receive())  # parked until the stream is lost
        try:
            await send(body(b"late", True))
        except OSError as e:  # ASGI 2.4: an OSError subclass
            seen.append(type(e))

    sink = Sink()
    task = asyncio.ensure_future(serve_streaming(app, request(), ResponseStream(sink)))
    await asyncio.sleep(0.01)
    task.cancel()  # what the invoke pipeline does when the Runtime API closes the stream
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == [{"type": "http.disconnect"}, ClientDisconnected]
    assert ("send", b"late") not in sink.events


async def test_lost_stream_an_app_that_does_not_notice_is_cancelled(monkeypatch):
    monkeypatch.setattr(cycle, "DISCONNECT_GRACE_S", 0.05)
    cleaned: list[str] = []

    async def app(scope, receive, send):
        await send(start())
        try:
            await asyncio.sleep(60)
        finally:
            cleaned.append("finally ran")

    task = asyncio.ensure_future(serve_streaming(app, request(), ResponseStream(Sink())))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)
    assert cleaned == ["finally ran"]


async def test_write_to_a_lost_stream_raises_an_oserror_in_the_app():
    seen: list[object] = []

    async def app(scope, receive, send):
        await send(start())
        try:
            await send(body(b"x", True))
        except OSError as e:
            seen.append(type(e).__name__)
            raise

    with pytest.raises(StreamDisconnectedError):
        await serve_streaming(app, request(), ResponseStream(Sink(fail_after=2)))
    assert seen == ["StreamDisconnectedError"]


async def test_buffered_joins_the_body():
    async def app(scope, receive, send):
        await send(start(200, [(b"content-type", b"application/json")]))
        await send(body(b'{"a":', True))
        await send(body(b"1}"))

    out = await serve_buffered(app, request())
    assert out == {"statusCode": 200, "headers": {"content-type": "application/json"},
                   "cookies": [], "body": '{"a":1}', "isBase64Encoded": False}


async def test_buffered_failure_midway_is_a_clean_500(caplog):
    async def app(scope, receive, send):
        await send(start(200))
        await send(body(b"partial", True))
        raise RuntimeError("midway")

    with caplog.at_level(logging.ERROR, "aruntime.web"):
        out = await serve_buffered(app, request(fmt="alb"))
    assert out == {"statusCode": 500, "statusDescription": "500 Internal Server Error",
                   "headers": {"content-type": "text/plain; charset=utf-8"},
                   "body": "Internal Server Error", "isBase64Encoded": False}
    assert caplog.records[0].exc_info[0] is RuntimeError


async def test_app_that_never_answers_or_breaks_the_protocol(caplog):
    async def silent(scope, receive, send):
        return None

    with caplog.at_level(logging.ERROR, "aruntime.web"):
        out = await serve_buffered(silent, request())
    assert out["statusCode"] == 500
    assert "returned without starting a response" in caplog.records[0].getMessage()

    async def twice(scope, receive, send):
        await send(start())
        await send(start())

    sink = Sink()
    caplog.clear()
    with caplog.at_level(logging.ERROR, "aruntime.web"):
        await serve_streaming(twice, request(), ResponseStream(sink))  # nothing out yet: a 500
    assert json.loads(sink.events[1][1])["statusCode"] == 500
    assert str(caplog.records[0].exc_info[1]) == "ASGI: http.response.start sent twice"


async def test_an_app_cancelling_its_own_send_cannot_cut_the_close_short():
    """sse-starlette cancels its task group once receive() answers http.disconnect, possibly
    while its final send is still closing the stream: the close must complete anyway, before
    the handler returns (or the next /next would share a connection with a half-done POST)."""
    release = asyncio.Event()

    class SlowSink(Sink):
        async def finish(self, content_type: str) -> None:
            await release.wait()
            await super().finish(content_type)

    sink = SlowSink()

    async def app(scope, receive, send):
        await receive()
        await send(start())
        closing = asyncio.ensure_future(send(body(b"last")))
        await asyncio.sleep(0.01)
        closing.cancel()  # the app gives up on its send midway

    serving = asyncio.ensure_future(serve_streaming(app, request(), ResponseStream(sink)))
    await asyncio.sleep(0.05)
    assert not serving.done()  # still waiting for the close the app abandoned
    release.set()
    await asyncio.wait_for(serving, 2)
    assert sink.events[-2:] == [("send", b"last"), ("finish", HTTP_INTEGRATION)]


async def test_head_waits_for_the_end_of_the_loop_step():
    """A whole answer sent at once goes out as one operation; a head followed by a pause goes
    out alone, before the first chunk (an event stream's caller sees the headers at once)."""
    release = asyncio.Event()
    sink = Sink()

    async def app(scope, receive, send):
        await send(start())
        await release.wait()
        await send(body(b"late"))

    serving = asyncio.ensure_future(serve_streaming(app, request(), ResponseStream(sink)))
    await asyncio.sleep(0.01)
    assert [e[0] for e in sink.events] == ["open", "send", "send"]  # prelude and separator
    release.set()
    await serving
    assert sink.events[3:] == [("send", b"late"), ("finish", HTTP_INTEGRATION)]


async def test_error_between_the_head_and_the_first_body_is_still_a_500(caplog):
    async def app(scope, receive, send):
        await send(start(200, [(b"content-type", b"application/json")]))
        raise ValueError("rendering the body failed")

    sink = Sink()
    with caplog.at_level(logging.ERROR, "aruntime.web"):
        await serve_streaming(app, request(), ResponseStream(sink))
    assert json.loads(sink.events[1][1])["statusCode"] == 500  # the 200 never went out
    assert caplog.records[0].exc_info[0] is ValueError
