"""The fake Runtime API itself, driven by a raw socket client: if it lies, every other test lies."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import h11
import pytest

from fakeapi import DEFAULT_ARN, FakeRuntimeAPI, run_runtime

NEXT = "/2018-06-01/runtime/invocation/next"
T = 5.0  # seconds any single wait in this file may take


class RawClient:
    """A socket we write exact bytes to; responses are parsed with an h11 client."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.h11 = h11.Connection(h11.CLIENT)

    @classmethod
    async def open(cls, api: FakeRuntimeAPI) -> RawClient:
        host, port = api.address.split(":")
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), T)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, timeout: float = T) -> tuple[int, dict[str, str], bytes]:
        """The next final response (informational ones are returned too, as (100, {}, b''))."""

        async def read() -> tuple[int, dict[str, str], bytes]:
            status, headers, body = 0, {}, b""
            while True:
                event = self.h11.next_event()
                if event is h11.NEED_DATA:
                    self.h11.receive_data(await self.reader.read(65536))
                elif isinstance(event, h11.InformationalResponse):
                    return event.status_code, {}, b""
                elif isinstance(event, h11.Response):
                    status = event.status_code
                    headers = {k.decode().lower(): v.decode() for k, v in event.headers}
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    self.h11.start_next_cycle()
                    return status, headers, body
                elif isinstance(event, h11.ConnectionClosed):
                    raise ConnectionError("closed")

        return await asyncio.wait_for(read(), timeout)

    async def request(self, data: bytes) -> tuple[int, dict[str, str], bytes]:
        # Let h11 know a request went out so it accepts the response; the bytes are our own.
        await self.send(data)
        head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        method, target, _ = head[0].split(b" ")
        self.track(method.decode(), target.decode())
        return await self.response()

    def track(self, method: str, target: str) -> None:
        """Tell the parsing h11 client a request went out (the bytes on the wire are our own)."""
        self.h11.send(h11.Request(method=method, target=target, headers=[("Host", "x")]))
        self.h11.send(h11.EndOfMessage())

    async def closed(self, timeout: float = T) -> bool:
        """True if the server closed the connection (EOF) within the timeout."""
        data = await asyncio.wait_for(self.reader.read(65536), timeout)
        return data == b""

    def close(self) -> None:
        self.writer.close()


def get(target: str = NEXT) -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def post(target: str, body: bytes, extra: str = "") -> bytes:
    return f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


def rpath(rid: str, kind: str = "response") -> str:
    return f"/2018-06-01/runtime/invocation/{rid}/{kind}"


async def test_keep_alive_next_and_response(fake_api: FakeRuntimeAPI) -> None:
    rid = fake_api.push({"a": 1}, request_id="req-1")
    assert rid == "req-1"
    c = await RawClient.open(fake_api)
    status, headers, body = await c.request(get())
    assert status == 200
    assert json.loads(body) == {"a": 1}
    assert headers["lambda-runtime-aws-request-id"] == "req-1"
    assert headers["lambda-runtime-invoked-function-arn"] == DEFAULT_ARN
    assert headers["content-type"] == "application/json"
    deadline = int(headers["lambda-runtime-deadline-ms"])
    assert 55_000 < deadline - time.time() * 1000 <= 60_000
    assert headers["lambda-runtime-trace-id"].startswith("Root=1-") and ";Sampled=1" in headers["lambda-runtime-trace-id"]

    request = post(rpath("req-1"), b'{"ok": true}', "Content-Type: application/json\r\n")
    status, _, body = await c.request(request)
    assert (status, json.loads(body)) == (202, {"status": "OK"})

    fake_api.push("second", request_id="req-2", content_type="text/plain")
    status, headers, body = await c.request(get())
    assert (status, body, headers["content-type"]) == (200, b"second", "text/plain")
    c.close()

    exs = await fake_api.wait(3, timeout=T)
    assert [(e.conn, e.method, e.target, e.status) for e in exs] == [
        (0, "GET", NEXT, 200),
        (0, "POST", rpath("req-1"), 202),
        (0, "GET", NEXT, 200),
    ]
    assert fake_api.connections == 1
    assert exs[1].raw == request
    assert exs[1].body == b'{"ok": true}' and exs[1].json() == {"ok": True}
    assert exs[1].header("CONTENT-TYPE") == "application/json" and exs[1].header("x-missing") is None
    assert exs[1].headers[0] == ("host", "x")
    assert exs[0].done <= exs[1].done <= exs[2].done


