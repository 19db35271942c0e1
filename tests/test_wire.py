"""The two wire engines (h11, the default; httptools with the `fast` extra) give the same events.

Same bytes in, same `Response` out — fed whole and split at every byte — and the same failures.
Request bytes are compared in tests/test_protocol.py, where every request goes through both.
"""

from __future__ import annotations

import sys

import pytest

from aruntime import protocol
from aruntime.wire import FastWire, H11Wire, RequestHead, Response, WireError


def collecting(cls):
    """`cls` with its answers collected: `receive` returns the answer the bytes completed (the
    last one if they completed several), `answers` holds them all."""

    class Collecting(cls):
        def __init__(self) -> None:
            self.answers: list[Response] = []
            super().__init__(self.answers.append)

        def receive(self, data):
            before = len(self.answers)
            super().receive(data)
            return self.answers[-1] if len(self.answers) > before else None

    Collecting.__name__ = Collecting.__qualname__ = cls.__name__
    return Collecting


ENGINES = [collecting(H11Wire), collecting(FastWire)]
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
    expected = parse(ENGINES[0], answer)
    assert expected.status in (200, 202)
    for split in range(len(answer) + 1):
        for engine in ENGINES:
            assert parse(engine, answer, split) == expected, (engine, split)


def test_response_fields():
    status, headers, body = parse(ENGINES[1], NEXT_ANSWER)
    assert status == 200 and body == b'{"hello": 1}\n'
    inv = protocol.parse_invocation(headers, body)
    assert inv.request_id == "8476a536-e9f4-11e8-9739-2dfe598c3fcd"
    assert inv.deadline_ms == 1542409706888 and inv.content_type == "application/json"
    assert parse(ENGINES[1], CHUNKED_ANSWER) == (202, [(b"transfer-encoding", b"chunked")], b'{"status":"OK"}')


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


# -- the same events for the same bytes, end of stream and odd framing included -------------

RID = (b"lambda-runtime-aws-request-id", b"r-1")
OK_HEAD = b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r-1\r\nContent-Length: 7\r\n\r\n"
OK = OK_HEAD + b'{"a":1}'
OK_RESPONSE = Response(200, [RID, (b"content-length", b"7")], b'{"a":1}')
CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r-1\r\nTransfer-Encoding: chunked\r\n\r\n"
EOF = object()  # feed end of stream after the bytes
SECOND = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


def closed(cut: bool, head: tuple[int, list] | None = None) -> tuple:
    return ("WireError", cut, head)


