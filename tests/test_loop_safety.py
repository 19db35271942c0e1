"""No handler can end the runtime through the event loop it shares (breaker findings 2, 3, 9, 10).

- A cancellation the function's code sends the runtime's own tasks (a watchdog timer left behind,
  a cancel of `asyncio.all_tasks()`) fails only the invocation whose handler it reaches, or is
  ignored with one log line (aruntime/tasks.py); every answer is still posted.
- A sync handler's `asyncio.get_event_loop()` is not the runtime's loop (as under the reference
  client); the runtime's loop cannot be closed by a handler that kept it (a module may close it
  at import: the runtime takes a new one), and a `stop()` of it is logged and overridden.
- SIGTERM while invocations run logs one line per invocation it abandons.
- Once the runtime is done, the process ends within a bounded time whatever threads the
  function left running, with the runtime's exit status.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time

import pytest

from fakeapi import FakeRuntimeAPI, run_runtime

T = 20.0
MODULE = "tests.handlers.loop_safety"
IGNORED = "aruntime: ignored "
PREFIX = "/2018-06-01/runtime/invocation/"
STOPPED = ("aruntime: the function's code stopped the event loop (loop.stop()); it is the "
           "runtime's, shared by every invocation: it runs on")


def env(concurrency: int) -> dict[str, str]:
    return {"AWS_LAMBDA_MAX_CONCURRENCY": str(concurrency)} if concurrency > 1 else {}


def answers(api: FakeRuntimeAPI) -> dict[str, tuple[str, object]]:
    """request id -> ("response" | "error", JSON body) for every post."""
    out = {}
    for ex in api.exchanges:
        if ex.method == "POST":
            _, _, rid, kind = ex.path.rsplit("/", 3)
            out[rid] = (kind, ex.json())
    return out


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_a_stray_cancellation_is_ignored_and_every_answer_posted(
        fake_api: FakeRuntimeAPI, concurrency: int) -> None:
    # slow: in flight meanwhile (at N=4); at-post: its timer fires while its answer is posted;
    # at-next: while the runtime waits on /next (N=1) or after its task ended (N=4);
    # self: cancels its own task and returns before the cancellation is delivered.
    fake_api.push({"n": 0, "sleep": 0.5}, request_id="slow")
    fake_api.push({"n": 1, "after": 0}, request_id="at-post")
    fake_api.push({"n": 2, "after": 0.2}, request_id="at-next")
    proc = await run_runtime([sys.executable, "-m", "aruntime", f"{MODULE}.watchdog"], fake_api,
                             env=env(concurrency))
    await fake_api.wait_for(lambda e: e.path.endswith("/at-next/response"), timeout=T)
    await asyncio.sleep(0.5)  # the timer fires
    fake_api.push({"n": 3, "self": True}, request_id="self")
    fake_api.push({"n": 4}, request_id="after")
    for rid in ("slow", "self", "after"):  # a /next answered 500 ends the runtime at once
        await fake_api.wait_for(lambda e, rid=rid: e.path.startswith(f"{PREFIX}{rid}/"),
                                timeout=T)
    fake_api.finish()
    assert await proc.wait(T) == 1, proc.stderr.decode()
    assert answers(fake_api) == {
        rid: ("response", {"n": n})
        for n, rid in enumerate(["slow", "at-post", "at-next", "self", "after"])}
    assert IGNORED in proc.stdout.decode()
    assert "Traceback" not in proc.stderr.decode()


async def test_cancelling_every_task_fails_only_the_running_handlers(
        fake_api: FakeRuntimeAPI) -> None:
    fake_api.push({"n": 1, "sleep": 1.0}, request_id="victim")
    fake_api.push({"n": 2, "wait": 0.3, "do": True}, request_id="canceller")
    proc = await run_runtime([sys.executable, "-m", "aruntime", f"{MODULE}.cancel_others"],
                             fake_api, env=env(4))
    await fake_api.wait_for(lambda e: e.path.endswith("/canceller/response"), timeout=T)
    await fake_api.wait_for(lambda e: e.path.endswith("/victim/error"), timeout=T)
    # The pollers were not cancelled: the runtime goes on serving, on every connection.
    for i in range(4):
        fake_api.push({"n": 10 + i, "sleep": 0.2}, request_id=f"later-{i}")
    for i in range(4):
        await fake_api.wait_for(lambda e, i=i: e.path.endswith(f"/later-{i}/response"), timeout=T)
    fake_api.finish()
    assert await proc.wait(T) == 1, proc.stderr.decode()
    got = answers(fake_api)
    kind, error = got.pop("victim")
    assert (kind, error["errorType"], error["requestId"]) == (  # type: ignore[index]
        "error", "CancelledError", "victim")
    assert got == {"canceller": ("response", {"n": 2}),
                   **{f"later-{i}": ("response", {"n": 10 + i}) for i in range(4)}}
    lines = [line for line in proc.stdout.decode().splitlines() if IGNORED in line]
    assert len(lines) == 1 and '"requestId":"canceller"' in lines[0], lines


async def test_a_sync_handlers_loop_is_not_the_runtimes(fake_api: FakeRuntimeAPI) -> None:
    for n, op in enumerate(["own", "kept_stop", "kept_close", "none"]):
        fake_api.push({"n": n, "op": op}, request_id=op)
    proc = await run_runtime([sys.executable, "-m", "aruntime", f"{MODULE}.sync_loops"], fake_api)
    await fake_api.wait_for(lambda e: e.path.endswith("/none/response"), timeout=T)
    fake_api.finish()
    assert await proc.wait(T) == 1, proc.stderr.decode()
    got = answers(fake_api)
    if sys.version_info >= (3, 14):  # no implicit loop for anyone any more
        assert got.pop("own")[1]["no_loop"]  # type: ignore[index]
    else:
        # Python's own rule for the main thread: a new loop, the handler's (as under awslambdaric).
        assert got.pop("own") == ("response", {"n": 0, "runtime_loop": False})
    kind, error = got.pop("kept_close")
    assert (kind, error["errorType"], error["errorMessage"]) == (  # type: ignore[index]
        "error", "RuntimeError", "this is aruntime's event loop, which serves every invocation "
        "of the process: a handler cannot close it (for a loop of your own: asyncio.run(), or "
        "asyncio.new_event_loop())")
    assert got == {"kept_stop": ("response", {"n": 1}), "none": ("response", {"n": 3})}
    # The stop of the kept loop is logged unless the loop iteration it left was all the answer
    # needed (a race with the network).
    assert proc.stdout.decode().count(STOPPED) <= 1


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_an_async_handler_stopping_the_loop_is_answered(fake_api: FakeRuntimeAPI,
                                                              concurrency: int) -> None:
    proc = await run_runtime([sys.executable, "-m", "aruntime", f"{MODULE}.async_stop"],
                             fake_api, env=env(concurrency))
    # One after the other: two stops in one loop iteration are one stop.
    for n, rid in enumerate(["stops", "stops-again"], 1):
        fake_api.push({"n": n}, request_id=rid)
        await fake_api.wait_for(lambda e, rid=rid: e.path.endswith(f"/{rid}/response"),
                                timeout=T)
    fake_api.finish()
    assert await proc.wait(T) == 1, proc.stderr.decode()
    assert answers(fake_api) == {"stops": ("response", {"n": 1}),
                                 "stops-again": ("response", {"n": 2})}
    assert proc.stdout.decode().count(STOPPED) == 2


@pytest.mark.parametrize("handler, concurrency, abandoned", [
    ("slow", 1, True),
    ("slow", 4, True),
    ("sync_slow", 4, True),
    ("sync_slow", 1, False),  # SIGTERM waits for the sync handler: its answer is posted
])
async def test_sigterm_logs_each_abandoned_invocation(fake_api: FakeRuntimeAPI, handler: str,
                                                      concurrency: int, abandoned: bool) -> None:
    rids = ["busy-1", "busy-2"] if concurrency > 1 else ["busy-1"]
    for rid in rids:
        fake_api.push({"n": 1, "sleep": 1.5}, request_id=rid)
    proc = await run_runtime([sys.executable, "-m", "aruntime", f"{MODULE}.{handler}"], fake_api,
                             env=env(concurrency))
    await fake_api.wait(len(rids), timeout=T)  # every /next answered: the handlers run
    await asyncio.sleep(0.3)
    proc._proc.send_signal(signal.SIGTERM)
    assert await proc.wait(T) == 0
    out = proc.stdout.decode()
    for rid in rids:
        line = (f"aruntime: SIGTERM: invocation {rid} is abandoned: the runtime exits before it "
                f"was answered")
        assert out.count(line) == (1 if abandoned else 0), out
        # Each is that invocation's record: text (N=1) `[WARNING]\t<time>\t<id>\t…`, JSON (N>1).
        logged = [json.loads(x)["requestId"] if x.startswith("{") else x.split("\t")[2]
                  for x in out.splitlines() if line in x]
        assert logged == ([rid] if abandoned else []), out
    posted = answers(fake_api)
    assert posted == ({} if abandoned else {"busy-1": ("response", {"n": 1})})


@pytest.mark.parametrize("handler, concurrency, threads", [
    ("leaves_thread", 1, "left-behind"),  # a non-daemon thread the handler started
    # Under concurrency sync handlers run in daemon worker threads (workers.py), and threads
    # they start are daemon threads too: Python's exit does not wait for them.
    ("sync_slow", 4, None),
])
async def test_the_process_ends_whatever_threads_are_left(fake_api: FakeRuntimeAPI, handler: str,
                                                          concurrency: int,
                                                          threads: str | None) -> None:
    fake_api.push({"n": 1, "sleep": 60}, request_id="r1")
    proc = await run_runtime([sys.executable, "-m", "aruntime", f"{MODULE}.{handler}"], fake_api,
                             env=env(concurrency))
    await fake_api.wait(1, timeout=T)
    if handler == "leaves_thread":
        await fake_api.wait_for(lambda e: e.path.endswith("/r1/response"), timeout=T)
    fake_api.finish()  # /next answers 500: the runtime exits 1
    start = time.monotonic()
    assert await proc.wait(T) == 1
    # Bounded by lifecycle.EXIT_GRACE_S (0.5 s) plus the runtime's own way out; generous here,
    # the point is "ends", where it used to wait for the thread (60 s).
    assert time.monotonic() - start < 10
    err = proc.stderr.decode().splitlines()
    if threads is not None:
        assert err.pop() == f"aruntime: exiting without waiting for threads still running: {threads}"
    assert err[-1].startswith("aruntime: exiting: Runtime API ")


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_a_cancellation_raised_while_marshalling_fails_only_that_invocation(
        fake_api: FakeRuntimeAPI, concurrency: int) -> None:
    fake_api.push({"n": 1, "bad": True}, request_id="bad")
    proc = await run_runtime([sys.executable, "-m", "aruntime",
                              f"{MODULE}.sync_cancelled_result"], fake_api, env=env(concurrency))
    await fake_api.wait_for(lambda e: e.path.endswith("/bad/error"), timeout=T)
    fake_api.push({"n": 2}, request_id="good")
    await fake_api.wait_for(lambda e: e.path.endswith("/good/response"), timeout=T)
    fake_api.finish()
    assert await proc.wait(T) == 1, proc.stderr.decode()
    got = answers(fake_api)
    kind, error = got.pop("bad")
    assert (kind, error["errorType"], error["errorMessage"]) == (  # type: ignore[index]
        "error", "CancelledError", "raised while the result was marshalled")
    assert got == {"good": ("response", {"n": 2})}


async def test_a_stream_cancelling_every_task_is_still_answered(fake_api: FakeRuntimeAPI) -> None:
    # One at a time, the only other task is the runtime's, waiting for the stream to end.
    fake_api.push({}, request_id="s1")
    fake_api.push({}, request_id="s2")
    proc = await run_runtime([sys.executable, "-m", "aruntime",
                              f"{MODULE}.stream_cancel_others"], fake_api)
    await fake_api.wait_for(lambda e: e.path.endswith("/s2/response"), timeout=T)
    fake_api.finish()
    assert await proc.wait(T) == 1, proc.stderr.decode()
    posts = [(ex.path.rsplit("/", 2)[1], ex.body, [data for _, data in ex.chunks], ex.trailers)
             for ex in fake_api.exchanges if ex.method == "POST"]
    assert posts == [("s1", b"ab", [b"a", b"b"], []), ("s2", b"ab", [b"a", b"b"], [])]
    assert proc.stdout.decode().count(IGNORED) == 2


async def test_a_failed_init_ends_whatever_threads_it_started(fake_api: FakeRuntimeAPI) -> None:
    proc = await run_runtime([sys.executable, "-m", "aruntime",
                              "tests.handlers.loop_safety_init.handler"], fake_api)
    await fake_api.wait_for(lambda e: e.path.endswith("/init/error"), timeout=T)
    assert await proc.wait(T) == 1
    assert proc.stderr.decode().splitlines()[-1] == (
        "aruntime: exiting without waiting for threads still running: started-at-import")


@pytest.mark.parametrize("handler", ["handler", "ahandler"])
async def test_a_module_closing_its_loop_at_import_is_served(fake_api: FakeRuntimeAPI,
                                                             handler: str) -> None:
    fake_api.push({}, request_id="r1")
    fake_api.push({}, request_id="r2")
    proc = await run_runtime([sys.executable, "-m", "aruntime",
                              f"tests.handlers.loop_safety_import.{handler}"], fake_api)
    await fake_api.wait_for(lambda e: e.path.endswith("/r2/response"), timeout=T)
    fake_api.finish()
    assert await proc.wait(T) == 1, proc.stderr.decode()
    assert answers(fake_api) == {"r1": ("response", {"setup": "set up"}),
                                 "r2": ("response", {"setup": "set up"})}
