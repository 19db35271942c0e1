"""Lambda's Invoke and InvokeWithResponseStream operations (what boto3 calls)."""

from __future__ import annotations

import asyncio
import base64
import binascii

import orjson
from aiohttp import web

from . import eventstream
from .invocation import Invocation, Outcome, ResponseHead, State, error_outcome
from .runtime_api import MAX_BUFFERED
from .sandbox import Sandbox

SANDBOX: web.AppKey[Sandbox] = web.AppKey("sandbox", Sandbox)
MAX_REQUEST = 6 * 1024 * 1024  # Invoke's synchronous request payload limit
_TOO_LARGE = f"Response payload size exceeded maximum allowed payload size ({MAX_BUFFERED} bytes)."


def service_error(status: int, error_type: str, message: str) -> web.Response:
    # rest-json errors: botocore reads the code from X-Amzn-ErrorType.
    body = orjson.dumps({"Type": "User", "message": message, "Message": message})
    return web.Response(
        status=status, body=body, content_type="application/json",
        headers={"X-Amzn-ErrorType": error_type},
    )


def _function_matches(name: str, sandbox: Sandbox) -> tuple[bool, str | None]:
    """Accept the RIE's `function`, the name, a full or partial ARN; return the qualifier."""
    parts = name.split(":")
    if "function" in parts[:-1]:
        at = parts.index("function")
        parts = parts[at + 1 :]
    fn, qualifier = parts[0], (parts[1] if len(parts) > 1 else None)
    return fn in ("function", sandbox.config.function_name), qualifier


async def _prepare(request: web.Request) -> Invocation | web.Response:
    """Checks shared by both operations; an Invocation, or the service's error answer."""
    sandbox = request.app[SANDBOX]
    name = request.match_info["name"]
    ok, qualifier = _function_matches(name, sandbox)
    qualifier = request.query.get("Qualifier", qualifier)
    if not ok or qualifier not in (None, "$LATEST"):
        arn = sandbox.config.arn.rsplit(":", 1)[0] + ":" + name.split(":")[-1]
        return service_error(404, "ResourceNotFoundException", f"Function not found: {arn}")
    payload = await request.read()
    if len(payload) > MAX_REQUEST:
        return service_error(
            413, "RequestTooLargeException",
            f"{len(payload)} byte payload is too large for the RequestResponse invocation type (limit {MAX_REQUEST} bytes)",
        )
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
    return Invocation(payload, client_context=client_context)


async def _log_result(inv: Invocation) -> str:
    if inv.state is State.DONE:
        try:
            await asyncio.wait_for(inv.reported.wait(), 1.0)
        except asyncio.TimeoutError:
            pass
    text = "\n".join(inv.log_lines).encode()[-4096:] + b"\n"
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
    inv = await _prepare(request)
    if isinstance(inv, web.Response):
        return inv
    headers = {"X-Amz-Executed-Version": "$LATEST", "X-Amzn-RequestId": inv.request_id}
    if kind == "DryRun":
        return web.Response(status=204, headers=headers)
    request.app[SANDBOX].submit(inv)
    return inv, kind, headers


async def invoke(request: web.Request) -> web.StreamResponse:
    accepted = await _accept(request, ("RequestResponse", "Event", "DryRun"))
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
    if request.headers.get("X-Amz-Log-Type") == "Tail":
        headers["X-Amz-Log-Result"] = await _log_result(inv)
    if not outcome.ok:
        headers["X-Amz-Function-Error"] = "Unhandled"
        return web.Response(body=outcome.error_body, headers=headers, content_type="application/json")
    content_type = head.content_type if head and head.streaming else "application/json"
    return web.Response(body=body, headers={**headers, "Content-Type": content_type})


async def invoke_stream(request: web.Request) -> web.StreamResponse:
    accepted = await _accept(request, ("RequestResponse", "DryRun"))
    if isinstance(accepted, web.Response):
        return accepted
    inv, _, headers = accepted
    response = web.StreamResponse(headers={**headers, "Content-Type": eventstream.CONTENT_TYPE})
    try:
        await response.prepare(request)
        while True:
            item = await inv.next_item()
            if isinstance(item, bytes):
                # Forwarded at once: each runtime chunk becomes one PayloadChunk event.
                await response.write(eventstream.payload_chunk(item))
            elif isinstance(item, Outcome):
                break
        log = await _log_result(inv) if request.headers.get("X-Amz-Log-Type") == "Tail" else None
        if item.ok:
            await response.write(eventstream.invoke_complete(log_result=log))
        else:
            details = (item.error_body or b"").decode(errors="replace")
            await response.write(eventstream.invoke_complete(item.error_type, details, log))
        await response.write_eof()
    except (asyncio.CancelledError, ConnectionError):
        inv.detach()
        raise
    return response
