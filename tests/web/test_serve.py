"""Real apps through `aruntime serve`'s Function URL with a real HTTP client: chunks reach the
caller when the app sends them, several requests stream side by side, uploads, cookies and
binary bodies survive the whole path (aiohttp → emulator → Runtime API → aruntime → app)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import aiohttp

from aruntime.emulator import Emulator

ROOT = Path(__file__).resolve().parents[2]
APPS = ROOT / "tests" / "web"
LIMIT = aiohttp.ClientTimeout(total=30)


async def timed_get(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    """Status, headers, and each piece of the body with the time it arrived (from the request)."""
    start = time.monotonic()
    async with session.get(url, timeout=LIMIT) as r:
        head_at = time.monotonic() - start
        pieces = [(time.monotonic() - start, data) async for data in r.content.iter_any()]
        return {"status": r.status, "headers": r.headers, "head_at": head_at, "pieces": pieces,
                "body": b"".join(d for _, d in pieces)}


def assert_spread(pieces: list[tuple[float, bytes]], expected: list[bytes], delay: float) -> None:
    """Each chunk arrived on its own, about `delay` after the previous: not buffered."""
    assert [d for _, d in pieces] == expected, pieces
    times = [t for t, _ in pieces]
    assert times[0] >= delay * 0.8
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(g > delay * 0.4 for g in gaps), gaps


async def test_fastapi_through_serve():
    logs: list[str] = []
    async with Emulator(f"{APPS}/fastapi_app.py:handler", port=0, log=logs.append,
                        env={"AWS_LAMBDA_MAX_CONCURRENCY": "4"}) as emu, \
            aiohttp.ClientSession() as session:
        async with session.get(f"{emu.url}/items/5?q=hi", timeout=LIMIT) as r:  # warm: Init done
            assert (await r.json())["startups"] == 1
        got = await timed_get(session, f"{emu.url}/stream?n=4&delay=0.25")
        assert got["status"] == 200 and got["headers"]["Content-Type"] == "text/plain; charset=utf-8"
        # Status and headers at once, well before the first chunk.
        assert got["head_at"] < got["pieces"][0][0] - 0.15
        assert_spread(got["pieces"], [b"chunk %d\n" % i for i in range(4)], 0.25)

        sse = await timed_get(session, f"{emu.url}/sse?n=3&delay=0.2")
        assert sse["headers"]["Content-Type"] == "text/event-stream; charset=utf-8"
        assert_spread(sse["pieces"], [b"id: %d\r\nevent: token\r\ndata: word%d\r\n\r\n" % (i, i)
                                      for i in range(3)], 0.2)

        # Four streams at once on one event loop (AWS_LAMBDA_MAX_CONCURRENCY=4): every first
        # chunk arrives before any stream ends.
        together = await asyncio.gather(*(timed_get(session, f"{emu.url}/stream?n=2&delay=0.5")
                                          for _ in range(4)))
        firsts = [g["pieces"][0][0] for g in together]
        lasts = [g["pieces"][-1][0] for g in together]
        assert max(firsts) < min(lasts), (firsts, lasts)
        assert all(g["body"] == b"chunk 0\nchunk 1\n" for g in together)

        form = aiohttp.FormData()
        form.add_field("name", "Zoë")
        upload = bytes(range(256)) * 64
        form.add_field("upload", upload, filename="u.bin", content_type="application/octet-stream")
        async with session.post(f"{emu.url}/form", data=form, timeout=LIMIT) as r:
            assert r.status == 200
            assert await r.json() == {"name": "Zoë", "filename": "u.bin", "size": len(upload),
                                      "sha256": hashlib.sha256(upload).hexdigest(),
                                      "type": "application/octet-stream"}
        async with session.get(f"{emu.url}/cookies", timeout=LIMIT) as r:
            assert len(r.headers.getall("Set-Cookie")) == 2
            assert {c.key: c.value for c in r.cookies.values()} == {"a": "1", "b": "2"}
        async with session.get(f"{emu.url}/binary", timeout=LIMIT) as r:
            assert await r.read() == bytes(range(256)) * 4
        async with session.get(f"{emu.url}/boom", timeout=LIMIT) as r:
            assert (r.status, await r.text()) == (500, "Internal Server Error")
        async with session.get(f"{emu.url}/nope", timeout=LIMIT) as r:
            assert r.status == 404
    assert sum("lifespan startup" in line for line in logs) == 1


async def test_flask_through_serve():
    async with Emulator(f"{APPS}/flask_app.py:handler", port=0, log=lambda line: None,
                        env={"AWS_LAMBDA_MAX_CONCURRENCY": "4"}) as emu, \
            aiohttp.ClientSession() as session:
        got = await timed_get(session, f"{emu.url}/stream?n=3&delay=0.25")
        # (WSGI: the head waits for the first chunk, PEP 3333.)
        assert_spread(got["pieces"], [b"flask %d /stream\n" % i for i in range(3)], 0.25)
        # Four blocking streams at once, each in its own worker thread.
        together = await asyncio.gather(*(timed_get(session, f"{emu.url}/stream?n=2&delay=0.5")
                                          for _ in range(4)))
        assert max(g["pieces"][0][0] for g in together) < min(g["pieces"][-1][0] for g in together)
        async with session.get(f"{emu.url}/hello?q=1&q=2", headers={"Cookie": "k=v"},
                               timeout=LIMIT) as r:
            hello = await r.json()
        assert hello["args"] == ["1", "2"] and hello["cookies"] == {"k": "v"}
        assert hello["path"] == "/hello" and hello["thread"].startswith("aruntime-wsgi")
        form = aiohttp.FormData()
        form.add_field("name", "x")
        form.add_field("upload", b"\x00\xff" * 5000, filename="f.bin")
        async with session.post(f"{emu.url}/upload", data=form, timeout=LIMIT) as r:
            assert await r.json() == {"name": "x", "size": 10000,
                                      "sha256": hashlib.sha256(b"\x00\xff" * 5000).hexdigest()}
        async with session.get(f"{emu.url}/cookies", timeout=LIMIT) as r:
            assert len(r.headers.getall("Set-Cookie")) == 2
        async with session.get(f"{emu.url}/boom", timeout=LIMIT) as r:
            assert r.status == 500  # Flask's own error page


async def test_django_and_starlette_through_serve():
    async with Emulator(f"{APPS}/django_app.py:handler", port=0, log=lambda line: None) as emu, \
            aiohttp.ClientSession() as session:
        got = await timed_get(session, f"{emu.url}/stream?n=3&delay=0.25")
        assert_spread(got["pieces"], [b"django %d\n" % i for i in range(3)], 0.25)
        async with session.get(f"{emu.url}/hello?q=a&q=b", headers={"Cookie": "k=v; j=w"},
                               timeout=LIMIT) as r:
            assert await r.json() == {"path": "/hello", "path_info": "/hello", "q": ["a", "b"],
                                      "cookies": {"k": "v", "j": "w"}, "method": "GET"}
        async with session.get(f"{emu.url}/cookies", timeout=LIMIT) as r:
            assert len(r.headers.getall("Set-Cookie")) == 2
    async with Emulator(f"{APPS}/starlette_app.py:handler", port=0, log=lambda line: None) as emu, \
            aiohttp.ClientSession() as session:
        got = await timed_get(session, f"{emu.url}/stream?n=3&delay=0.25")
        assert_spread(got["pieces"], [b"starlette %d\n" % i for i in range(3)], 0.25)
        async with session.post(f"{emu.url}/echo", data="héllo".encode(),
                                headers={"Content-Type": "text/plain; charset=utf-8"},
                                timeout=LIMIT) as r:
            assert await r.text() == "hello from lifespan; POST /echo 6 bytes: héllo"
