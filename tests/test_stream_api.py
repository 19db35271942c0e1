"""The public streaming helpers, without sockets: SSE framing, the HTTP prelude, marking."""

from __future__ import annotations

import asyncio

import pytest

import aruntime
from aruntime import HttpResponse, sse
from aruntime.loader import Kind, kind_of
from aruntime.stream import ResponseStream, StreamClosedError


def test_sse_fields_and_order():
    assert sse("hi") == b"data: hi\n\n"
    assert sse(b"raw", event="tok", id="7", retry=1500) == b"event: tok\nid: 7\nretry: 1500\ndata: raw\n\n"


def test_sse_multiline_data_becomes_several_data_lines():
    assert sse("a\nb\r\nc\rd") == b"data: a\ndata: b\ndata: c\ndata: d\n\n"
    # A trailing newline survives: the client rebuilds "x\n".
    assert sse("x\n") == b"data: x\ndata: \n\n"
    assert sse("") == b"data: \n\n"


def test_sse_json_for_other_data():
    assert sse({"token": "héllo", "n": [1, 2]}) == 'data: {"token":"héllo","n":[1,2]}\n\n'.encode()
    assert sse(3) == b"data: 3\n\n"


@pytest.mark.parametrize("field", ["event", "id"])
def test_sse_rejects_line_breaks_in_fields(field):
    with pytest.raises(ValueError):
        sse("x", **{field: "a\nb"})


def test_prelude_bytes():
    r = HttpResponse(status_code=302, headers={"Location": "/x"}, cookies=["a=1", "b=2; Secure"])
    assert r.prelude() == (b'{"statusCode":302,"headers":{"Location":"/x"},'
                           b'"cookies":["a=1","b=2; Secure"]}' + b"\0" * 8)
    assert HttpResponse().prelude() == b'{"statusCode":200,"headers":{},"cookies":[]}' + b"\0" * 8


def test_prelude_never_has_raw_nul_and_is_capped():
    assert b"\0" not in HttpResponse(headers={"x": "a\0b"}).prelude()[:-8]
    with pytest.raises(ValueError, match="16384"):
        HttpResponse(headers={"x": "y" * 17000}).prelude()


def test_streaming_decorator_forms_and_kinds():
    @aruntime.streaming
    async def writer(event, context, stream): ...

    @aruntime.streaming(content_type="text/event-stream")
    def gen(event, context):
        yield b""

    async def agen(event, context):
        yield b""

    assert writer.__aruntime_streaming__.content_type == "application/octet-stream"
    assert gen.__aruntime_streaming__.content_type == "text/event-stream"
    assert (kind_of(writer), kind_of(gen), kind_of(agen)) == (Kind.WRITER, Kind.GENERATOR, Kind.ASYNC_GENERATOR)


class RecordingSink:
    def __init__(self):
        self.calls = []

    async def open(self, content_type, first=b""):
        self.calls.append(("open", content_type, first))

    async def send(self, data):
        self.calls.append(("send", data))

    async def finish(self, content_type):
        self.calls.append(("finish", content_type))


async def test_response_stream_opens_lazily_and_closes_once():
    sink = RecordingSink()
    stream = ResponseStream(sink, "text/plain")
    assert sink.calls == [] and not stream.started
    await stream.write("é")
    await stream.write(b"")  # nothing to send, but no error either
    with pytest.raises(StreamClosedError):
        stream.content_type = "x/y"
    with pytest.raises(StreamClosedError):
        await stream.write(HttpResponse())
    await stream.close()
    await stream.close()
    with pytest.raises(StreamClosedError):
        await stream.write(b"late")
    # The head and the first chunk go to the sink together (one write on the wire).
    assert sink.calls == [("open", "text/plain", "é".encode()), ("finish", "text/plain")]


async def test_response_stream_rejects_other_types():
    stream = ResponseStream(RecordingSink())
    with pytest.raises(TypeError, match="not dict"):
        await stream.write({"a": 1})  # type: ignore[arg-type]
