"""Lambda Managed Instances (docs/SPEC.md §5): N pollers, one process, one event loop."""

from __future__ import annotations

import json
import sys
import time

import pytest

from fakeapi import FakeRuntimeAPI, run_runtime

H = "tests.handlers.concurrent_handlers."


async def run(api: FakeRuntimeAPI, handler: str, events: list, n: int, env=None):
    proc = await run_runtime([sys.executable, "-m", "aruntime", H + handler], api,
                             env={"AWS_LAMBDA_MAX_CONCURRENCY": str(n), **(env or {})})
    # All N pollers are waiting before the events arrive, so timing is the handlers' alone.
    await api.wait_polling(n)
    start = time.monotonic()
    ids = [api.push(e) for e in events]
    posts = []
    while len(posts) < len(events):
        await api.wait_for(lambda ex: ex.method == "POST" and ex not in posts, timeout=15)
        posts = [ex for ex in api.exchanges if ex.method == "POST"]
    elapsed = time.monotonic() - start
    api.finish()
    assert await proc.wait(15) == 1
    return ids, posts, proc, elapsed


async def test_eight_async_invocations_overlap(fake_api):
    ids, posts, proc, elapsed = await run(fake_api, "sleepy", [{"i": i} for i in range(8)], 8)
    # Serially this is 8 x 0.5 s = 4 s.
    assert elapsed < 2.0, elapsed
    by_id = {p.path.split("/")[-2]: p.json() for p in posts}
    assert by_id == {rid: {"i": i, "rid": rid} for i, rid in enumerate(ids)}
    # Every poller has its own keep-alive connection.
    assert len({ex.conn for ex in fake_api.exchanges}) == 8


async def test_one_crash_leaves_the_others_correct(fake_api):
    events = [{"i": i, "s": 0.2, "boom": i == 3} for i in range(8)]
    ids, posts, proc, _ = await run(fake_api, "sleepy", events, 8)
    by_id = {p.path.split("/")[-2]: p for p in posts}
    for i, rid in enumerate(ids):
        post = by_id[rid]
        if i == 3:
            assert post.path.endswith("/error")
            assert post.header("lambda-runtime-function-error-type") == "Function.RuntimeError"
            assert post.json()["errorMessage"] == "boom 3"
        else:
            assert post.path.endswith("/response") and post.json() == {"i": i, "rid": rid}


async def test_json_logs_carry_each_invocations_request_id(fake_api):
    ids, _, proc, _ = await run(fake_api, "sleepy", [{"i": i, "s": 0.2} for i in range(4)], 4,
                                env={"AWS_LAMBDA_LOG_LEVEL": "INFO"})
    records = [json.loads(line) for line in proc.stdout.decode().splitlines() if line.startswith("{")]
    starts = {r["message"]: r["requestId"] for r in records if r["logger"] == "conc"}
    # JSON format is forced under concurrency; each line names the invocation that logged it.
    assert starts == {**{f"start {i}": rid for i, rid in enumerate(ids)},
                      **{f"end {i}": rid for i, rid in enumerate(ids)}}


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("handler", ["traced", "traced_sync"])
async def test_trace_id_rule_for_one_and_for_many_invocations(fake_api, handler, n):
    # README "_X_AMZN_TRACE_ID": with one invocation at a time the variable is that invocation's
    # trace header (absent without one); with N > 1 reading it gives the header of the invocation
    # the reading code works for. Either way an inherited value never shows through, and
    # aruntime.trace_id() is each invocation's own header.
    traces = ["Root=1-aaa;Sampled=1", None, "Root=1-ccc;Parent=p;Sampled=0"]
    # Under N > 1 each handler reads after the others have begun (one at a time cannot overlap).
    wait = {"s": 0.3 if n > 1 else 0}
    ids = [fake_api.push(wait, headers={"Lambda-Runtime-Trace-Id": t}) for t in traces]
    proc = await run_runtime([sys.executable, "-m", "aruntime", H + handler], fake_api,
                             env={"AWS_LAMBDA_MAX_CONCURRENCY": str(n),
                                  "_X_AMZN_TRACE_ID": "Root=inherited"})
    posts = []
    while len(posts) < len(ids):
        await fake_api.wait_for(lambda ex: ex.method == "POST" and ex not in posts, timeout=15)
        posts = [ex for ex in fake_api.exchanges if ex.method == "POST"]
    fake_api.finish()
    assert await proc.wait(15) == 1
    got = {p.json()["rid"]: p.json() for p in posts}
    assert got == {rid: {"rid": rid, "env": trace, "trace_id": trace} for rid, trace in zip(ids, traces)}


async def test_sync_handlers_run_in_the_thread_pool(fake_api):
    ids, posts, _, elapsed = await run(fake_api, "blocking", [{"i": i} for i in range(4)], 4)
    assert elapsed < 1.6, elapsed  # serially 2 s
    threads = {p.json()["thread"] for p in posts}
    assert all(t.startswith("aruntime-sync") for t in threads) and len(threads) == 4


async def test_two_streams_interleave_on_two_connections(fake_api):
    ids, posts, _, _ = await run(fake_api, "streams", [{"tag": "A"}, {"tag": "B"}], 2)
    a, b = sorted(posts, key=lambda p: p.body)
    assert a.body == b"A0;A1;A2;A3;" and b.body == b"B0;B1;B2;B3;"
    assert a.conn != b.conn
    # Chunk k of each stream arrives before chunk k+1 of the other: they ran side by side.
    for k in range(3):
        assert a.chunks[k][0] < b.chunks[k + 1][0] and b.chunks[k][0] < a.chunks[k + 1][0]


async def test_concurrency_one_is_the_single_loop(fake_api):
    ids, posts, proc, elapsed = await run(fake_api, "sleepy", [{"i": i, "s": 0.1} for i in range(3)], 1,
                                          env={"AWS_LAMBDA_LOG_LEVEL": "INFO"})
    assert len({ex.conn for ex in fake_api.exchanges}) == 1
    assert [p.json()["i"] for p in posts] == [0, 1, 2]  # one at a time, in order
    assert proc.stdout.startswith(b"[INFO]\t")  # text logs: JSON is forced only when N > 1
    assert f"\t{ids[0]}\tstart 0\n".encode() in proc.stdout


async def test_sync_generators_step_in_threads_side_by_side(fake_api):
    ids, posts, proc, elapsed = await run(fake_api, "sync_stream", [{"tag": "A"}, {"tag": "B"}], 2)
    bodies = sorted(p.body for p in posts)
    assert bodies == [b"A0;True;A1;True;A2;True;", b"B0;True;B1;True;B2;True;"]
    assert all(p.status == 202 and p.trailers == [] for p in posts)
    assert elapsed < 0.9, elapsed  # serially 0.6 s of sleeps per stream, 1.2 s for both
