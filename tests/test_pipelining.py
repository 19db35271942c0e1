"""`GET /next` pipelined behind buffered posts (aruntime/connection.py), against servers that
pipeline and servers that do not, on both wire engines.

What must hold: against a server that pipelines, each `/response` and `/error` leaves with the
next `/next` in one write (the peer sees them in one read) on one connection; whatever the
server does instead (closes after answers, drops or refuses pipelined requests, answers the post
4xx, the process gets SIGTERM while the `/next` waits, SnapStart restores), every invocation is
answered exactly once and none is lost.
"""

from __future__ import annotations

import signal
import sys
import time

import pytest

from fakeapi import run_runtime
from pipepeer import ACCEPTED, PipePeer

T = 15.0
H = "tests.handlers.peers_handlers."
NEXT = "/2018-06-01/runtime/invocation/next"
ENGINES = ["h11", "httptools"]


async def serve(peer: PipePeer, engine: str, invocations: list[tuple[str, bytes]],
                handler: str = H + "echo", env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run the runtime over `invocations` (request id, event) and let it exit at the final 500;
    (exit status, stderr)."""
    for rid, body in invocations:
        peer.push(rid, body)
    peer.finish()
    proc = await run_runtime([sys.executable, "-m", "aruntime", handler],
                             _Address(peer),  # type: ignore[arg-type]
                             env={"ARUNTIME_HTTP": engine, **(env or {})})
    code = await proc.wait(T)
    return code, proc.stderr.decode() + proc.stdout.decode()


class _Address:
    """What run_runtime needs of a Runtime API: its address (and a list to register with)."""

    def __init__(self, peer: PipePeer) -> None:
        self.address = peer.address
        self.processes: list[object] = []


def posts(peer: PipePeer) -> list[str]:
    return [r.target.rsplit("/", 2)[-2] + "/" + r.target.rsplit("/", 1)[-1]
            for r in peer.requests if r.method == "POST"]


@pytest.mark.parametrize("engine", ENGINES)
async def test_next_leaves_with_each_post_in_one_write(engine: str) -> None:
    async with PipePeer() as peer:
        code, out = await serve(peer, engine, [("a", b'{"n":1}'), ("b", b'{"raise":"boom"}'),
                                               ("c", b'{"n":3}')])
    assert code == 1, out  # the final /next answered 500
    assert posts(peer) == ["a/response", "b/error", "c/response"]
    methods = [(r.method, r.target.rsplit("/", 1)[-1]) for r in peer.requests]
    assert methods == [("GET", "next"), ("OPTIONS", "*"), ("POST", "response"), ("GET", "next"),
                       ("POST", "error"), ("GET", "next"), ("POST", "response"), ("GET", "next")]
    assert peer.connections == 1
    r = peer.requests
    assert r[1].first_read == r[0].last_read  # the probe rode behind the first /next
    for post, nxt in ((r[2], r[3]), (r[4], r[5]), (r[6], r[7])):
        assert nxt.first_read == post.last_read, (post, nxt)  # one write: one read at the peer
    assert r[2].body == b'{"event":{"n":1},"rid":"a"}'


@pytest.mark.parametrize("engine", ENGINES)
async def test_server_that_closes_after_every_answer(engine: str) -> None:
    # The /next answer comes, then the connection ends before the probe's: no pipelining, and
    # every request goes on a connection of its own.
    async with PipePeer("close") as peer:
        code, out = await serve(peer, engine, [(f"r{i}", b'{"i":%d}' % i) for i in range(4)])
    assert code == 1, out
    assert posts(peer) == [f"r{i}/response" for i in range(4)]
    # One request per connection: the probe behind the first /next was never read (the
    # server closed first), and nothing was pipelined after that.
    assert [r.conn for r in peer.requests] == list(range(len(peer.requests)))
    assert [r.method for r in peer.requests] == ["GET"] + ["POST", "GET"] * 4
    assert "Traceback" not in out


@pytest.mark.parametrize("engine", ENGINES)
async def test_server_that_drops_pipelined_requests(engine: str) -> None:
    # A server that takes one request per read and drops the rest: the probe is lost, so after
    # PROBE_WAIT_S the runtime closes that connection and sends each request after the
    # previous answer. Nothing is lost, and no request is ever pipelined to it again.
    async with PipePeer("one-per-read") as peer:
        start = time.monotonic()
        code, out = await serve(peer, engine, [(f"r{i}", b'{"i":%d}' % i) for i in range(3)])
        elapsed = time.monotonic() - start
    assert code == 1, out
    assert posts(peer) == [f"r{i}/response" for i in range(3)]
    assert [r.method for r in peer.requests] == ["GET", "POST", "GET", "POST", "GET", "POST", "GET"]
    assert peer.requests[0].conn == 0 and {r.conn for r in peer.requests[1:]} == {1}
    reads = [(r.first_read, r.last_read) for r in peer.requests[1:]]
    assert len(set(reads)) == len(reads)  # one request per read: nothing rode behind another
    assert 1.0 <= elapsed < 10, elapsed  # the probe's wait, once


@pytest.mark.parametrize("engine", ENGINES)
async def test_server_that_refuses_pipelined_requests(engine: str) -> None:
    # 400 to a request that came in the same read as the one before it (then close): the probe
    # is refused, which still shows the server read it... so the runtime pipelines, gets the
    # /next refused, turns pipelining off and asks again on a new connection.
    async with PipePeer("refuse") as peer:
        code, out = await serve(peer, engine, [(f"r{i}", b"{}") for i in range(3)])
    assert code == 1, out
    assert posts(peer) == [f"r{i}/response" for i in range(3)]
    answered_next = [r for r in peer.of("GET", NEXT) if r.answered and r.answered.startswith(b"HTTP/1.1 200")]
    assert len(answered_next) == 3
    refused = [r for r in peer.requests if r.answered and r.answered.startswith(b"HTTP/1.1 400")]
    assert refused, peer.requests
    # After the refusal no request follows another in the same read.
    last_refusal = peer.requests.index(refused[-1])
    later = peer.requests[last_refusal + 1:]
    assert all(not (a.conn == b.conn and b.first_read == a.last_read) for a, b in zip(later, later[1:]))


@pytest.mark.parametrize("engine", ENGINES)
async def test_server_closes_after_answering_the_post(engine: str) -> None:
    # The post is answered, then the connection ends without a word on the /next behind it:
    # that /next is asked again on a new connection.
    async with PipePeer() as peer:
        peer.script("/a/response", lambda req: (ACCEPTED, True))
        code, out = await serve(peer, engine, [("a", b"{}"), ("b", b"{}")])
    assert code == 1, out
    assert posts(peer) == ["a/response", "b/response"]
    kinds = [(r.conn, r.method, r.target.rsplit("/", 1)[-1]) for r in peer.requests]
    # The /next sent behind a's post was never read; it is asked again on connection 1.
    assert kinds == [(0, "GET", "next"), (0, "OPTIONS", "*"), (0, "POST", "response"),
                     (1, "GET", "next"), (1, "POST", "response"), (1, "GET", "next")]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("status", [410, 413, 400, 403])
async def test_post_answered_4xx_then_the_pipelined_next(engine: str, status: int) -> None:
    async with PipePeer() as peer:
        refusal = b"HTTP/1.1 %d No\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}" % status
        peer.script("/a/response", lambda req: (refusal, False))
        code, out = await serve(peer, engine, [("a", b"{}"), ("b", b"{}")])
    assert code == 1, out
    assert posts(peer) == ["a/response", "b/response"]
    assert peer.connections == 1  # the /next behind the refused post was answered in order
    assert f"Runtime API /2018-06-01/runtime/invocation/a/response answered {status}: {{}}" in out


@pytest.mark.parametrize("engine", ENGINES)
async def test_post_answered_500_ends_the_runtime(engine: str) -> None:
    async with PipePeer() as peer:
        fatal = b'HTTP/1.1 500 Oops\r\nContent-Length: 2\r\n\r\n{}'
        peer.script("/a/response", lambda req: (fatal, False))
        code, out = await serve(peer, engine, [("a", b"{}"), ("b", b"{}")])
    assert code == 1
    assert "aruntime: exiting: Runtime API /2018-06-01/runtime/invocation/a/response answered 500" in out
    assert posts(peer) == ["a/response"]


@pytest.mark.parametrize("engine", ENGINES)
async def test_sigterm_while_the_pipelined_next_waits(engine: str) -> None:
    async with PipePeer() as peer:
        peer.push("a", b"{}")
        proc = await run_runtime([sys.executable, "-m", "aruntime", "tests.handlers.sigterm_handlers.handler"],
                                 _Address(peer), env={"ARUNTIME_HTTP": engine})  # type: ignore[arg-type]
        await peer.wait_for(lambda r: r.method == "GET" and r.first_read > 0, timeout=T)  # pipelined
        proc._proc.send_signal(signal.SIGTERM)
        assert await proc.wait(T) == 0
    assert proc.stdout.decode().splitlines() == ["aruntime hook"]
    assert [r.method for r in peer.requests] == ["GET", "OPTIONS", "POST", "GET"]
    assert peer.requests[3].first_read == peer.requests[2].last_read


@pytest.mark.parametrize("engine", ENGINES)
async def test_snapstart_restore_then_pipelining(engine: str) -> None:
    # /restore/next goes alone; the connection from before the snapshot is dropped; the first
    # /next after the restore (with the probe) opens a new one, and the posts pipeline there.
    async with PipePeer() as peer:
        peer.script("/restore/next", lambda req: (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", False))
        code, out = await serve(peer, engine, [("a", b"{}"), ("b", b"{}")],
                                env={"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"})
    assert code == 1, out
    kinds = [(r.conn, r.method, r.target.rsplit("/", 1)[-1]) for r in peer.requests]
    assert kinds == [(0, "GET", "next"), (1, "GET", "next"), (1, "OPTIONS", "*"),
                     (1, "POST", "response"), (1, "GET", "next"), (1, "POST", "response"),
                     (1, "GET", "next")]
    assert peer.requests[0].target.endswith("/restore/next")
    assert peer.requests[4].first_read == peer.requests[3].last_read


@pytest.mark.parametrize("engine", ENGINES)
async def test_answer_to_the_post_cut_short(engine: str) -> None:
    # The connection dies in the middle of the post's answer: the post is sent again on a new
    # connection (as any request is), then the /next.
    async with PipePeer() as peer:
        cut = b"HTTP/1.1 202 Accepted\r\nContent-Length: 16\r\n\r\n{\"sta"
        answers = iter([(cut, True)])
        peer.script("/a/response", lambda req: next(answers, (ACCEPTED, False)))
        code, out = await serve(peer, engine, [("a", b"{}"), ("b", b"{}")])
    assert code == 1, out
    assert posts(peer) == ["a/response", "a/response", "b/response"]
    assert "was cut short" in out


@pytest.mark.parametrize("engine", ENGINES)
async def test_stream_head_and_first_chunk_in_one_write(engine: str) -> None:
    # A streamed /response end to end: its head and first chunk arrive together; the second
    # chunk, yielded 0.2 s later, in a read of its own (sent when yielded, not held back). The
    # next test pins the single write itself, in process.
    async with PipePeer() as peer:
        event = b'{"chunks":["one","two"],"gap":0.2}'
        code, out = await serve(peer, engine, [("s", event)], handler=H + "stream")
    assert code == 1, out
    (post,) = peer.of("POST", "/s/response")
    assert post.headers["transfer-encoding"] == "chunked" and post.body == b"onetwo"
    assert post.chunk_reads[0] == post.head_read  # head + "one": one write
    assert post.chunk_reads[1] > post.chunk_reads[0]


@pytest.mark.parametrize("engine", ENGINES)
async def test_pollers_on_one_loop_share_one_receive_buffer(engine: str) -> None:
    # Two clients on one loop read into the same buffer (N pollers must not cost N buffers),
    # each connection's answer intact, an event larger than the buffer included.
    import asyncio

    from aruntime.connection import BUFFER_SIZE, RuntimeClient

    big = b'"' + b"x" * (3 * BUFFER_SIZE) + b'"'
    async with PipePeer() as peer:
        peer.push("big", big)
        peer.push("small", b'{"n":1}')
        one, two = RuntimeClient(peer.address, engine), RuntimeClient(peer.address, engine)
        try:
            first, second = await asyncio.gather(one.next(), two.next())
            assert one._conn is not None and two._conn is not None and one._conn is not two._conn
            assert one._conn._buffer is two._conn._buffer and len(one._conn._buffer) == BUFFER_SIZE
        finally:
            one.close()
            two.close()
    assert {first.request_id: first.body, second.request_id: second.body} == {
        "big": big, "small": b'{"n":1}'}


@pytest.mark.parametrize("engine", ENGINES)
async def test_stream_writes_head_with_first_chunk_then_one_write_per_chunk(engine: str) -> None:
    # In process, the transport's writes themselves: the first write() of a ResponseStream
    # sends the /response head and that chunk in one transport write, each later one a write.
    from aruntime.connection import RuntimeClient
    from aruntime.invoke import _StreamSink
    from aruntime.stream import ResponseStream

    async with PipePeer() as peer:
        peer.push("w", b"{}")
        client = RuntimeClient(peer.address, engine)
        try:
            inv = await client.next()
            writes: list[bytes] = []
            transport = client._conn.transport  # type: ignore[union-attr]
            real = transport.write
            transport.write = lambda data: (writes.append(bytes(data)), real(data))[1]  # type: ignore[method-assign]
            stream = ResponseStream(_StreamSink(client, inv), "text/plain")
            await stream.write(b"one")
            await stream.write("two")
            assert len(writes) == 2
            assert writes[0].startswith(b"POST /2018-06-01/runtime/invocation/w/response HTTP/1.1\r\n")
            assert writes[0].endswith(b"\r\n\r\n3\r\none\r\n") and writes[1] == b"3\r\ntwo\r\n"
            await stream.close()
            assert writes[2] == b"0\r\n\r\n"
        finally:
            client.close()


@pytest.mark.parametrize("engine", ENGINES)
async def test_the_post_leaves_at_post_not_at_next(engine: str) -> None:
    # Whatever runs between post() and next() (an OpenTelemetry flush after the answer) must not
    # hold the answer back: post() writes the post and the /next behind it at once.
    from aruntime import protocol
    from aruntime.connection import RuntimeClient

    async with PipePeer() as peer:
        peer.push("p1", b"{}")
        peer.push("p2", b"{}")
        client = RuntimeClient(peer.address, engine)
        client.pipeline = True
        try:
            inv = await client.next()
            await client.post(protocol.response_request(client.host_header, inv, b"application/json", 2), b"{}")
            post = await peer.wait_for(lambda r: r.method == "POST", timeout=5)  # next() not called yet
            nxt = await peer.wait_for(lambda r: r.method == "GET" and r.conn == post.conn
                                      and r.first_read == post.last_read, timeout=5)
            assert post.target.endswith("/p1/response") and nxt.target.endswith("/invocation/next")
            with pytest.raises(RuntimeError, match="in flight"):
                await client.post(protocol.response_request(client.host_header, inv, b"x/y", 0), b"")
            assert (await client.next()).request_id == "p2"
        finally:
            client.close()
