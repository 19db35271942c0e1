"""Shared pieces of the emulator tests: paths, runtime commands, bounded client calls."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from botocore.eventstream import EventStreamBuffer

from aruntime.emulator import Emulator

ROOT = Path(__file__).resolve().parents[2]
ECHO = f"{ROOT}/examples/echo.py:handler"
RIC = [sys.executable, "-m", "awslambdaric"]
STREAM_RUNTIME = [sys.executable, str(Path(__file__).with_name("stream_runtime.py"))]
INVOKE = "/2015-03-31/functions/function/invocations"
STREAM_INVOKE = "/2021-11-15/functions/function/response-streaming-invocations"
LIMIT = 30.0  # no single client call in these tests may take longer


class Logs(list[str]):
    def text(self) -> str:
        return "\n".join(self)

    async def wait_for(self, needle: str, timeout: float = 10.0) -> str:
        async def poll() -> str:
            while True:
                for line in self:
                    if needle in line:
                        return line
                await asyncio.sleep(0.02)

        return await asyncio.wait_for(poll(), timeout)


@asynccontextmanager
async def emulator(handler: str = ECHO, **kwargs: Any) -> AsyncIterator[Emulator]:
    logs = Logs()
    kwargs.setdefault("runtime_command", RIC)
    async with Emulator(handler, port=0, log=logs.append, **kwargs) as emu:
        emu.logs = logs  # type: ignore[attr-defined]
        yield emu


def _body(payload: Any) -> bytes:
    return payload if isinstance(payload, bytes) else json.dumps(payload).encode()


async def invoke(
    emu: Emulator, payload: Any = b"{}", headers: dict[str, str] | None = None, path: str = INVOKE
) -> tuple[int, dict[str, str], bytes]:
    async def call() -> tuple[int, dict[str, str], bytes]:
        async with aiohttp.ClientSession() as session:
            async with session.post(emu.url + path, data=_body(payload), headers=headers) as r:
                return r.status, dict(r.headers), await r.read()

    return await asyncio.wait_for(call(), LIMIT)


def decode_frames(raw: bytes) -> list[Any]:
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    return list(buffer)


async def stream_invoke(emu: Emulator, payload: Any) -> tuple[dict[str, str], list[tuple[float, Any]]]:
    """Each event-stream message with the wall-clock time its bytes completed."""

    async def call() -> tuple[dict[str, str], list[tuple[float, Any]]]:
        out: list[tuple[float, Any]] = []
        buffer = EventStreamBuffer()
        async with aiohttp.ClientSession() as session:
            async with session.post(emu.url + STREAM_INVOKE, data=_body(payload)) as r:
                async for data in r.content.iter_any():
                    buffer.add_data(data)
                    out.extend((time.time(), message) for message in buffer)
                return dict(r.headers), out

    return await asyncio.wait_for(call(), LIMIT)


def sent_times(logs: Logs) -> dict[int, float]:
    """`SENT i t` lines printed by stream_runtime.py (latest invocation wins)."""
    out: dict[int, float] = {}
    for line in logs:
        if line.startswith("SENT "):
            _, index, stamp = line.split()
            out[int(index)] = float(stamp)
    return out
