"""Any BaseException a handler raises is that invocation's error, and the runtime serves on.

SystemExit, KeyboardInterrupt, CancelledError and BaseException subclasses no library catches,
raised by every handler style (sync and async buffered, a sync def returning a coroutine, sync
and async generators, writers), before the first byte (posted to `/error`) and after it (the
stream ends with the error trailers), with one invocation at a time and under
AWS_LAMBDA_MAX_CONCURRENCY (thread pool, N pollers). Each run ends with a normal invocation that
must be served, and the runtime's exit is the fake's 500 (status 1), never the handler's
SystemExit(3). (GeneratorExit is issue 10 item 8, pinned by the handlers' tests.)
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from fakeapi import Exchange, FakeRuntimeAPI, run_runtime

H = "tests.handlers.base_exceptions."
T = 20.0
HANDLERS = Path(__file__).resolve().parent / "handlers" / "base_exceptions.py"
# event["raise"] -> (errorType, errorMessage, the raise line the last frame shows)
RAISED = {
    "system_exit": ("SystemExit", "3", "raise SystemExit(3)"),
    "keyboard_interrupt": ("KeyboardInterrupt", "stop", 'raise KeyboardInterrupt("stop")'),
    "handler_abort": ("HandlerAbort", "abort", 'raise HandlerAbort("abort")'),
    "cancelled": ("CancelledError", "cancelled by the handler",
                  'raise asyncio.CancelledError("cancelled by the handler")'),
}
STREAMING = ["sync_generator", "async_generator", "writer"]
BUFFERED = ["sync_buffered", "async_buffered", "sync_returning_coroutine"]


def check_error(error: dict[str, Any], raised: str, rid: str) -> None:
    # A CancelledError raised in a streaming handler's task keeps its message and frames on
    # every Python (3.10's asyncio would replace it by a bare one if the runtime let it through).
    error_type, message, line = RAISED[raised]
    assert list(error) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert (error["errorType"], error["errorMessage"], error["requestId"]) == (error_type, message, rid)
    assert error["stackTrace"][-1].endswith(f"\n    {line}\n"), error["stackTrace"]
    # Only the handler's frames: none of the runtime's (wherever the checkout lives), none of
    # the thread pool's under N > 1.
    paths = [Path(frame.split('"')[1]).resolve() for frame in error["stackTrace"]]
    assert paths and all(p == HANDLERS for p in paths), paths


def logged_errors(stdout: bytes, concurrency: int) -> list[tuple[str, str]]:
    """(errorType, errorMessage) of each error line the runtime logged."""
    if concurrency == 1:  # text: "[ERROR] Type: message\rTraceback..."
        heads = [line.split(b"\r", 1)[0].decode() for line in stdout.split(b"\n")
                 if line.startswith(b"[ERROR] ")]
        pairs = [head[len("[ERROR] "):].split(": ", 1) for head in heads]
        return [(pair[0], pair[1] if len(pair) > 1 else "") for pair in pairs]
    records = [json.loads(line) for line in stdout.splitlines() if line.startswith(b"{")]
    return [(r["errorType"], r["errorMessage"]) for r in records if r.get("level") == "ERROR"]


async def run_style(api: FakeRuntimeAPI, style: str, concurrency: int
                    ) -> tuple[dict[str, Exchange], list[tuple[str, str, str]], bytes]:
    whens = ["before", "after"] if style in STREAMING else ["before"]
    cases = [(api.push({"raise": raised, "when": when}), raised, when)
             for raised in RAISED for when in whens]
    final = api.push({"final": True})
    proc = await run_runtime([sys.executable, "-m", "aruntime", H + style], api,
                             env={"AWS_LAMBDA_MAX_CONCURRENCY": str(concurrency)})
    expected = {rid for rid, _, _ in cases} | {final}
    posts = await api.serve_until_answered(proc, expected, timeout=T)  # exit 1, not SystemExit(3)
    assert posts[final].path.endswith("/response") and posts[final].status == 202
    if style in STREAMING:
        assert [c for _, c in posts[final].chunks] == [b"first", b"ok"]
    return posts, cases, proc.stdout


@pytest.mark.parametrize("concurrency", [1, 2])
@pytest.mark.parametrize("style", STREAMING + BUFFERED)
async def test_base_exceptions_are_the_invocations_error(fake_api: FakeRuntimeAPI, style: str,
                                                         concurrency: int) -> None:
    posts, cases, stdout = await run_style(fake_api, style, concurrency)
    for rid, raised, when in cases:
        ex = posts[rid]
        error_type = RAISED[raised][0]
        assert ex.status == 202
        if when == "before":
            # Nothing was sent yet: a plain /error, as for any handler error.
            assert ex.path == f"/2018-06-01/runtime/invocation/{rid}/error"
            assert ex.header("lambda-runtime-function-error-type") == f"Function.{error_type}"
            assert ex.header("transfer-encoding") is None
            check_error(ex.json(), raised, rid)
        else:
            # After the first byte: the stream ends with the error in its trailers.
            assert ex.path == f"/2018-06-01/runtime/invocation/{rid}/response"
            assert [c for _, c in ex.chunks] == [b"first"]
            assert ex.trailer("lambda-runtime-function-error-type") == f"Function.{error_type}"
            body = base64.b64decode(ex.trailer("lambda-runtime-function-error-body") or "", validate=True)
            check_error(json.loads(body), raised, rid)
    expected = sorted((RAISED[raised][0], RAISED[raised][1]) for _, raised, _ in cases)
    assert sorted(logged_errors(stdout, concurrency)) == expected, stdout.decode()


@pytest.mark.parametrize("raised", list(RAISED))
async def test_base_exception_at_import_is_an_init_error(fake_api: FakeRuntimeAPI, raised: str,
                                                         tmp_path: Path) -> None:
    # A module that gives up while being imported (`sys.exit("no config")` is common).
    (tmp_path / "initfail.py").write_text(
        "from tests.handlers.base_exceptions import _raise\n"
        f"_raise({{'raise': {raised!r}, 'when': 'init'}}, 'init')\n"
        "def handler(event, context):\n"
        "    return None\n")
    proc = await run_runtime([sys.executable, "-m", "aruntime", "initfail.handler"], fake_api,
                             env={"LAMBDA_TASK_ROOT": str(tmp_path)})
    assert await proc.wait(T) == 1, proc.stderr.decode()
    (ex,) = fake_api.exchanges
    error_type, message, line = RAISED[raised]
    assert ex.path == "/2018-06-01/runtime/init/error" and ex.status == 202
    assert ex.header("lambda-runtime-function-error-type") == error_type
    error = ex.json()
    assert (error["errorType"], error["errorMessage"]) == (error_type, message)
    assert error["stackTrace"][-1].endswith(f"\n    {line}\n"), error["stackTrace"]
    paths = [Path(frame.split('"')[1]).resolve() for frame in error["stackTrace"]]
    assert paths == [(tmp_path / "initfail.py").resolve(), HANDLERS]
    assert f"[ERROR] {error_type}: {message}\r".encode() in proc.stdout
