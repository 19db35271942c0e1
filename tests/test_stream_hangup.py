"""Streams whose connection goes away, and streams the network slows down (docs/SPEC.md §3), for every
handler style, one invocation at a time and several at once.

A small Runtime API here (h11 on a raw asyncio server, loopback) hangs up on a streamed
`/response` after a given number of chunks — closing (FIN) or resetting (RST) — or stops
reading it for a while. The recording fake cannot: it keeps every byte and closes only at the
head. `.ci/run` runs this file on both wire engines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import h11
import pytest

from fakeapi import REPO_ROOT, scratch_env

H = "tests.handlers.hangup_handlers."
GAP = 0.1  # seconds between a slow handler's items
ITEMS = 1000  # a slow handler that is never stopped runs for ITEMS * GAP = 100 s
HANGUP_MESSAGE = "the Runtime API closed the response stream of {}; the handler was cancelled"


@dataclass
class Plan:
    """What the Runtime API does with one invocation's streamed response."""

    hangup_after: int | None = None  # hang up once this many chunks arrived (0: at the head)
    reset: bool = False  # hang up with a RST (abort) rather than a FIN (close)
    pause_s: float = 0.0  # stop reading the streamed body for this long after its head
    close_after_next: bool = False  # close the connection right after answering /next


@dataclass
class Seen:
    """What happened to one invocation (wall-clock times, comparable with the handler's)."""

    hangup_at: float | None = None
    paused_at: float | None = None
    chunks: int = 0
    bytes: int = 0
    body: bytearray = field(default_factory=bytearray)
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    done_at: float | None = None
    path: str = ""