# (bytes the server sends, end of stream after them?, what both engines must report: every
# answer delivered, then either the WireError that ended the stream or whether it is reusable)
CASES = {
    "content-length": (OK, False, [OK_RESPONSE, ("reusable", True)]),
    "body until close, HTTP/1.0": (
        b"HTTP/1.0 200 OK\r\nLambda-Runtime-Aws-Request-Id: r-1\r\n\r\n{\"a\":1}", True,
        [Response(200, [RID], b'{"a":1}'), ("reusable", False)]),
    "body until close, HTTP/1.1": (
        b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r-1\r\n\r\n{\"a\":1}", True,
        [Response(200, [RID], b'{"a":1}'), ("reusable", False)]),
    "empty body until close": (b"HTTP/1.1 202 Accepted\r\n\r\n", True,
                               [Response(202, [], b""), ("reusable", False)]),
    "connection: close": (
        b"HTTP/1.1 202 Accepted\r\nCONNECTION: Close\r\nContent-Length: 2\r\n\r\n{}", False,
        [Response(202, [(b"connection", b"Close"), (b"content-length", b"2")], b"{}"),
         ("reusable", False)]),
    "HTTP/1.0 keep-alive": (
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", False,
        [Response(200, [(b"connection", b"keep-alive"), (b"content-length", b"0")], b""),
         ("reusable", False)]),
    "1xx first": (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n" + OK, False,
        [OK_RESPONSE, ("reusable", True)]),
    "chunked with extensions and trailers": (
        CHUNKED_HEAD + b"3;a=b\r\n{\"a\r\n4;q=\"x\"\r\n\":1}\r\n0\r\nX-Trailer: t\r\n\r\n", False,
        [Response(200, [RID, (b"transfer-encoding", b"chunked")], b'{"a":1}'), ("reusable", True)]),
    "204 without length": (b"HTTP/1.1 204 No Content\r\n\r\n", False,
                           [Response(204, [], b""), ("reusable", True)]),
    "empty line before the status line": (b"\r\n" + OK, False, [OK_RESPONSE, ("reusable", True)]),
    "empty line after the answer": (OK + b"\r\n", False, [OK_RESPONSE, ("reusable", True)]),
    "header names in odd case, blanks around values": (
        b"HTTP/1.1 200 OK\r\nLAMBDA-runtime-AWS-Request-Id: \t r-1 \t\r\ncontent-LENGTH: 7\r\n\r\n{\"a\":1}",
        False, [OK_RESPONSE, ("reusable", True)]),
    "no reason phrase, bare LF": (b"HTTP/1.1 200\nContent-Length: 0\n\n", False,
                                  [Response(200, [(b"content-length", b"0")], b""), ("reusable", True)]),
    "two answers in one read": (OK + SECOND, True, [OK_RESPONSE, closed(False)]),
    "two answers in one read, still open": (OK + SECOND, False, [OK_RESPONSE, ("reusable", False)]),
    "EOF before any byte": (b"", True, [closed(False)]),
    "EOF in the head": (OK_HEAD[:30], True, [closed(True)]),
    "EOF after the head": (OK_HEAD, True, [closed(True, (200, OK_RESPONSE.headers))]),
    "EOF mid-body": (OK[:-3], True, [closed(True, (200, OK_RESPONSE.headers))]),
    "EOF mid-chunk": (CHUNKED_HEAD + b"7\r\n{\"a", True,
                      [closed(True, (200, [RID, (b"transfer-encoding", b"chunked")]))]),
    # Malformed: both refuse, and say that bytes of an answer were lost.
    "blanks around a chunk size": (CHUNKED_HEAD + b"7 ; a=b\r\n{\"a\":1}\r\n0\r\n\r\n", False,
                                   [closed(True, (200, [RID, (b"transfer-encoding", b"chunked")]))]),
    "Transfer-Encoding other than chunked": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx", True,
        [closed(True)]),
    "not HTTP": (b"SSH-2.0-OpenSSH\r\n\r\n", False, [closed(True)]),
    # A higher minor version is read as 1.1 (RFC 9110 §2.5); llhttp, strict, refused it.
    "HTTP/1.2": (b"HTTP/1.2 200 OK\r\nLambda-Runtime-Aws-Request-Id: r-1\r\nContent-Length: 7\r\n\r\n"
                 b'{"a":1}', False, [OK_RESPONSE, ("reusable", True)]),
    # Both framings: the Transfer-Encoding overrides (RFC 9112 §6.3), and the connection is
    # not used again. llhttp refused the answer (the invocation lost on the fast engine).
    "chunked and Content-Length": (
        CHUNKED_HEAD[:-2] + b"Content-Length: 99\r\n\r\n7\r\n{\"a\":1}\r\n0\r\n\r\n", False,
        [Response(200, [RID, (b"transfer-encoding", b"chunked"), (b"content-length", b"99")],
                  b'{"a":1}'), ("reusable", False)]),
    # Codings other than one "chunked": h11 refuses them; llhttp read them as chunked.
    "gzip, chunked": (CHUNKED_HEAD.replace(b"chunked", b"gzip, chunked") + b"2\r\n{}\r\n0\r\n\r\n",
                      False, [closed(True)]),
    "chunked twice": (CHUNKED_HEAD[:-2] + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
                      False, [closed(True)]),
    # A switch of protocols nobody asked for: a wire error, not an exception from the parser.
    "unasked 101": (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"
                    + OK, False, [closed(True)]),
    "EOF after an interim answer": (b"HTTP/1.1 100 Continue\r\n\r\n", True, [closed(True)]),
}


