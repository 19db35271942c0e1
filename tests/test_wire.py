"""The two wire engines (h11, the default; httptools with the `fast` extra) give the same events.

Same bytes in, same `Response` out — fed whole and split at every byte — and the same failures.
Request bytes are compared in tests/test_protocol.py, where every request goes through both.
"""

from __future__ import annotations

import pytest

from aruntime import protocol
from aruntime.wire import FastWire, H11Wire, RequestHead, Response, WireError

ENGINES = [H11Wire, FastWire]
GET = RequestHead(b"GET", b"/2018-06-01/runtime/invocation/next", [(b"Host", b"h")])
POST = RequestHead(b"POST", b"/x", [(b"Host", b"h"), (b"Content-Length", b"2")])

NEXT_ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Lambda-Runtime-Aws-Request-Id: 8476a536-e9f4-11e8-9739-2dfe598c3fcd\r\n"
    b"Lambda-Runtime-Deadline-Ms: 1542409706888\r\n"
    b"Lambda-Runtime-Trace-Id: Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Sampled=1\r\n"
    b"Date: Fri, 27 Nov 2026 19:00:00 GMT\r\nContent-Length: 13\r\n\r\n{\"hello\": 1}\n"
)
CHUNKED_ANSWER = (b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5\r\n{\"sta\r\n9\r\ntus\":\"OK\"\r\n1\r\n}\r\n0\r\n\r\n")


def parse(engine, data: bytes, split: int | None = None) -> Response:
    w = engine()
    w.request(GET)
    parts = [data] if split is None else [data[:split], data[split:]]
    got = None
    for part in parts:
        if part:
            got = w.receive(part) or got
    assert got is not None
    return got


@pytest.mark.parametrize("answer", [NEXT_ANSWER, CHUNKED_ANSWER], ids=["length", "chunked"])
def test_engines_agree_on_responses_at_every_split(answer):
    expected = parse(H11Wire, answer)
    assert expected.status in (200, 202)
    for split in range(len(answer) + 1):
        for engine in ENGINES:
            assert parse(engine, answer, split) == expected, (engine, split)


def test_response_fields():
    status, headers, body = parse(FastWire, NEXT_ANSWER)
    assert status == 200 and body == b'{"hello": 1}\n'
    inv = protocol.parse_invocation(headers, body)
    assert inv.request_id == "8476a536-e9f4-11e8-9739-2dfe598c3fcd"
    assert inv.deadline_ms == 1542409706888 and inv.content_type == "application/json"
    assert parse(FastWire, CHUNKED_ANSWER) == (202, [(b"transfer-encoding", b"chunked")], b'{"status":"OK"}')


@pytest.mark.parametrize("engine", ENGINES)
def test_keep_alive_cycles_and_connection_close(engine):
    w = engine()
    framed = set()
    for _ in range(3):
        framed.add(w.request(GET))  # the constant head is framed once, then reused
        assert not w.reusable()  # waiting for the answer
        assert w.receive(NEXT_ANSWER).status == 200
        assert w.reusable()
    assert framed == {b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: h\r\n\r\n"}
    w.request(POST, b"{}")
    w.receive(b"HTTP/1.1 202 Accepted\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    assert not w.reusable()


@pytest.mark.parametrize("engine", ENGINES)
def test_early_answer_while_streaming_is_delivered(engine):
    w = engine()
    w.stream_head(RequestHead(b"POST", b"/r", [(b"Host", b"h"), (b"Transfer-Encoding", b"chunked")]))
    w.chunk(b"abc")
    got = w.receive(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 2\r\n\r\n{}")
    assert got == Response(413, [(b"content-length", b"2")], b"{}")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("garbage", [b"NOT HTTP\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"])
def test_garbage_is_a_wire_error(engine, garbage):
    w = engine()
    w.request(GET)
    with pytest.raises(WireError):
        w.receive(garbage)


@pytest.mark.parametrize("engine", ENGINES)
def test_eof_mid_response_is_a_wire_error(engine):
    w = engine()
    w.request(GET)
    assert w.receive(NEXT_ANSWER[:40]) is None
    with pytest.raises(WireError):
        w.receive(b"")
    assert issubclass(WireError, ConnectionError)  # the shell retries it like a reset


@pytest.mark.parametrize("engine", ENGINES)
def test_interim_100_is_not_the_answer(engine):
    w = engine()
    w.request(POST, b"{}")
    assert w.receive(b"HTTP/1.1 100 Continue\r\n\r\n") is None
    assert w.receive(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n").status == 202


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("value", [b"a\r\nX-Evil: 1", b"a\nb", b"nul\0"])
def test_header_injection_refused(engine, value):
    with pytest.raises(ValueError):
        engine().request(RequestHead(b"GET", b"/", [(b"Host", b"h"), (b"X-A", value)]))


def test_error_type_header_is_sanitised():
    head = protocol.error_request(b"h", "/e", "Function.Bad\r\nX-Evil: 1", 0)
    assert (b"Lambda-Runtime-Function-Error-Type", b"Function.Bad??X-Evil: 1") in head.headers
    for engine in ENGINES:
        assert b"\r\nX-Evil" not in engine().request(head)


@pytest.mark.parametrize("setting, engine", [("h11", H11Wire), ("httptools", FastWire), ("", FastWire)])
def test_engine_choice(monkeypatch, setting, engine):
    from aruntime import wire

    monkeypatch.setenv("ARUNTIME_HTTP", setting)
    monkeypatch.setattr(wire, "_fast", None)
    assert type(wire.new_wire()) is engine  # httptools is installed here: "" picks it
