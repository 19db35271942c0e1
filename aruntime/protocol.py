"""The Lambda Runtime API, sans-IO.

Pure functions that turn what the runtime wants to say into request heads and what the Runtime
API answers into plain values. Nothing here touches a socket, the clock or the event loop;
`wire.py` frames the heads as HTTP/1.1 and the asyncio shell in `connection.py` moves the bytes.
"""

from __future__ import annotations

import re
import sys
from typing import NamedTuple

from . import __version__
from .wire import CUT, RequestHead, WireError

PREFIX = "/2018-06-01/runtime"
NEXT_TARGET = PREFIX + "/invocation/next"
INIT_ERROR_TARGET = PREFIX + "/init/error"
RESTORE_NEXT_TARGET = PREFIX + "/restore/next"
RESTORE_ERROR_TARGET = PREFIX + "/restore/error"

USER_AGENT = "aruntime/{} (python/{}.{}.{})".format(__version__, *sys.version_info[:3]).encode()

ERROR_TYPE = b"Lambda-Runtime-Function-Error-Type"
ERROR_BODY = b"Lambda-Runtime-Function-Error-Body"
XRAY_CAUSE = b"Lambda-Runtime-Function-XRay-Error-Cause"
INVOCATION_ID = b"Lambda-Runtime-Invocation-Id"
# The service rejects an X-Ray cause header of 1 MiB or more; the reference drops it then.
XRAY_CAUSE_LIMIT = 1024 * 1024

STREAM_HEADERS = (
    (b"Lambda-Runtime-Function-Response-Mode", b"streaming"),
    (b"Transfer-Encoding", b"chunked"),
    (b"Trailer", ERROR_TYPE + b", " + ERROR_BODY),
)

# Request ids are UUIDs in practice; anything else is percent-encoded so a hostile id can
# neither break the request line nor address another endpoint: that includes "." and "..",
# which are dot-segments (RFC 3986 §3.3, removed with the segment before them) though every
# character of them is plain.
_PLAIN_ID = re.compile(r"[A-Za-z0-9._~-]+\Z")
_DOT_SEGMENTS = (".", "..")


class RuntimeAPIAddress(NamedTuple):
    """Where the Runtime API listens, parsed from `AWS_LAMBDA_RUNTIME_API` (docs/SPEC.md §1, §8)."""

    host: str  # what to connect to: a name, an IPv4 address, or an IPv6 address (no brackets)
    port: int
    host_header: bytes  # `host:port` as given (IPv6 in brackets): every request's Host header
    prefix: str  # "" or a path such as "/.rt" (no trailing slash): every target is under it


# Characters of a host name or IPv4 address (underscores too: container names have them), of
# an IPv6 address, and of a path (RFC 3986). Plain strings, not regular expressions: compiling
# those would cost start-up time (about 0.5 ms).
_NAME = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
_IPV6 = "0123456789ABCDEFabcdef:."
_PATH = _NAME + "~!$&'()*+,;=:@%/"


def parse_address(value: str) -> RuntimeAPIAddress:
    """Parse `AWS_LAMBDA_RUNTIME_API`: `host:port[/prefix]`, `[v6addr]:port[/prefix]`.

    A leading `http://` (cargo-lambda prints its address so) and surrounding blanks are
    tolerated; a trailing slash is dropped (`host:port/` has no prefix). The prefix may have
    several segments (`/.rt/my-function`, cargo-lambda's per-function address).
    Raises `ValueError` with a one-line message for anything else.
    """
    text = value.strip(" \t\r\n")
    if text[:7].lower() == "http://":
        text = text[7:]
    elif "://" in text:
        raise _bad_address(value, "only http:// is supported")
    authority, slash, path = text.partition("/")
    host, colon, port = authority.rpartition(":")
    if not colon:
        raise _bad_address(value, "no port")
    if host[:1] == "[":
        address, percent, zone = host[1:-1].partition("%")
        if (host[-1:] != "]" or ":" not in address or address.strip(_IPV6)
                or (percent and (not zone or zone.strip(_NAME + "~")))):
            raise _bad_address(value, f"bad IPv6 address {host!r}")
        connect_host = host[1:-1]
    elif ":" in host or "]" in host:
        raise _bad_address(value, "an IPv6 address goes in brackets: [::1]:9001")
    elif host and not host.strip(_NAME):
        connect_host = host
    else:
        raise _bad_address(value, "no host" if not host else f"bad host {host!r}")
    if not (port.isascii() and port.isdigit() and len(port) <= 5 and 0 < int(port) < 65536):
        raise _bad_address(value, "no port" if not port else f"bad port {port!r}")
    prefix = (slash + path).rstrip("/")
    if prefix.strip(_PATH):
        raise _bad_address(value, f"bad path {prefix!r}")
    return RuntimeAPIAddress(connect_host, int(port), authority.encode(), prefix)


