"""Lambda's Invoke and InvokeWithResponseStream operations (what boto3 calls)."""

from __future__ import annotations

import asyncio
import base64
import binascii

import orjson
from aiohttp import web

from . import eventstream
from .config import ACCOUNT_ID
from .invocation import SERVICE_EXCEPTION, Invocation, Outcome, ResponseHead, State, error_outcome, trace_header
from .limits import MAX_BUFFERED, MAX_EVENT_REQUEST, MAX_REQUEST
from .sandbox import Sandbox

SANDBOX: web.AppKey[Sandbox] = web.AppKey("sandbox", Sandbox)
_TOO_LARGE = f"Response payload size exceeded maximum allowed payload size ({MAX_BUFFERED} bytes)."
LOG_TAIL = 4096  # X-Amz-Log-Type: Tail returns the last 4 KB of the invocation's log
# A Function URL / API Gateway style streamed answer: JSON prelude, 8 NULs, body (docs/SPEC.md §3).
HTTP_INTEGRATION = "application/vnd.awslambda.http-integration-response"
SEPARATOR = b"\x00" * 8
MAX_PRELUDE = 16 * 1024
_READ_CHUNK = 1 << 16


def service_error(status: int, error_type: str, message: str, fault: str = "User") -> web.Response:
    # rest-json errors: botocore reads the code from X-Amzn-ErrorType; `fault` is the body's
    # Type, "User" (the request) or "Service" (Lambda's own, as ServiceException is).
    body = orjson.dumps({"Type": fault, "message": message, "Message": message})
    return web.Response(
        status=status, body=body, content_type="application/json",
        headers={"X-Amzn-ErrorType": error_type},
    )


def caller_gone(request: web.Request) -> bool:
    """Whether the caller's connection is closed (or closing): an answer can no longer reach it."""
    transport = request.transport
    return transport is None or transport.is_closing()


def hung_up(sandbox: Sandbox, surface: str, inv: Invocation | None = None) -> None:
    """Say in one line (never a traceback) that the caller of `surface` went away; `inv` is the
    invocation it had started, None when it left while still sending its request.

    The invocation goes on: Lambda lets a function whose caller left run, and bills it, until
    it returns or times out (docs/SPEC.md §8); its answer is dropped from now on."""
    if inv is None:
        sandbox.notice(f"aruntime serve: the caller of {surface} hung up while sending its request; "
                       "nothing was invoked")
        return
    inv.detach()
    rest = ("the function runs on until it returns or times out, as on Lambda" if inv.state is not State.DONE
            else "the function had finished; its answer was not delivered")
    sandbox.notice(f"aruntime serve: the caller of {surface} hung up before the end of the answer "
                   f"(RequestId: {inv.request_id}); {rest}")


