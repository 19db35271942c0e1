"""Sync handler code under `AWS_LAMBDA_MAX_CONCURRENCY` > 1 (README, "Many invocations in one
process"): it runs in worker threads, one per invocation in flight, and what works there under
the reference client (one process per invocation) keeps working, or fails naming the limit.

- `asyncio.get_event_loop()` gives each worker thread a loop of its own, never the runtime's;
- every step of a sync generator runs on the thread its handler ran on (sqlite3, threading.local);
- N invocations taken from `/next` all start at once (never a queue for threads), also while a
  worker is still stuck in the step of a stream that was hung up;
- `signal.signal` there fails with an error that says why and where to read what to do.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest

from fakeapi import FakeRuntimeAPI, Exchange, run_runtime
from test_stream_hangup import Plan, StreamingAPI, marker_json, runtime_env

H = "tests.handlers.worker_handlers."
THREAD_LIMIT = ("(aruntime: with AWS_LAMBDA_MAX_CONCURRENCY > 1 sync handlers run in worker "
                "threads, and Python lets only the main thread set signal handlers; see the "
                "README's section 'Many invocations in one process')")


async def start(api: FakeRuntimeAPI, handler: str, n: int):
    proc = await run_runtime([sys.executable, "-m", "aruntime", H + handler], api,
                             env={"AWS_LAMBDA_MAX_CONCURRENCY": str(n)})
    await api.wait_polling(n)  # every poller waits before the events arrive
    return proc


async def answers(api: FakeRuntimeAPI, ids: list[str]) -> dict[str, Exchange]:
    """The POST answering each of `ids`, once all arrived."""
    def answered() -> dict[str, Exchange]:
        return {ex.path.split("/")[-2]: ex for ex in api.exchanges
                if ex.method == "POST" and ex.path.split("/")[-2] in ids}

    await api.wait_for(lambda _: len(answered()) == len(ids), timeout=15)
    return answered()


async def finish(api: FakeRuntimeAPI, proc) -> str:
    api.finish()
    assert await proc.wait(15) == 1  # the fake's 500 on /next ends the run
    return proc.stdout.decode()


async def test_get_event_loop_gives_each_worker_thread_a_loop_of_its_own(fake_api):
    proc = await start(fake_api, "get_loop", 4)
    # Eight at once on four pollers: two rounds on four threads.
    first = [fake_api.push({"i": i, "s": 0.2}) for i in range(8)]
    got = {rid: ex.json() for rid, ex in (await answers(fake_api, first)).items()}
    assert [got[rid]["value"] for rid in first] == list(range(8))
    assert not any(g["runtime_loop"] for g in got.values())  # never the runtime's own loop
    loops_of = {}
    for g in got.values():
        loops_of.setdefault(g["thread"], set()).add(g["loop"])
    assert len(loops_of) == 4, got  # one thread per invocation in flight, reused
    assert all(len(loops) == 1 for loops in loops_of.values()), loops_of  # made once per thread
    # A handler that closes its loop, or runs asyncio.run() (which leaves no loop set), gets a
    # working one the next time it asks.
    closing = [fake_api.push({"i": i, "s": 0.2, "close": True}) for i in range(4)]
    assert all(ex.path.endswith("/response") and ex.json()["closed"]
               for ex in (await answers(fake_api, closing)).values())
    after = [fake_api.push({"i": i, "s": 0.2, "run_first": i % 2 == 0}) for i in range(4)]
    got = {rid: ex.json() for rid, ex in (await answers(fake_api, after)).items()}
    assert [got[rid]["value"] for rid in after] == list(range(4)), got
    await finish(fake_api, proc)


@pytest.mark.parametrize("handler", ["set_signal", "loop_signal"])
async def test_signal_handlers_in_a_worker_thread_fail_naming_the_limit(fake_api, handler):
    proc = await start(fake_api, handler, 2)
    ids = [fake_api.push({"i": i}) for i in range(2)]
    posts = await answers(fake_api, ids)
    output = await finish(fake_api, proc)
    python_says = ("signal only works in main thread of the main interpreter"
                   if handler == "set_signal" else
                   "set_wakeup_fd only works in main thread of the main interpreter")
    error_type = "ValueError" if handler == "set_signal" else "RuntimeError"
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    for rid in ids:
        post = posts[rid]
        assert post.path.endswith("/error")
        assert post.header("lambda-runtime-function-error-type") == f"Function.{error_type}"
        body = post.json()
        assert (body["errorType"], body["errorMessage"]) == (
            error_type, f"{python_says} {THREAD_LIMIT}")
        # The log line says the same.
        logged = [r for r in records if r.get("requestId") == rid and "errorMessage" in r]
        assert [r["errorMessage"] for r in logged] == [body["errorMessage"]], output


async def test_signal_handlers_still_work_one_invocation_at_a_time(fake_api):
    proc = await start(fake_api, "set_signal", 1)
    ids = [fake_api.push({"i": 7})]
    post = (await answers(fake_api, ids))[ids[0]]
    await finish(fake_api, proc)
    assert post.path.endswith("/response") and post.json() == {"ok": 7}


async def test_a_sync_generators_steps_all_run_on_its_handlers_thread(fake_api):
    # Four streams at once, their steps interleaved on the loop: each stays on one thread, so
    # its sqlite3 cursor and threading.local keep working to the end.
    proc = await start(fake_api, "sqlite_rows", 4)
    ids = [fake_api.push({"tag": tag}) for tag in "ABCD"]
    posts = await answers(fake_api, ids)
    await finish(fake_api, proc)
    threads = set()
    for rid, tag in zip(ids, "ABCD"):
        post = posts[rid]
        assert (post.status, post.trailers) == (202, []), post.trailers
        items = post.body.decode().rstrip(";").split(";")
        assert [item.split(":")[0] for item in items] == [f"{tag}{x}" for x in range(5)]
        used = {item.split(":")[1] for item in items}
        assert len(used) == 1, items
        threads |= used
    assert len(threads) == 4  # and they did run side by side


async def test_a_generator_returned_by_a_plain_handler_steps_where_the_handler_ran(fake_api):
    proc = await start(fake_api, "sqlite_cursor", 3)
    ids = [fake_api.push({"tag": tag}) for tag in "ABC"]
    posts = await answers(fake_api, ids)
    await finish(fake_api, proc)
    for rid, tag in zip(ids, "ABC"):
        post = posts[rid]
        assert (post.status, post.trailers) == (202, []), post.trailers
        items = [item.split(":") for item in post.body.decode().rstrip(";").split(";")]
        assert [x for x, _, _ in items] == [f"{tag}{x}" for x in range(5)]
        assert all(made_in == ran_in == items[0][1] for _, made_in, ran_in in items), items


@pytest.mark.parametrize("handler", ["started", "offloads"])
async def test_n_invocations_blocking_in_threads_all_start_at_once(fake_api, handler):
    # The reference forks N workers, each running its invocation at once: N = 16 sync handlers
    # blocked for 0.5 s must all start together, whatever the number of CPUs (2 here). A queue
    # for threads would start them in waves 0.5 s apart. Likewise async handlers that hand their
    # blocking call to asyncio.to_thread (the loop's default executor).
    n = 16
    proc = await start(fake_api, handler, n)
    ids = [fake_api.push({"s": 0.5}) for _ in range(n)]
    got = [ex.json() for ex in (await answers(fake_api, ids)).values()]
    await finish(fake_api, proc)
    starts = sorted(g["started"] for g in got)
    assert starts[-1] - starts[0] < 0.35, starts
    assert len({g["ident"] for g in got}) == n
    if handler == "started":
        assert all(g["thread"].startswith("aruntime-sync") for g in got)


async def test_a_worker_stuck_in_a_lost_streams_step_holds_up_no_invocation(tmp_path: Path):
    # The stream is hung up while its generator blocks in a step for 2 s: that thread cannot be
    # stopped. Both pollers' next invocations must start at once all the same, and the generator
    # is closed on its own thread once the step is over.
    api = StreamingAPI()
    await api.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aruntime", H + "stuck_stream",
        env=runtime_env(api.address, {"AWS_LAMBDA_MAX_CONCURRENCY": "2"}),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    output = asyncio.ensure_future(proc.communicate())
    marker = tmp_path / "stuck.json"
    try:
        lost = api.push({"stuck": 2.0, "marker": str(marker)}, Plan(hangup_after=1))
        hung_up_at = await api.until(lambda: api.seen[lost].hangup_at)
        await api.until(lambda: len([t for t in api.nexts if t > hung_up_at]) >= 1)
        later = [api.push({"stuck": 0.3, "marker": str(tmp_path / f"{i}.json")}, Plan())
                 for i in range(2)]
        for rid in later:
            await api.until(lambda: api.seen[rid].done_at)
        ended = await marker_json(marker, "finally_at")
        later_ended = [json.loads((tmp_path / f"{i}.json").read_text()) for i in range(2)]
    finally:
        proc.kill()
        out, err = await asyncio.wait_for(output, 10)
        await api.close()
    for rid in later:
        assert (bytes(api.seen[rid].body), api.seen[rid].trailers) == (b"0;1;", [])
    # Both done (each blocks 0.3 s) long before the stuck step ends (2 s after the hang-up).
    assert all(api.seen[rid].done_at - hung_up_at < 1.5 for rid in later), (hung_up_at, later)
    threads = {e["step_thread"] for e in later_ended}
    assert len(threads) == 2 and ended["step_thread"] not in threads
    assert ended["finally_thread"] == ended["step_thread"]
    assert ended["finally_at"] - hung_up_at > 1.5
    assert b"Traceback" not in out + err, (out + err).decode()


async def test_a_sync_handler_still_running_does_not_keep_an_exiting_runtime_alive(fake_api):
    # The Runtime API ends the run (500 on /next) while a sync handler blocks for 30 s: its
    # invocation cannot be answered any more, and the process must exit now, not in 30 s.
    proc = await start(fake_api, "started", 2)
    fake_api.push({"s": 30})
    await fake_api.wait_for(lambda ex: ex.method == "GET" and ex.status == 200)  # handed out
    await asyncio.sleep(0.3)  # and blocking in its worker thread
    fake_api.finish()
    assert await proc.wait(5) == 1
    assert b"exiting: Runtime API" in proc.stderr


@pytest.mark.parametrize("n", [1, 2])
async def test_a_wsgi_apps_thread_has_an_event_loop_of_its_own(fake_api, n):
    # aruntime.wsgi runs the app in a thread at every N (apig-wsgi and the reference run it on
    # the main thread, where get_event_loop() works).
    from tests.web.http_events import v2

    proc = await run_runtime([sys.executable, "-m", "aruntime", "tests.handlers.worker_wsgi.handler"],
                             fake_api, env={"AWS_LAMBDA_MAX_CONCURRENCY": str(n)})
    ids = [fake_api.push(v2("GET", "/")) for _ in range(2)]
    posts = await answers(fake_api, ids)
    await finish(fake_api, proc)
    for rid in ids:
        assert posts[rid].path.endswith("/response"), posts[rid].body
        assert posts[rid].json()["body"] == "ran runtime_loop=False"


@pytest.mark.parametrize("n", [1, 2])
async def test_a_soft_timeout_alarm_never_ends_the_runtime(fake_api, n):
    # One invocation at a time the SIGALRM handler interrupts the handler, as under the
    # reference. At N > 1 it runs on the main thread, in the runtime's event loop: what it raises
    # must be logged, not end the process with every invocation in flight.
    proc = await run_runtime([sys.executable, "-m", "aruntime", "tests.handlers.worker_alarm.handler"],
                             fake_api, env={"AWS_LAMBDA_MAX_CONCURRENCY": str(n)})
    ids = [fake_api.push({"alarm": 1, "s": 1.5}) for _ in range(n)]
    posts = await answers(fake_api, ids)
    later = [fake_api.push({"alarm": 0, "s": 0})]  # and it goes on serving
    posts.update(await answers(fake_api, later))
    output = await finish(fake_api, proc)
    assert [posts[rid].json() for rid in ids] == [{"timed_out": n == 1}] * n, output
    assert posts[later[0]].json() == {"timed_out": False}
    logged = [json.loads(line) for line in output.splitlines()
              if line.startswith("{") and "SIGALRM" in line]
    if n == 1:
        assert logged == []
    else:
        assert [r["message"] for r in logged] == [
            "the SIGALRM handler _timeout raised TimeoutError: soft timeout; ignored: with "
            "AWS_LAMBDA_MAX_CONCURRENCY > 1 signal handlers run on the main thread, which runs "
            "the event loop, not your handler (see the README's section 'Many invocations in "
            "one process')"], output
        assert logged[0]["level"] == "ERROR"


async def test_a_thread_the_os_refuses_fails_only_that_invocation(fake_api):
    proc = await run_runtime([sys.executable, "-m", "aruntime", "tests.handlers.worker_nothread.handler"],
                             fake_api, env={"AWS_LAMBDA_MAX_CONCURRENCY": "2"})
    await fake_api.wait_polling(2)
    first, refused = fake_api.push({"s": 0.5}), fake_api.push({"s": 0})
    posts = await answers(fake_api, [first, refused])
    later = fake_api.push({"s": 0})  # the first thread, idle again, serves it
    posts.update(await answers(fake_api, [later]))
    output = await finish(fake_api, proc)
    assert posts[first].json() == posts[later].json() == {"ok": "aruntime-sync_0"}
    post = posts[refused]
    assert post.path.endswith("/error")
    assert post.header("lambda-runtime-function-error-type") == "Runtime.NoWorkerThread"
    assert post.json()["errorMessage"] == (
        "No thread could be started for this invocation: can't start new thread")
    assert "Traceback" not in output + proc.stderr.decode()


@pytest.mark.parametrize("n", [1, 4])
async def test_the_loop_a_module_took_at_import_runs_its_coroutines_at_any_n(fake_api, n):
    # `LOOP = asyncio.get_event_loop()` at import, `LOOP.run_until_complete(...)` in a sync
    # handler: one at a time the runtime's loop is idle while the handler runs; at N > 1 it
    # runs all the time, and the call must still run the coroutine there (asyncio alone says
    # "This event loop is already running").
    proc = await start(fake_api, "module_loop", n)
    ids = [fake_api.push({"s": 0.3}) for _ in range(n)]
    got = [ex.json() for ex in (await answers(fake_api, ids)).values()]
    await finish(fake_api, proc)
    assert all(g["on_module_loop"] and g["thread"] == "MainThread" for g in got), got
    # Side by side: each waited 0.3 s, all at the same time.
    assert max(g["started"] for g in got) < min(g["ended"] for g in got), got
