"""SnapStart hooks and SIGTERM shutdown (issue 7's lifecycle half)."""

from __future__ import annotations

import signal
import sys
import time

from fakeapi import run_runtime

HANDLER = "tests.handlers.lifecycle_handlers.handler"
SNAP = {"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}


async def test_snapstart_hooks_restore_next_then_new_connection(fake_api):
    fake_api.push({})
    fake_api.finish()
    proc = await run_runtime([sys.executable, "-m", "aruntime", HANDLER], fake_api, env=SNAP)
    assert await proc.wait(15) == 1
    targets = [(ex.method, ex.path) for ex in fake_api.exchanges]
    assert targets[0] == ("GET", "/2018-06-01/runtime/restore/next")
    assert targets[1] == ("GET", "/2018-06-01/runtime/invocation/next")
    # The pre-snapshot connection is dropped after the restore.
    assert fake_api.exchanges[1].conn != fake_api.exchanges[0].conn
    out = proc.stdout.decode().splitlines()
    assert out[:3] == ["before-snapshot second-registered", "before-snapshot first-registered",
                       "after-restore"]


async def test_before_snapshot_failure_is_an_init_error(fake_api):
    proc = await run_runtime([sys.executable, "-m", "aruntime", HANDLER], fake_api,
                             env={**SNAP, "HOOK_FAIL": "before"})
    assert await proc.wait(15) == 64
    (ex,) = fake_api.exchanges
    assert ex.path == "/2018-06-01/runtime/init/error"
    assert ex.header("lambda-runtime-function-error-type") == "Runtime.BeforeSnapshotError"
    body = ex.json()
    assert (body["errorType"], body["errorMessage"]) == ("RuntimeError", "cannot snapshot")
    assert 'in first_registered\n    raise RuntimeError("cannot snapshot")' in body["stackTrace"][-1]


async def test_after_restore_failure_goes_to_restore_error(fake_api):
    proc = await run_runtime([sys.executable, "-m", "aruntime", HANDLER], fake_api,
                             env={**SNAP, "HOOK_FAIL": "after"})
    assert await proc.wait(15) == 65
    assert [ex.path for ex in fake_api.exchanges] == [
        "/2018-06-01/runtime/restore/next", "/2018-06-01/runtime/restore/error"]
    ex = fake_api.exchanges[1]
    assert ex.header("lambda-runtime-function-error-type") == "Runtime.AfterRestoreError"
    assert ex.json()["errorMessage"] == "cannot restore"


async def test_sigterm_while_waiting_for_next_runs_hooks_and_exits_0(fake_api):
    fake_api.push({})
    proc = await run_runtime([sys.executable, "-m", "aruntime", HANDLER], fake_api)
    # One invocation answered, then the runtime sits in the /next long poll.
    await fake_api.wait_for(lambda ex: ex.path.endswith("/response"))
    await fake_api.wait_polling()
    start = time.monotonic()
    proc._proc.send_signal(signal.SIGTERM)
    assert await proc.wait(5) == 0
    assert time.monotonic() - start < 1.0
    assert proc.stdout.decode().splitlines()[-2:] == ["shutdown sync hook", "shutdown async hook"]


async def test_sigterm_without_hooks_exits_0(fake_api):
    proc = await run_runtime([sys.executable, "-m", "aruntime", "tests.handlers.basic.handler"], fake_api)
    # Its first /next waits: the handler is loaded and the SIGTERM handler installed before it.
    await fake_api.wait_polling()
    proc._proc.send_signal(signal.SIGTERM)
    assert await proc.wait(5) == 0
