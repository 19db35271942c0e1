"""A Function URL stream cut short must look cut short to the HTTP client; a caller hanging up
must not stop the function.

The function runs on aruntime (the default runtime command); one emulator serves every case,
picked by the query string. A stream that ends badly (an exception after the first byte, the
200 MB limit, a timeout, a crash) closes the caller's connection without the terminating chunk,
which real clients report as an error: aiohttp raises ClientPayloadError, curl exits 18.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import aiohttp
import pytest

from aruntime.emulator.config import default_runtime_command
from aruntime.emulator.limits import MAX_STREAMED

from .helpers import LIMIT, emulator, stream_invoke

MIB = 1 << 20
APP = '''
import os
import time
from urllib.parse import parse_qs

from aruntime import HttpResponse


def handler(event, context):
    case = parse_qs(event.get("rawQueryString") or "").get("case", ["ok"])[0]
    yield HttpResponse(200, {"content-type": "text/plain"})
    yield b"first;"
    if case == "ok":
        yield b"last"
    elif case == "error":
        raise ValueError("broke after the first byte")
    elif case == "crash":
        time.sleep(0.2)
        os._exit(3)
    elif case == "timeout":
        time.sleep(30)
    elif case == "big":
        block = b"x" * (1 << 20)
        for _ in range(%(mib)d):
            yield block
    elif case == "slow":
        # Runs on after the caller hung up, and says so when it is done.
        for i in range(6):
            time.sleep(0.25)
            yield f"tick {i};".encode()
        print("SLOW HANDLER FINISHED", flush=True)
''' % {"mib": MAX_STREAMED // MIB + 5}


@pytest.fixture
def app(tmp_path: Path) -> str:
    (tmp_path / "cut.py").write_text(APP)
    return f"{tmp_path}/cut.py:handler"


async def read_url(url: str) -> tuple[int, bytes, BaseException | None]:
    """(status, body bytes received, the error reading the body raised, if any)."""
    async def go() -> tuple[int, bytes, BaseException | None]:
        got = bytearray()
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as r:
                try:
                    async for data in r.content.iter_any():
                        got += data
                except aiohttp.ClientPayloadError as e:
                    return r.status, bytes(got), e
                return r.status, bytes(got), None

    return await asyncio.wait_for(go(), LIMIT)


async def curl(url: str) -> tuple[int, bytes]:
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sN", "--max-time", str(int(LIMIT)), url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    out, _ = await asyncio.wait_for(proc.communicate(), LIMIT + 5)
    return proc.returncode or 0, out


async def test_cut_streams_are_truncated_for_the_caller(app: str) -> None:
    async with emulator(app, runtime_command=default_runtime_command(), timeout=2) as emu:
        status, body, error = await read_url(emu.url + "/?case=ok")
        assert (status, body, error) == (200, b"first;last", None)  # the control: complete

        for case, error_type in (("error", "Function.ValueError"), ("crash", "Runtime.ExitError"),
                                 ("timeout", "Sandbox.Timedout")):
            status, body, error = await read_url(emu.url + f"/?case={case}")
            assert status == 200 and body == b"first;", case
            assert isinstance(error, aiohttp.ClientPayloadError), (case, error)
            line = await emu.logs.wait_for(f"response stream ended with {error_type}")
            assert "without the final chunk" in line
        # Still serving, complete streams still complete.
        assert await read_url(emu.url + "/?case=ok") == (200, b"first;last", None)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_reports_a_cut_stream(app: str) -> None:
    async with emulator(app, runtime_command=default_runtime_command(), timeout=5) as emu:
        assert await curl(emu.url + "/?case=ok") == (0, b"first;last")
        # curl: (18) transfer closed with outstanding read data remaining
        assert await curl(emu.url + "/?case=error") == (18, b"first;")


async def test_stream_stops_at_the_200_mb_limit(app: str) -> None:
    async with emulator(app, runtime_command=default_runtime_command(), timeout=60) as emu:
        status, body, error = await read_url(emu.url + "/?case=big")
        assert status == 200 and isinstance(error, aiohttp.ClientPayloadError)
        # Everything up to the limit, not one byte more (the prelude is not counted by the
        # caller: it became the status and headers).
        prelude = b'{"statusCode":200,"headers":{"content-type":"text/plain"},"cookies":[]}' + b"\0" * 8
        assert len(body) == MAX_STREAMED - len(prelude)
        assert body.startswith(b"first;x")
        await emu.logs.wait_for("response stream ended with Function.ResponseSizeTooLarge")
        # The runtime was told too (413), and serves the next invocation.
        await emu.logs.wait_for("REPORT RequestId")
        assert await read_url(emu.url + "/?case=ok") == (200, b"first;last", None)


async def test_function_runs_on_after_the_caller_hangs_up(app: str) -> None:
    """The service lets the function run (and bills it) until it returns or times out when the
    caller of a Function URL or of InvokeWithResponseStream leaves (docs/SPEC.md §8)."""
    async with emulator(app, runtime_command=default_runtime_command(), timeout=10) as emu:
        async def hang_up_after_first_bytes() -> None:
            async with aiohttp.ClientSession() as session:
                async with session.get(emu.url + "/?case=slow") as r:
                    assert await r.content.readexactly(6) == b"first;"

        await asyncio.wait_for(hang_up_after_first_bytes(), LIMIT)
        await emu.logs.wait_for("the caller of the Function URL (GET /) hung up before the end of the answer")
        finished = await emu.logs.wait_for("SLOW HANDLER FINISHED")
        report = await emu.logs.wait_for("REPORT RequestId")
        assert "Status:" not in report  # ended normally, not cancelled, timed out or failed
        assert finished

        # The same through the response-streaming Invoke API: leave after the first event.
        emu.logs.clear()

        async def leave_stream_invoke() -> None:
            async with aiohttp.ClientSession() as session:
                url = emu.url + "/2021-11-15/functions/function/response-streaming-invocations"
                event = {"rawQueryString": "case=slow"}
                async with session.post(url, data=json.dumps(event)) as r:
                    await r.content.read(10)

        await asyncio.wait_for(leave_stream_invoke(), LIMIT)
        await emu.logs.wait_for("the caller of InvokeWithResponseStream hung up before the end of the answer")
        await emu.logs.wait_for("SLOW HANDLER FINISHED")
        assert "Status:" not in await emu.logs.wait_for("REPORT RequestId")
        _, messages = await stream_invoke(emu, {"rawQueryString": "case=ok"})
        assert b"".join(m.payload for _, m in messages[:-1]).endswith(b"first;last")
