"""Handlers behind decorators (Powertools' `Logger.inject_lambda_context`, a plain
`functools.wraps` one), callable instances and `functools.partial` are driven as what they are:
awaited, streamed, written (issue #10 item 12). One invocation at a time and two at once.
"""

from __future__ import annotations

import asyncio
import json
import sys

import pytest

from aruntime.loader import Kind, kind_of, stream_options
from fakeapi import FakeRuntimeAPI, run_runtime
from tests.handlers import decorated

# name -> (kind decided at init, content type of the streamed answer or None when buffered)
CASES = {
    "pt_writer": (Kind.WRITER, "text/plain"),
    "pt_writer_outer": (Kind.WRITER, "text/plain"),
    # A sync wrapper is called as a sync handler; what it returns decides (awaited, streamed).
    "pt_async": (Kind.SYNC, None),
    "pt_async_gen": (Kind.SYNC, "text/event-stream"),
    "pt_sync_gen": (Kind.SYNC, "text/event-stream"),
    "pt_sync": (Kind.SYNC, None),
    "fw_writer": (Kind.WRITER, "text/plain"),
    "fw_async": (Kind.SYNC, None),
    "fw_async_gen": (Kind.SYNC, "text/event-stream"),
    "fw_sync_gen": (Kind.SYNC, "text/event-stream"),
    "inst_async": (Kind.ASYNC, None),
    "inst_async_gen": (Kind.ASYNC_GENERATOR, "text/event-stream"),
    "inst_writer": (Kind.WRITER, "text/plain"),
    "inst_sync_gen": (Kind.GENERATOR, "application/octet-stream"),
    "partial_async": (Kind.ASYNC, None),
    "partial_writer": (Kind.WRITER, "text/plain"),
}


@pytest.mark.parametrize("name", CASES)
def test_kind_decided_at_init(name: str) -> None:
    handler = getattr(decorated, name)
    kind, content_type = CASES[name]
    assert kind_of(handler) is kind
    options = stream_options(handler)
    if content_type not in (None, "application/octet-stream"):
        assert options is not None and options.content_type == content_type
    else:
        assert options is None


async def _answer(name: str, concurrency: int) -> None:
    _, content_type = CASES[name]
    async with FakeRuntimeAPI() as api:
        rid = api.push({})
        proc = await run_runtime([sys.executable, "-m", "aruntime", "tests.handlers.decorated." + name],
                                 api, env={"AWS_LAMBDA_MAX_CONCURRENCY": str(concurrency)})
        post = await api.wait_for(lambda ex: ex.method == "POST", timeout=15)
        api.finish()
        assert await proc.wait(15) == 1, proc.stderr
    where = f"{name} N={concurrency}"
    assert post.path.endswith(f"/{rid}/response") and post.status == 202, (where, post, proc.stderr)
    if content_type is None:
        assert post.header("transfer-encoding") is None, where
        assert post.json() == f"{name}:{rid}", where
    else:
        assert post.header("lambda-runtime-function-response-mode") == "streaming", where
        assert post.header("content-type") == content_type, where
        assert [chunk for _, chunk in post.chunks] == [f"{name}:".encode(), rid.encode()], where
        assert post.trailers == [], where
    if name == "pt_writer":
        records = [json.loads(line) for line in proc.stdout.decode().splitlines() if line.startswith("{")]
        (record,) = [r for r in records if r.get("message") == "inside pt_writer"]
        assert record["function_request_id"] == rid


@pytest.mark.parametrize("name", CASES)
async def test_driven_as_its_kind(name: str) -> None:
    await asyncio.gather(_answer(name, 1), _answer(name, 2))