def events(engine, parts: list[bytes], eof: bool) -> list:
    """What `engine` reports for `parts` (separate reads) after one request, then end of stream."""
    w = engine()
    w.request(GET)
    got: list = []
    try:
        for part in parts:
            if part:
                answer = w.receive(part)
                if answer is not None:
                    got.append(answer)
        if eof:
            answer = w.receive(b"")
            if answer is not None:
                got.append(answer)
    except WireError as e:
        got.append(closed(e.cut, e.head))
        return got
    got.append(("reusable", w.reusable()))
    return got


@pytest.mark.parametrize("case", list(CASES))
def test_engines_agree_on_end_of_stream_and_odd_framing(case):
    data, eof, expected = CASES[case]
    for engine in ENGINES:
        assert events(engine, [data], eof) == expected, engine
        assert events(engine, [bytes([b]) for b in data], eof) == expected, (engine, "bytewise")
        for split in range(1, len(data)):
            assert events(engine, [data[:split], data[split:]], eof) == expected, (engine, split)


@pytest.mark.parametrize("engine", ENGINES)
def test_trailers_do_not_leak_into_the_next_answer(engine):
    w = engine()
    for _ in range(2):
        w.request(GET)
        assert w.receive(CHUNKED_HEAD + b"2\r\n{}\r\n0\r\nX-Trailer: t\r\n\r\n") == Response(
            200, [RID, (b"transfer-encoding", b"chunked")], b"{}")
    w.request(GET)
    assert w.receive(OK) == OK_RESPONSE and w.reusable()


@pytest.mark.parametrize("engine", ENGINES)
def test_late_bytes_on_an_idle_connection_make_it_unusable(engine):
    w = engine()
    w.request(GET)
    assert w.receive(OK) == OK_RESPONSE
    assert w.receive(b"\r\n") is None and w.reusable()  # an empty line is harmless
    assert w.receive(SECOND) is None  # a late 408 answers nothing we asked
    assert not w.reusable()
    with pytest.raises(WireError) as e:
        w.receive(b"")
    assert not e.value.cut


@pytest.mark.parametrize("engine", ENGINES)
def test_bytes_before_any_request_are_not_an_answer(engine):
    w = engine()
    assert w.receive(SECOND) is None and not w.reusable()


# -- choosing the engine (ARUNTIME_HTTP) -----------------------------------------------------


@pytest.mark.parametrize("value, name", [
    ("h11", "h11"), ("httptools", "httptools"), ("", "httptools"), (None, "httptools"),
    ("H11", "h11"), (" HTTPTools ", "httptools")])
def test_engine_name(value, name):
    from aruntime import wire

    assert wire.engine_name(value) == name  # httptools is installed here: unset picks it
    assert type(wire.new_wire(name, print)) is {"h11": H11Wire, "httptools": FastWire}[name]


@pytest.mark.parametrize("value", ["bogus", "fast", "h2", "httptools,h11"])
def test_unknown_engine_is_refused(value):
    from aruntime import wire

    with pytest.raises(ValueError) as e:
        wire.engine_name(value)
    assert str(e.value) == f"ARUNTIME_HTTP must be one of h11, httptools (or unset), got {value!r}"


def test_httptools_asked_for_but_missing(monkeypatch):
    from aruntime import wire

    monkeypatch.setitem(sys.modules, "httptools", None)  # import now raises ImportError
    assert wire.engine_name("") == "h11"
    with pytest.raises(ValueError) as e:
        wire.engine_name("httptools")
    assert str(e.value) == ("ARUNTIME_HTTP=httptools, but httptools is not installed: "
                            "install the fast extra (not on PyPI yet: from a checkout of aruntime, pip install -e '.[fast]')")


# -- pipelined requests: two outstanding, their answers in order, split anywhere ---------------

