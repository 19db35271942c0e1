"""A process the handler forks is not the runtime (a sibling of issue 10's "handlers that
break the reporting path").

`os.fork()` in a handler, then `sys.exit(n)` in the child (the usual idiom), a child that
raises or returns from the handler, `multiprocessing` with the fork start method
(`Process.terminate()`, a `Pool`): every invocation is answered once, by the parent, with what
the child's exit status was. Before, the child reported SystemExit as the parent's invocation's
error and went on as a second runtime on the parent's connection (the parent waited for it
forever); a terminated child ignored SIGTERM (its loop never ran to see it) so `join()` hung,
and a signal it got could reach the parent's loop through the wakeup fd they share.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

import pytest

from fakeapi import REPO_ROOT, FakeRuntimeAPI, RuntimeProcess, runtime_env

H = "tests.handlers.forking."
T = 20.0
# child -> the exit status the parent sees
CHILDREN = {"exit3": 3, "raise": 1, "return": 0, "terminate": -15, "pool": 14}


def _kill_session(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


async def _serve(api: FakeRuntimeAPI, handler: str, concurrency: int,
                 children: dict[str, int]) -> bytes:
    for child in children:
        api.push({"child": child}, request_id=f"f-{child}")
    # In a session of its own: a child that went on as a second runtime (the fault this
    # tests) is killed with it, not left serving the fake.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aruntime", H + handler, cwd=str(REPO_ROOT),
        env=runtime_env(api, {"AWS_LAMBDA_MAX_CONCURRENCY": str(concurrency)}),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True)
    proc = RuntimeProcess(process, T)
    api.processes.append(proc)
    # Waiting for the runtime's exit waits for its pipes too, which such a child holds open.
    killer = asyncio.get_running_loop().call_later(2 * T, _kill_session, process.pid)
    try:
        await api.wait_for(lambda _: sum(ex.method == "POST" for ex in api.exchanges)
                           >= len(children), timeout=T)
        api.finish()
        code = await proc.wait(T)
    finally:
        killer.cancel()
        _kill_session(process.pid)
    assert code == 1, proc.stderr.decode()  # the fake's 500: no child took over, none hung
    posts = sorted((ex.path, ex.body) for ex in api.exchanges if ex.method == "POST")
    assert posts == sorted(
        (f"/2018-06-01/runtime/invocation/f-{child}/response",
         b'{"child":"%s","status":%d}' % (child.encode(), status))
        for child, status in children.items()), proc.stderr.decode()
    return proc.stderr


@pytest.mark.parametrize("concurrency", [1, 2])
async def test_forked_children_never_answer(fake_api: FakeRuntimeAPI, concurrency: int) -> None:
    stderr = await _serve(fake_api, "handler", concurrency, CHILDREN)
    # The child that raised ended as Python ends a process: its traceback on stderr.
    assert stderr.count(b"ValueError: raised in the child\n") == 1, stderr.decode()


async def test_a_child_forked_by_an_async_handler_never_answers(fake_api: FakeRuntimeAPI) -> None:
    await _serve(fake_api, "async_handler", 1, {"exit3": 3, "return": 0})
