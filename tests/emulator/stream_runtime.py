"""A test-only Lambda runtime: raw asyncio + h11, streaming responses scripted by the event.

Run by the emulator as `python stream_runtime.py HANDLER` (the handler is ignored). Each
event is a JSON object:
    chunks        list of strings, each sent as one HTTP chunk
    delay         seconds to sleep between chunks (default 0)
    content_type  the response's Content-Type (default application/octet-stream)
    prelude       if present, a Function URL prelude sent first (JSON + 8 NUL bytes)
    split_prelude if true, the prelude's JSON and its 8 NULs go as two chunks (cargo-lambda's way)
    error         if present, {"type": ..., "body": {...}} sent as trailers at the end
    buffered      if true, post a plain buffered response of the joined chunks instead
A Function URL event carries the script as its HTTP body.
For each chunk it prints `SENT <index> <epoch seconds>` so tests can compare timings.
With AWS_LAMBDA_MAX_CONCURRENCY=N it runs N pollers, each on its own connection.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time

import h11

API = os.environ.get("AWS_LAMBDA_RUNTIME_API", "")
PREFIX = "/2018-06-01/runtime/invocation/"
TRAILER = "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body"


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.conn = h11.Connection(h11.CLIENT)

    async def send(self, *events: h11.Event) -> None:
        for event in events:
            self.writer.write(self.conn.send(event) or b"")
        await self.writer.drain()

    async def response(self) -> tuple[h11.Response, bytes]:
        head, body = None, bytearray()
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.reader.read(65536))
            elif isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                self.conn.start_next_cycle()
                assert head is not None
                return head, bytes(body)
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("Runtime API closed the connection")


async def serve_one(client: Client) -> None:
    host = [("Host", API)]
    await client.send(h11.Request(method="GET", target=PREFIX + "next", headers=host), h11.EndOfMessage())
    head, body = await client.response()
    headers = {k.decode(): v.decode() for k, v in head.headers}
    request_id = headers["lambda-runtime-aws-request-id"]
    event = json.loads(body)
    if isinstance(event, dict) and event.get("version") == "2.0":
        # A Function URL event: the script is the HTTP request's body.
        raw = event.get("body") or "{}"
        event = json.loads(base64.b64decode(raw) if event.get("isBase64Encoded") else raw)
    chunks = [c.encode() for c in event.get("chunks", [])]
    target = f"{PREFIX}{request_id}/response"
    if event.get("buffered"):
        data = b"".join(chunks)
        hdrs = host + [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        await client.send(h11.Request(method="POST", target=target, headers=hdrs), h11.Data(data=data), h11.EndOfMessage())
        await client.response()
        return
    hdrs = host + [
        ("Lambda-Runtime-Function-Response-Mode", "streaming"),
        ("Transfer-Encoding", "chunked"),
        ("Trailer", TRAILER),
        ("Content-Type", event.get("content_type", "application/octet-stream")),
    ]
    await client.send(h11.Request(method="POST", target=target, headers=hdrs))
    if "prelude" in event:
        prelude = json.dumps(event["prelude"]).encode()
        if event.get("split_prelude"):
            await client.send(h11.Data(data=prelude))
            await asyncio.sleep(0.05)
            await client.send(h11.Data(data=b"\0" * 8))
        else:
            await client.send(h11.Data(data=prelude + b"\0" * 8))
    for index, chunk in enumerate(chunks):
        if index:
            await asyncio.sleep(float(event.get("delay", 0)))
        await client.send(h11.Data(data=chunk))
        print(f"SENT {index} {time.time():.6f}", flush=True)
    trailers = []
    if error := event.get("error"):
        encoded = base64.b64encode(json.dumps(error["body"]).encode()).decode()
        trailers = [("Lambda-Runtime-Function-Error-Type", error["type"]), ("Lambda-Runtime-Function-Error-Body", encoded)]
    await client.send(h11.EndOfMessage(headers=trailers))
    head, body = await client.response()
    print(f"RESPONSE {head.status_code} {body.decode()}", flush=True)


async def poller() -> None:
    host, port = API.rsplit(":", 1)
    client = Client(*await asyncio.open_connection(host, int(port)))
    while True:
        await serve_one(client)


async def main() -> None:
    count = int(os.environ.get("AWS_LAMBDA_MAX_CONCURRENCY", "1"))
    await asyncio.gather(*(poller() for _ in range(count)))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except ConnectionError as e:
        print(f"stream_runtime: {e}", file=sys.stderr)
        sys.exit(1)
