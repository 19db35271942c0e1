"""`_X_AMZN_TRACE_ID` per invocation, read the way tracing libraries read it, and
`aruntime.current()` (issue 13 items 1 and 5).

With one invocation at a time the runtime writes the process variable before each invoke and
deletes it when the invocation has no trace header (the reference's rule). With
AWS_LAMBDA_MAX_CONCURRENCY > 1 each invocation's code (its task, the threads it starts, the pool
tasks it submits) reads its own header from `os.environ` / `os.getenv`, and code outside every
invocation reads none. Proved with the real aws-xray-sdk (segment and subsegment trace ids) and
OpenTelemetry's `AwsXRayLambdaPropagator`, with invocations interleaved.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Any

import pytest

from fakeapi import FakeRuntimeAPI, run_runtime

H = "tests.handlers.trace_libs."
T = 30.0


def header(i: int, sampled: int = 1) -> tuple[str, str, str]:
    root = f"1-{0x5f000000 + i:08x}-{uuid.uuid4().hex[:24]}"
    parent = uuid.uuid4().hex[:16]
    return f"Root={root};Parent={parent};Sampled={sampled}", root, parent


def expected(rid: str, i: int, trace: str | None, root: str | None,
             parent: str | None) -> dict[str, Any]:
    # aruntime.current(): request id, tenant id, trace header, Lambda-Runtime-Invocation-Id.
    current = [rid, f"tenant-{i}" if i % 2 else None, trace, f"inv-{i}"]
    if trace is None:
        # (The X-Ray SDK itself keeps the previous segment of the thread, or a dummy one, when
        # the header is absent: not the runtime's to decide, so not compared.)
        return {"env": [None, None, None, False, None], "otel": None, "aruntime": None,
                "current": current}
    return {
        "current": current,
        "env": [trace, trace, trace, True, trace],
        "xray": [root, parent],
        "xray_sub": [root, parent],
        "otel": [root[2:].replace("-", ""), parent, True],
        "aruntime": trace,
    }


async def _wait_posts(api: FakeRuntimeAPI, n: int) -> list[Any]:
    posts: list[Any] = []
    while len(posts) < n:
        await api.wait_for(lambda ex: ex.method == "POST" and ex not in posts, timeout=T)
        posts = [ex for ex in api.exchanges if ex.method == "POST"]
    return posts


@pytest.mark.parametrize("n", [1, 4])
@pytest.mark.parametrize("style", ["handler", "sync_handler"])
async def test_tracing_libraries_read_each_invocations_trace(fake_api: FakeRuntimeAPI, style: str,
                                                             n: int) -> None:
    # Eight invocations, one without a trace header; under N = 4 they overlap, each reading
    # before and after the others ran, from its task, a thread it started and a pool task.
    traces: list[tuple[str | None, str | None, str | None]] = [header(i) for i in range(8)]
    traces[5] = (None, None, None)
    # An inherited value must never show through (N = 1: deleted when a header is absent;
    # N > 1: belongs to no invocation).
    proc = await run_runtime([sys.executable, "-m", "aruntime", H + style], fake_api,
                             env={"AWS_LAMBDA_MAX_CONCURRENCY": str(n), "LAMBDA_TASK_ROOT": ".",
                                  "AWS_LAMBDA_FUNCTION_NAME": "fn", "_X_AMZN_TRACE_ID": "Root=inherited"})
    # Longer sleeps first: the invocations that start last finish first.
    ids = [fake_api.push({"s": 0.05 * (8 - i)}, headers={
        "Lambda-Runtime-Trace-Id": t[0], "Lambda-Runtime-Invocation-Id": f"inv-{i}",
        "Lambda-Runtime-Aws-Tenant-Id": f"tenant-{i}" if i % 2 else None})
        for i, t in enumerate(traces)]
    posts = await _wait_posts(fake_api, len(ids))
    fake_api.push({"probe": "outside"})
    probe = (await _wait_posts(fake_api, len(ids) + 1))[-1].json()
    fake_api.finish()
    assert await proc.wait(T) == 1, proc.stderr.decode()[-3000:]

    got = {p.path.split("/")[-2]: p.json() for p in posts}
    for i, (rid, (trace, root, parent)) in enumerate(zip(ids, traces)):
        want = expected(rid, i, trace, root, parent)
        if trace is None:
            for reads in got[rid].values():
                if isinstance(reads, dict):
                    del reads["xray"], reads["xray_sub"]
        assert got[rid] == {"rid": rid, "first": want, "later": want, "thread": want, "pool": want}, rid
    # Every subsegment the X-Ray SDK emitted belongs to the invocation that opened it.
    parents = {root: parent for _, root, parent in traces if root is not None}
    emitted = [e for e in probe["emitted"] if e["name"] == "work"]
    # 4 reads per traced invocation (and what the SDK makes of the untraced one: on a thread
    # that served a traced invocation before it reuses that segment, as it does under the
    # reference client).
    assert len(emitted) >= 4 * len(parents)
    assert all(parents[e["trace_id"]] == e["parent_id"] for e in emitted), emitted
    if n > 1:
        # Code outside every invocation: no trace, no current invocation.
        assert probe["outside"] == [None]
        assert probe["current_outside"] == []
    if n > 1:
        # The invocations did overlap (otherwise this test proves nothing about concurrency).
        assert max(p.conn for p in posts) >= 1
