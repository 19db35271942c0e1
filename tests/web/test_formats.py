"""A real FastAPI app behind aruntime.asgi, through the fake Runtime API: every event format
(payload 2.0, REST payload 1.0, ALB single- and multi-value) in every invoke mode.

One runtime process per invoke mode serves all formats and routes, so lifespan startup is seen
to run once for all of them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import uuid

import pytest

from fakeapi import FakeRuntimeAPI, run_runtime

from . import http_events as E
from .answers import Answer, decode

APP = "tests.web.fastapi_app."
BINARY = bytes(range(256)) * 4
UPLOAD = bytes(range(256)) * 40 + b"\r\n--not-a-boundary\r\n"


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> tuple[str, bytes]:
    boundary = uuid.uuid4().hex
    out = b""
    for name, value in fields.items():
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                f"{value}\r\n").encode()
    for name, (filename, data, ctype) in files.items():
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{filename}"\r\nContent-Type: {ctype}\r\n\r\n').encode() + data + b"\r\n"
    return f"multipart/form-data; boundary={boundary}", out + f"--{boundary}--\r\n".encode()


FORM_TYPE, FORM_BODY = multipart({"name": "Zoë"}, {"upload": ("data.bin", UPLOAD, "application/x-thing")})

ROUTES: dict[str, dict] = {
    "item": dict(method="GET", target="/items/3?q=x%20y"),
    "json": dict(method="POST", target="/json", headers=[("Content-Type", "application/json")],
                 body=b'{"k": [1, "\xc3\xa9"]}'),
    "form": dict(method="POST", target="/form", headers=[("Content-Type", FORM_TYPE)],
                 body=FORM_BODY, binary=True),
    "cookies": dict(method="GET", target="/cookies"),
    "binary": dict(method="GET", target="/binary"),
    "missing": dict(method="GET", target="/nope"),
    "boom": dict(method="GET", target="/boom"),
    "midway": dict(method="GET", target="/midway"),
    "stream": dict(method="GET", target="/stream?n=3&delay=0.1"),
    "sse": dict(method="GET", target="/sse?n=3&delay=0.02"),
    "scope": dict(method="GET", target="/scope?a=1&a=2",
                  headers=[("Cookie", "c1=v1; c2=v2"), ("X-Multi", "m1"), ("X-Multi", "m2")]),
    "empty": dict(method="DELETE", target="/empty"),
}


async def serve_all(api: FakeRuntimeAPI, handler: str, env: dict[str, str] | None = None
                    ) -> tuple[dict[tuple[str, str], Answer], object]:
    ids: dict[str, tuple[str, str]] = {}
    for fmt in E.FORMATS:
        for name, route in ROUTES.items():
            ids[api.push(E.make(fmt, **route))] = (fmt, name)
    invalid = api.push({"hello": "world"})
    api.finish()
    proc = await run_runtime([sys.executable, "-m", "aruntime", APP + handler], api, env=env)
    assert await proc.wait(60) == 1, proc.stderr[-3000:]
    answers = {}
    for ex in api.exchanges:
        rid = ex.target.split("/")[-2] if ex.method == "POST" else None
        if rid in ids:
            answers[ids[rid]] = decode(ex)
        elif rid == invalid:
            answers[("invalid", "")] = ex  # type: ignore[assignment]
    assert len(answers) == len(ids) + 1, sorted(answers)
    return answers, proc


MODES = {
    # mode name -> (handler attribute, environment)
    "auto": ("handler", None),
    "response_stream": ("handler", {"ARUNTIME_INVOKE_MODE": "RESPONSE_STREAM"}),
    "buffered": ("handler_buffered", None),
}


def streams(mode: str, fmt: str) -> bool:
    if fmt.startswith("alb"):
        return False  # ALB cannot take a stream
    return fmt == "v2" if mode == "auto" else mode == "response_stream"


@pytest.mark.parametrize("mode", list(MODES))
async def test_every_format_in_every_invoke_mode(fake_api, mode):
    handler, env = MODES[mode]
    answers, proc = await serve_all(fake_api, handler, env)
    out = proc.stdout.decode()
    # Lifespan startup ran once, at Init, for every invocation of the process.
    assert out.count("lifespan startup") == 1 and "lifespan startup 1" in out

    for fmt in E.FORMATS:
        a = {name: answers[(fmt, name)] for name in ROUTES}
        for name, answer in a.items():
            assert answer.streamed is streams(mode, fmt), (fmt, name)
            _check_shape(fmt, answer)

        assert a["item"].status == 200
        assert a["item"].json() == {"item_id": 3, "q": "x y", "db": "connected", "startups": 1,
                                    "same_loop": True}
        assert a["json"].json() == {"got": {"k": [1, "é"]}}
        assert a["form"].json() == {"name": "Zoë", "filename": "data.bin", "size": len(UPLOAD),
                                    "sha256": hashlib.sha256(UPLOAD).hexdigest(),
                                    "type": "application/x-thing"}
        assert sorted(a["cookies"].all("set-cookie")) == [
            "a=1; HttpOnly; Path=/; SameSite=lax",
            "b=2; expires=Wed, 21 Oct 2037 07:28:00 GMT; Path=/; SameSite=lax"]
        assert ",".join(a["cookies"].all("vary")) == "Accept,Origin"
        assert a["binary"].body == BINARY
        assert a["binary"].header("content-disposition") == 'attachment; filename="b.bin"'
        assert (a["missing"].status, a["missing"].json()) == (404, {"detail": "Not Found"})
        assert (a["boom"].status, a["boom"].body) == (500, b"Internal Server Error")
        assert a["stream"].body == b"chunk 0\nchunk 1\nchunk 2\n"
        assert a["sse"].header("content-type") == "text/event-stream; charset=utf-8"
        assert a["sse"].body.replace(b"\r\n", b"\n") == b"".join(
            b"id: %d\nevent: token\ndata: word%d\n\n" % (i, i) for i in range(3))
        assert a["empty"].status == 204 and a["empty"].body == b""
        _check_scope(fmt, a["scope"].json())

        midway = a["midway"]
        if midway.streamed:
            # Failed after the first byte: the stream ends with the error trailers (docs/SPEC.md §3).
            assert midway.status == 200 and midway.body == b"first part\n"
            ex = midway.exchange
            assert ex.trailer("lambda-runtime-function-error-type") == "Function.RuntimeError"
            error = json.loads(base64.b64decode(ex.trailer("lambda-runtime-function-error-body")))
            assert error["errorMessage"] == "the model went away"
        else:
            assert (midway.status, midway.body) == (500, b"Internal Server Error")

        if a["stream"].streamed:
            # Each chunk left when the app sent it: prelude, separator, then ~0.1 s apart.
            chunks = a["stream"].exchange.chunks
            assert [c for _, c in chunks[2:]] == [b"chunk 0\n", b"chunk 1\n", b"chunk 2\n"]
            gaps = [b[0] - a_[0] for a_, b in zip(chunks[1:], chunks[2:])]
            assert all(g > 0.07 for g in gaps), gaps
        else:
            assert a["binary"].meta["isBase64Encoded"] is True

    # The exception was logged with the request id of its invocation, and the traceback.
    boom_id = answers[("v2", "boom")].exchange.target.split("/")[-2]
    line = next(line for line in out.splitlines() if "Exception in ASGI app" in line)
    assert f"\t{boom_id}\tException in ASGI app after its response completed" in line
    assert "KeyError: 'boom'" in out
    assert "RuntimeError: the model went away" in out  # logged with its traceback in any mode

    invalid = answers[("invalid", "")]
    assert invalid.target.endswith("/error")  # type: ignore[attr-defined]
    assert invalid.header("lambda-runtime-function-error-type") == "Runtime.InvalidEvent"  # type: ignore[attr-defined]
    assert "got a JSON object with keys [hello]" in invalid.json()["errorMessage"]  # type: ignore[attr-defined]


def _check_shape(fmt: str, a: Answer) -> None:
    keys = set(a.meta)
    body_keys = set() if a.streamed else {"body", "isBase64Encoded"}
    if fmt == "v2":
        assert keys == {"statusCode", "headers", "cookies"} | body_keys
    elif fmt == "v1":
        assert keys == {"statusCode", "headers", "multiValueHeaders"} | body_keys
    elif fmt == "alb":
        assert keys == {"statusCode", "statusDescription", "headers"} | body_keys
    else:
        assert keys == {"statusCode", "statusDescription", "multiValueHeaders"} | body_keys
    if fmt.startswith("alb"):
        assert a.meta["statusDescription"].startswith(f"{a.status} ")


def _check_scope(fmt: str, s: dict) -> None:
    assert s["method"] == "GET" and s["scheme"] == "https" and s["http_version"] == "1.1"
    assert s["cookies"] == {"c1": "v1", "c2": "v2"}
    assert s["request_id"] and "requestContext" in s["event_keys"]
    multi = [v for k, v in s["headers"] if k == "x-multi"]
    if fmt == "v2":
        assert multi == ["m1,m2"]  # the service joined them
        assert s["url"] == "https://abc123.lambda-url.us-east-1.on.aws/scope?a=1&a=2"
        assert s["url_for"] == "https://abc123.lambda-url.us-east-1.on.aws/items/7"
        assert s["client"] == ["203.0.113.9", 0]
    elif fmt == "v1":
        assert multi == ["m1", "m2"]
        assert (s["root_path"], s["path"]) == ("/prod", "/prod/scope")
        assert s["url_for"] == "https://abc123.execute-api.us-east-1.amazonaws.com/prod/items/7"
        assert s["query_string"] == "a=1&a=2"
    else:
        assert multi == (["m1", "m2"] if fmt == "alb_multi" else ["m2"])
        assert s["client"] == ["203.0.113.9", 0] and s["root_path"] == ""
        assert s["url_for"] == "https://lb-123.us-east-1.elb.amazonaws.com/items/7"
