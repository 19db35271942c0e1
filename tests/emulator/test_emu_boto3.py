"""boto3's invoke and invoke_with_response_stream against the emulator (real botocore parsing)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from .helpers import LIMIT, STREAM_RUNTIME, emulator, sent_times


def lambda_client(url: str) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=LIMIT),
    )


async def in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.wait_for(asyncio.to_thread(fn, *args, **kwargs), LIMIT)


async def test_invoke_result_and_function_error() -> None:
    async with emulator() as emu:
        client = lambda_client(emu.url)
        response = await in_thread(client.invoke, FunctionName="echo", Payload=json.dumps({"k": "v"}))
        assert response["StatusCode"] == 200
        assert response["ExecutedVersion"] == "$LATEST"
        assert "FunctionError" not in response
        assert json.loads(response["Payload"].read())["echo"] == {"k": "v"}

        response = await in_thread(client.invoke, FunctionName="function", Payload=b'{"raise": "nope"}')
        assert response["FunctionError"] == "Unhandled"
        assert json.loads(response["Payload"].read())["errorMessage"] == "nope"


async def test_invoke_service_errors_are_botocore_exceptions() -> None:
    async with emulator() as emu:
        client = lambda_client(emu.url)
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            await in_thread(client.invoke, FunctionName="missing", Payload=b"{}")
        with pytest.raises(client.exceptions.InvalidRequestContentException):
            await in_thread(client.invoke, FunctionName="echo", Payload=b"{broken")


async def test_invoke_with_response_stream_chunks_and_midstream_error() -> None:
    async with emulator(runtime_command=STREAM_RUNTIME) as emu:
        client = lambda_client(emu.url)

        def consume(event: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[float, dict[str, Any]]]]:
            response = client.invoke_with_response_stream(FunctionName="echo", Payload=json.dumps(event))
            return response, [(time.time(), part) for part in response["EventStream"]]

        response, parts = await in_thread(consume, {"chunks": ["one", "two", "three"], "delay": 0.4})
        assert response["StatusCode"] == 200
        assert response["ExecutedVersion"] == "$LATEST"
        chunks = [p["PayloadChunk"]["Payload"] for _, p in parts if "PayloadChunk" in p]
        assert chunks == [b"one", b"two", b"three"]
        assert "InvokeComplete" in parts[-1][1]
        assert "ErrorCode" not in parts[-1][1]["InvokeComplete"]
        assert parts[0][0] < sent_times(emu.logs)[2] - 0.5  # first chunk before the last was sent

        body = {"errorMessage": "late failure", "errorType": "RuntimeError"}
        event = {"chunks": ["partial"], "error": {"type": "Function.RuntimeError", "body": body}}
        _, parts = await in_thread(consume, event)
        assert parts[0][1]["PayloadChunk"]["Payload"] == b"partial"
        complete = parts[-1][1]["InvokeComplete"]
        assert complete["ErrorCode"] == "Function.RuntimeError"
        assert json.loads(complete["ErrorDetails"]) == body


async def test_oversize_payloads_get_lambdas_json_413() -> None:
    """Whatever the size, an Invoke over the limit is Lambda's JSON 413 (botocore parses its
    code), and an Event invoke is held to the asynchronous limit, 1 MB (docs/SPEC.md §8)."""
    async with emulator() as emu:
        client = lambda_client(emu.url)
        for size in (6 * 1024 * 1024 + 1, 8 * 1024 * 1024, 100 * 1000 * 1000):
            payload = b'"' + b"x" * (size - 2) + b'"'
            for call, kind in ((client.invoke, "RequestResponse"),
                               (client.invoke_with_response_stream, "RequestResponse")):
                with pytest.raises(ClientError) as raised:
                    await in_thread(call, FunctionName="echo", Payload=payload)
                error = raised.value.response
                assert error["ResponseMetadata"]["HTTPStatusCode"] == 413
                assert error["Error"]["Code"] == "RequestEntityTooLargeException"
                assert error["Error"]["Message"] == (
                    f"{size} byte payload is too large for the {kind} invocation type (limit 6291456 bytes)")
        over = b'"' + b"x" * (1024 * 1024 - 1) + b'"'  # 1 MiB + 1 byte
        with pytest.raises(ClientError) as raised:
            await in_thread(client.invoke, FunctionName="echo", InvocationType="Event", Payload=over)
        assert raised.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
        assert "for the Event invocation type (limit 1048576 bytes)" in raised.value.response["Error"]["Message"]
        at_limit = b'"' + b"x" * (1024 * 1024 - 2) + b'"'
        response = await in_thread(client.invoke, FunctionName="echo", InvocationType="Event", Payload=at_limit)
        assert response["StatusCode"] == 202
        # A payload of exactly the synchronous limit is accepted and runs (echoed back, it makes
        # a response over the 6 MB response limit: the function's error, not the request's).
        response = await in_thread(client.invoke, FunctionName="echo", Payload=b'"' + b"y" * (6 * 1024 * 1024 - 2) + b'"')
        assert response["StatusCode"] == 200 and response["FunctionError"] == "Unhandled"
        assert json.loads(response["Payload"].read())["errorType"] == "Function.ResponseSizeTooLarge"


async def test_an_oversize_body_is_never_held_in_memory() -> None:
    """A 100 MB body streamed to the emulator (in this process) is counted, not kept: peak
    Python memory stays a few MB while the whole body is read and answered with a 413."""
    size = 100 * 1000 * 1000
    block = b"x" * (1 << 20)

    async def body() -> AsyncIterator[bytes]:
        sent = 0
        while sent < size:
            part = block[: size - sent]
            sent += len(part)
            yield part

    async with emulator() as emu:
        tracemalloc.start()
        try:
            async with aiohttp.ClientSession() as session:
                for path in ("/2015-03-31/functions/echo/invocations", "/function-url-path"):
                    async with session.post(emu.url + path, data=body()) as r:
                        assert r.status == 413, path
                        answer = json.loads(await r.read())
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert answer == {"Message": "Request Entity Too Large"}
    assert peak < 20 * 1024 * 1024, peak


async def test_not_found_names_the_qualified_arn() -> None:
    async with emulator() as emu:
        client = lambda_client(emu.url)
        arn = "arn:aws:lambda:us-east-1:012345678912:function"
        cases = [({"FunctionName": "app:prod"}, f"{arn}:app:prod"),
                 ({"FunctionName": "app", "Qualifier": "prod"}, f"{arn}:app:prod"),
                 ({"FunctionName": "echo", "Qualifier": "7"}, f"{arn}:echo:7"),
                 ({"FunctionName": "missing"}, f"{arn}:missing"),
                 ({"FunctionName": "arn:aws:lambda:eu-west-1:111122223333:function:other:live"},
                  "arn:aws:lambda:eu-west-1:111122223333:function:other:live")]
        for kwargs, expected in cases:
            with pytest.raises(client.exceptions.ResourceNotFoundException) as raised:
                await in_thread(client.invoke, Payload=b"{}", **kwargs)
            assert raised.value.response["Error"]["Message"] == f"Function not found: {expected}", kwargs
        with pytest.raises(client.exceptions.InvalidParameterValueException):
            await in_thread(client.invoke, FunctionName="echo:a", Qualifier="b", Payload=b"{}")
        for kwargs in ({"FunctionName": "echo", "Qualifier": "$LATEST"}, {"FunctionName": "echo:$LATEST"},
                       {"FunctionName": f"{arn}:echo"}):
            response = await in_thread(client.invoke, Payload=b"{}", **kwargs)
            assert response["StatusCode"] == 200 and "FunctionError" not in response, kwargs


async def test_log_tail_is_the_last_4_kb() -> None:
    async with emulator() as emu:
        client = lambda_client(emu.url)
        long_line = "".join(f"{i:05d}." for i in range(2000))  # 12 KB of output
        response = await in_thread(client.invoke, FunctionName="echo", LogType="Tail",
                                   Payload=json.dumps({"print": long_line}))
        tail = base64.b64decode(response["LogResult"])
        assert len(tail) == 4096
        lines = tail.decode().split("\n")
        assert lines[-1] == "" and lines[-2].startswith("REPORT RequestId: ")
        assert lines[-3].startswith("END RequestId: ") and long_line.endswith(lines[-4])
        # A short log comes whole.
        response = await in_thread(client.invoke, FunctionName="echo", LogType="Tail",
                                   Payload=json.dumps({"print": "short"}))
        tail = base64.b64decode(response["LogResult"]).decode()
        assert tail.startswith("START RequestId: ") and "\nshort\n" in tail and tail.endswith("\n")
