"""ASGI responses as Lambda answers (sans-IO): the streamed prelude, or the buffered JSON object.

Formats (docs/SPEC.md §3 and §9; AWS docs "Lambda function URL request and response payloads",
"Set up a Lambda proxy integration with payload response streaming in API Gateway", "Output
format of a Lambda function for proxy integration", "Lambda functions as targets"):

- payload 2.0: `statusCode`, `headers` (one string per name), `cookies` (the `Set-Cookie`
  values), then `body` and `isBase64Encoded` when buffered;
- payload 1.0: `statusCode`, `headers`, `multiValueHeaders` (names that repeat, `Set-Cookie`
  among them; API Gateway merges both maps), then `body` and `isBase64Encoded`;
- ALB: `statusCode`, `statusDescription`, `headers` or — when the target group has multi-value
  headers on — only `multiValueHeaders`, `body`, `isBase64Encoded`. Buffered only.

A streamed answer is the prelude (the JSON object without the body) and 8 NUL bytes, then the
body as it is produced, with content type `application/vnd.awslambda.http-integration-response`.
"""

from __future__ import annotations

import re
from base64 import b64encode
from http import HTTPStatus
from typing import Any, Iterable

import orjson

from ..stream import PRELUDE_LIMIT
from .events import Format

# Hop-by-hop: the service frames the answer to the caller itself.
_DROPPED = frozenset({"transfer-encoding", "connection", "keep-alive"})
_TEXT_TYPES = frozenset({
    "application/json", "application/javascript", "application/xml", "application/graphql",
    "application/x-www-form-urlencoded", "application/ld+json", "application/x-ndjson",
    "image/svg+xml",
})


# RFC 9110 §5.1: a field name is a token; §5.5: values with CR, LF or NUL are "invalid and
# dangerous" (a line break would let the app write a header of its own choosing).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+\Z")
_UNSAFE_VALUE = re.compile(r"[\r\n\0]")


class Head:
    """Status and headers of a response, headers grouped by (lower-cased) name in order."""

    __slots__ = ("status", "names")

    def __init__(self, status: int, raw_headers: Iterable[tuple[bytes, bytes]]) -> None:
        """Raises ValueError for a status outside 100-599, a header name that is not a token,
        or a value holding CR, LF or NUL (as an ASGI server on h11, uvicorn, refuses them)."""
        if not 100 <= status <= 599:
            raise ValueError(f"HTTP status {status} is out of range")
        self.status = status
        self.names: dict[str, list[str]] = {}
        for raw_name, raw_value in raw_headers:
            name = bytes(raw_name).decode("latin-1").lower()
            value = bytes(raw_value).decode("latin-1")
            if _TOKEN.match(name) is None:
                raise ValueError(f"invalid HTTP header name {name!r}")
            if _UNSAFE_VALUE.search(value) is not None:
                raise ValueError(f"invalid value for HTTP header {name!r}: CR, LF or NUL in "
                                 f"{value!r}")
            if name in _DROPPED:
                continue
            self.names.setdefault(name, []).append(value)

    def content_type(self) -> str | None:
        values = self.names.get("content-type")
        return values[-1] if values else None


def _joined(head: Head) -> dict[str, str]:
    # RFC 9110 §5.3: repeated fields may be combined with commas — except Set-Cookie.
    return {name: ",".join(values) for name, values in head.names.items() if name != "set-cookie"}


def _split(head: Head) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(names with one value, names with several): payload 1.0's two maps."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, values in head.names.items():
        if len(values) == 1:
            single[name] = values[0]
        else:
            multi[name] = list(values)
    return single, multi


def _casings(name: str, n: int) -> list[str]:
    """`n` spellings of `name` that differ only in case: ALB without multi-value headers keeps
    each as its own header line, the one way several `Set-Cookie` survive it."""
    letters = [i for i, c in enumerate(name) if c.isalpha()]
    if n > 1 << len(letters):
        raise ValueError(f"too many {name} headers for an ALB answer without multi-value headers")
    out = []
    for k in range(n):
        chars = list(name)
        for bit, index in enumerate(letters):
            if k >> bit & 1:
                chars[index] = chars[index].upper()
        out.append("".join(chars))
    return out


def metadata(fmt: Format, head: Head, multi_value: bool = False) -> dict[str, Any]:
    """The response object of `fmt` without its body."""
    if fmt is Format.V2:
        return {"statusCode": head.status, "headers": _joined(head),
                "cookies": list(head.names.get("set-cookie", []))}
    if fmt is Format.V1:
        single, multi = _split(head)
        return {"statusCode": head.status, "headers": single, "multiValueHeaders": multi}
    out: dict[str, Any] = {"statusCode": head.status,
                           "statusDescription": f"{head.status} {_phrase(head.status)}"}
    if multi_value:
        out["multiValueHeaders"] = {name: list(values) for name, values in head.names.items()}
    else:
        headers = _joined(head)
        for name, value in zip(_casings("set-cookie", len(head.names.get("set-cookie", []))),
                               head.names.get("set-cookie", [])):
            headers[name] = value
        out["headers"] = headers
    return out


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def prelude(fmt: Format, head: Head) -> bytes:
    """The JSON prelude of a streamed answer (the 8-NUL separator is written after it).

    Raises `ValueError` when it exceeds the 16 KiB Lambda allows (docs/SPEC.md §3).
    """
    data = orjson.dumps(metadata(fmt, head))
    if len(data) > PRELUDE_LIMIT:
        raise ValueError(f"the response's status and headers take {len(data)} bytes; a streamed "
                         f"answer allows {PRELUDE_LIMIT}")
    return data


def is_text(content_type: str | None) -> bool:
    """Whether a body of this type may travel as a JSON string (else it is base64-encoded)."""
    if content_type is None:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return (media.startswith("text/") or media in _TEXT_TYPES
            or media.endswith(("+json", "+xml")))


def buffered(fmt: Format, head: Head, body: bytes, multi_value: bool = False) -> dict[str, Any]:
    """The whole answer as the format's JSON response object.

    A body whose type is not text, or that is not UTF-8, goes base64-encoded with
    `isBase64Encoded: true`: API Gateway and ALB decode it back to the same bytes.
    """
    out = metadata(fmt, head, multi_value)
    text = None
    if is_text(head.content_type()):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            pass
    out["body"] = text if text is not None else b64encode(body).decode("ascii")
    out["isBase64Encoded"] = text is None
    return out