ACCEPTED_ANSWER = b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}\n"
PIPELINED = {
    # (answers to a POST and a GET sent back to back, end of stream after them?, expected)
    "both with Content-Length": (ACCEPTED_ANSWER + NEXT_ANSWER, False,
                                 [202, 200, ("reusable", True)]),
    "interim and chunked": (b"HTTP/1.1 100 Continue\r\n\r\n" + CHUNKED_ANSWER + b"\r\n" + OK, False,
                            [202, 200, ("reusable", True)]),
    "the first closes the connection": (
        b"HTTP/1.1 202 Accepted\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", False,
        [202, closed(False)]),
    "the first is HTTP/1.0": (b"HTTP/1.0 202 Accepted\r\nContent-Length: 0\r\n\r\n", False,
                              [202, closed(False)]),
    "end of stream after the first": (ACCEPTED_ANSWER, True, [202, closed(False)]),
    "end of stream in the second": (ACCEPTED_ANSWER + OK[:-3], True,
                                    [202, closed(True, (200, OK_RESPONSE.headers))]),
    "a third answer nobody asked for": (ACCEPTED_ANSWER + OK + SECOND, False,
                                        [202, 200, ("reusable", False)]),
}


def pipelined(engine, parts: list[bytes], eof: bool) -> list:
    w = engine()
    w.request(POST, b"{}")
    w.request(GET)  # sent before the first answer: pipelined
    assert not w.reusable()
    got: list = []
    try:
        for part in parts:
            if part:
                w.receive(memoryview(part))  # the shell feeds a view of its shared buffer
        if eof:
            w.receive(b"")
    except WireError as e:
        return [a.status for a in w.answers] + [closed(e.cut, e.head)]
    assert all(type(a.body) is bytes for a in w.answers)
    return [a.status for a in w.answers] + [("reusable", w.reusable())]


@pytest.mark.parametrize("case", list(PIPELINED))
def test_pipelined_answers_in_order_at_every_split(case):
    data, eof, expected = PIPELINED[case]
    for engine in ENGINES:
        assert pipelined(engine, [data], eof) == expected, engine
        for split in range(1, len(data)):
            assert pipelined(engine, [data[:split], data[split:]], eof) == expected, (engine, split)


@pytest.mark.parametrize("engine", ENGINES)
def test_pipelined_bodies_and_the_next_cycle(engine):
    w = engine()
    for _ in range(3):  # the connection goes on after each pipelined pair
        w.request(POST, b"{}")
        w.request(GET)
        w.receive(ACCEPTED_ANSWER + NEXT_ANSWER)
        assert w.reusable()
    assert [a.status for a in w.answers] == [202, 200] * 3
    assert w.answers[1].body == b'{"hello": 1}\n' and w.answers[0].body == b'{"status":"OK"}\n'


# -- odd heads h11 reads and llhttp refuses (breaker finding 8) ---------------------------------
# RFC 9110 §5.5 lets a recipient keep control characters other than NUL/CR/LF in a value;
# RFC 9112 §5.2 has a user agent replace obs-fold with spaces; RFC 9110 §8.6 lets a recipient
# read a Content-Length repeated with one value ("2, 2", or twice). Both engines give the same
# answers, alone or behind another answer in the same read, split anywhere, read through one
# reused buffer as the shell reads; what h11 refuses (NUL, VT, FF, a fold at the head's start,
# conflicting lengths) both refuse, and the connection is not used again.

def _head(*lines: bytes, body: bytes = b"{}") -> bytes:
    return b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r-1\r\n" + b"".join(
        line + b"\r\n" for line in lines) + b"\r\n" + body


