"""Context variables belong to one invocation (issue 13, the kind behind item 4).

A context variable an invocation's code sets is not seen by the invocations after it: under
N > 1 each invocation runs in a fresh copy of the context its poller started with, as each async
invocation at N = 1 runs in a task of its own. A sync handler at N = 1 is called on the main
thread, whose context lives as long as the process: there a context variable behaves like a
global, exactly as under the reference client. What a sync decorator sets around an async
handler is seen by that handler.
"""

from __future__ import annotations

import sys

import pytest

from fakeapi import FakeRuntimeAPI, run_runtime

H = "tests.handlers.context_leak."


async def _sequential(api: FakeRuntimeAPI, handler: str, n: int, count: int) -> list[dict]:
    proc = await run_runtime([sys.executable, "-m", "aruntime", H + handler], api,
                             env={"AWS_LAMBDA_MAX_CONCURRENCY": str(n)})
    for i in range(count):
        api.push({})
        # One at a time: with N = 2 the same poller serves several of them.
        await api.wait_for(lambda ex: ex.method == "POST"
                           and sum(e.method == "POST" for e in api.exchanges) > i, timeout=15)
    api.finish()
    assert await proc.wait(15) == 1, proc.stderr.decode()[-2000:]
    return [ex.json() for ex in api.exchanges if ex.method == "POST"]


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("handler", ["handler", "sync_handler"])
async def test_a_context_variable_set_by_one_invocation_does_not_reach_the_next(
        fake_api: FakeRuntimeAPI, handler: str, n: int) -> None:
    seen = await _sequential(fake_api, handler, n, 6)
    if handler == "sync_handler" and n == 1:
        assert seen[0] == {"seen": None} and all(s["seen"] for s in seen[1:])  # the reference's rule
    else:
        assert seen == [{"seen": None}] * 6


@pytest.mark.parametrize("n", [1, 2])
async def test_a_sync_decorators_context_holds_for_the_async_handler(fake_api: FakeRuntimeAPI,
                                                                     n: int) -> None:
    assert await _sequential(fake_api, "wrapped_handler", n, 3) == [{"seen": "wrapper"}] * 3
