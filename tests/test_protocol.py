"""The sans-IO Runtime API layer (`aruntime.protocol`, `aruntime.errors`) without sockets.

Requests are serialised through both wire engines (h11, and httptools' `FastWire`), which must
agree byte for byte, and compared with the exact bytes docs/SPEC.md §2/§3 call for: request line, header
order and values, framing.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import traceback
from typing import Any

import h11
import pytest

from aruntime import __version__, errors, protocol
from aruntime.errors import RuntimeFault
from aruntime.protocol import Invocation
from aruntime.wire import FastWire, H11Wire, RequestHead

ENGINES = [H11Wire, FastWire]

HOST = b"127.0.0.1:9001"
UA = f"aruntime/{__version__} (python/{sys.version_info[0]}.{sys.version_info[1]}.{sys.version_info[2]})".encode()
HEAD = b"Host: 127.0.0.1:9001\r\nUser-Agent: " + UA + b"\r\n"
RID = "8476a536-e9f4-11e8-9739-2dfe598c3fcd"
PREFIX = b"/2018-06-01/runtime"


def h11_serialised(request: RequestHead, body: bytes, trailers: list[tuple[bytes, bytes]] | None,
                   chunks: list[bytes] | None, streamed: bool) -> bytes:
    """The bytes h11's own serialiser produces for this request: the reference both engines'
    framing (`wire.head_bytes` and friends) must match byte for byte."""
    c = h11.Connection(h11.CLIENT)
    out = c.send(h11.Request(method=request.method, target=request.target, headers=request.headers))
    for data in (chunks or [] if streamed else [body]):
        if data:
            out += c.send(h11.Data(data=data))
    return out + c.send(h11.EndOfMessage(headers=trailers or []))


def wire(request: RequestHead, body: bytes = b"", trailers: list[tuple[bytes, bytes]] | None = None,
         chunks: list[bytes] | None = None) -> bytes:
    """What each wire engine puts on the socket for this request (they must agree, with each
    other and with h11's serialiser)."""
    streamed = any(name.lower() == b"transfer-encoding" for name, _ in request.headers)
    outs = []
    for engine in ENGINES:
        w = engine(lambda answer: None)
        if streamed:
            out = w.stream_head(request) + b"".join(w.chunk(c) for c in chunks or [] if c)
            out += w.end_stream(trailers or [])
        else:
            out = w.request(request, body)
        outs.append(out)
    outs.append(h11_serialised(request, body, trailers, chunks, streamed))
    assert all(out == outs[0] for out in outs), outs
    return outs[0]


def inv(request_id: str = RID, invocation_id: bytes | None = None) -> Invocation:
    return protocol.parse_invocation(
        [(b"lambda-runtime-aws-request-id", request_id.encode())]
        + ([(b"lambda-runtime-invocation-id", invocation_id)] if invocation_id else []),
        b"{}",
    )


# -- parse_invocation ------------------------------------------------------------------------


FULL_HEADERS = [
    (b"content-type", b"application/json"),
    (b"lambda-runtime-aws-request-id", RID.encode()),
    (b"lambda-runtime-deadline-ms", b"1542409706888"),
    (b"lambda-runtime-invoked-function-arn", b"arn:aws:lambda:us-east-2:123456789012:function:custom-runtime"),
    (b"lambda-runtime-trace-id", b"Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"),
    (b"lambda-runtime-client-context", b'{"custom":{"a":1}}'),
    (b"lambda-runtime-cognito-identity", b'{"cognitoIdentityId":"id1"}'),
    (b"lambda-runtime-aws-tenant-id", b"tenant-7"),
    (b"lambda-runtime-invocation-id", b"inv-42"),
]


def test_parse_invocation_every_header() -> None:
    got = protocol.parse_invocation(FULL_HEADERS, b'{"k":"v"}')
    assert got == Invocation(
        request_id=RID,
        deadline_ms=1542409706888,
        function_arn="arn:aws:lambda:us-east-2:123456789012:function:custom-runtime",
        trace_id="Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1",
        client_context='{"custom":{"a":1}}',
        cognito_identity='{"cognitoIdentityId":"id1"}',
        tenant_id="tenant-7",
        invocation_id=b"inv-42",
        content_type="application/json",
        body=b'{"k":"v"}',
    )


def test_parse_invocation_absent_headers_are_none_and_request_id_empty() -> None:
    got = protocol.parse_invocation([], b"")
    assert got.request_id == ""
    assert got.deadline_ms is None
    assert (got.function_arn, got.trace_id, got.client_context, got.cognito_identity,
            got.tenant_id, got.invocation_id, got.content_type) == (None,) * 7
    assert got.body == b""


@pytest.mark.parametrize("value", [b"0", b"-5", b"abc", b"", b"12.5", b"1e12", b" ",
                                   b"600000", b"999999999999",  # 600000: cargo-lambda's
                                   b"9" * 40, b"253402300800000", b"9" * 5000])  # past 9999
def test_parse_invocation_bad_deadline_is_none(value: bytes) -> None:
    got = protocol.parse_invocation([(b"lambda-runtime-deadline-ms", value)], b"")
    assert got.deadline_ms is None


def test_parse_invocation_deadline_floor() -> None:
    got = protocol.parse_invocation([(b"lambda-runtime-deadline-ms", b"1000000000000")], b"")
    assert got.deadline_ms == 10**12


def test_parse_invocation_deadline_ceiling() -> None:
    # 9999-12-31T23:59:59.999Z is the last deadline a datetime can hold: still a deadline.
    got = protocol.parse_invocation([(b"lambda-runtime-deadline-ms", b"253402300799999")], b"")
    assert got.deadline_ms == 253402300799999


def test_parse_invocation_non_utf8_header_does_not_raise() -> None:
    got = protocol.parse_invocation([(b"lambda-runtime-aws-tenant-id", b"t\xff")], b"")
    assert got.tenant_id == "t\ufffd"


# -- requests, exact bytes -------------------------------------------------------------------


def test_next_request_bytes() -> None:
    assert wire(protocol.get_request(HOST, protocol.NEXT_TARGET)) == (
        b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n" + HEAD + b"\r\n")


def test_response_request_bytes_with_invocation_id_echo() -> None:
    body = b'{"a":1}'
    req = protocol.response_request(HOST, inv(invocation_id=b"inv-42"), b"application/json", len(body))
    assert wire(req, body) == (
        b"POST " + PREFIX + b"/invocation/" + RID.encode() + b"/response HTTP/1.1\r\n" + HEAD
        + b"Content-Type: application/json\r\nContent-Length: 7\r\n"
        b"Lambda-Runtime-Invocation-Id: inv-42\r\n\r\n" + body)


def test_response_request_without_invocation_id_sends_no_echo() -> None:
    req = protocol.response_request(HOST, inv(), b"application/unknown", 0)
    assert wire(req) == (
        b"POST " + PREFIX + b"/invocation/" + RID.encode() + b"/response HTTP/1.1\r\n" + HEAD
        + b"Content-Type: application/unknown\r\nContent-Length: 0\r\n\r\n")


def test_error_request_bytes() -> None:
    body = b'{"errorMessage":"x"}'
    cause = b'{"working_directory":"/var/task"}'
    req = protocol.error_request(HOST, protocol.invocation_target(RID, "error"), "Function.ValueError",
                                 len(body), cause, inv(invocation_id=b"inv-9"))
    assert wire(req, body) == (
        b"POST " + PREFIX + b"/invocation/" + RID.encode() + b"/error HTTP/1.1\r\n" + HEAD
        + b"Content-Type: application/json\r\nContent-Length: 20\r\n"
        b"Lambda-Runtime-Function-Error-Type: Function.ValueError\r\n"
        b"Lambda-Runtime-Function-XRay-Error-Cause: " + cause + b"\r\n"
        b"Lambda-Runtime-Invocation-Id: inv-9\r\n\r\n" + body)


def test_init_error_request_bytes() -> None:
    body = b"{}"
    req = protocol.error_request(HOST, protocol.INIT_ERROR_TARGET, "Runtime.ImportModuleError", 2)
    assert wire(req, body) == (
        b"POST /2018-06-01/runtime/init/error HTTP/1.1\r\n" + HEAD
        + b"Content-Type: application/json\r\nContent-Length: 2\r\n"
        b"Lambda-Runtime-Function-Error-Type: Runtime.ImportModuleError\r\n\r\n{}")


def test_xray_cause_dropped_at_one_mib() -> None:
    limit = 1024 * 1024
    below = b"c" * (limit - 1)
    at = b"c" * limit
    kept = protocol.error_request(HOST, "/e", "Function.E", 0, below)
    dropped = protocol.error_request(HOST, "/e", "Function.E", 0, at)
    names = [k.lower() for k, _ in kept.headers]
    assert b"lambda-runtime-function-xray-error-cause" in names
    assert {k.lower(): v for k, v in kept.headers}[b"lambda-runtime-function-xray-error-cause"] == below
    assert b"lambda-runtime-function-xray-error-cause" not in [k.lower() for k, _ in dropped.headers]
    assert b"XRay" not in wire(dropped)


def test_stream_request_bytes_chunks_and_trailers() -> None:
    req = protocol.stream_request(HOST, inv(invocation_id=b"inv-1"), b"text/event-stream")
    error_body = b'{"errorMessage":"late","errorType":"ValueError","requestId":"r","stackTrace":[]}'
    b64 = base64.b64encode(error_body)
    trailers = protocol.error_trailers("Function.ValueError", b64)
    assert wire(req, chunks=[b"abc", b"0123456789abcdef!"], trailers=trailers) == (
        b"POST " + PREFIX + b"/invocation/" + RID.encode() + b"/response HTTP/1.1\r\n" + HEAD
        + b"Lambda-Runtime-Function-Response-Mode: streaming\r\n"
        b"Transfer-Encoding: chunked\r\n"
        b"Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n"
        b"Content-Type: text/event-stream\r\n"
        b"Lambda-Runtime-Invocation-Id: inv-1\r\n\r\n"
        b"3\r\nabc\r\n11\r\n0123456789abcdef!\r\n"
        b"0\r\nLambda-Runtime-Function-Error-Type: Function.ValueError\r\n"
        b"Lambda-Runtime-Function-Error-Body: " + b64 + b"\r\n\r\n")
    assert json.loads(base64.b64decode(b64)) == json.loads(error_body)


@pytest.mark.parametrize("rid, encoded", [
    ("../../init/error", "..%2F..%2Finit%2Ferror"),
    ("a b\r\nX-Evil: 1", "a%20b%0D%0AX-Evil%3A%201"),
    ("id?x=1#f", "id%3Fx%3D1%23f"),
    ("ünï", "%C3%BCn%C3%AF"),
])
def test_hostile_request_id_is_percent_encoded(rid: str, encoded: str) -> None:
    req = protocol.response_request(HOST, inv(rid), b"application/json", 0)
    line = wire(req).split(b"\r\n", 1)[0]
    assert line == b"POST /2018-06-01/runtime/invocation/" + encoded.encode() + b"/response HTTP/1.1"
    assert protocol.invocation_target(rid, "error") == f"/2018-06-01/runtime/invocation/{encoded}/error"


@pytest.mark.parametrize("rid, encoded", [(".", "%2E"), ("..", "%2E%2E")])
def test_dot_segment_request_ids_are_percent_encoded(rid: str, encoded: str) -> None:
    # Every character is plain, but "." / ".." as a segment would address another endpoint
    # (`/invocation/../response` is `/runtime/response` once dot-segments are removed).
    req = protocol.response_request(HOST, inv(rid), b"application/json", 0)
    line = wire(req).split(b"\r\n", 1)[0]
    assert line == b"POST /2018-06-01/runtime/invocation/" + encoded.encode() + b"/response HTTP/1.1"
    assert protocol.invocation_target(rid, "error") == f"/2018-06-01/runtime/invocation/{encoded}/error"
    # Longer runs of dots are no dot-segment: sent as they are.
    assert protocol.invocation_target("...", "error") == "/2018-06-01/runtime/invocation/.../error"


def test_non_utf8_request_id_is_encoded_from_its_bytes() -> None:
    got = protocol.parse_invocation([(b"lambda-runtime-aws-request-id", b"r\xff\xfe-1")], b"")
    assert got.request_id == "r\ufffd\ufffd-1"  # for logs and the context
    assert got.raw_request_id == b"r\xff\xfe-1"
    for req in (protocol.response_request(HOST, got, b"application/json", 0),
                protocol.stream_request(HOST, got, b"text/plain")):
        assert req.target == b"/2018-06-01/runtime/invocation/r%FF%FE-1/response"
    assert protocol.answer_target(got, "error") == "/2018-06-01/runtime/invocation/r%FF%FE-1/error"
    # A UTF-8 id keeps no copy of its bytes.
    assert protocol.parse_invocation([(b"lambda-runtime-aws-request-id", "ü".encode())],
                                     b"").raw_request_id is None


def test_plain_request_id_is_not_encoded() -> None:
    assert protocol.invocation_target("Ab-9._~", "response") == "/2018-06-01/runtime/invocation/Ab-9._~/response"


# -- errors.error_body ----------------------------------------------------------------------

# A frame whose file lives in the aruntime package, as the runtime's own frames do: it calls the
# user's function and catches what it raises, so the traceback starts in "runtime" frames.
_RUNNER_FILE = os.path.join(errors._PACKAGE_DIR, "_test_runner.py")
_runner_ns: dict[str, Any] = {}
exec(compile(
    "def run(f):\n"
    "    try:\n"
    "        return call(f)\n"
    "    except BaseException as e:\n"
    "        return e\n"
    "def call(f):\n"
    "    f()\n",
    _RUNNER_FILE, "exec"), _runner_ns)


class OrderRejected(Exception):
    pass


def _user_inner() -> None:
    raise OrderRejected("out of stock")


def _user_outer() -> None:
    _user_inner()


def test_error_body_user_frames_only_and_key_order() -> None:
    exc = _runner_ns["run"](_user_outer)
    header, body, cause = errors.error_body(exc, RID)
    assert header == "Function.OrderRejected"
    assert list(body) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert body["errorMessage"] == "out of stock"
    assert body["errorType"] == "OrderRejected"
    assert body["requestId"] == RID
    here = __file__
    line_outer = _user_outer.__code__.co_firstlineno + 1
    line_inner = _user_inner.__code__.co_firstlineno + 1
    assert body["stackTrace"] == [
        f'  File "{here}", line {line_outer}, in _user_outer\n    _user_inner()\n',
        f'  File "{here}", line {line_inner}, in _user_inner\n    raise OrderRejected("out of stock")\n',
    ]
    assert not any(_RUNNER_FILE in line for line in body["stackTrace"])
    parsed = json.loads(cause)
    assert list(parsed) == ["working_directory", "exceptions", "paths"]
    assert parsed["working_directory"] == os.getcwd()
    assert parsed["exceptions"] == [{
        "message": "out of stock", "type": "OrderRejected",
        "stack": [{"label": "_user_outer", "path": here, "line": line_outer},
                  {"label": "_user_inner", "path": here, "line": line_inner}],
    }]
    assert parsed["paths"] == [here]


def test_error_body_matches_reference_format_list() -> None:
    # The reference formats frames with traceback.format_list of (file, line, name, text).
    exc = _runner_ns["run"](_user_outer)
    _, body, _ = errors.error_body(exc, RID)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == __file__]
    assert body["stackTrace"] == traceback.format_list(
        [(f.filename, f.lineno, f.name, f.line) for f in frames])


def test_error_body_runtime_fault() -> None:
    fault = RuntimeFault("Runtime.MarshalError", "Unable to marshal response: nope")
    header, body, cause = errors.error_body(fault, "r1")
    assert header == "Runtime.MarshalError"
    assert body == {"errorMessage": "Unable to marshal response: nope",
                    "errorType": "Runtime.MarshalError", "requestId": "r1", "stackTrace": []}
    assert json.loads(cause)["exceptions"] == [
        {"message": "Unable to marshal response: nope", "type": "LambdaValidationError", "stack": []}]


def test_error_body_default_request_id_is_empty_string() -> None:
    _, body, _ = errors.error_body(ValueError("v"))
    assert body["requestId"] == ""
    assert body["stackTrace"] == []


def test_error_body_system_exit_and_keyboard_interrupt() -> None:
    header, body, _ = errors.error_body(errors._Escaped(SystemExit(3)), "r")
    assert (header, body["errorType"], body["errorMessage"]) == ("Function.SystemExit", "SystemExit", "3")
    header, body, _ = errors.error_body(KeyboardInterrupt("stop"), "r")
    assert (header, body["errorType"], body["errorMessage"]) == (
        "Function.KeyboardInterrupt", "KeyboardInterrupt", "stop")


def _user_partial() -> None:
    value = _user_inner()  # the failing call is part of the line
    print(value)


def test_error_body_stack_trace_has_no_caret_lines() -> None:
    exc = _runner_ns["run"](_user_partial)
    _, body, _ = errors.error_body(exc, RID)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == __file__]
    assert body["stackTrace"] == traceback.format_list(
        [(f.filename, f.lineno, f.name, f.line) for f in frames])
    assert not any("^" in line for line in body["stackTrace"])


