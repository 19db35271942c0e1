"""The README's examples, served by `aruntime serve`'s emulator with the real runtime."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path

import aiohttp

from aruntime.emulator import Emulator

ROOT = Path(__file__).resolve().parent.parent


async def test_chat_tokens_arrive_one_by_one_over_a_function_url():
    logs: list[str] = []
    async with Emulator(f"{ROOT}/examples/chat.py:handler", port=0, log=logs.append) as emu:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{emu.url}/?prompt=hi", timeout=aiohttp.ClientTimeout(total=30)) as r:
                assert r.status == 200
                assert r.headers["Content-Type"] == "text/event-stream"
                assert r.headers["Cache-Control"] == "no-cache"
                events: list[tuple[float, bytes]] = []
                buf = b""
                async for data in r.content.iter_any():
                    buf += data
                    while b"\n\n" in buf:
                        event, buf = buf.split(b"\n\n", 1)
                        events.append((time.monotonic(), event))
    tokens = [json.loads(e.split(b"data: ", 1)[1])["token"] for _, e in events if e.startswith(b"event: token")]
    assert "".join(tokens).startswith("You asked about 'hi'.")
    done = json.loads(events[-1][1].split(b"data: ", 1)[1])
    assert done["tokens"] == len(tokens) > 20
    # The model takes 20-60 ms per token: the events reached the caller spread over the whole
    # answer, not in one burst at the end.
    spread = events[-1][0] - events[0][0]
    assert spread > 0.02 * len(tokens), spread
    first_half = [t for t, _ in events[: len(events) // 2]]
    assert events[-1][0] - first_half[-1] > 0.3
    assert any(line.startswith("REPORT RequestId: ") for line in logs)


async def test_bigfile_streams_past_the_buffered_limit():
    async with Emulator(f"{ROOT}/examples/bigfile.py:handler", port=0, log=lambda line: None) as emu:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{emu.url}/?mib=8", timeout=aiohttp.ClientTimeout(total=60)) as r:
                assert r.status == 200
                assert r.headers["Content-Disposition"] == 'attachment; filename="big.bin"'
                digest = hashlib.sha256()
                size = 0
                async for data in r.content.iter_any():
                    digest.update(data)
                    size += len(data)
    assert size == 8 << 20  # over Lambda's 6 MB buffered limit
    block = hashlib.sha256(b"aruntime").digest() * 2048
    assert digest.hexdigest() == hashlib.sha256(block * 128).hexdigest()