async def read_payload(request: web.Request, limit: int) -> tuple[bytes | None, int]:
    """(body, size in bytes): the body when it is at most `limit` bytes, else None.

    The body is read as a stream: past `limit` the rest is read and dropped, never held, so
    the caller finishes sending and then gets the service's 413 (not a reset connection)."""
    buf: bytearray | None = bytearray()
    size = 0
    async for chunk in request.content.iter_chunked(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            buf = None  # over the limit: count the rest, keep nothing
        elif buf is not None:
            buf += chunk
    return (bytes(buf) if buf is not None else None), size


def too_large(size: int, kind: str, limit: int) -> web.Response:
    """Lambda's answer to an Invoke payload over its limit (docs/SPEC.md §8)."""
    return service_error(
        413, "RequestEntityTooLargeException",
        f"{size} byte payload is too large for the {kind} invocation type (limit {limit} bytes)")


def _function_name(name: str, sandbox: Sandbox) -> tuple[str, str | None, str, str]:
    """Split a FunctionName (`app`, `app:prod`, `123456789012:function:app[:prod]` or the full
    ARN) into (function, qualifier, region, account)."""
    parts = name.split(":")
    region, account = sandbox.config.region, ACCOUNT_ID
    if "function" in parts[:-1]:
        at = parts.index("function")
        if at >= 1:
            account = parts[at - 1] or account
        if at >= 2 and parts[0] == "arn":
            region = parts[at - 2] or region
        parts = parts[at + 1 :]
    return parts[0], (parts[1] if len(parts) > 1 else None), region, account


async def _prepare(request: web.Request, kind: str) -> Invocation | web.Response:
    """Checks shared by both operations; an Invocation, or the service's error answer."""
    sandbox = request.app[SANDBOX]
    fn, qualifier, region, account = _function_name(request.match_info["name"], sandbox)
    query_qualifier = request.query.get("Qualifier")
    if qualifier is not None and query_qualifier is not None and qualifier != query_qualifier:
        return service_error(400, "InvalidParameterValueException",
                             "The derived qualifier from the function name does not match the specified qualifier.")
    qualifier = qualifier if qualifier is not None else query_qualifier
    if fn not in ("function", sandbox.config.function_name) or qualifier not in (None, "$LATEST"):
        arn = f"arn:aws:lambda:{region}:{account}:function:{fn}" + (f":{qualifier}" if qualifier else "")
        return service_error(404, "ResourceNotFoundException", f"Function not found: {arn}")
    limit = MAX_EVENT_REQUEST if kind == "Event" else MAX_REQUEST
    payload, size = await read_payload(request, limit)
    if payload is None:
        return too_large(size, kind, limit)
    payload = payload or b"{}"
    try:
        orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        return service_error(400, "InvalidRequestContentException", f"Could not parse request body into json: {e}")
    client_context = None
    if raw := request.headers.get("X-Amz-Client-Context"):
        try:
            client_context = base64.b64decode(raw, validate=True).decode()
            if not isinstance(orjson.loads(client_context), dict):
                raise ValueError
        except (binascii.Error, ValueError):
            return service_error(
                400, "InvalidRequestContentException", "Client context must be a valid Base64-encoded JSON object."
            )
    return Invocation(payload, client_context=client_context,
                      trace_id=trace_header(request.headers.get("X-Amzn-Trace-Id")))


async def _log_result(inv: Invocation) -> str:
    if inv.state is State.DONE:
        try:
            await asyncio.wait_for(inv.reported.wait(), 1.0)
        except asyncio.TimeoutError:
            pass
    text = ("\n".join(inv.log_lines) + "\n").encode()[-LOG_TAIL:]
    return base64.b64encode(text).decode()


async def collect(inv: Invocation, cap: int = MAX_BUFFERED) -> tuple[ResponseHead | None, bytes, Outcome]:
    """The whole response; a streamed one over `cap` fails as the service fails it."""
    head: ResponseHead | None = None
    body = bytearray()
    while True:
        item = await inv.next_item()
        if isinstance(item, ResponseHead):
            head = item
        elif isinstance(item, bytes):
            body += item
            if len(body) > cap:
                inv.detach()
                return head, b"", error_outcome("Function.ResponseSizeTooLarge", _TOO_LARGE)
        else:
            return head, bytes(body), item


async def _accept(
    request: web.Request, kinds: tuple[str, ...]
) -> tuple[Invocation, str, dict[str, str]] | web.Response:
    """(invocation, invocation type, answer headers), or the service's answer to a bad or dry run."""
    kind = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
    if kind not in kinds:
        return service_error(400, "InvalidParameterValueException", f"Unsupported invocation type {kind}")
    inv = await _prepare(request, kind)
    if isinstance(inv, web.Response):
        return inv
    headers = {"X-Amz-Executed-Version": "$LATEST", "X-Amzn-RequestId": inv.request_id}
    if kind == "DryRun":
        return web.Response(status=204, headers=headers)
    request.app[SANDBOX].submit(inv)
    return inv, kind, headers


async def invoke(request: web.Request) -> web.StreamResponse:
    try:
        accepted = await _accept(request, ("RequestResponse", "Event", "DryRun"))
    except ConnectionError:
        hung_up(request.app[SANDBOX], "Invoke")
        return web.Response(status=400)  # to nobody: aiohttp drops it quietly
    if isinstance(accepted, web.Response):
        return accepted
    inv, kind, headers = accepted
    if kind == "Event":
        inv.detach()  # nobody reads the answer; the runtime must never wait on it
        return web.Response(status=202, headers=headers)
    try:
        head, body, outcome = await collect(inv)
    except asyncio.CancelledError:
        inv.detach()
        raise
    if caller_gone(request):
        hung_up(request.app[SANDBOX], "Invoke", inv)
    if request.headers.get("X-Amz-Log-Type") == "Tail":
        headers["X-Amz-Log-Result"] = await _log_result(inv)
    if outcome.error_type == SERVICE_EXCEPTION and head is None and not body:
        # Never run (queued when serve stopped): the service's error, HTTP 500, as boto3 reads
        # it (botocore raises ServiceException), not a function error.
        return service_error(500, SERVICE_EXCEPTION, outcome.error_message, fault="Service")
    if not outcome.ok:
        headers["X-Amz-Function-Error"] = "Unhandled"
        return web.Response(body=outcome.error_body, headers=headers, content_type="application/json")
    content_type = head.content_type if head and head.streaming else "application/json"
    return web.Response(body=body, headers={**headers, "Content-Type": content_type})


async def invoke_stream(request: web.Request) -> web.StreamResponse:
    surface = "InvokeWithResponseStream"
    try:
        accepted = await _accept(request, ("RequestResponse", "DryRun"))
    except ConnectionError:
        hung_up(request.app[SANDBOX], surface)
        return web.Response(status=400)  # to nobody: aiohttp drops it quietly
    if isinstance(accepted, web.Response):
        return accepted
    inv, _, headers = accepted
    response = web.StreamResponse(headers={**headers, "Content-Type": eventstream.CONTENT_TYPE})
    try:
        await response.prepare(request)
        # The prelude of an HTTP-integration answer reaches an InvokeWithResponseStream caller
        # as data, the JSON and its 8 NULs in the first PayloadChunk however the runtime split
        # them (as Lambda gives it): gathered until the separator, then sent as one event.
        prelude = bytearray()
        in_prelude = False
        while True:
            item = await inv.next_item()
            if isinstance(item, ResponseHead):
                in_prelude = item.streaming and item.content_type.split(";", 1)[0].strip() == HTTP_INTEGRATION
            elif isinstance(item, bytes) and in_prelude:
                prelude += item
                if SEPARATOR in prelude or len(prelude) > MAX_PRELUDE + len(SEPARATOR):
                    await response.write(eventstream.payload_chunk(bytes(prelude)))
                    in_prelude = False
            elif isinstance(item, bytes):
                # Forwarded at once: each runtime chunk becomes one PayloadChunk event.
                await response.write(eventstream.payload_chunk(item))
            elif isinstance(item, Outcome):
                if in_prelude and prelude:
                    await response.write(eventstream.payload_chunk(bytes(prelude)))
                break
        log = await _log_result(inv) if request.headers.get("X-Amz-Log-Type") == "Tail" else None
        if item.ok:
            await response.write(eventstream.invoke_complete(log_result=log))
        else:
            details = (item.error_body or b"").decode(errors="replace")
            await response.write(eventstream.invoke_complete(item.error_type, details, log))
        await response.write_eof()
    except ConnectionError:
        hung_up(request.app[SANDBOX], surface, inv)
    except asyncio.CancelledError:
        inv.detach()
        raise
    return response
