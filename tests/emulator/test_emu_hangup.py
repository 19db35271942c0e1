"""A caller hanging up is one line in `aruntime serve`'s output, never a traceback (issue #11,
polish B), on every surface: Invoke, InvokeWithResponseStream, the Function URL; before the
answer's head, mid-stream, after a buffered answer is ready, and while the request is still
being sent. The function runs on, as on Lambda (docs/SPEC.md §8)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from .helpers import INVOKE, LIMIT, STREAM_INVOKE, serve_env, served

HANDLER = '''\
import sys
import time


def handler(event, context):
    mode = (event.get("queryStringParameters") or {}).get("mode") or event.get("mode")
    if mode == "buffered":
        time.sleep(0.6)
        return {"done": True}
    return stream(mode)


def stream(mode):
    if mode == "late":
        time.sleep(0.6)  # the caller leaves before the answer's head
    for i in range(5):
        yield f"chunk {i};"
        time.sleep(0.1)
    sys.stdout.write(f"FINISHED {mode}\\n")  # one write: pool threads print side by side
'''


async def leave_after(url: str, seconds: float, *, method: str = "GET", body: bytes | None = None) -> None:
    """Ask, then hang up after `seconds` without the answer."""
    async def call() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.request(method, url, data=body) as r:
                await r.read()

    try:
        await asyncio.wait_for(call(), seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"{url} answered within {seconds} s")


async def leave_after_first_bytes(url: str, *, method: str = "GET", body: bytes | None = None) -> None:
    async def call() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.request(method, url, data=body) as r:
                await r.content.readexactly(8)  # then leave, the stream unfinished

    await asyncio.wait_for(call(), LIMIT)


async def leave_mid_upload(url: str, path: str) -> None:
    """Send a request head promising 100000 bytes, 10 of them, then close the connection."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), LIMIT)
    writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 100000\r\n\r\n".encode()
                 + b'{"mode": ')
    await writer.drain()
    writer.close()


async def test_every_surface_logs_one_line_for_a_caller_that_hangs_up(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(HANDLER)
    # Several invocations at once, so the cases run side by side (the runtime serves them all).
    env = serve_env(tmp_path)
    async with served("app.py:handler", "--env", "AWS_LAMBDA_MAX_CONCURRENCY=8", cwd=tmp_path, env=env) as serve:
        url = serve.url
        await asyncio.gather(
            leave_after(url + INVOKE, 0.25, method="POST", body=b'{"mode": "buffered"}'),
            leave_after_first_bytes(url + STREAM_INVOKE, method="POST", body=b'{"mode": "stream"}'),
            leave_after_first_bytes(url + "/?mode=stream"),
            leave_after(url + "/?mode=late", 0.25),
            leave_after(url + "/?mode=buffered", 0.25),
            leave_mid_upload(url, INVOKE),
            leave_mid_upload(url, STREAM_INVOKE),
            leave_mid_upload(url, "/upload"),
        )

        async def settled() -> None:
            while sum(line.startswith("REPORT RequestId: ") for line in serve.out) < 5:
                await asyncio.sleep(0.02)

        try:
            await asyncio.wait_for(settled(), LIMIT)
        except asyncio.TimeoutError:
            raise AssertionError("\n".join(serve.out + serve.err)) from None
        # Every function ran to its end although its caller left.
        for mode in ("stream", "stream", "late"):
            await serve.wait_for(f"FINISHED {mode}")
        assert sum(line == "FINISHED stream" for line in serve.out) == 2, "\n".join(serve.out + serve.err)
        await asyncio.sleep(0.3)  # any late line about these calls would be printed by now
    said = [line for line in serve.out if "hung up" in line]
    runs_on = "; the function runs on until it returns or times out, as on Lambda"
    finished = "; the function had finished; its answer was not delivered"
    early = " hung up while sending its request; nothing was invoked"
    expected = [
        ("Invoke", finished), ("InvokeWithResponseStream", runs_on),
        ("the Function URL (GET /)", runs_on), ("the Function URL (GET /)", runs_on),
        ("the Function URL (GET /)", finished)]
    gone = re.compile(r"aruntime serve: the caller of (.+) hung up before the end of the answer "
                      r"\(RequestId: [0-9a-f-]{36}\)(; .*)")
    seen = sorted(m.groups() for line in said if (m := gone.fullmatch(line)))
    assert seen == sorted(expected), said
    assert sorted(line for line in said if early in line) == sorted(
        f"aruntime serve: the caller of {surface}{early}"
        for surface in ("Invoke", "InvokeWithResponseStream", "the Function URL (POST /upload)"))
    assert len(said) == 8, said
    everything = serve.out + serve.err
    assert not [line for line in everything if "Traceback" in line or "Error handling request" in line
                or "ConnectionResetError" in line], "\n".join(everything)
    assert serve.proc.returncode == 0


async def test_curl_leaving_a_stream_invoke_is_one_line(tmp_path: Path) -> None:
    """The report's own command: `curl -sN -m 0.5 -XPOST …/response-streaming-invocations -d '{}'`."""
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed (aiohttp covers the same case above)")
    (tmp_path / "app.py").write_text(HANDLER)
    async with served("app.py:handler", cwd=tmp_path, env=serve_env(tmp_path)) as serve:
        proc = await asyncio.create_subprocess_exec(
            curl, "-sN", "-m", "0.5", "-XPOST", serve.url + STREAM_INVOKE, "-d", json.dumps({"mode": "stream"}),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(proc.communicate(), LIMIT)
        assert proc.returncode == 28 and b"chunk 0;" in out  # curl's timeout, mid-stream
        await serve.wait_for("REPORT RequestId: ")
        line = await serve.wait_for("hung up")
    assert line.startswith("aruntime serve: the caller of InvokeWithResponseStream hung up before the end")
    assert not [x for x in serve.out + serve.err if "Traceback" in x or "Error handling request" in x]
