"""Function URL requests: the v2.0 event the function gets, and how its answer is applied."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from pathlib import Path

import aiohttp

from .helpers import LIMIT, emulator

HTTP_APP = '''
import base64

def handler(event, context):
    path = event["rawPath"]
    if path == "/binary":
        return {"statusCode": 418, "headers": {"X-A": "1", "Content-Type": "image/png"},
                "cookies": ["a=1; Path=/", "b=2"],
                "body": base64.b64encode(b"\\x00\\x01\\xff").decode(), "isBase64Encoded": True}
    if path == "/bad":
        return {"statusCode": "not a number"}
    if path == "/boom":
        raise KeyError("boom")
    if path == "/text":
        return {"statusCode": 200, "body": "plain text"}
    return ["not", "an", "http", "answer"]
'''


async def request(url: str, method: str = "GET", **kwargs) -> tuple[int, aiohttp.typedefs.LooseHeaders, bytes]:  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        async with aiohttp.ClientSession() as session:
            async with session.request(method, url, **kwargs) as r:
                return r.status, r.headers, await r.read()

    return await asyncio.wait_for(go(), LIMIT)


async def test_v2_event_shape() -> None:
    async with emulator() as emu:
        headers = [("Cookie", "c1=v1; c2=v2"), ("X-Multi", "a"), ("X-Multi", "b"), ("Content-Type", "application/json")]
        before = int(time.time() * 1000)
        status, _, body = await request(
            emu.url + "/some/path?a=1&a=2&b=x%20y", "POST", data=b'{"k": 1}', headers=headers
        )
        after = int(time.time() * 1000)
        assert status == 200
        event = json.loads(body)["echo"]
        assert event["version"] == "2.0" and event["routeKey"] == "$default"
        assert event["rawPath"] == "/some/path"
        assert event["rawQueryString"] == "a=1&a=2&b=x%20y"
        assert event["queryStringParameters"] == {"a": "1,2", "b": "x y"}
        assert event["cookies"] == ["c1=v1", "c2=v2"]
        assert "cookie" not in event["headers"]
        assert event["headers"]["x-multi"] == "a,b"
        assert event["headers"]["content-type"] == "application/json"
        assert event["body"] == '{"k": 1}' and event["isBase64Encoded"] is False
        ctx = event["requestContext"]
        assert ctx["accountId"] == "anonymous" and ctx["stage"] == "$default"
        assert ctx["http"]["method"] == "POST" and ctx["http"]["path"] == "/some/path"
        assert ctx["http"]["protocol"] == "HTTP/1.1" and ctx["http"]["sourceIp"] == "127.0.0.1"
        assert ctx["http"]["userAgent"].startswith("Python/")
        assert isinstance(ctx["timeEpoch"], int) and before <= ctx["timeEpoch"] <= after
        # The invocation's request id: the one the function's context has.
        assert ctx["requestId"] == json.loads(body)["request_id"]
        assert str(uuid.UUID(ctx["requestId"])) == ctx["requestId"]

        status, _, body = await request(
            emu.url + "/upload", "PUT", data=b"\x00\xffbin", headers={"Content-Type": "application/octet-stream"}
        )
        event = json.loads(body)["echo"]
        assert event["isBase64Encoded"] is True
        assert base64.b64decode(event["body"]) == b"\x00\xffbin"
        assert "queryStringParameters" not in event and "cookies" not in event


async def test_buffered_http_answers(tmp_path: Path) -> None:
    (tmp_path / "web.py").write_text(HTTP_APP)
    async with emulator(f"{tmp_path}/web.py:handler") as emu:
        status, headers, body = await request(emu.url + "/binary")
        assert status == 418
        assert headers["X-A"] == "1" and headers["Content-Type"] == "image/png"
        assert headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2"]
        assert body == b"\x00\x01\xff"

        status, headers, body = await request(emu.url + "/text")
        assert (status, body) == (200, b"plain text")
        assert headers["Content-Type"] == "application/json"

        status, headers, body = await request(emu.url + "/other")
        assert status == 200 and json.loads(body) == ["not", "an", "http", "answer"]

        for path in ("/bad", "/boom"):
            status, _, _ = await request(emu.url + path)
            assert status == 502
        status, _, body = await request(emu.url + "/text")
        assert (status, body) == (200, b"plain text")  # still serving
