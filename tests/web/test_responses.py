"""ASGI responses to streamed preludes and buffered response objects, sans-IO
(aruntime/web/responses.py; docs/SPEC.md §3, §9)."""

from __future__ import annotations

import base64

import pytest

from aruntime.web.events import Format
from aruntime.web.responses import Head, buffered, prelude

HEADERS = [(b"Content-Type", b"text/plain; charset=utf-8"), (b"set-cookie", b"a=1; HttpOnly"),
           (b"vary", b"Accept"), (b"set-cookie", b"b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT"),
           (b"vary", b"Origin"), (b"transfer-encoding", b"chunked"), (b"x-one", b"1")]


def test_v2_prelude_bytes():
    assert prelude(Format.V2, Head(201, HEADERS)) == (
        b'{"statusCode":201,"headers":{"content-type":"text/plain; charset=utf-8",'
        b'"vary":"Accept,Origin","x-one":"1"},"cookies":["a=1; HttpOnly",'
        b'"b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT"]}')


def test_v1_prelude_bytes():
    assert prelude(Format.V1, Head(200, HEADERS)) == (
        b'{"statusCode":200,"headers":{"content-type":"text/plain; charset=utf-8","x-one":"1"},'
        b'"multiValueHeaders":{"set-cookie":["a=1; HttpOnly",'
        b'"b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT"],"vary":["Accept","Origin"]}}')


def test_v2_buffered_text_and_binary():
    text = buffered(Format.V2, Head(200, HEADERS), "héllo".encode())
    assert text == {"statusCode": 200,
                    "headers": {"content-type": "text/plain; charset=utf-8",
                                "vary": "Accept,Origin", "x-one": "1"},
                    "cookies": ["a=1; HttpOnly", "b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT"],
                    "body": "héllo", "isBase64Encoded": False}
    raw = bytes(range(256))
    binary = buffered(Format.V2, Head(200, [(b"content-type", b"image/png")]), raw)
    assert binary["isBase64Encoded"] is True and base64.b64decode(binary["body"]) == raw
    # Declared text that is not UTF-8 must not be mangled either.
    latin = buffered(Format.V2, Head(200, [(b"content-type", b"text/plain")]), b"caf\xe9")
    assert latin["isBase64Encoded"] is True and base64.b64decode(latin["body"]) == b"caf\xe9"
    for media in (b"application/json", b"application/problem+json", b"image/svg+xml"):
        assert buffered(Format.V2, Head(200, [(b"content-type", media)]), b"{}")["body"] == "{}"


def test_v1_buffered_splits_single_and_repeated():
    out = buffered(Format.V1, Head(404, HEADERS), b"")
    assert out == {"statusCode": 404,
                   "headers": {"content-type": "text/plain; charset=utf-8", "x-one": "1"},
                   "multiValueHeaders": {"set-cookie": ["a=1; HttpOnly",
                                                        "b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT"],
                                         "vary": ["Accept", "Origin"]},
                   "body": "", "isBase64Encoded": False}


def test_alb_single_value_keeps_each_cookie_under_another_casing():
    out = buffered(Format.ALB, Head(200, HEADERS), b"ok")
    assert out == {"statusCode": 200, "statusDescription": "200 OK",
                   "headers": {"content-type": "text/plain; charset=utf-8",
                               "vary": "Accept,Origin", "x-one": "1",
                               "set-cookie": "a=1; HttpOnly",
                               "Set-cookie": "b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT"},
                   "body": "ok", "isBase64Encoded": False}


def test_alb_multi_value():
    out = buffered(Format.ALB, Head(418, HEADERS), b"", multi_value=True)
    assert out["statusDescription"] == "418 I'm a Teapot" and "headers" not in out
    assert out["multiValueHeaders"] == {
        "content-type": ["text/plain; charset=utf-8"],
        "set-cookie": ["a=1; HttpOnly", "b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT"],
        "vary": ["Accept", "Origin"], "x-one": ["1"]}
    assert buffered(Format.ALB, Head(299, []), b"")["statusDescription"] == "299 Unknown"


def test_limits():
    with pytest.raises(ValueError, match="status 1000 is out of range"):
        Head(1000, [])
    with pytest.raises(ValueError, match="a streamed answer allows 16384"):
        prelude(Format.V2, Head(200, [(b"x-big", b"x" * 17000)]))


@pytest.mark.parametrize("name, value", [
    (b"x", b"a\r\nInjected: 1"), (b"x", b"a\nb"), (b"x", b"a\rb"), (b"x", b"a\x00b"),
    (b"x y", b"1"), (b"x:", b"1"), (b"", b"1"), (b"x\r\nInjected", b"1")])
def test_header_that_could_forge_another_is_refused(name, value):
    # Whatever the service does with a line break in the prelude's JSON, the app's header must
    # not become two (RFC 9110 §5.5); the cycle answers 500 for the app's error, as uvicorn does.
    with pytest.raises(ValueError, match="invalid"):
        Head(200, [(b"content-type", b"text/plain"), (name, value)])
    assert Head(200, [(b"x", b"tab\tand spaces, \xe9 ok")]).names["x"] == ["tab\tand spaces, é ok"]