# -- AWS_LAMBDA_RUNTIME_API: host:port[/prefix] (docs/SPEC.md §1, §8) ------------------------


@pytest.mark.parametrize("value, host, port, host_header, prefix", [
    ("127.0.0.1:9001", "127.0.0.1", 9001, b"127.0.0.1:9001", ""),
    ("127.0.0.1:9100/.rt", "127.0.0.1", 9100, b"127.0.0.1:9100", "/.rt"),  # cargo-lambda
    ("http://127.0.0.1:9000/.rt", "127.0.0.1", 9000, b"127.0.0.1:9000", "/.rt"),  # as it prints it
    ("HTTP://localhost:9000/.rt/my-fn/", "localhost", 9000, b"localhost:9000", "/.rt/my-fn"),
    ("[::1]:9001", "::1", 9001, b"[::1]:9001", ""),
    ("http://[::]:9000/.rt", "::", 9000, b"[::]:9000", "/.rt"),
    ("[fe80::1%lo]:9001", "fe80::1%lo", 9001, b"[fe80::1%lo]:9001", ""),
    ("localhost:9001/", "localhost", 9001, b"localhost:9001", ""),  # a trailing slash is no prefix
    ("localhost:9001//", "localhost", 9001, b"localhost:9001", ""),
    ("runtime_api.local:1/a/b/c", "runtime_api.local", 1, b"runtime_api.local:1", "/a/b/c"),
    ("  127.0.0.1:65535\n", "127.0.0.1", 65535, b"127.0.0.1:65535", ""),  # blanks around
])
def test_parse_address(value: str, host: str, port: int, host_header: bytes, prefix: str) -> None:
    assert protocol.parse_address(value) == protocol.RuntimeAPIAddress(host, port, host_header, prefix)