def _bad_address(value: str, reason: str) -> ValueError:
    return ValueError(f"AWS_LAMBDA_RUNTIME_API must be host:port or host:port/path, "
                      f"got {value!r}: {reason}")


def prefixed(head: RequestHead, prefix: str) -> RequestHead:
    """`head` with its target under the address's path prefix (docs/SPEC.md §8)."""
    if not prefix:
        return head
    return head._replace(target=prefix.encode() + head.target)


def is_success(status: int) -> bool:
    """Any 2xx is success for every Runtime API call (docs/SPEC.md §8: the RIE answers 202,
    cargo-lambda 200)."""
    return 200 <= status < 300


class Invocation(NamedTuple):
    """One event from `GET /next`, with the headers the runtime uses."""

    request_id: str
    deadline_ms: int | None
    function_arn: str | None
    trace_id: str | None
    client_context: str | None
    cognito_identity: str | None
    tenant_id: str | None
    invocation_id: bytes | None
    content_type: str | None
    body: bytes
    # The request id's bytes when they are not UTF-8 (`request_id` then shows them with U+FFFD,
    # which could never name the invocation): the answer's target is encoded from these.
    raw_request_id: bytes | None = None


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")


_EPOCH_FLOOR_MS = 10**12  # 2001-09-09: no Runtime API deadline is earlier
_EPOCH_CEILING_MS = 253_402_300_800_000  # 10000-01-01: no datetime can hold a later one


def parse_invocation(headers: list[tuple[bytes, bytes]], body: bytes) -> Invocation:
    """Build an `Invocation` from the (lower-cased) headers and body of a `/next` answer."""
    h = dict(headers)
    deadline = h.get(b"lambda-runtime-deadline-ms")
    try:
        deadline_ms: int | None = int(deadline) if deadline else None
    except ValueError:
        deadline_ms = None
    if deadline_ms is not None and not _EPOCH_FLOOR_MS <= deadline_ms < _EPOCH_CEILING_MS:
        # Not epoch milliseconds of this century: zero, negative, or cargo-lambda's "600000"
        # (a duration, docs/SPEC.md §8); or past the year 9999 (40 digits). Read as no deadline,
        # as for a value that is not a number.
        deadline_ms = None
    rid = h.get(b"lambda-runtime-aws-request-id") or b""
    raw_rid = None
    try:
        request_id = rid.decode()
    except UnicodeDecodeError:
        request_id, raw_rid = rid.decode("utf-8", "replace"), rid
    return Invocation(
        request_id=request_id,
        deadline_ms=deadline_ms,
        function_arn=_text(h.get(b"lambda-runtime-invoked-function-arn")),
        trace_id=_text(h.get(b"lambda-runtime-trace-id")),
        client_context=_text(h.get(b"lambda-runtime-client-context")),
        cognito_identity=_text(h.get(b"lambda-runtime-cognito-identity")),
        tenant_id=_text(h.get(b"lambda-runtime-aws-tenant-id")),
        invocation_id=h.get(b"lambda-runtime-invocation-id"),
        content_type=_text(h.get(b"content-type")),
        body=body,
        raw_request_id=raw_rid,
    )


def invocation_target(request_id: str | bytes, what: str) -> str:
    """`/2018-06-01/runtime/invocation/{id}/{what}`, with an unusual id percent-encoded: its
    UTF-8 bytes, or the bytes themselves when given bytes (an id that is not UTF-8, see
    `Invocation.raw_request_id`); "." and ".." as "%2E" and "%2E%2E", never dot-segments."""
    if type(request_id) is not str or not _PLAIN_ID.match(request_id) or (
            request_id in _DOT_SEGMENTS):
        from urllib.parse import quote

        if request_id in _DOT_SEGMENTS or request_id in (b".", b".."):
            request_id = "%2E" * len(request_id)
        else:
            request_id = quote(request_id, safe="")
    return f"{PREFIX}/invocation/{request_id}/{what}"


