"""Our runtime (`python -m aruntime`, the default runtime command) under the emulator."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import aiohttp

from aruntime.emulator.config import default_runtime_command

from .helpers import LIMIT, emulator, invoke, stream_invoke

APP = '''
import time

def handler(e, c):
    yield b"a"
    yield b"b"

def slow(e, c):
    for i in range(3):
        yield f"{time.time():.6f}\\n".encode()
        time.sleep(0.4)

def broken(e, c):
    yield b"half"
    raise ValueError("midstream")

async def sleepy(e, c):
    import asyncio, os
    await asyncio.sleep(0.5)
    return {"pid": os.getpid(), "rid": c.aws_request_id}

'''


def app(tmp_path: Path, func: str) -> str:
    (tmp_path / "app.py").write_text(APP)
    return f"{tmp_path}/app.py:{func}"


async def test_generator_handler_streams_with_the_default_runtime(tmp_path: Path) -> None:
    async with emulator(app(tmp_path, "handler"), runtime_command=default_runtime_command()) as emu:
        _, messages = await stream_invoke(emu, {})
        assert [m.payload for _, m in messages if m.headers[":event-type"] == "PayloadChunk"] == [b"a", b"b"]
        assert json.loads(messages[-1][1].payload) == {}
        status, headers, body = await invoke(emu, {})
        assert (status, body) == (200, b"ab") and "X-Amz-Function-Error" not in headers


async def test_chunks_arrive_while_the_handler_runs(tmp_path: Path) -> None:
    async with emulator(app(tmp_path, "slow"), runtime_command=default_runtime_command()) as emu:
        _, messages = await stream_invoke(emu, {})
        chunks = [(t, m.payload) for t, m in messages if m.headers[":event-type"] == "PayloadChunk"]
        produced = [float(p) for _, p in chunks]
        assert len(produced) == 3
        # The first chunk reached us before the handler produced the last one.
        assert chunks[0][0] < produced[2] - 0.3

        async def url_call() -> list[float]:
            got = []
            async with aiohttp.ClientSession() as session:
                async with session.get(emu.url + "/") as r:
                    async for _ in r.content.iter_any():
                        got.append(time.time())
            return got

        arrivals = await asyncio.wait_for(url_call(), LIMIT)
        assert len(arrivals) >= 2 and arrivals[-1] - arrivals[0] > 0.5


async def test_midstream_error_from_the_default_runtime(tmp_path: Path) -> None:
    async with emulator(app(tmp_path, "broken"), runtime_command=default_runtime_command()) as emu:
        _, messages = await stream_invoke(emu, {})
        assert messages[0][1].payload == b"half"
        complete = json.loads(messages[-1][1].payload)
        assert complete["ErrorCode"] == "Function.ValueError"
        assert json.loads(complete["ErrorDetails"])["errorMessage"] == "midstream"


async def test_max_concurrency_runs_invocations_side_by_side_in_one_process(tmp_path: Path) -> None:
    async with emulator(app(tmp_path, "sleepy"), runtime_command=default_runtime_command(),
                        env={"AWS_LAMBDA_MAX_CONCURRENCY": "4"}) as emu:
        await invoke(emu, {})  # cold start out of the way
        start = time.monotonic()
        answers = await asyncio.gather(*(invoke(emu, {}) for _ in range(4)))
        elapsed = time.monotonic() - start
    bodies = [json.loads(body) for status, _, body in answers]
    assert all(status == 200 for status, _, _ in answers)
    assert len({b["pid"] for b in bodies}) == 1  # one process, one event loop
    assert len({b["rid"] for b in bodies}) == 4
    assert elapsed < 1.5, elapsed  # one at a time would take 2 s


async def test_error_records_show_as_separate_lines() -> None:
    """The runtime joins an error record's lines with \\r (CloudWatch's convention, unchanged on
    the runtime's stdout); serve's echo shows them as lines, not overwriting each other."""
    from .helpers import ECHO

    async with emulator(ECHO, runtime_command=default_runtime_command()) as emu:
        _, headers, body = await invoke(emu, {"raise": "boom"}, headers={"X-Amz-Log-Type": "Tail"})
        assert json.loads(body)["errorMessage"] == "boom"
        await emu.logs.wait_for("REPORT RequestId")
        assert not [line for line in emu.logs if "\r" in line]
        start = emu.logs.index("[ERROR] ValueError: boom") if "[ERROR] ValueError: boom" in emu.logs else None
        assert start is not None, emu.logs.text()
        assert emu.logs[start + 1] == "Traceback (most recent call last):"
        assert emu.logs[start + 2].lstrip().startswith('File "') and "echo.py" in emu.logs[start + 2]
        # The log tail keeps the record as the runtime wrote it: one line, \r inside.
        tail = base64.b64decode(headers["X-Amz-Log-Result"]).decode()
        assert "[ERROR] ValueError: boom\rTraceback (most recent call last):\r" in tail