async def test_next_long_polls_until_push(fake_api: FakeRuntimeAPI) -> None:
    c = await RawClient.open(fake_api)
    await c.send(get())
    c.track("GET", NEXT)
    with pytest.raises(asyncio.TimeoutError):
        await c.response(timeout=0.3)
    fake_api.push(b"\x00raw", request_id="late")
    status, headers, body = await c.response()
    assert (status, body, headers["lambda-runtime-aws-request-id"]) == (200, b"\x00raw", "late")
    c.close()


async def test_chunked_body_trailers_byte_exact(fake_api: FakeRuntimeAPI) -> None:
    fake_api.push(request_id="s1")
    c = await RawClient.open(fake_api)
    await c.request(get())
    head = (
        f"POST {rpath('s1')} HTTP/1.1\r\nHost: x\r\n"
        "Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n"
        "Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n\r\n"
    ).encode()
    # The second wire chunk arrives in two writes: it must still be recorded as one chunk.
    pieces = [head + b"5\r\nhello\r\n", b"6\r\n wor", b"ld\r\n", b"1\r\n!\r\n"]
    end = b"0\r\nLambda-Runtime-Function-Error-Type: Function.X\r\nLambda-Runtime-Function-Error-Body: e30=\r\n\r\n"
    c.track("POST", rpath("s1"))
    sent_at = []
    for piece in pieces:
        await c.send(piece)
        sent_at.append(time.monotonic())
        await asyncio.sleep(0.1)
    # No answer before the terminating chunk: a runtime must be able to keep streaming.
    with pytest.raises(asyncio.TimeoutError):
        await c.response(timeout=0.2)
    await c.send(end)
    status, _, body = await c.response()
    assert (status, body) == (202, b'{"status":"OK"}')

    ex = await fake_api.wait_for(lambda e: e.method == "POST", timeout=T)
    assert ex.raw == b"".join(pieces) + end
    assert ex.body == b"hello world!"
    assert [data for _, data in ex.chunks] == [b"hello", b" world", b"!"]
    # Arrival times follow the writes: chunk 2 completes with its second write.
    assert ex.chunks[0][0] >= sent_at[0] - 0.05 and ex.chunks[1][0] >= sent_at[2] - 0.05
    assert ex.chunks[1][0] - ex.chunks[0][0] >= 0.15
    assert ex.trailers == [
        ("lambda-runtime-function-error-type", "Function.X"),
        ("lambda-runtime-function-error-body", "e30="),
    ]
    assert ex.trailer("Lambda-Runtime-Function-Error-Type") == "Function.X"
    assert ex.done >= ex.chunks[-1][0]
    c.close()


async def test_expect_100_continue(fake_api: FakeRuntimeAPI) -> None:
    fake_api.push(request_id="big")
    c = await RawClient.open(fake_api)
    body = b"x" * 2048
    head = f"POST {rpath('big')} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
    await c.send(head.encode())
    c.track("POST", rpath("big"))
    assert (await c.response())[0] == 100
    await c.send(body)
    assert (await c.response())[0] == 202
    ex = (await fake_api.wait(1, timeout=T))[0]
    assert ex.body == body and ex.raw == head.encode() + body
    c.close()