class StreamingAPI:
    """A Runtime API that follows a `Plan` per invocation and notes when things happened."""

    def __init__(self, rcvbuf: int | None = None) -> None:
        self.rcvbuf = rcvbuf
        self.queue: asyncio.Queue[tuple[str, bytes, Plan]] = asyncio.Queue()
        self.plans: dict[str, Plan] = {}
        self.seen: dict[str, Seen] = {}
        self.nexts: list[float] = []  # when each GET /next arrived
        self._changed = asyncio.Event()
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.address = ""

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.rcvbuf:  # accepted sockets inherit it; a fixed size also turns off autotuning
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        sock.bind(("127.0.0.1", 0))
        self._server = await asyncio.start_server(self._serve, sock=sock)
        self.address = "127.0.0.1:%d" % sock.getsockname()[1]

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)

    def push(self, event: dict[str, Any], plan: Plan) -> str:
        rid = str(uuid.uuid4())
        self.seen[rid] = Seen()
        self.queue.put_nowait((rid, json.dumps(event).encode(), plan))
        return rid

    def _changed_now(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def until(self, what: Callable[[], Any], timeout: float = 10) -> Any:
        async def wait() -> Any:
            while not (value := what()):
                await self._changed.wait()
            return value

        return await asyncio.wait_for(wait(), timeout)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = h11.Connection(h11.SERVER)

        async def next_event() -> Any:
            while True:
                event = conn.next_event()
                if event is not h11.NEED_DATA:
                    return event
                conn.receive_data(await reader.read(65536))

        try:
            while True:
                request = await next_event()
                if isinstance(request, h11.ConnectionClosed):
                    return
                target = request.target.decode()
                if target.endswith("/invocation/next"):
                    self.nexts.append(time.time())
                    self._changed_now()
                    await next_event()  # EndOfMessage
                    rid, body, plan = await self.queue.get()
                    self.plans[rid] = plan
                    writer.write(conn.send(h11.Response(status_code=200, headers=[
                        ("Lambda-Runtime-Aws-Request-Id", rid),
                        ("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60_000)),
                        ("Content-Type", "application/json"),
                        ("Content-Length", str(len(body)))])))
                    writer.write(conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
                    await writer.drain()
                    if plan.close_after_next:
                        writer.close()
                        return
                else:
                    rid = target.split("/")[-2]
                    if not await self._body(rid, request, next_event, writer):
                        return
                    writer.write(conn.send(h11.Response(status_code=202, headers=[
                        ("Content-Length", "15")])))
                    writer.write(conn.send(h11.Data(data=b'{"status":"OK"}')) +
                                 conn.send(h11.EndOfMessage()))
                    await writer.drain()
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _body(self, rid: str, request: Any, next_event: Callable[[], Any],
                    writer: asyncio.StreamWriter) -> bool:
        """Read a request's body as its plan says; False once the connection is hung up."""
        plan = self.plans.get(rid, Plan())
        seen = self.seen.setdefault(rid, Seen())
        seen.path = request.target.decode().rsplit("/", 1)[-1]
        streamed = dict(request.headers).get(b"transfer-encoding") == b"chunked"

        def hang_up() -> bool:
            seen.hangup_at = time.time()
            if plan.reset:
                writer.transport.abort()
            else:
                writer.close()
            self._changed_now()
            return False

        if streamed and plan.hangup_after == 0:
            return hang_up()
        if streamed and plan.pause_s:
            seen.paused_at = time.time()
            self._changed_now()
            await asyncio.sleep(plan.pause_s)
        while True:
            event = await next_event()
            if isinstance(event, h11.Data):
                seen.bytes += len(event.data)
                if len(seen.body) < 4096:
                    seen.body += event.data
                if event.chunk_start:
                    seen.chunks += 1
                    if streamed and plan.hangup_after == seen.chunks:
                        return hang_up()
            elif isinstance(event, h11.EndOfMessage):
                seen.trailers = list(event.headers)
                seen.done_at = time.time()
                self._changed_now()
                return True
            else:
                raise ConnectionError(f"unexpected {event!r}")


def runtime_env(address: str, extra: dict[str, str]) -> dict[str, str]:
    """Built from scratch (fakeapi.scratch_env): the host's variables must not change the run."""
    return scratch_env({"AWS_LAMBDA_RUNTIME_API": address, **extra})


class Runtime:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.output = asyncio.ensure_future(proc.communicate())

    async def stop(self) -> str:
        """Kill the runtime (it would serve forever); everything it printed, stdout then stderr."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        out, err = await asyncio.wait_for(self.output, 10)
        return out.decode("utf-8", "replace") + err.decode("utf-8", "replace")


async def start_runtime(handler: str, api: StreamingAPI, concurrency: int) -> Runtime:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aruntime", H + handler, cwd=str(REPO_ROOT),
        env=runtime_env(api.address, {"AWS_LAMBDA_MAX_CONCURRENCY": str(concurrency)}),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    return Runtime(proc)


async def marker_json(path: Path, key: str, timeout: float = 10) -> dict[str, Any]:
    """The handler's marker once `key` is set in it (the handler writes it; polled, bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError, ValueError):
            data = json.loads(path.read_text())
            if data.get(key):
                return data
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path.name}: no {key} after {timeout} s")


# -- hang-ups --------------------------------------------------------------------------------

HANGUPS = {
    "fin_after_2_chunks": Plan(hangup_after=2),
    "rst_after_2_chunks": Plan(hangup_after=2, reset=True),
    "fin_at_the_head": Plan(hangup_after=0),
}
STYLES = ["sync_gen", "async_gen_blocking", "async_gen", "writer_blocking", "writer"]


async def _hangups(style: str, concurrency: int, tmp: Path) -> None:
    api = StreamingAPI()
    await api.start()
    runtime = await start_runtime(style, api, concurrency)
    hung_up = []
    try:
        for name, plan in HANGUPS.items():
            marker = tmp / f"{style}-{concurrency}-{name}.json"
            rid = api.push({"n": ITEMS, "gap": GAP, "marker": str(marker)}, plan)
            seen = api.seen[rid]
            await api.until(lambda: seen.hangup_at)
            # The handler is stopped at its next write: its finally runs, then the runtime asks
            # for the next invocation (a new connection: the old one is gone).
            ended = await marker_json(marker, "finally_at")
            next_at = await api.until(lambda: [t for t in api.nexts if t > seen.hangup_at])
            where = f"{style} N={concurrency} {name}"
            assert ended["finally_at"] - seen.hangup_at < 1.5, where
            assert next_at[0] - seen.hangup_at < 1.5, where
            assert ended["produced"] <= seen.chunks + 2, (where, ended, seen.chunks)
            assert seen.done_at is None, where
            hung_up.append(rid)
        # The connection closed after /next, before the first byte (the handler takes 0.2 s to
        # start): the stream opens on a new connection. (A close racing the stream's head cannot
        # be told from a hang-up: a streamed body is not kept to be sent again.)
        marker = tmp / f"{style}-{concurrency}-reconnect.json"
        reconnected = api.push({"n": 3, "gap": 0.01, "delay": 0.2, "marker": str(marker)},
                               Plan(close_after_next=True))
        await api.until(lambda: api.seen[reconnected].done_at)
        # And a plain stream is served in full afterwards.
        last = api.push({"n": 3, "gap": 0.01, "marker": str(tmp / "last.json")}, Plan())
        await api.until(lambda: api.seen[last].done_at)
    finally:
        output = await runtime.stop()
        await api.close()
    for rid in (reconnected, last):
        assert (api.seen[rid].path, bytes(api.seen[rid].body), api.seen[rid].trailers) == (
            "response", b"0;1;2;", []), output
    # One line per hang-up, nothing else about it: no asyncio complaint per failed write.
    for rid in hung_up:
        assert output.count(HANGUP_MESSAGE.format(rid)) == 1, output
    assert "socket.send() raised exception" not in output
    assert "Traceback" not in output and "Task exception" not in output, output


@pytest.mark.parametrize("style", STYLES)
async def test_hangup_stops_the_handler_at_its_next_write(style: str, tmp_path: Path) -> None:
    # One invocation at a time, and two at once (sync generators then step in threads).
    await asyncio.gather(_hangups(style, 1, tmp_path), _hangups(style, 2, tmp_path))


# -- backpressure ----------------------------------------------------------------------------

MIB_TOTAL = 64
PAUSE_S = 1.0
# While the API reads nothing, the producer may only fill the socket buffers (the runtime's
# send buffer is at most 4 MiB here, the API's receive buffer is pinned to 64 KiB) and the
# transport's: a few 1 MiB chunks, far from all 64.
MAX_AHEAD = 16


async def _backpressure(style: str, concurrency: int, tmp: Path) -> None:
    api = StreamingAPI(rcvbuf=65536)
    await api.start()
    runtime = await start_runtime(style, api, concurrency)
    marker = tmp / f"bp-{style}-{concurrency}.json"
    try:
        rid = api.push({"mib": MIB_TOTAL, "marker": str(marker)}, Plan(pause_s=PAUSE_S))
        seen = api.seen[rid]
        await api.until(lambda: seen.paused_at)
        await asyncio.sleep(PAUSE_S * 0.8)  # the API reads nothing during this time
        ahead = json.loads(marker.read_text())["produced"]
        await api.until(lambda: seen.done_at, timeout=30)
        done = await marker_json(marker, "finally_at")
    finally:
        output = await runtime.stop()
        await api.close()
    where = f"{style} N={concurrency}"
    print(f"{where}: {ahead} MiB produced while the API read nothing")
    assert ahead <= MAX_AHEAD, (where, ahead)
    assert done["produced"] == MIB_TOTAL, where
    assert seen.bytes == MIB_TOTAL << 20 and seen.chunks == MIB_TOTAL, (where, output)
    assert seen.trailers == [], where


@pytest.mark.parametrize("style", ["sync_gen", "async_gen", "writer"])
async def test_backpressure_holds_the_producer(style: str, tmp_path: Path) -> None:
    await asyncio.gather(_backpressure(style, 1, tmp_path), _backpressure(style, 2, tmp_path))
