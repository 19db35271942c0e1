"""HTTP events of Lambda's integrations as ASGI requests (sans-IO).

Three formats reach a function (docs/SPEC.md §9; AWS docs "Lambda function URL request and response
payloads", "Create AWS Lambda proxy integrations for HTTP APIs", "Lambda proxy integration input
format" for REST APIs, "Lambda functions as targets" for ALB):

- payload 2.0 (Function URLs, HTTP APIs): `version: "2.0"`, `rawPath`, `rawQueryString`,
  `headers` (repeated values comma-joined by the service), `cookies`, `requestContext.http`;
- payload 1.0 (REST APIs, HTTP APIs set to 1.0): `httpMethod`, `path`, `headers` and
  `multiValueHeaders`, `queryStringParameters` and `multiValueQueryStringParameters`;
- ALB: `requestContext.elb`, the 1.0 keys, with the multi-value variants only when the target
  group enables multi-value headers. ALB passes the query string as received (not decoded).

`parse` turns one event into an `HttpRequest`: the ASGI `http` scope and the request body.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from enum import Enum
from typing import Any
from urllib.parse import quote, unquote, urlencode

from .. import errors
from ..errors import RuntimeFault

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}  # 2.4: send() raises OSError once gone


class Format(Enum):
    """The event format, which also fixes the response format."""

    V2 = "payload 2.0"   # Function URL, API Gateway HTTP API
    V1 = "payload 1.0"   # API Gateway REST API, HTTP API with payload 1.0
    ALB = "ALB"          # Application Load Balancer


class HttpRequest:
    """One HTTP request taken from an event: its format, ASGI scope and body."""

    __slots__ = ("format", "multi_value", "scope", "body")

    def __init__(self, fmt: Format, multi_value: bool, scope: dict[str, Any],
                 body: bytes) -> None:
        self.format = fmt
        # ALB only: the target group has multi-value headers on, so must the response.
        self.multi_value = multi_value
        self.scope = scope
        self.body = body


def invalid(message: str) -> RuntimeFault:
    return RuntimeFault(errors.INVALID_EVENT, message)


def detect(event: Any) -> Format:
    """The format of `event`; `RuntimeFault(Runtime.InvalidEvent)` naming what came instead."""
    if isinstance(event, dict):
        context = event.get("requestContext")
        if isinstance(context, dict):
            if "elb" in context:
                return Format.ALB
            if event.get("version") == "2.0" and isinstance(context.get("http"), dict):
                return Format.V2
            if "httpMethod" in event:
                return Format.V1
        keys = sorted(str(k) for k in event)
        shown = ", ".join(keys[:12]) + (", …" if len(keys) > 12 else "")
        got = f"a JSON object with keys [{shown}]"
    elif isinstance(event, (bytes, bytearray)):
        got = f"{len(event)} bytes that are not JSON"
    else:
        got = f"a JSON {_json_type(event)}"
    raise invalid("The event is not an HTTP request from a Function URL, API Gateway (payload "
                  f"2.0 or 1.0) or an ALB: got {got}")


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def parse(event: Any, context: Any = None) -> HttpRequest:
    """The request in `event`. Raises `RuntimeFault(Runtime.InvalidEvent)` for anything else."""
    fmt = detect(event)
    try:
        if fmt is Format.V2:
            scope, multi = _v2(event), False
        else:
            scope, multi = _v1_or_alb(event, fmt)
        body = _body(event)
    except RuntimeFault:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise invalid(f"Malformed {fmt.value} event: {type(e).__name__}: {e}") from None
    scope["aws.event"] = event
    scope["aws.context"] = context
    return HttpRequest(fmt, multi, scope, body)


def _body(event: dict[str, Any]) -> bytes:
    body = event.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise invalid(f"The event's body is a JSON {_json_type(body)}, not a string")
    if event.get("isBase64Encoded"):
        try:
            return b64decode(body, validate=True)
        except binascii.Error as e:
            raise invalid(f"The event's body is marked isBase64Encoded but is not base64: {e}") from None
    return body.encode("utf-8")


def _encode(value: Any) -> bytes:
    # The service decoded header bytes to put them in JSON; UTF-8 gives the original back.
    return str(value).encode("utf-8")


def _http_version(protocol: Any) -> str:
    # "HTTP/1.1" -> "1.1"; ASGI knows "1.0", "1.1" and "2".
    version = str(protocol or "").rpartition("/")[2]
    if version.startswith("2"):
        return "2"
    return version if version in ("1.0", "1.1") else "1.1"


def _server(headers: dict[str, str], scheme: str) -> tuple[str, int]:
    host = headers.get("host") or "localhost"
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and (not name.startswith("[") or name.endswith("]")):
        return name, int(port)
    forwarded = headers.get("x-forwarded-port", "")
    return host, int(forwarded) if forwarded.isdigit() else (443 if scheme == "https" else 80)


def _stage_prefix(path: str, stage: Any) -> str:
    """`/stage` when `path` starts with a named stage (HTTP APIs put it there), else ``."""
    if not isinstance(stage, str) or not stage or stage == "$default":
        return ""
    prefix = "/" + stage
    return prefix if path == prefix or path.startswith(prefix + "/") else ""


def _scope(method: str, raw_path: str, root_path: str, query: bytes,
           headers: list[tuple[bytes, bytes]], single: dict[str, str],
           client: str | None, http_version: str) -> dict[str, Any]:
    scheme = single.get("x-forwarded-proto", "https").split(",")[0].strip() or "https"
    return {
        "type": "http",
        "asgi": dict(ASGI_VERSION),
        "http_version": http_version,
        "method": method.upper(),
        "scheme": scheme,
        # ASGI: `path` is decoded and includes `root_path`; `raw_path` is as received.
        "path": unquote(raw_path),
        "raw_path": raw_path.encode("utf-8"),
        "root_path": unquote(root_path),
        "query_string": query,
        "headers": headers,
        "client": (client, 0) if client else None,
        "server": _server(single, scheme),
    }


def _v2(event: dict[str, Any]) -> dict[str, Any]:
    context = event["requestContext"]
    http = context["http"]
    raw_path = event.get("rawPath") or http.get("path") or "/"
    single = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    headers = [(k.encode("latin-1"), _encode(v)) for k, v in single.items() if k != "cookie"]
    # Payload 2.0 moves the Cookie header into a list; the app expects the header back.
    cookies = [str(c) for c in event.get("cookies") or []]
    if "cookie" in single:
        cookies.insert(0, single["cookie"])
    if cookies:
        headers.append((b"cookie", _encode("; ".join(cookies))))
    query = str(event.get("rawQueryString") or "").encode("utf-8")
    return _scope(str(http["method"]), raw_path, _stage_prefix(raw_path, context.get("stage")),
                  query, headers, single, http.get("sourceIp"),
                  _http_version(http.get("protocol")))


def _v1_or_alb(event: dict[str, Any], fmt: Format) -> tuple[dict[str, Any], bool]:
    context = event["requestContext"]
    multi_headers = event.get("multiValueHeaders")
    # ALB sends the multi-value keys only when the target group has them on; its answer must
    # then use them too.
    multi = "multiValueHeaders" in event
    headers: list[tuple[bytes, bytes]] = []
    single: dict[str, str] = {}
    if isinstance(multi_headers, dict) and multi_headers:
        for key, values in multi_headers.items():
            name = str(key).lower()
            for value in values if isinstance(values, list) else [values]:
                headers.append((name.encode("latin-1"), _encode(value)))
                single[name] = str(value)
    else:
        for key, value in (event.get("headers") or {}).items():
            name = str(key).lower()
            headers.append((name.encode("latin-1"), _encode(value)))
            single[name] = str(value)
    path = str(event.get("path") or "/")
    if fmt is Format.ALB:
        query = _alb_query(event)
        forwarded = single.get("x-forwarded-for", "")
        # ALB appends the address it saw last; earlier entries are the client's own claims.
        client = forwarded.rpartition(",")[2].strip() or None
        return _scope(str(event["httpMethod"]), path, "", query, headers, single, client,
                      "1.1"), multi
    params = event.get("multiValueQueryStringParameters") or event.get("queryStringParameters")
    query = urlencode(params, doseq=True).encode("ascii") if params else b""
    identity = context.get("identity") or {}
    if event.get("version") == "1.0":
        # HTTP API with payload 1.0: `path` already carries a named stage, as in 2.0.
        root = _stage_prefix(path, context.get("stage"))
    else:
        # REST API: `path` is the resource path; `requestContext.path` is what the client
        # asked for (with the stage on the execute-api domain, with a base path on a custom
        # domain): what precedes `path` in it is where the API is mounted.
        full = str(context.get("path") or path)
        if full.endswith(path):
            root = full[: len(full) - len(path)]
        elif path == "/":
            root = full.rstrip("/")  # the stage itself was asked for, without a slash
        else:
            root = ""
        path = root + path
    return _scope(str(event["httpMethod"]), path, root, query, headers, single,
                  identity.get("sourceIp"), _http_version(context.get("protocol"))), multi


def _alb_query(event: dict[str, Any]) -> bytes:
    # ALB hands the query over undecoded: rejoin it as received, only quoting what cannot
    # appear in a query string at all.
    params = event.get("multiValueQueryStringParameters") or event.get("queryStringParameters")
    if not params:
        return b""
    parts = []
    for key, values in params.items():
        for value in values if isinstance(values, list) else [values]:
            parts.append(f"{_requote(str(key))}={_requote(str(value))}")
    return "&".join(parts).encode("ascii")


def _requote(text: str) -> str:
    return quote(text, safe="%/:@!$'()*+,;=?~-._")