CL2 = (b"content-length", b"2")
ODD_HEADS = {
    "\\x01 and \\x7f in values": (
        _head(b"Lambda-Runtime-Trace-Id: Root=a\x01b", b"X-Del: \x7fd\x7f", b"Content-Length: 2"),
        [RID, (b"lambda-runtime-trace-id", b"Root=a\x01b"), (b"x-del", b"\x7fd\x7f"), CL2]),
    "obs-fold": (
        _head(b"Lambda-Runtime-Trace-Id: Root=a", b"   folded", b"\tagain ", b"Content-Length: 2"),
        [RID, (b"lambda-runtime-trace-id", b"Root=a folded again"), CL2]),
    "obs-fold with a bare LF": (
        _head(b"X-A: a\n folded", b"Content-Length: 2"), [RID, (b"x-a", b"a folded"), CL2]),
    "obs-fold of an empty value": (
        _head(b"X-A:", b" folded", b"Content-Length: 2"), [RID, (b"x-a", b"folded"), CL2]),
    "Content-Length twice, same value": (
        _head(b"Content-Length: 2", b"Content-Length: 2"), [RID, CL2]),
    "Content-Length as a list of one value": (
        _head(b"Content-Length: 2, 2"), [RID, CL2]),
    "Content-Length list and repeat": (
        _head(b"Content-Length: 2,2 ,2", b"X-B: b", b"content-length: 2"),
        [RID, CL2, (b"x-b", b"b")]),
    "chunked after an odd value": (
        _head(b"X-A: \x01", b"Transfer-Encoding: chunked", body=b"2\r\n{}\r\n0\r\n\r\n"),
        [RID, (b"x-a", b"\x01"), (b"transfer-encoding", b"chunked")]),
    # Refused by both: the answer is lost (cut), its head never accepted.
    "NUL in a value": (_head(b"X-A: a\x00b", b"Content-Length: 2"), None),
    "VT in a value": (_head(b"X-A: a\x0bb", b"Content-Length: 2"), None),
    "FF in a value": (_head(b"X-A: \x0c", b"Content-Length: 2"), None),
    "conflicting Content-Length": (_head(b"Content-Length: 2", b"Content-Length: 3"), None),
    "Content-Length list of two values": (_head(b"Content-Length: 2, 3"), None),
    "folded Content-Length": (_head(b"Content-Length: 2", b" 2"), None),
    "obs-fold at the head's start": (b"HTTP/1.1 200 OK\r\n folded\r\nContent-Length: 2\r\n\r\n{}",
                                     None),
    "odd value and a bad header name": (_head(b"X-A: \x01", b"X B: 1", b"Content-Length: 2"), None),
}


def _odd(engine, parts: list[bytes], behind: bool) -> list:
    """Events for `parts` read through one reused buffer, after a GET (or a POST and a GET
    when `behind`: the odd answer follows a 202 in the same bytes), then a GET whose answer is
    OK (on the same connection, when it can still be used)."""
    w = engine()
    if behind:
        w.request(POST, b"{}")
    w.request(GET)
    shared = bytearray(max(map(len, parts)))
    got: list = []
    try:
        for part in parts:
            shared[:len(part)] = part
            w.receive(memoryview(shared)[:len(part)])
            shared[:] = b"\xee" * len(shared)  # the next read overwrites the buffer
        if w.reusable():
            w.request(GET)
            w.receive(OK)
    except WireError as e:
        got.append(closed(e.cut, e.head))
    return [(a.status, a.headers, a.body) for a in w.answers] + got + [("reusable", w.reusable())]


@pytest.mark.parametrize("case", list(ODD_HEADS))
@pytest.mark.parametrize("behind", [False, True], ids=["alone", "behind"])
def test_engines_agree_on_odd_heads_at_every_split(case, behind):
    head, headers = ODD_HEADS[case]
    data = (ACCEPTED_ANSWER if behind else b"") + head
    expected = [(202, [(b"content-type", b"application/json"), (b"content-length", b"16")],
                 b'{"status":"OK"}\n')] if behind else []
    if headers is None:
        expected += [closed(True), ("reusable", False)]
    else:
        expected += [(200, headers, b"{}"), (200, OK_RESPONSE.headers, OK_RESPONSE.body),
                     ("reusable", True)]
    for engine in ENGINES:
        assert _odd(engine, [data], behind) == expected, engine
        for split in range(1, len(data)):
            assert _odd(engine, [data[:split], data[split:]], behind) == expected, (engine, split)


