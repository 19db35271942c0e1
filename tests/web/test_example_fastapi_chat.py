"""examples/fastapi_chat.py through `aruntime serve`, as the README shows it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import aiohttp

from aruntime.emulator import Emulator

ROOT = Path(__file__).resolve().parents[2]


async def test_fastapi_chat_tokens_arrive_one_by_one_over_a_function_url():
    logs: list[str] = []
    async with Emulator(f"{ROOT}/examples/fastapi_chat.py:handler", port=0,
                        log=logs.append) as emu, aiohttp.ClientSession() as session:
        async with session.get(f"{emu.url}/chat?prompt=hello",
                               timeout=aiohttp.ClientTimeout(total=30)) as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "text/event-stream; charset=utf-8"
            assert r.headers["Cache-Control"] == "no-cache"
            events: list[tuple[float, bytes]] = []
            buf = b""
            async for data in r.content.iter_any():
                buf += data
                while b"\n\n" in buf:
                    event, buf = buf.split(b"\n\n", 1)
                    events.append((time.monotonic(), event))
    tokens = [json.loads(e.split(b"data: ", 1)[1])["token"] for _, e in events
              if e.startswith(b"event: token")]
    assert "".join(tokens).startswith("You asked about 'hello'.")
    assert events[0][1].startswith(b"event: token\nid: 0\ndata: ")
    done = json.loads(events[-1][1].split(b"data: ", 1)[1])
    assert done["tokens"] == len(tokens) > 20 and len(done["request_id"]) == 36
    # 20-60 ms per token: the events reached the caller spread over the answer, not in a burst.
    assert events[-1][0] - events[0][0] > 0.02 * len(tokens)
    assert events[-1][0] - events[len(events) // 2][0] > 0.3
    assert any(line.startswith("REPORT RequestId: ") for line in logs)
