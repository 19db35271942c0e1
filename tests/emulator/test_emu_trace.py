"""A caller's X-Ray trace header reaches the function (issue #11, polish H).

Lambda carries the `X-Amzn-Trace-Id` of an Invoke, InvokeWithResponseStream or Function URL
request into the invocation's `Lambda-Runtime-Trace-Id` (the runtime's `_X_AMZN_TRACE_ID`): the
caller's Root and sampling decision; a sampled request is traced by Lambda, whose own segment
becomes the Parent (PassThrough, the default tracing mode). `aruntime serve` does the same.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import aiohttp
import pytest

from aruntime.emulator.invocation import trace_header

from .helpers import INVOKE, LIMIT, STREAM_INVOKE, decode_frames, serve_env, served

ROOT_ID = "1-5759e988-bd862e3fe1be46a994272793"
PARENT = "53995c3f42cd8ad8"
HANDLER = '''\
import os


def handler(event, context):
    headers = event.get("headers") or {}
    return {"env": os.environ.get("_X_AMZN_TRACE_ID"), "event_header": headers.get("x-amzn-trace-id")}
'''
NEW_ROOT = r"1-[0-9a-f]{8}-[0-9a-f]{24}"
SEGMENT = r"[0-9a-f]{16}"


def test_the_trace_header_rule() -> None:
    # Sampled: Lambda traces it, under the caller's Root, with a segment of its own as Parent.
    sampled = trace_header(f"Root={ROOT_ID};Parent={PARENT};Sampled=1")
    assert re.fullmatch(f"Root={ROOT_ID};Parent={SEGMENT};Sampled=1", sampled)
    assert PARENT not in sampled
    # Not sampled: the Parent passes through, the decision stays no.
    assert trace_header(f"Root={ROOT_ID};Parent={PARENT};Sampled=0") == f"Root={ROOT_ID};Parent={PARENT};Sampled=0"
    # No decision (missing, or deferred with `?`): not sampled, in the caller's trace.
    for header in (f"Root={ROOT_ID}", f"Root={ROOT_ID};Sampled=?", f" root={ROOT_ID.upper()} ; Lineage=a:1"):
        assert re.fullmatch(f"Root={ROOT_ID};Parent={SEGMENT};Sampled=0", trace_header(header)), header
    # No usable Root: a new trace, not sampled; extra fields are never passed on.
    for header in (None, "", "Root=garbage;Sampled=1", "Sampled=1", "Self=1-67891233-abcdef012345678912345678"):
        assert re.fullmatch(f"Root={NEW_ROOT};Parent={SEGMENT};Sampled=0", trace_header(header)), header
    assert "Self" not in trace_header(f"Root={ROOT_ID};Self=1-x;Sampled=0;Parent={PARENT}")


async def test_every_surface_carries_the_callers_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "app.py").write_text(HANDLER)
    sampled = {"X-Amzn-Trace-Id": f"Root={ROOT_ID};Parent={PARENT};Sampled=1"}
    unsampled = {"X-Amzn-Trace-Id": f"Root={ROOT_ID};Parent={PARENT};Sampled=0"}
    async with served("app.py:handler", cwd=tmp_path, env=serve_env(tmp_path)) as serve:
        async with aiohttp.ClientSession() as session:
            async def answer(method: str, path: str, headers: dict[str, str]) -> dict[str, str]:
                async with session.request(method, serve.url + path, data=b"{}", headers=headers) as r:
                    body = await r.read()
                if path == STREAM_INVOKE:
                    body = b"".join(m.payload for m in decode_frames(body)
                                    if m.headers[":event-type"] == "PayloadChunk")
                return json.loads(body)  # type: ignore[no-any-return]

            for method, path in (("POST", INVOKE), ("POST", STREAM_INVOKE), ("GET", "/traced")):
                got = await asyncio.wait_for(answer(method, path, sampled), LIMIT)
                assert re.fullmatch(f"Root={ROOT_ID};Parent={SEGMENT};Sampled=1", got["env"]), (path, got)
                assert PARENT not in got["env"]
                got = await asyncio.wait_for(answer(method, path, unsampled), LIMIT)
                assert got["env"] == unsampled["X-Amzn-Trace-Id"], (path, got)
                got = await asyncio.wait_for(answer(method, path, {}), LIMIT)
                root = re.fullmatch(f"Root=({NEW_ROOT});Parent={SEGMENT};Sampled=0", got["env"])
                assert root and root.group(1) != ROOT_ID, (path, got)
                if path == "/traced":
                    # The Function URL event's header: the caller's as sent, else the invocation's Root.
                    assert got["event_header"] == f"Root={root.group(1)}"

            got = await asyncio.wait_for(answer("GET", "/traced", sampled), LIMIT)
            assert got["event_header"] == sampled["X-Amzn-Trace-Id"]

        # boto3 inside a Lambda function sends its own trace header (botocore reads
        # _X_AMZN_TRACE_ID): a function invoking another one carries its trace on.
        import boto3

        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "caller")
        monkeypatch.setenv("_X_AMZN_TRACE_ID", unsampled["X-Amzn-Trace-Id"])
        client = boto3.client("lambda", endpoint_url=serve.url, region_name="us-east-1",
                              aws_access_key_id="x", aws_secret_access_key="x")
        result = await asyncio.wait_for(asyncio.to_thread(client.invoke, FunctionName="app", Payload=b"{}"), LIMIT)
        assert json.loads(result["Payload"].read())["env"] == unsampled["X-Amzn-Trace-Id"]
