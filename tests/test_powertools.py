"""Powertools for AWS Lambda under aruntime, one and four invocations at a time (issue 13 item 4).

Which of its features are right per invocation (README, "Tracing and observability"):
- Logger `@inject_lambda_context` with the default formatter: right at N = 1; at N > 1 its keys
  are shared by all invocations (Powertools' design), so records carry another's request id.
- Logger `thread_safe_append_keys`, and `@inject_lambda_context` with aruntime's
  `InvocationFormatter`: right at N = 1 and N = 4.
- Logger `xray_trace_id` (read from `_X_AMZN_TRACE_ID`): right at both.
- `EphemeralMetrics` flushed by the handler: right at both; `@log_metrics` on an async handler
  flushes before the handler runs (one invocation late, the last lost): a Powertools limit.
- Tracer `@capture_lambda_handler` on a sync handler: subsegments in each invocation's trace.
"""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

import pytest

from fakeapi import FakeRuntimeAPI, run_runtime

H = "tests.handlers.powertools_app."
T = 30.0
ENV = {"AWS_LAMBDA_FUNCTION_NAME": "fn", "LAMBDA_TASK_ROOT": ".", "POWERTOOLS_DEV": "false"}


async def _posts(api: FakeRuntimeAPI, n: int) -> list[Any]:
    posts: list[Any] = []
    while len(posts) < n:
        await api.wait_for(lambda ex: ex.method == "POST" and ex not in posts, timeout=T)
        posts = [ex for ex in api.exchanges if ex.method == "POST"]
    return posts


def _json_lines(out: bytes) -> list[dict[str, Any]]:
    lines = []
    # Powertools' handler and print() write from several threads: a line may hold two objects.
    for line in out.decode().replace("}{", "}\n{").splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                pass
    return lines


@pytest.mark.parametrize("n", [1, 4])
@pytest.mark.parametrize("style", ["async_plain", "async_fixed", "sync_plain", "sync_fixed"])
async def test_powertools_per_invocation(fake_api: FakeRuntimeAPI, style: str, n: int) -> None:
    proc = await run_runtime([sys.executable, "-m", "aruntime", H + style], fake_api,
                             env={"AWS_LAMBDA_MAX_CONCURRENCY": str(n), **ENV})
    roots = {}
    for i in range(8):
        root = f"1-5f000000-{uuid.uuid4().hex[:24]}"
        rid = fake_api.push({"s": 0.05 * (8 - i)}, headers={
            "Lambda-Runtime-Trace-Id": f"Root={root};Parent={uuid.uuid4().hex[:16]};Sampled=1"})
        roots[rid] = root
    await _posts(fake_api, 8)
    fake_api.push({"probe": "emitted"})
    emitted = (await _posts(fake_api, 9))[-1].json()
    fake_api.finish()
    assert await proc.wait(T) == 1, proc.stderr.decode()[-3000:]

    records = [r for r in _json_lines(proc.stdout) if r.get("service") in ("plain", "safe", "fixed")]
    assert len(records) == 8 * 2 * 2, proc.stdout.decode()[-3000:]
    wrong: dict[str, int] = {"plain": 0, "safe": 0, "fixed": 0}
    for record in records:
        when, rid = record["message"].split()
        assert record["xray_trace_id"] == roots[rid], record
        got = record["request"] if record["service"] == "safe" else record["function_request_id"]
        wrong[record["service"]] += got != rid
    assert wrong["safe"] == wrong["fixed"] == 0, wrong
    if n == 1 or style.endswith("fixed"):
        assert wrong["plain"] == 0
    else:
        # Powertools' shared keys: the request id of whichever invocation began last.
        assert wrong["plain"] > 0

    # EphemeralMetrics, flushed by the handler: one blob per invocation, its own dimension.
    blobs = [r for r in _json_lines(proc.stdout) if "_aws" in r]
    assert sorted(b["request"] for b in blobs) == sorted(roots)
    assert all(b["work"] in (1.0, [1.0]) for b in blobs)
    if style.startswith("sync"):
        # Tracer: the handler's and the work's subsegments are in their invocation's trace.
        names: dict[str, list[str]] = {}
        for entity in emitted:
            names.setdefault(entity["trace_id"], []).append(entity["name"])
        assert {root: sorted(names.get(root, [])) for root in roots.values()} == {
            root: [f"## {style}", "## work"] for root in roots.values()}


async def test_log_metrics_on_an_async_handler_is_one_invocation_late(fake_api: FakeRuntimeAPI) -> None:
    # The limit the README states: Powertools' sync decorator flushes before the coroutine runs.
    proc = await run_runtime([sys.executable, "-m", "aruntime", H + "metrics_handler"], fake_api,
                             env=ENV)
    for n in (1, 2, 3):
        fake_api.push({"n": n})
    await _posts(fake_api, 3)
    fake_api.finish()
    assert await proc.wait(T) == 1, proc.stderr.decode()[-3000:]
    blobs = [r for r in _json_lines(proc.stdout) if "_aws" in r]
    assert [b["late"] for b in blobs] in ([1.0, 2.0], [[1.0], [2.0]])
