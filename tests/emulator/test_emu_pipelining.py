"""The emulator's Runtime API takes pipelined requests as the service's does (docs/SPEC.md §8): the
runtime's probe (`OPTIONS *`, answered 200 as Go's net/http answers it) behind a `/next`, and a
`/response` with the next `/next` behind it in one write, answered in order. A raw socket
plays the runtime."""

from __future__ import annotations

import asyncio
import json
import sys

from .helpers import emulator, invoke
from .test_emu_runtime_api import NEXT, SLEEPER

HEAD = b"Host: runtime\r\n"


async def answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), 10)
    return int(lines[0].split()[1]), headers, body


async def test_pipelined_probe_response_and_next_are_answered_in_order() -> None:
    async with emulator(runtime_command=SLEEPER, timeout=5) as emu:
        first = asyncio.ensure_future(invoke(emu, {"n": 1}))
        while emu.sandbox.runtime_api is None:
            await asyncio.sleep(0.01)
        host, port = emu.sandbox.runtime_api.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET " + NEXT.encode() + b" HTTP/1.1\r\n" + HEAD + b"\r\n"
                     b"OPTIONS * HTTP/1.1\r\n" + HEAD + b"\r\n")
        status, headers, body = await answer(reader)
        assert status == 200 and json.loads(body) == {"n": 1}
        assert (await answer(reader))[:1] == (200,)  # the probe, after the invocation
        rid = headers["lambda-runtime-aws-request-id"].encode()
        second = asyncio.ensure_future(invoke(emu, {"n": 2}))
        writer.write(b"POST /2018-06-01/runtime/invocation/" + rid + b"/response HTTP/1.1\r\n" + HEAD
                     + b"Content-Length: 3\r\n\r\n\"a\""
                     + b"GET " + NEXT.encode() + b" HTTP/1.1\r\n" + HEAD + b"\r\n")
        assert (await answer(reader))[0] == 202
        status, headers, body = await answer(reader)
        assert status == 200 and json.loads(body) == {"n": 2}
        assert (await first)[2] == b'"a"'
        rid = headers["lambda-runtime-aws-request-id"].encode()
        writer.write(b"POST /2018-06-01/runtime/invocation/" + rid + b"/response HTTP/1.1\r\n" + HEAD
                     + b"Content-Length: 3\r\n\r\n\"b\"")
        assert (await answer(reader))[0] == 202
        assert (await second)[2] == b'"b"'
        writer.close()


async def test_aruntime_pipelines_against_the_emulator() -> None:
    # The real runtime (echo example), several invocations: each answered once, in order.
    async with emulator(runtime_command=[sys.executable, "-m", "aruntime"], timeout=10) as emu:
        for n in range(4):
            status, _, body = await invoke(emu, {"n": n})
            assert status == 200 and json.loads(body)["echo"] == {"n": n}