@pytest.mark.parametrize("value, reason", [
    ("", "no port"),
    ("no-port-here", "no port"),
    ("127.0.0.1:", "no port"),
    (":9001", "no host"),
    ("127.0.0.1:0", "bad port '0'"),
    ("127.0.0.1:65536", "bad port '65536'"),
    ("127.0.0.1:90510", "bad port '90510'"),
    ("127.0.0.1:-1", "bad port '-1'"),
    ("127.0.0.1:９００１", "bad port '９００１'"),  # digits, but not ASCII ones
    ("127.0.0.1: 9001", "bad port ' 9001'"),
    ("127.0.0.1 :9001", "bad host '127.0.0.1 '"),
    ("::1:9001", "an IPv6 address goes in brackets: [::1]:9001"),
    ("[]:9001", "bad IPv6 address '[]'"),
    ("[::1:9001", "bad IPv6 address '[::1'"),
    ("https://127.0.0.1:9001", "only http:// is supported"),
    ("unix:///tmp/rt.sock", "only http:// is supported"),
    ("user@127.0.0.1:9001", "bad host 'user@127.0.0.1'"),
    ("127.0.0.1:9001/.rt?x=1", "bad path '/.rt?x=1'"),
    ("127.0.0.1:9001/a b", "bad path '/a b'"),
    ("127.0.0.1:9001/#frag", "bad path '/#frag'"),
])
def test_parse_address_refuses(value: str, reason: str) -> None:
    with pytest.raises(ValueError) as e:
        protocol.parse_address(value)
    assert str(e.value) == (f"AWS_LAMBDA_RUNTIME_API must be host:port or host:port/path, "
                            f"got {value!r}: {reason}")


