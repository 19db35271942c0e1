"""Function URL requests: the v2.0 event in, the function's HTTP answer out.

A streamed answer of type `application/vnd.awslambda.http-integration-response` starts
with a JSON prelude (statusCode, headers, cookies) and 8 NUL bytes; the rest is the body,
written to the caller as it arrives.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import time
from typing import Any

import orjson
from aiohttp import web

from .invocation import Invocation, Outcome, ResponseHead, error_outcome, trace_header
from .invoke_api import (
    HTTP_INTEGRATION,
    MAX_PRELUDE,
    SANDBOX,
    SEPARATOR,
    caller_gone,
    collect,
    hung_up,
    read_payload,
)
from .limits import MAX_REQUEST
from .sandbox import Sandbox

_TEXT_TYPES = ("application/json", "application/javascript", "application/xml", "application/graphql")
_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive"}


class BadAnswer(Exception):
    """The function's answer cannot be turned into an HTTP response (Lambda says 502)."""


def _is_text(content_type: str) -> bool:
    ct = content_type.split(";", 1)[0].strip().lower()
    return ct.startswith("text/") or ct in _TEXT_TYPES or ct.endswith(("+json", "+xml"))


def build_event(request: web.Request, body: bytes, request_id: str, trace_id: str) -> dict[str, Any]:
    """The payload format 2.0 event of `request` (docs/SPEC.md §9); `trace_id` is the invocation's
    `Lambda-Runtime-Trace-Id`, whose Root the event's `x-amzn-trace-id` header carries when the
    caller sent none."""
    headers: dict[str, str] = {}
    for key, value in request.headers.items():
        key = key.lower()
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    cookie = headers.pop("cookie", None)
    peer = request.remote or "127.0.0.1"
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    headers.setdefault("x-forwarded-for", peer)
    headers.setdefault("x-forwarded-proto", request.scheme)
    headers.setdefault("x-forwarded-port", str(sockname[1]) if sockname else "80")
    headers.setdefault("x-amzn-trace-id", trace_id.split(";", 1)[0])
    query: dict[str, str] = {}
    for key, value in request.query.items():
        query[key] = f"{query[key]},{value}" if key in query else value
    host = request.host
    api_id = hashlib.md5(request.app[SANDBOX].config.function_name.encode()).hexdigest()
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": request.rel_url.raw_path,
        "rawQueryString": request.rel_url.raw_query_string,
    }
    if cookie:
        event["cookies"] = [c.strip() for c in cookie.split(";") if c.strip()]
    event["headers"] = headers
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = {
        "accountId": "anonymous",
        "apiId": api_id,
        "domainName": host,
        "domainPrefix": host.split(".", 1)[0].split(":", 1)[0],
        "http": {
            "method": request.method,
            "path": request.rel_url.raw_path,
            "protocol": f"HTTP/{request.version.major}.{request.version.minor}",
            "sourceIp": peer,
            "userAgent": request.headers.get("User-Agent", ""),
        },
        "requestId": request_id,
        "routeKey": "$default",
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }
    if body:
        text = _is_text(headers.get("content-type", ""))
        event["body"] = body.decode(errors="replace") if text else base64.b64encode(body).decode()
        event["isBase64Encoded"] = not text
    else:
        event["isBase64Encoded"] = False
    return event


def _apply_headers(response: web.StreamResponse, headers: Any, cookies: Any) -> None:
    if not isinstance(headers, dict) or not isinstance(cookies, list):
        raise BadAnswer("headers must be an object and cookies a list")
    for key, value in headers.items():
        if str(key).lower() in _HOP_BY_HOP:
            continue
        for one in value if isinstance(value, list) else [value]:
            response.headers.add(str(key), str(one))
    for cookie in cookies:
        response.headers.add("Set-Cookie", str(cookie))


def buffered_answer(body: bytes) -> web.Response:
    """A buffered result, read the way Function URLs read it (payload format 2.0)."""
    try:
        result = orjson.loads(body)
    except orjson.JSONDecodeError:
        result = None
    if not isinstance(result, dict) or "statusCode" not in result:
        return web.Response(body=body, content_type="application/json")
    try:
        status = int(result["statusCode"])
        raw = result.get("body")
        if raw is None:
            data = b""
        elif isinstance(raw, str):
            data = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode()
        else:
            data = orjson.dumps(raw)
        response = web.Response(status=status, body=data)
        _apply_headers(response, result.get("headers") or {}, result.get("cookies") or [])
    except (ValueError, TypeError, binascii.Error) as e:
        raise BadAnswer(str(e)) from e
    if "Content-Type" not in response.headers:
        response.content_type = "application/json"
    return response


