"""Ctrl-C on `aruntime serve` shuts down as Lambda does (issue #11, polish I).

The runtime gets SIGTERM first (its shutdown hooks run), SIGKILL only after the grace period;
each invocation in flight ends with one `Stopped:` line, its END and REPORT; every caller gets
an answer that says it failed (a truncated Function URL body, the Invoke error).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import aiohttp
import pytest

from aruntime.emulator import Emulator, process

from .helpers import INVOKE, LIMIT, serve_env, served

HANDLER = '''\
import asyncio
import aruntime


@aruntime.on_shutdown
def goodbye():
    print("SHUTDOWN HOOK RAN", flush=True)


def handler(event, context):
    return stream() if "rawPath" in event else wait()


async def stream():
    for i in range(200):
        yield f"chunk {i};"
        await asyncio.sleep(0.05)


async def wait():
    await asyncio.sleep(30)
    return "never"
'''


async def test_ctrl_c_with_invocations_in_flight(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(HANDLER)
    env = serve_env(tmp_path)
    async with served("app.py:handler", "--env", "AWS_LAMBDA_MAX_CONCURRENCY=2", cwd=tmp_path, env=env) as serve:
        async with aiohttp.ClientSession() as session:
            async def read_url() -> tuple[bytes, BaseException | None]:
                got = bytearray()
                async with session.get(serve.url + "/") as r:
                    try:
                        async for data in r.content.iter_any():
                            got += data
                    except aiohttp.ClientPayloadError as e:  # the body was cut short
                        return bytes(got), e
                return bytes(got), None

            async def invoke() -> tuple[int, dict[str, str], bytes]:
                async with session.post(serve.url + INVOKE, data=b"{}") as r:
                    return r.status, dict(r.headers), await r.read()

            streamed = asyncio.ensure_future(asyncio.wait_for(read_url(), LIMIT))
            buffered = asyncio.ensure_future(asyncio.wait_for(invoke(), LIMIT))

            async def both_started() -> None:
                while sum(line.startswith("START RequestId: ") for line in serve.out) < 2:
                    await asyncio.sleep(0.02)

            await asyncio.wait_for(both_started(), LIMIT)
            queued = asyncio.ensure_future(asyncio.wait_for(invoke(), LIMIT))  # no room: it waits

            async def url_status() -> int:
                async with session.get(serve.url + "/") as r:
                    await r.read()
                    return r.status

            queued_url = asyncio.ensure_future(asyncio.wait_for(url_status(), LIMIT))
            await asyncio.sleep(0.3)  # a few chunks out
            code = await serve.stop()
            body, cut = await streamed
            status, headers, answer = await buffered
            never_ran = await queued
            never_ran_url = await queued_url
    assert code == 0
    out = serve.out
    # The runtime got SIGTERM (its hook ran), not SIGKILL.
    assert "SHUTDOWN HOOK RAN" in out
    assert not any("signal: killed" in line for line in out), out
    assert "aruntime serve: stopping with 2 invocations in flight: the runtime gets SIGTERM, then SIGKILL after 2 s" in out
    ids = [line.split()[2] for line in out if line.startswith("START RequestId: ")]
    for request_id in ids:
        stopped = [i for i, line in enumerate(out) if re.fullmatch(
            rf"\S+Z {request_id} Stopped: aruntime serve shut down during the invocation; "
            r"the runtime was sent SIGTERM and ended with exit status 0", line)]
        end = out.index(f"END RequestId: {request_id}")
        assert len(stopped) == 1 and stopped[0] < end, out
        report = out[end + 1]
        assert report.startswith(f"REPORT RequestId: {request_id}\t")
        assert report.endswith("\tStatus: error\tError Type: Runtime.ExitError"), report
    # The Function URL caller sees a truncated body; the Invoke caller the error.
    assert cut is not None and body.startswith(b"chunk 0;chunk 1;")
    assert status == 200 and headers["X-Amz-Function-Error"] == "Unhandled"
    error = json.loads(answer)
    assert error["errorType"] == "Runtime.ExitError"
    assert "aruntime serve shut down during the invocation" in error["errorMessage"]
    # The one still queued never ran: the service's own error (botocore: ServiceException).
    assert never_ran[0] == 500 and never_ran[1]["X-Amzn-ErrorType"] == "ServiceException", never_ran
    assert "X-Amz-Function-Error" not in never_ran[1]
    assert json.loads(never_ran[2]) == {"Type": "Service", "message": "the emulator stopped",
                                        "Message": "the emulator stopped"}
    assert never_ran_url == 502
    assert len(ids) == 2
    assert not [line for line in out + serve.err if "Traceback" in line or "Task exception" in line]


async def test_a_runtime_that_ignores_sigterm_is_killed_after_the_grace_period(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "app.py").write_text(
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n\n"
        "def handler(event, context):\n    time.sleep(30)\n")
    monkeypatch.setattr(process, "SHUTDOWN_GRACE", 0.3)
    logs: list[str] = []
    emu = Emulator(f"{tmp_path}/app.py:handler", port=0, log=logs.append)
    await emu.start()
    try:
        async def invoke() -> bytes:
            async with aiohttp.ClientSession() as session:
                async with session.post(emu.url + INVOKE, data=b"{}") as r:
                    return await r.read()

        answer = asyncio.ensure_future(asyncio.wait_for(invoke(), LIMIT))
        while not any(line.startswith("START ") for line in logs):
            await asyncio.sleep(0.02)
    finally:
        await asyncio.wait_for(emu.close(), LIMIT)
    assert "the runtime was sent SIGTERM and ended with signal: killed" in json.loads(await answer)["errorMessage"]
    assert any(line.startswith("REPORT ") and line.endswith("Error Type: Runtime.ExitError") for line in logs)


async def test_ctrl_c_with_a_buffered_function_url_answer_in_flight(tmp_path: Path) -> None:
    """A Function URL invocation whose answer has not started (a sync handler, buffered) cannot
    be cut short: its caller gets the 502 Lambda gives for a function error (README, Ctrl-C)."""
    (tmp_path / "app.py").write_text(
        "import time\n\ndef handler(event, context):\n    time.sleep(30)\n    return 'never'\n")
    env = serve_env(tmp_path)
    async with served("app.py:handler", "--env", "AWS_LAMBDA_MAX_CONCURRENCY=4", cwd=tmp_path, env=env) as serve:
        async with aiohttp.ClientSession() as session:
            async def url() -> tuple[int, bytes]:
                async with session.get(serve.url + "/") as r:
                    return r.status, await r.read()

            answer = asyncio.ensure_future(asyncio.wait_for(url(), LIMIT))

            async def started() -> None:
                while not any(line.startswith("START RequestId: ") for line in serve.out):
                    await asyncio.sleep(0.02)

            await asyncio.wait_for(started(), LIMIT)
            code = await serve.stop()
            status, body = await answer
    assert code == 0
    assert (status, json.loads(body)) == (502, {"Message": "Internal Server Error"})
    assert any(line.startswith("REPORT ") and line.endswith("Error Type: Runtime.ExitError") for line in serve.out)


async def test_ctrl_c_lets_a_sync_handler_at_one_at_a_time_answer_within_the_grace(tmp_path: Path) -> None:
    """At one invocation at a time a sync handler holds SIGTERM until it returns: returning within
    serve's 2 s, its caller gets the answer, with no `Stopped:` line (README, Ctrl-C)."""
    (tmp_path / "app.py").write_text(
        "import time\n\ndef handler(event, context):\n    time.sleep(0.5)\n    return 'answered'\n")
    env = serve_env(tmp_path)
    async with served("app.py:handler", cwd=tmp_path, env=env) as serve:
        async with aiohttp.ClientSession() as session:
            async def invoke() -> tuple[int, dict[str, str], bytes]:
                async with session.post(serve.url + INVOKE, data=b"{}") as r:
                    return r.status, dict(r.headers), await r.read()

            answer = asyncio.ensure_future(asyncio.wait_for(invoke(), LIMIT))

            async def started() -> None:
                while not any(line.startswith("START RequestId: ") for line in serve.out):
                    await asyncio.sleep(0.02)

            await asyncio.wait_for(started(), LIMIT)
            code = await serve.stop()
            status, headers, body = await answer
    assert code == 0
    assert (status, json.loads(body)) == (200, "answered") and "X-Amz-Function-Error" not in headers
    assert "aruntime serve: stopping with 1 invocation in flight: the runtime gets SIGTERM, then SIGKILL after 2 s" in serve.out
    assert not any(" Stopped: " in line for line in serve.out), serve.out
    report = next(line for line in serve.out if line.startswith("REPORT "))
    assert "Status: error" not in report
