"""Bounds, not runtimes: the cheapest asyncio loops, to tell asyncio's cost from h11's.

`python lean_loop.py module.func` runs one long-lived coroutine over an
`asyncio.Protocol`: pre-built `GET /next`, one write per request, `h11` for all framing.
With LEAN_RAW=1 it parses by hand instead of with h11 (Content-Length answers only), which
leaves the cost of asyncio itself. Run them with
`python -m benchmarks --runtimes floor,awslambdaric,aruntime,asyncio-h11,asyncio-raw`.
No context object, no logging, no error handling: not for production.
"""

import asyncio
import importlib
import os
import sys

import h11
import orjson

RAW = os.environ.get("LEAN_RAW") == "1"
_NEXT = "/2018-06-01/runtime/invocation/next"


class _Proto(asyncio.Protocol):
    def __init__(self) -> None:
        self.h11 = h11.Connection(h11.CLIENT)
        self.buf = bytearray()
        self.waiter: "asyncio.Future[None] | None" = None

    def connection_made(self, transport):  # type: ignore[no-untyped-def]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if RAW:
            self.buf += data
        else:
            self.h11.receive_data(data)
        waiter, self.waiter = self.waiter, None
        if waiter is not None:
            waiter.set_result(None)


async def _serve(handler, host: str, port: int) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    _, p = await loop.create_connection(_Proto, host, port)
    conn = p.h11
    eom = h11.EndOfMessage()
    get = h11.Request(method="GET", target=_NEXT, headers=[("Host", host)])
    raw_get = b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (_NEXT.encode(), host.encode())

    async def wait() -> None:
        fut = p.waiter = loop.create_future()
        await fut

    async def read():  # type: ignore[no-untyped-def]
        if RAW:
            while True:
                end = p.buf.find(b"\r\n\r\n")
                if end >= 0:
                    lines = bytes(p.buf[:end]).split(b"\r\n")[1:]
                    headers = {k.lower(): v for k, _, v in (ln.partition(b": ") for ln in lines)}
                    size = int(headers[b"content-length"])
                    while len(p.buf) < end + 4 + size:
                        await wait()
                    body = bytes(p.buf[end + 4 : end + 4 + size])
                    del p.buf[: end + 4 + size]
                    return headers, body
                await wait()
        headers, body = {}, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                await wait()
                continue
            kind = type(event)
            if kind is h11.Response:
                headers = dict(event.headers)
            elif kind is h11.Data:
                body += event.data
            elif kind is h11.EndOfMessage:
                conn.start_next_cycle()
                return headers, body

    while True:
        p.transport.write(raw_get if RAW else conn.send(get) + conn.send(eom))
        headers, body = await read()
        out = orjson.dumps(handler(orjson.loads(body), None))
        target = b"/2018-06-01/runtime/invocation/%s/response" % headers[b"lambda-runtime-aws-request-id"]
        if RAW:
            p.transport.write(
                b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % (target, host.encode(), len(out)) + out
            )
        else:
            req = h11.Request(method="POST", target=target, headers=[
                ("Host", host), ("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
            p.transport.write(conn.send(req) + conn.send(h11.Data(data=out)) + conn.send(eom))
        await read()


def main() -> None:
    host, _, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rpartition(":")
    module, _, func = sys.argv[1].rpartition(".")
    sys.path.insert(0, os.environ.get("LAMBDA_TASK_ROOT", os.getcwd()))
    handler = getattr(importlib.import_module(module), func)
    asyncio.run(_serve(handler, host, int(port)))


if __name__ == "__main__":
    main()
