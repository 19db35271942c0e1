"""Backpressure: a handler yielding 1 GiB as fast as it can keeps the runtime's memory bounded.

The Runtime API here is a minimal sink (the recording fake would keep every byte). It stops
reading for a while mid-stream, so a runtime without backpressure would buffer the producer's
output in memory during the pause.
"""

from __future__ import annotations

import asyncio
import sys
import time

from fakeapi import REPO_ROOT, scratch_env

GIB_IN_MIB = 1024
PAUSE_AT = 256 << 20
PAUSE_S = 1.5


class Sink(asyncio.Protocol):
    def __init__(self, state: dict) -> None:
        self.state = state
        self.buf = b""
        self.in_body = False
        self.received = 0
        self.tail = b""

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if not self.in_body:
            self.buf += data
            while b"\r\n\r\n" in self.buf:
                head, _, rest = self.buf.partition(b"\r\n\r\n")
                self.buf = b""
                if head.startswith(b"GET"):
                    self._next()
                    continue
                self.in_body = True
                self.state["start"] = time.monotonic()
                data = rest
                break
            else:
                return
        self.received += len(data)
        self.tail = (self.tail + data)[-16:]
        if self.received > PAUSE_AT and not self.state.get("paused"):
            self.state["paused"] = True
            self.transport.pause_reading()
            asyncio.get_running_loop().call_later(PAUSE_S, self.transport.resume_reading)
        if self.tail.endswith(b"\r\n0\r\n\r\n"):
            self.state["elapsed"] = time.monotonic() - self.state["start"]
            self.state["bytes"] = self.received
            self.state["hwm_kb"] = _vm_hwm_kb(self.state["pid"])
            self.in_body = False
            self.transport.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 15\r\n\r\n{\"status\":\"OK\"}")

    def _next(self) -> None:
        if self.state.get("served"):
            body = b'{"errorMessage":"done","errorType":"Runtime.Exit"}'
            self.transport.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(body), body))
            return
        self.state["served"] = True
        body = b'{"mib": %d}' % GIB_IN_MIB
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: big\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def _vm_hwm_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


async def test_one_gib_stream_bounded_memory():
    state: dict = {}
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Sink(state), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    env = scratch_env({"AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}"})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aruntime", "tests.handlers.stream_handlers.firehose",
        env=env, cwd=str(REPO_ROOT), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    state["pid"] = proc.pid
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
        server.close()
    assert proc.returncode == 1, err  # 500 on the second /next ends it
    # 1 GiB of payload plus chunk framing (size line and CRLF per 1 MiB chunk) arrived.
    assert state["bytes"] == GIB_IN_MIB * ((1 << 20) + len(b"100000\r\n\r\n")) + len(b"0\r\n\r\n")
    assert state["paused"]
    # Without backpressure the producer would buffer ~GBs during the pause.
    hwm_mb = state["hwm_kb"] / 1024
    print(f"1 GiB streamed in {state['elapsed']:.2f} s; runtime peak RSS {hwm_mb:.1f} MB")
    assert hwm_mb < 96, hwm_mb