async def test_answer_scripting(fake_api: FakeRuntimeAPI) -> None:
    for rid in ("a", "b", "c"):
        fake_api.push(request_id=rid)
    fake_api.answer("/response", 413, times=2)
    fake_api.answer("/error", 410, b'{"custom":1}', close=True)
    c = await RawClient.open(fake_api)
    for rid in ("a", "b", "c"):
        await c.request(get())
    status, _, body = await c.request(post(rpath("a"), b"{}"))
    assert status == 413
    assert json.loads(body) == {"errorMessage": json.loads(body)["errorMessage"], "errorType": "RequestEntityTooLarge"}
    assert (await c.request(post(rpath("b"), b"{}")))[0] == 413
    assert (await c.request(post(rpath("c"), b"{}")))[0] == 202  # times=2 used up
    status, _, body = await c.request(post(rpath("c", "error"), b"{}"))
    assert (status, body) == (410, b'{"custom":1}')
    assert await c.closed()
    c.close()
    statuses = [e.status for e in await fake_api.wait(7, timeout=T)]
    assert statuses == [200, 200, 200, 413, 413, 202, 410]


async def test_status_zero_closes_without_answer(fake_api: FakeRuntimeAPI) -> None:
    fake_api.push(request_id="s")
    fake_api.answer("/response", 0, times=2)
    # Streamed: dropped as soon as the head is in, though the body never finished.
    c = await RawClient.open(fake_api)
    await c.request(get())
    head = f"POST {rpath('s')} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    await c.send(head + b"3\r\nabc\r\n")
    assert await c.closed()
    c.close()
    # Buffered: read fully, then closed with no status line at all.
    c2 = await RawClient.open(fake_api)
    await c2.send(post(rpath("s"), b"{}"))
    assert await c2.closed()
    c2.close()
    exs = await fake_api.wait(3, timeout=T)
    assert [(e.conn, e.status) for e in exs] == [(0, 200), (0, 0), (1, 0)]
    assert exs[1].raw.startswith(head) and exs[1].header("transfer-encoding") == "chunked"
    assert exs[2].body == b"{}"
    assert fake_api.connections == 2


async def test_finish_drains_queue_then_500(fake_api: FakeRuntimeAPI) -> None:
    fake_api.push(request_id="last")
    fake_api.finish()
    c = await RawClient.open(fake_api)
    assert (await c.request(get()))[0] == 200
    status, _, body = await c.request(get())
    assert status == 500 and json.loads(body)["errorType"] == "Runtime.Exit"
    c.close()


async def test_finish_wakes_a_waiting_poller(fake_api: FakeRuntimeAPI) -> None:
    c = await RawClient.open(fake_api)
    await c.send(get())
    c.track("GET", NEXT)
    await asyncio.sleep(0.1)
    fake_api.finish()
    assert (await c.response())[0] == 500
    c.close()


async def test_other_routes(fake_api: FakeRuntimeAPI) -> None:
    c = await RawClient.open(fake_api)
    status, _, body = await c.request(post(rpath("nobody"), b"{}"))
    assert status == 400 and json.loads(body)["errorType"] == "InvalidRequestID"
    assert (await c.request(post("/2018-06-01/runtime/init/error", b"{}")))[0] == 202
    assert (await c.request(get("/2018-06-01/runtime/restore/next")))[0] == 200
    assert (await c.request(post("/2018-06-01/runtime/restore/error", b"{}")))[0] == 202
    assert (await c.request(get("/elsewhere")))[0] == 404
    c.close()


async def test_push_headers(fake_api: FakeRuntimeAPI) -> None:
    fake_api.push(
        [1, 2],
        request_id="h",
        headers={"Lambda-Runtime-Trace-Id": None, "lambda-runtime-aws-tenant-id": "t1"},
        content_type=None,
        deadline_ms=123,
    )
    c = await RawClient.open(fake_api)
    status, headers, body = await c.request(get())
    assert (status, json.loads(body)) == (200, [1, 2])
    assert "lambda-runtime-trace-id" not in headers and "content-type" not in headers
    assert headers["lambda-runtime-aws-tenant-id"] == "t1"
    assert headers["lambda-runtime-deadline-ms"] == "123"
    c.close()