def answer_target(inv: Invocation, what: str) -> str:
    """`invocation_target` for the answer to `inv` ("response" or "error")."""
    raw = inv.raw_request_id
    return invocation_target(inv.request_id if raw is None else raw, what)


def _base_headers(host: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"Host", host), (b"User-Agent", USER_AGENT)]


def get_request(host: bytes, target: str) -> RequestHead:
    """A `GET` (for `/next` and `/restore/next`); built once and reused."""
    return RequestHead(b"GET", target.encode(), _base_headers(host))


def probe_request(host: bytes) -> RequestHead:
    """`OPTIONS *` (RFC 9110 §9.3.7: a question to the server itself, touching no resource),
    sent behind a `/next` to learn whether the server answers pipelined requests: Go's net/http
    (Lambda's Runtime API and its emulator) answers it 200 without reaching any handler; any
    answer, whatever its status, shows the server read a request sent behind another."""
    return RequestHead(b"OPTIONS", b"*", _base_headers(host))


def _post(host: bytes, target: str, headers: list[tuple[bytes, bytes]]) -> RequestHead:
    return RequestHead(b"POST", target.encode(), _base_headers(host) + headers)


_HEADER_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


def header_value(text: str) -> bytes:
    """`text` as a header value: control characters (a hostile exception class name could
    carry CR/LF) become '?', surrounding blanks go."""
    return _HEADER_UNSAFE.sub("?", text).strip().encode("utf-8", "replace")


def _echo(inv: Invocation) -> list[tuple[bytes, bytes]]:
    return [(INVOCATION_ID, inv.invocation_id)] if inv.invocation_id else []


def response_request(host: bytes, inv: Invocation, content_type: bytes, length: int) -> RequestHead:
    """Head of a buffered `/response`."""
    return _post(
        host,
        answer_target(inv, "response"),
        [(b"Content-Type", content_type), (b"Content-Length", b"%d" % length), *_echo(inv)],
    )


def error_request(
    host: bytes, target: str, error_type: str, length: int, xray_cause: bytes | None = None,
    inv: Invocation | None = None,
) -> RequestHead:
    """Head of an `/error`, `/init/error` or `/restore/error` post with a JSON body."""
    headers = [
        (b"Content-Type", b"application/json"),
        (b"Content-Length", b"%d" % length),
        (ERROR_TYPE, header_value(error_type)),
    ]
    if xray_cause is not None and len(xray_cause) < XRAY_CAUSE_LIMIT:
        headers.append((XRAY_CAUSE, xray_cause))
    if inv is not None:
        headers += _echo(inv)
    return _post(host, target, headers)


def stream_request(host: bytes, inv: Invocation, content_type: bytes) -> RequestHead:
    """Head of a streamed `/response`: chunked, with the two error trailers declared."""
    return _post(
        host,
        answer_target(inv, "response"),
        [*STREAM_HEADERS, (b"Content-Type", content_type), *_echo(inv)],
    )


def error_trailers(error_type: str, error_body_b64: bytes) -> list[tuple[bytes, bytes]]:
    """Trailers that report an exception raised after the stream began."""
    return [(ERROR_TYPE, header_value(error_type)), (ERROR_BODY, error_body_b64)]


def cut_answer_warning(head: RequestHead, error: WireError) -> str:
    """The WARNING line for an answer lost part-way (`error.cut`): cut short by the end of the
    connection, or not readable as HTTP/1.1 (a malformed head, bad chunk framing); which
    request, and the request id and status of the answer when its head was read."""
    about = []
    if error.head is not None:
        status, headers = error.head
        for name, value in headers:
            if name == b"lambda-runtime-aws-request-id":
                about.append("request id " + value.decode("utf-8", "replace"))
                break
        about.append(f"status {status}")
    answer = f"the Runtime API's answer to {head.method.decode()} {head.target.decode()}"
    if str(error) == CUT:
        where = ", ".join(about) if about else "before its head was complete"
        return f"{answer} was cut short ({where}): {error}; sending the request again"
    where = f" ({', '.join(about)})" if about else ""
    return f"{answer} is not valid HTTP/1.1{where}: {error}; sending the request again"