def test_every_target_carries_the_prefix_exact_bytes() -> None:
    address = protocol.parse_address("http://127.0.0.1:9001/.rt/fn/")
    host, p = address.host_header, address.prefix
    assert (host, p) == (HOST, "/.rt/fn")
    heads = {
        "next": protocol.get_request(host, p + protocol.NEXT_TARGET),
        "restore/next": protocol.get_request(host, p + protocol.RESTORE_NEXT_TARGET),
        "response": protocol.prefixed(protocol.response_request(host, inv(), b"application/json", 2), p),
        "error": protocol.prefixed(protocol.error_request(
            host, protocol.invocation_target(RID, "error"), "Function.E", 2), p),
        "init/error": protocol.prefixed(protocol.error_request(
            host, protocol.INIT_ERROR_TARGET, "Runtime.E", 2), p),
        "restore/error": protocol.prefixed(protocol.error_request(
            host, protocol.RESTORE_ERROR_TARGET, "Runtime.E", 2), p),
        "streamed response": protocol.prefixed(protocol.stream_request(host, inv(), b"text/plain"), p),
    }
    lines = {name: wire(head, b"" if head.method == b"GET" else b"{}").split(b"\r\n", 2)[:2]
             for name, head in heads.items()}
    rid = RID.encode()
    assert lines == {
        "next": [b"GET /.rt/fn/2018-06-01/runtime/invocation/next HTTP/1.1", b"Host: 127.0.0.1:9001"],
        "restore/next": [b"GET /.rt/fn/2018-06-01/runtime/restore/next HTTP/1.1", b"Host: 127.0.0.1:9001"],
        "response": [b"POST /.rt/fn/2018-06-01/runtime/invocation/" + rid + b"/response HTTP/1.1",
                     b"Host: 127.0.0.1:9001"],
        "error": [b"POST /.rt/fn/2018-06-01/runtime/invocation/" + rid + b"/error HTTP/1.1",
                  b"Host: 127.0.0.1:9001"],
        "init/error": [b"POST /.rt/fn/2018-06-01/runtime/init/error HTTP/1.1", b"Host: 127.0.0.1:9001"],
        "restore/error": [b"POST /.rt/fn/2018-06-01/runtime/restore/error HTTP/1.1", b"Host: 127.0.0.1:9001"],
        "streamed response": [b"POST /.rt/fn/2018-06-01/runtime/invocation/" + rid + b"/response HTTP/1.1",
                              b"Host: 127.0.0.1:9001"],
    }
    # No prefix: the very same head object (the constant /next head stays framed once).
    head = heads["next"]
    assert protocol.prefixed(head, "") is head