async def test_client_hangup_during_long_poll_is_not_an_exchange(fake_api: FakeRuntimeAPI) -> None:
    c = await RawClient.open(fake_api)
    await c.send(get())
    await asyncio.sleep(0.1)
    c.close()
    await asyncio.sleep(0.1)
    fake_api.push(request_id="kept")
    # The invocation stays for the next poller.
    c2 = await RawClient.open(fake_api)
    status, headers, _ = await c2.request(get())
    assert (status, headers["lambda-runtime-aws-request-id"]) == (200, "kept")
    c2.close()
    assert [e.conn for e in await fake_api.wait(1, timeout=T)] == [1]


async def test_wait_polling_counts_waiting_next_requests(fake_api: FakeRuntimeAPI) -> None:
    with pytest.raises(TimeoutError, match="wanted 1 waiting /next, got 0"):
        await fake_api.wait_polling(timeout=0.1)
    first, second = await RawClient.open(fake_api), await RawClient.open(fake_api)
    for client in (first, second):
        await client.send(f"GET {NEXT} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        client.track("GET", NEXT)
    await fake_api.wait_polling(2, timeout=T)
    assert fake_api.polling == 2 and fake_api.exchanges == []
    second.close()  # a hang-up ends its long-poll
    while fake_api.polling != 1:
        await asyncio.wait_for(fake_api._next_change(), T)
    fake_api.push({"n": 1}, request_id="p-1")
    status, headers, _ = await first.response()
    assert (status, headers["lambda-runtime-aws-request-id"]) == (200, "p-1")
    assert fake_api.polling == 0
    first.close()


async def test_wait_times_out() -> None:
    async with FakeRuntimeAPI() as api:
        with pytest.raises(TimeoutError):
            await api.wait(1, timeout=0.1)
        with pytest.raises(TimeoutError):
            await api.wait_for(lambda e: True, timeout=0.1)


CLIENT = """
import http.client, json, os
c = http.client.HTTPConnection(os.environ["AWS_LAMBDA_RUNTIME_API"])
c.request("GET", "/2018-06-01/runtime/invocation/next")
r = c.getresponse(); r.read()
rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
body = json.dumps({"region": os.environ.get("AWS_REGION"), "extra": os.environ.get("EXTRA"),
                   "handlers": __import__("tests.handlers").handlers.__name__, "pid": os.getpid(),
                   "cwd": os.getcwd()})
c.request("POST", f"/2018-06-01/runtime/invocation/{rid}/response", body)
r = c.getresponse(); r.read()
print("posted", r.status)
raise SystemExit(3)
"""


async def test_run_runtime_env_and_output(fake_api: FakeRuntimeAPI, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("AWS_REGION", "leaked")
    fake_api.push(request_id="p")
    proc = await run_runtime([sys.executable, "-c", CLIENT], fake_api, env={"EXTRA": "yes"}, cwd=str(tmp_path))
    assert await proc.wait(T * 2) == 3
    assert proc.returncode == 3
    assert proc.stdout == b"posted 202\n"
    ex = await fake_api.wait_for(lambda e: e.method == "POST", timeout=T)
    # The process that answered is the one RuntimeProcess names, started in the cwd asked for.
    assert ex.json() == {"region": None, "extra": "yes", "handlers": "tests.handlers", "pid": proc.pid,
                         "cwd": str(tmp_path.resolve())}


async def test_run_runtime_wait_timeout_kills(fake_api: FakeRuntimeAPI) -> None:
    proc = await run_runtime([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(30)"], fake_api)
    with pytest.raises(TimeoutError, match="did not exit"):
        await proc.wait(1.0)
    assert proc.returncode is not None and proc.returncode < 0
    assert proc.stdout == b"up\n"
