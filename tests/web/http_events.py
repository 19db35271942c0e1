"""Events as Lambda's HTTP integrations send them, shaped after the AWS documentation's examples
("Lambda function URL request and response payloads", "Lambda proxy integration input format",
"Lambda functions as targets" for ALB), for the web adapter tests."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

FORMATS = ("v2", "v1", "alb", "alb_multi")


def _split(target: str) -> tuple[str, str]:
    path, _, query = target.partition("?")
    return path, query


def _pairs(query: str) -> list[tuple[str, str]]:
    out = []
    for part in query.split("&") if query else []:
        key, _, value = part.partition("=")
        out.append((key, value))
    return out


def _body(body: bytes | None, binary: bool) -> dict[str, Any]:
    if body is None:
        return {"body": None, "isBase64Encoded": False}
    if binary:
        return {"body": base64.b64encode(body).decode(), "isBase64Encoded": True}
    return {"body": body.decode(), "isBase64Encoded": False}


def v2(method: str, target: str, headers: list[tuple[str, str]] | None = None,
       body: bytes | None = None, binary: bool = False, stage: str = "$default") -> dict[str, Any]:
    """Function URL / HTTP API payload 2.0."""
    path, query = _split(target)
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for key, value in [("host", "abc123.lambda-url.us-east-1.on.aws"),
                       ("x-forwarded-proto", "https"), ("x-forwarded-port", "443"),
                       ("x-forwarded-for", "203.0.113.9"), *(headers or [])]:
        key = key.lower()
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";"))
            continue
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    event: dict[str, Any] = {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": joined,
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123", "domainName": joined["host"],
            "domainPrefix": "abc123", "stage": stage, "requestId": "rc-1",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.9", "userAgent": joined.get("user-agent", "test")},
            "routeKey": "$default", "time": "12/Mar/2026:19:03:58 +0000", "timeEpoch": 1773342238000,
        },
        **_body(body, binary),
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        params: dict[str, str] = {}
        for key, value in _pairs(query):
            params[key] = f"{params[key]},{value}" if key in params else value
        event["queryStringParameters"] = params
    return event


def v1(method: str, target: str, headers: list[tuple[str, str]] | None = None,
       body: bytes | None = None, binary: bool = False, stage: str = "prod") -> dict[str, Any]:
    """API Gateway REST API (payload 1.0): `path` is the resource path, the stage is in
    `requestContext.path`; parameters are decoded."""
    from urllib.parse import unquote_plus

    path, query = _split(target)
    all_headers = [("Host", "abc123.execute-api.us-east-1.amazonaws.com"),
                   ("X-Forwarded-Proto", "https"), ("X-Forwarded-Port", "443"),
                   ("X-Forwarded-For", "203.0.113.9"), *(headers or [])]
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key, value in all_headers:
        single[key] = value
        multi.setdefault(key, []).append(value)
    qs: dict[str, str] = {}
    mqs: dict[str, list[str]] = {}
    for key, value in _pairs(query):
        key, value = unquote_plus(key), unquote_plus(value)
        qs[key] = value
        mqs.setdefault(key, []).append(value)
    return {
        "resource": "/{proxy+}", "path": path, "httpMethod": method,
        "headers": single, "multiValueHeaders": multi,
        "queryStringParameters": qs or None, "multiValueQueryStringParameters": mqs or None,
        "pathParameters": {"proxy": path.lstrip("/")}, "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123", "resourcePath": "/{proxy+}",
            "httpMethod": method, "path": f"/{stage}{path}", "stage": stage,
            "protocol": "HTTP/1.1", "requestId": "rc-1",
            "identity": {"sourceIp": "203.0.113.9", "userAgent": "test"},
        },
        **_body(body, binary),
    }


def alb(method: str, target: str, headers: list[tuple[str, str]] | None = None,
        body: bytes | None = None, binary: bool = False, multi_value: bool = False) -> dict[str, Any]:
    """ALB target group event; the query string as received, undecoded."""
    path, query = _split(target)
    all_headers = [("host", "lb-123.us-east-1.elb.amazonaws.com"), ("x-forwarded-proto", "https"),
                   ("x-forwarded-port", "443"), ("x-forwarded-for", "198.51.100.1, 203.0.113.9"),
                   *(headers or [])]
    event: dict[str, Any] = {
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:"
                                                     "123456789012:targetgroup/tg/abc"}},
        "httpMethod": method, "path": path, **_body(body, binary),
    }
    if multi_value:
        multi: dict[str, list[str]] = {}
        for key, value in all_headers:
            multi.setdefault(key.lower(), []).append(value)
        mqs: dict[str, list[str]] = {}
        for key, value in _pairs(query):
            mqs.setdefault(key, []).append(value)
        event["multiValueHeaders"] = multi
        event["multiValueQueryStringParameters"] = mqs
    else:
        single: dict[str, str] = {}
        for key, value in all_headers:
            single[key.lower()] = value  # ALB keeps the last value
        event["headers"] = single
        event["queryStringParameters"] = dict(_pairs(query))
    return event


def make(fmt: str, method: str, target: str, headers: list[tuple[str, str]] | None = None,
         body: bytes | None = None, binary: bool = False) -> dict[str, Any]:
    if fmt == "v2":
        return v2(method, target, headers, body, binary)
    if fmt == "v1":
        return v1(method, target, headers, body, binary)
    return alb(method, target, headers, body, binary, multi_value=fmt == "alb_multi")


__all__ = ["FORMATS", "alb", "make", "quote", "v1", "v2"]
