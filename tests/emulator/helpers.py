"""Shared pieces of the emulator tests: paths, runtime commands, bounded client calls."""

from __future__ import annotations

import asyncio
import json
import os
import signal
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


def serve_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment built from scratch for `python -m aruntime serve` (the checkout importable,
    UTF-8 unless `extra` says otherwise), whatever the host exports."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(home),
            "PYTHONPATH": str(ROOT), **extra}


class Served:
    """A real `aruntime serve` process (see `served`): its address and what it printed."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.url = ""
        self.out: list[str] = []  # stdout lines, as printed (undecodable bytes replaced)
        self.err: list[str] = []
        self._readers = [asyncio.ensure_future(self._read(proc.stdout, self.out)),
                         asyncio.ensure_future(self._read(proc.stderr, self.err))]

    @staticmethod
    async def _read(stream: asyncio.StreamReader | None, into: list[str]) -> None:
        if stream is None:  # stdout not ours to read (see `served`)
            return
        while line := await stream.readline():
            into.append(line.decode(errors="replace").rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.out)

    async def wait_for(self, needle: str, timeout: float = LIMIT, stream: str = "any") -> str:
        """The first line holding `needle` on stdout then stderr (or only the `stream` named:
        "out", "err"); TimeoutError after `timeout`."""

        async def poll() -> str:
            while True:
                lines = {"out": self.out, "err": self.err}.get(stream, self.out + self.err)
                for line in lines:
                    if needle in line:
                        return line
                if self.proc.returncode is not None and all(r.done() for r in self._readers):
                    raise AssertionError(f"serve ended without printing {needle!r}: {self.out} {self.err}")
                await asyncio.sleep(0.02)

        return await asyncio.wait_for(poll(), timeout)

    async def stop(self, sig: int = signal.SIGINT, timeout: float = LIMIT) -> int:
        """Send `sig` (Ctrl-C by default), wait for the exit and the last output; the exit status."""
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()
        await asyncio.wait(self._readers, timeout=5)
        return code


@asynccontextmanager
async def served(handler: str, *args: str, cwd: Path, env: dict[str, str],
                 stdout: int = asyncio.subprocess.PIPE) -> AsyncIterator[Served]:
    """`python -m aruntime serve HANDLER ARGS --port 0` on loopback, its banner's address read;
    stopped with Ctrl-C (bounded) on the way out. `stdout`: a file descriptor to give serve
    instead of a pipe read here."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aruntime", "serve", handler, *args, "--port", "0", cwd=cwd, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=stdout, stderr=asyncio.subprocess.PIPE)
    serve = Served(proc)
    try:
        line = await serve.wait_for("Function URL:")
        serve.url = line.split()[-1].rstrip("/")
        yield serve
    finally:
        await serve.stop()
