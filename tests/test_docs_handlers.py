"""README's handler code, run as written: each ```python block is a file served by the real
runtime (under `aruntime serve`'s emulator, or the fake Runtime API in the files named below),
and what a caller gets is what README says it gets."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from aruntime.emulator import Emulator
from fakeapi import REPO_ROOT

README = REPO_ROOT / "README.md"
LIMIT = aiohttp.ClientTimeout(total=30)

# Each ```python block of README, by a piece of text only it contains, and the test that runs it.
RUNNERS = {
    "session = session or aiohttp.ClientSession()": "test_docs_handlers.py::test_readme_shared_client_example",
    'yield sse({"token": word}, event="token", id=str(i))': "test_docs_handlers.py::test_readme_streaming_examples",
    'await stream.write(f"{name} {i}\\n")': "test_docs_handlers.py::test_readme_streaming_examples",
    "async def flush_metrics():": "test_docs_handlers.py::test_readme_on_shutdown_example",
    "# app.py — handler": "web/test_readme_examples.py::test_readme_fastapi_example",
    "# wsgi_app.py — handler": "web/test_readme_examples.py::test_readme_flask_example",
    "# ids.py — handler": "test_readme_tracing.py::test_readme_current_example",
    "# traced.py — handler": "test_readme_tracing.py::test_readme_otel_example",
    "# orders.py — handler": "test_readme_tracing.py::test_readme_powertools_example",
    "client.invoke_with_response_stream(": "test_docs_commands.py::test_readme_first_commands",
}


def python_blocks() -> list[str]:
    """README's ```python blocks (indented ones, in a list item, unindented)."""
    found = []
    for m in re.finditer(r"^( *)```python\n(.*?)^\1```", README.read_text(encoding="utf-8"), re.M | re.S):
        indent = m.group(1)
        found.append("".join(line[len(indent):] if line.startswith(indent) else line
                             for line in m.group(2).splitlines(keepends=True)))
    return found


def block_with(needle: str) -> str:
    [block] = [b for b in python_blocks() if needle in b]
    return block


def test_every_python_block_in_the_readme_is_run() -> None:
    """A handler README shows is a handler a test serves: a new block needs a runner here."""
    for block in python_blocks():
        claims = [runner for needle, runner in RUNNERS.items() if needle in block]
        assert len(claims) == 1, f"README block run by {claims}, not by exactly one test:\n{block}"
    for needle, runner in RUNNERS.items():
        block_with(needle)  # exactly one block each
        path, _, name = runner.partition("::")
        assert f"def {name}(" in (REPO_ROOT / "tests" / path).read_text(encoding="utf-8"), runner


async def _serve(tmp_path: Path, name: str, code: str) -> Emulator:
    (tmp_path / name).write_text(code, encoding="utf-8")
    logs: list[str] = []
    emu = Emulator(f"{tmp_path / name}:handler", port=0, log=logs.append)
    emu.logs = logs  # type: ignore[attr-defined]
    return emu


async def test_readme_streaming_examples(tmp_path: Path) -> None:
    # The SSE generator: status, headers and cookie from the HttpResponse, then one event per
    # token, each sent when yielded (0.05 s apart), not in one burst at the end.
    emu = await _serve(tmp_path, "sse_app.py", block_with("yield sse("))
    async with emu, aiohttp.ClientSession(timeout=LIMIT) as session:
        async with session.get(emu.url + "/") as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "text/event-stream"
            assert r.headers.getall("Set-Cookie") == ["session=abc; Secure"]
            arrivals: list[tuple[float, bytes]] = []
            async for chunk in r.content.iter_any():
                arrivals.append((time.monotonic(), chunk))
    body = b"".join(c for _, c in arrivals)
    assert body == b"".join(b'event: token\nid: %d\ndata: {"token":"%s"}\n\n' % (i, w.encode())
                            for i, w in enumerate("tokens arrive one by one".split()))
    assert arrivals[-1][0] - arrivals[0][0] > 0.1, arrivals  # spread over the answer

    # The writer: two tasks writing to one stream, each write one whole line.
    emu = await _serve(tmp_path, "writer_app.py", block_with("await stream.write("))
    async with emu, aiohttp.ClientSession(timeout=LIMIT) as session:
        async with session.get(emu.url + "/") as r:
            assert r.status == 200 and r.headers["Content-Type"] == "text/plain"
            lines = (await r.read()).decode().splitlines()
    assert sorted(lines) == sorted(f"{n} {i}" for n in "ab" for i in range(3))
    for name in "ab":
        assert [line for line in lines if line.startswith(name)] == [f"{name} {i}" for i in range(3)]


async def test_readme_shared_client_example(tmp_path: Path) -> None:
    """The module-level aiohttp session is made once and reused: both invocations reach the
    (loopback) server over one keep-alive connection."""
    peers: list[object] = []

    async def hello(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        return web.Response(text="hi")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        emu = await _serve(tmp_path, "shared.py", block_with("session = session or"))
        async with emu, aiohttp.ClientSession(timeout=LIMIT) as session:
            answers = []
            for _ in range(2):
                async with session.post(f"{emu.url}/2015-03-31/functions/shared/invocations",
                                        data=json.dumps({"url": f"http://127.0.0.1:{port}/"})) as r:
                    answers.append((r.status, r.headers.get("X-Amz-Function-Error"), await r.json()))
    finally:
        await runner.cleanup()
    assert answers == [(200, None, {"status": 200})] * 2
    assert len(peers) == 2 and peers[0] == peers[1], peers


async def test_readme_on_shutdown_example(tmp_path: Path) -> None:
    """The hook runs when the execution environment shuts down (SIGTERM), its await included.
    `exporter` is the block's stand-in for the user's client: defined here, before the block."""
    prelude = ("class _Exporter:\n"
               "    async def flush(self):\n"
               "        print('flushed by the hook', flush=True)\n"
               "exporter = _Exporter()\n")
    handler = "\ndef handler(event, context):\n    return 'ok'\n"
    emu = await _serve(tmp_path, "hooked.py", prelude + block_with("async def flush_metrics():") + handler)
    async with emu, aiohttp.ClientSession(timeout=LIMIT) as session:
        async with session.post(f"{emu.url}/2015-03-31/functions/hooked/invocations", data=b"{}") as r:
            assert (r.status, await r.json()) == (200, "ok")
        assert "flushed by the hook" not in emu.logs  # type: ignore[attr-defined]
    # Leaving the emulator shuts the environment down: SIGTERM, then the hook.
    for _ in range(100):
        if "flushed by the hook" in emu.logs:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.05)
    assert "flushed by the hook" in emu.logs, emu.logs  # type: ignore[attr-defined]
