"""boto3's invoke and invoke_with_response_stream against the emulator (real botocore parsing)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import boto3
import pytest
from botocore.config import Config

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