@pytest.mark.parametrize("status, ok", [(199, False), (200, True), (201, True), (202, True),
                                        (204, True), (299, True), (300, False), (410, False)])
def test_any_2xx_is_success(status: int, ok: bool) -> None:
    assert protocol.is_success(status) is ok


def test_cut_answer_warning() -> None:
    from aruntime.wire import WireError

    head = protocol.get_request(HOST, "/.rt" + protocol.NEXT_TARGET)
    with_head = WireError("the Runtime API closed the connection in the middle of its answer", cut=True,
                          head=(200, [(b"content-length", b"9"), (b"lambda-runtime-aws-request-id", b"r-9")]))
    assert protocol.cut_answer_warning(head, with_head) == (
        "the Runtime API's answer to GET /.rt/2018-06-01/runtime/invocation/next was cut short "
        "(request id r-9, status 200): the Runtime API closed the connection in the middle of its "
        "answer; sending the request again")
    cut_in_head = WireError("the Runtime API closed the connection in the middle of its answer",
                            cut=True)
    assert protocol.cut_answer_warning(head, cut_in_head) == (
        "the Runtime API's answer to GET /.rt/2018-06-01/runtime/invocation/next was cut short "
        "(before its head was complete): the Runtime API closed the connection in the middle of "
        "its answer; sending the request again")
    # A head that arrived whole but is not HTTP/1.1 was not cut short (breaker finding 8).
    assert protocol.cut_answer_warning(head, WireError("Invalid header token", cut=True)) == (
        "the Runtime API's answer to GET /.rt/2018-06-01/runtime/invocation/next is not valid "
        "HTTP/1.1: Invalid header token; sending the request again")
    bad_chunk = WireError("bad chunk", cut=True, head=(200, [(b"lambda-runtime-aws-request-id", b"r-9")]))
    assert protocol.cut_answer_warning(head, bad_chunk) == (
        "the Runtime API's answer to GET /.rt/2018-06-01/runtime/invocation/next is not valid "
        "HTTP/1.1 (request id r-9, status 200): bad chunk; sending the request again")
