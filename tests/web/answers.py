"""Reading what a runtime answered an HTTP event, whatever the format and invoke mode."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from fakeapi import Exchange

HTTP_INTEGRATION = "application/vnd.awslambda.http-integration-response"


@dataclass
class Answer:
    exchange: Exchange
    streamed: bool
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    meta: dict[str, Any] = field(default_factory=dict)  # the prelude or the response object

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[-1] if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]

    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)


def _flatten(meta: dict[str, Any]) -> list[tuple[str, str]]:
    out = [(k.lower(), v) for k, v in (meta.get("headers") or {}).items()]
    for k, values in (meta.get("multiValueHeaders") or {}).items():
        out.extend((k.lower(), v) for v in values)
    out.extend(("set-cookie", c) for c in meta.get("cookies") or [])
    return out


def decode(ex: Exchange) -> Answer:
    """The HTTP answer in a `/response` exchange: a prelude stream or a response object."""
    assert ex.method == "POST" and ex.target.endswith("/response"), ex
    if ex.header("lambda-runtime-function-response-mode") == "streaming":
        assert ex.header("content-type") == HTTP_INTEGRATION, ex.headers
        prelude, sep, body = ex.body.partition(b"\0" * 8)
        assert sep, ex.body[:200]
        meta = json.loads(prelude)
        return Answer(ex, True, meta["statusCode"], _flatten(meta), body, meta)
    meta = ex.json()
    raw = meta.get("body") or ""
    body = base64.b64decode(raw) if meta.get("isBase64Encoded") else raw.encode()
    return Answer(ex, False, meta["statusCode"], _flatten(meta), body, meta)
