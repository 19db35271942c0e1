"""How the runtime treats Runtime API answers that are not 2xx and connections that die (docs/SPEC.md §2).

410 and 413 fail one invocation and the service goes on: log, then serve the next one. 500 means
the sandbox is broken: exit 1. A dead or refused connection is retried a bounded number of
times, then the runtime exits 1.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import pytest

from aruntime.connection import RuntimeClient
from aruntime.errors import RuntimeAPIUnavailable
from fakeapi import FakeRuntimeAPI, refused_port, run_runtime

T = 10.0
RUNTIME = [sys.executable, "-m", "aruntime"]
ECHO = "tests.handlers.core_probe.echo"


@pytest.mark.parametrize("status", [410, 413])
@pytest.mark.parametrize("path", ["/response", "/error"])
async def test_gone_and_too_large_are_logged_and_the_loop_goes_on(fake_api: FakeRuntimeAPI, status: int,
                                                                  path: str) -> None:
    fake_api.answer(path, status)
    first = fake_api.push({"n": 1} if path == "/response" else "not json", request_id="f-1")
    second = fake_api.push({"n": 2}, request_id="f-2")
    proc = await run_runtime([*RUNTIME, ECHO], fake_api)
    served = await fake_api.wait_for(lambda e: e.path.endswith(f"/{second}/response"), timeout=T)
    fake_api.finish()
    assert await proc.wait(T) == 1  # only the final /next 500 ends it
    assert served.status == 202 and served.body == b'{"event":{"n":2},"rid":"f-2"}'
    rejected = fake_api.exchanges[1]
    assert rejected.target == f"/2018-06-01/runtime/invocation/{first}{path}"
    assert rejected.status == status
    out = proc.stdout.decode()
    assert f"\tf-1\tRuntime API /2018-06-01/runtime/invocation/f-1{path} answered {status}: " in out, out
    assert out.startswith("[WARNING]\t") or "\n[WARNING]\t" in out


@pytest.mark.parametrize("path", ["/response", "/error"])
async def test_500_on_a_post_exits_1(fake_api: FakeRuntimeAPI, path: str) -> None:
    fake_api.answer(path, 500)
    fake_api.push({"n": 1} if path == "/response" else "not json", request_id="x-1")
    fake_api.push({"n": 2}, request_id="x-2")
    proc = await run_runtime([*RUNTIME, ECHO], fake_api)
    assert await proc.wait(T) == 1
    assert [e.target for e in fake_api.exchanges][:2] == [
        "/2018-06-01/runtime/invocation/next", f"/2018-06-01/runtime/invocation/x-1{path}"]
    # The runtime exits at the 500. A /next pipelined behind the post may reach the server
    # (which, like the service, hands out nothing after a 500): the second event is never
    # handed out, so it is not lost.
    assert all(e.path.endswith("/next") and e.status == 500 for e in fake_api.exchanges[2:])
    assert "x-2" not in " ".join(e.target for e in fake_api.exchanges)
    assert "answered 500" in proc.stderr.decode()


async def test_500_on_next_exits_1(fake_api: FakeRuntimeAPI) -> None:
    fake_api.answer("/invocation/next", 500)
    fake_api.push({"n": 1})
    proc = await run_runtime([*RUNTIME, ECHO], fake_api)
    assert await proc.wait(T) == 1
    assert [(e.target, e.status) for e in fake_api.exchanges] == [("/2018-06-01/runtime/invocation/next", 500)]
    assert "aruntime: exiting: Runtime API /2018-06-01/runtime/invocation/next answered 500" in proc.stderr.decode()


async def test_400_on_response_is_not_fatal(fake_api: FakeRuntimeAPI) -> None:
    # An id the fake does not know gets 400 InvalidRequestID; the runtime must live on.
    fake_api.answer("/response", 400)
    fake_api.push({"n": 1}, request_id="b-1")
    second = fake_api.push({"n": 2}, request_id="b-2")
    proc = await run_runtime([*RUNTIME, ECHO], fake_api)
    served = await fake_api.wait_for(lambda e: e.path.endswith(f"/{second}/response"), timeout=T)
    fake_api.finish()
    assert await proc.wait(T) == 1
    assert served.status == 202


async def test_connection_refused_bounded_retries_then_exit(fake_api: FakeRuntimeAPI) -> None:
    with refused_port() as port:
        start = time.monotonic()
        proc = await run_runtime([*RUNTIME, ECHO], fake_api,
                                 env={"AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}"})
        assert await proc.wait(T) == 1
        elapsed = time.monotonic() - start
    # Five attempts wait 0.75 s in all (the schedule is pinned below); starting Python is the rest.
    assert 0.7 < elapsed < 5.0, elapsed
    err = proc.stderr.decode()
    assert f"cannot connect to the Runtime API at 127.0.0.1:{port}" in err, err
    assert fake_api.exchanges == []


# The retry schedule (aruntime/connection.py): 5 attempts; connecting waits 50, 100, 200, 400 ms
# between them; a request whose connection died is retried at once (the server may have closed
# an idle kept-alive connection), then after 100, 200, 400 ms; no wait after the last attempt.
# Bounds from below catch a missing backoff, bounds from above a runaway one; both keep a wide
# margin for a loaded 2-core machine (a sleep never ends early; it may end late).
CONNECT_WAITS = [0.05, 0.1, 0.2, 0.4]
REQUEST_WAITS = [0.0, 0.1, 0.2, 0.4]


def assert_schedule(times: list[float], gave_up: float, waits: list[float]) -> None:
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(times) == len(waits) + 1, (times, gaps)
    for gap, wait in zip(gaps, waits):
        assert wait * 0.9 <= gap <= wait * 2 + 0.25, (gaps, waits)
    assert gave_up - times[-1] < 0.25, (gave_up - times[-1], gaps)  # no wait after the last


async def test_connect_retry_schedule_against_a_refusing_port(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    attempts: list[float] = []
    real = loop.create_connection

    async def counted(*args: Any, **kwargs: Any) -> Any:
        attempts.append(time.monotonic())
        return await real(*args, **kwargs)

    monkeypatch.setattr(loop, "create_connection", counted)
    with refused_port() as port:
        client = RuntimeClient(f"127.0.0.1:{port}")
        with pytest.raises(RuntimeAPIUnavailable, match=f"cannot connect to the Runtime API at 127.0.0.1:{port}"):
            await client.next()
        gave_up = time.monotonic()
    assert_schedule(attempts, gave_up, CONNECT_WAITS)


async def test_request_retry_schedule_against_a_server_that_closes_each_connection(
        fake_api: FakeRuntimeAPI) -> None:
    fake_api.answer("/invocation/next", 0, times=100)  # read the request, close, never answer
    client = RuntimeClient(fake_api.address)
    with pytest.raises(RuntimeAPIUnavailable, match="Runtime API /2018-06-01/runtime/invocation/next"):
        await client.next()
    gave_up = time.monotonic()
    client.close()
    attempts = [e.done for e in fake_api.exchanges]
    assert [e.conn for e in fake_api.exchanges] == list(range(5))  # a fresh connection each time
    assert_schedule(attempts, gave_up, REQUEST_WAITS)


async def test_dropped_next_is_retried_on_a_new_connection(fake_api: FakeRuntimeAPI) -> None:
    # Status 0: the fake reads the request and closes the connection without answering.
    fake_api.answer("/invocation/next", 0, times=1)
    rid = fake_api.push({"n": 1}, request_id="d-1")
    proc = await run_runtime([*RUNTIME, ECHO], fake_api)
    served = await fake_api.wait_for(lambda e: e.path.endswith(f"/{rid}/response"), timeout=T)
    fake_api.finish()
    assert await proc.wait(T) == 1
    assert served.status == 202
    assert served.conn == 1
    assert fake_api.exchanges[0].conn == 0 and fake_api.exchanges[0].status == 0


async def test_connection_dropped_every_time_exits_after_bounded_retries(fake_api: FakeRuntimeAPI) -> None:
    fake_api.answer("/invocation/next", 0, times=100)
    fake_api.push({"n": 1})
    start = time.monotonic()
    proc = await run_runtime([*RUNTIME, ECHO], fake_api)
    assert await proc.wait(T) == 1
    assert time.monotonic() - start < 5.0
    attempts = [e for e in fake_api.exchanges if e.path.endswith("/next")]
    assert len(attempts) == 5, attempts
    assert fake_api.connections == len(attempts)  # one fresh connection per attempt
    # The runtime process keeps the schedule pinned above (from below only: its exit is later).
    gaps = [b.done - a.done for a, b in zip(attempts, attempts[1:])]
    assert all(g >= w * 0.9 for g, w in zip(gaps, REQUEST_WAITS)), gaps
    assert "aruntime: exiting: Runtime API /2018-06-01/runtime/invocation/next" in proc.stderr.decode()