def _bad_gateway() -> web.Response:
    return web.Response(status=502, body=b'{"Message":"Internal Server Error"}', content_type="application/json")


async def handle(request: web.Request) -> web.StreamResponse:
    sandbox: Sandbox = request.app[SANDBOX]
    surface = f"the Function URL ({request.method} {request.rel_url.raw_path})"
    try:
        body, _ = await read_payload(request, MAX_REQUEST)
    except ConnectionError:
        hung_up(sandbox, surface)
        return web.Response(status=400)  # to nobody: aiohttp drops it quietly
    if body is None:
        return web.Response(status=413, body=b'{"Message":"Request Entity Too Large"}', content_type="application/json")
    inv = Invocation(b"", trace_id=trace_header(request.headers.get("X-Amzn-Trace-Id")))
    inv.payload = orjson.dumps(build_event(request, body, inv.request_id, inv.trace_id))
    sandbox.submit(inv)
    try:
        response = await _answer(request, inv, sandbox)
    except BadAnswer as e:
        sandbox.log(f"Function URL: bad answer from the function ({e}); replying 502")
        response = _bad_gateway()
    except ConnectionError:
        # Before the head (the caller left while the function ran) or mid-stream: one line,
        # and the function's stream is no longer read. aiohttp drops what is returned quietly.
        hung_up(sandbox, surface, inv)
        return web.Response(status=502)
    except asyncio.CancelledError:
        inv.detach()
        raise
    if not response.prepared and caller_gone(request):
        hung_up(sandbox, surface, inv)  # a buffered answer nobody is left to read
    return response


async def _answer(request: web.Request, inv: Invocation, sandbox: Sandbox) -> web.StreamResponse:
    first = await inv.next_item()
    if isinstance(first, Outcome) or not isinstance(first, ResponseHead):
        return _bad_gateway()
    if not first.streaming:
        _, data, outcome = await collect(inv)
        return buffered_answer(data) if outcome.ok else _bad_gateway()
    response = web.StreamResponse()
    rest = b""
    if first.content_type.split(";", 1)[0].strip() == HTTP_INTEGRATION:
        prelude, rest, ended = await _read_prelude(inv)
        if isinstance(ended, Outcome) and not ended.ok:
            return _bad_gateway()
        try:
            response.set_status(int(prelude.get("statusCode", 200)))
        except (TypeError, ValueError) as e:
            raise BadAnswer(f"bad statusCode: {e}") from e
        _apply_headers(response, prelude.get("headers") or {}, prelude.get("cookies") or [])
        if "Content-Type" not in response.headers:
            response.content_type = "application/octet-stream"
    else:
        ended = None
        response.headers["Content-Type"] = first.content_type
    response.headers["X-Amzn-RequestId"] = inv.request_id
    await response.prepare(request)
    if rest:
        await response.write(rest)
    while ended is None:
        item = await inv.next_item()
        if isinstance(item, bytes):
            await response.write(item)
        elif isinstance(item, Outcome):
            ended = item
    if not ended.ok:
        # A stream cut short (midstream error, 200 MB limit, timeout, crash) must not look
        # complete: the connection closes without the terminating chunk, after what was sent
        # is flushed, so an HTTP client reports a truncated body (curl exits 18, aiohttp raises
        # ClientPayloadError). aiohttp's own write_eof then finds the transport closing.
        sandbox.log(f"Function URL: response stream ended with {ended.error_type}: {ended.error_message}; "
                    "closing the connection without the final chunk (the caller sees a truncated body)")
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response


async def _read_prelude(inv: Invocation) -> tuple[dict[str, Any], bytes, Outcome | None]:
    """(prelude, body bytes already received, the outcome if the stream already ended)."""
    buf = bytearray()
    while SEPARATOR not in buf:
        item = await inv.next_item()
        if isinstance(item, Outcome):
            if not item.ok or not buf:
                return {}, b"", item if not item.ok else error_outcome("Runtime.Unknown", "empty response")
            buf += SEPARATOR  # ended without a separator: all of it was the prelude
            ended: Outcome | None = item
            break
        if isinstance(item, bytes):
            buf += item
        if len(buf) > MAX_PRELUDE + len(SEPARATOR) and SEPARATOR not in buf:
            raise BadAnswer("no prelude separator within 16 KiB")
    else:
        ended = None
    raw, _, rest = bytes(buf).partition(SEPARATOR)
    try:
        prelude = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as e:
        raise BadAnswer(f"prelude is not JSON: {e}") from e
    if not isinstance(prelude, dict):
        raise BadAnswer("prelude is not a JSON object")
    return prelude, rest, ended