@pytest.mark.parametrize("engine", ENGINES)
def test_answer_heads_over_one_mib_are_refused(engine):
    big = _head(b"X-Big: " + b"b" * (2 * 1024 * 1024), b"Content-Length: 2")
    parts = [big[i:i + 65536] for i in range(0, len(big), 65536)]
    assert _odd(engine, parts, False) == [closed(True), ("reusable", False)]
    # Below the limit, in the same reads: read.
    fine = _head(b"X-Big: " + b"b" * (900 * 1024), b"Content-Length: 2")
    parts = [fine[i:i + 65536] for i in range(0, len(fine), 65536)]
    got = _odd(engine, parts, False)
    assert [g[0] for g in got] == [200, 200, "reusable"] and got[0][1][1][1] == b"b" * (900 * 1024)
    # An odd head over the limit too (read again by h11 on httptools).
    odd = _head(b"X-A: \x01", b"X-Big: " + b"b" * (2 * 1024 * 1024), b"Content-Length: 2")
    parts = [odd[i:i + 65536] for i in range(0, len(odd), 65536)]
    assert _odd(engine, parts, False) == [closed(True), ("reusable", False)]


ODD_TRAILERS = {
    # (trailer lines of a chunked answer, read?) Trailers are dropped; h11's rules decide
    # whether the answer is read or refused, on both engines.
    "\\x01 in a trailer": (b"X-T: a\x01b", True),
    "a folded trailer": (b"X-T: a\r\n folded", True),
    "\\x7f after a plain trailer, before another": (b"X-A: 1\r\nX-T: a\x7fb\r\nX-C: 3", True),
    "NUL in a trailer": (b"X-T: a\x00b", False),
    "VT after a fold": (b"X-A: 1\r\n\tfold\r\nX-T: a\x0bb", False),
}


@pytest.mark.parametrize("case", list(ODD_TRAILERS))
@pytest.mark.parametrize("behind", [False, True], ids=["alone", "behind"])
def test_engines_agree_on_odd_trailers_at_every_split(case, behind):
    trailers, read = ODD_TRAILERS[case]
    data = (ACCEPTED_ANSWER if behind else b"") + CHUNKED_HEAD + b"2\r\n{}\r\n0\r\n" + trailers + b"\r\n\r\n"
    chunked = [RID, (b"transfer-encoding", b"chunked")]
    expected = [(202, [(b"content-type", b"application/json"), (b"content-length", b"16")],
                 b'{"status":"OK"}\n')] if behind else []
    if read:
        expected += [(200, chunked, b"{}"), (200, OK_RESPONSE.headers, OK_RESPONSE.body),
                     ("reusable", True)]
    else:
        expected += [closed(True, (200, chunked)), ("reusable", False)]
    for engine in ENGINES:
        assert _odd(engine, [data], behind) == expected, engine
        for split in range(1, len(data)):
            assert _odd(engine, [data[:split], data[split:]], behind) == expected, (engine, split)


def test_the_next_head_is_framed_once_per_process():
    """Every connection sends the one `/next` RequestHead before each invocation: its bytes are
    reused (the same object), and another GET head is framed anew, byte-exact."""
    from aruntime.wire import head_bytes

    nxt = protocol.get_request(b"127.0.0.1:9001", "/2018-06-01/runtime/invocation/next")
    restore = protocol.get_request(b"127.0.0.1:9001", "/2018-06-01/runtime/restore/next")
    first = head_bytes(nxt)
    assert head_bytes(nxt) is first
    assert head_bytes(restore) == first.replace(b"/invocation/next", b"/restore/next")
    assert head_bytes(nxt) == first
    # A head that cannot be sent is refused every time, never remembered.
    bad = RequestHead(b"GET", b"/x", [(b"Host", b"h\r\nX: y")])
    for _ in range(2):
        with pytest.raises(ValueError):
            head_bytes(bad)
