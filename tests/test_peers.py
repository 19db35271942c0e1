"""The real runtime against Runtime API servers that behave unlike our fake (docs/SPEC.md §8).

Each peer here is `RawPeer` (tests/rawpeer.py) answering with exact bytes: a path prefix in the
address (cargo-lambda's `/.rt`), any 2xx for success, the HTTP-integration prelude split in two
chunks, answers cut short, and servers that close after every answer, answer in HTTP/1.0, send
interim 1xx answers, chunk their `/next` answers or write header names in odd case.
.ci/run repeats this file with --wire=httptools: both wire engines must pass it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest

from fakeapi import REPO_ROOT, RuntimeProcess, runtime_env, scratch_env
from rawpeer import RawPeer, Request, answer

T = 15.0
H = "tests.handlers.peers_handlers."
NEXT = "/2018-06-01/runtime/invocation/next"
RT = "/2018-06-01/runtime"


@contextlib.asynccontextmanager
async def runtime(address: str, handler: str, env: dict[str, str] | None = None
                  ) -> AsyncIterator[RuntimeProcess]:
    """A runtime process talking to `address`; killed on the way out whatever happened."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aruntime", handler,
        env=runtime_env(SimpleNamespace(address=address), env),  # type: ignore[arg-type]
        cwd=str(REPO_ROOT), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    rp = RuntimeProcess(proc, T)
    try:
        yield rp
    finally:
        rp.kill()
        with contextlib.suppress(Exception):
            await rp.wait(5)


def targets(peer: RawPeer) -> list[tuple[str, str]]:
    return [(r.method, r.target) for r in peer.requests]


def warnings(out: bytes) -> list[str]:
    """WARNING lines, less the reference's notice that init failed (an init error's own)."""
    return [line for line in out.decode().splitlines()
            if line.startswith("[WARNING]") and "LAMBDA_WARNING: Unhandled exception" not in line]


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


# -- 1. AWS_LAMBDA_RUNTIME_API with a path prefix ------------------------------------------


@pytest.mark.parametrize("form, prefix", [
    ("{a}/.rt", "/.rt"),  # what cargo-lambda sets
    ("http://{a}/.rt/my-fn/", "/.rt/my-fn"),  # its per-function address, as it prints it
    ("{a}/", ""),
])
async def test_prefix_on_next_response_and_error(form: str, prefix: str) -> None:
    async with RawPeer() as peer:
        peer.push(peer.invocation("p-1", b'{"n":1}'))
        peer.push(peer.invocation("p-2", b'{"raise":"boom"}'))
        peer.finish()
        async with runtime(form.format(a=peer.authority), H + "echo") as proc:
            assert await proc.wait(T) == 1
    assert targets(peer) == [
        ("GET", prefix + NEXT), ("POST", f"{prefix}{RT}/invocation/p-1/response"),
        ("GET", prefix + NEXT), ("POST", f"{prefix}{RT}/invocation/p-2/error"),
        ("GET", prefix + NEXT)]
    assert {r.header("host") for r in peer.requests} == {peer.authority}
    assert json.loads(peer.requests[1].body) == {"event": {"n": 1}, "rid": "p-1"}
    assert proc.stderr.decode().startswith(f"aruntime: exiting: Runtime API {prefix}{NEXT} answered 500")


@pytest.mark.parametrize("case", ["stream", "init", "restore"])
async def test_prefix_on_stream_init_error_and_restore(case: str) -> None:
    handler, env, code = {
        "stream": (H + "stream", {}, 1),
        "init": (H + "missing", {}, 1),
        "restore": ("tests.handlers.lifecycle_handlers.handler",
                    {"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start", "HOOK_FAIL": "after"}, 65),
    }[case]
    async with RawPeer() as peer:
        peer.push(peer.invocation("s-1", b'{"chunks":["a","b"]}'))
        peer.finish()
        async with runtime(f"{peer.authority}/.rt/fn", handler, env) as proc:
            assert await proc.wait(T) == code
    p = "/.rt/fn" + RT
    assert targets(peer) == {
        "stream": [("GET", p + "/invocation/next"), ("POST", p + "/invocation/s-1/response"),
                   ("GET", p + "/invocation/next")],
        "init": [("POST", p + "/init/error")],
        "restore": [("GET", p + "/restore/next"), ("POST", p + "/restore/error")],
    }[case]
    if case == "stream":
        assert peer.requests[1].chunks == [b"a", b"b"]


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
async def test_ipv6_address_with_prefix() -> None:
    async with RawPeer("::1") as peer:
        peer.push(peer.invocation("v6-1", b'{"n":6}'))
        peer.finish()
        async with runtime(f"http://[::1]:{peer.port}/.rt", H + "echo") as proc:
            assert await proc.wait(T) == 1
    assert targets(peer)[:2] == [("GET", "/.rt" + NEXT), ("POST", f"/.rt{RT}/invocation/v6-1/response")]
    assert peer.requests[0].header("host") == f"[::1]:{peer.port}"


@pytest.mark.parametrize("value, reason", [
    ("127.0.0.1", "no port"),
    ("127.0.0.1:", "no port"),
    ("127.0.0.1:70000", "bad port '70000'"),
    ("::1:9001", "an IPv6 address goes in brackets: [::1]:9001"),
    ("https://127.0.0.1:9001", "only http:// is supported"),
    ("127.0.0.1:9001/.rt?x=1", "bad path '/.rt?x=1'"),
])
async def test_malformed_address_is_one_line_and_exit_1(value: str, reason: str) -> None:
    async with runtime(value, H + "echo") as proc:
        assert await proc.wait(T) == 1
    assert proc.stderr.decode() == (f"aruntime: AWS_LAMBDA_RUNTIME_API must be host:port or "
                                    f"host:port/path, got {value!r}: {reason}\n")


# -- 2. any 2xx is success --------------------------------------------------------------------


def _status_answer(status: int) -> bytes:
    if status == 204:
        return answer(204, framing="none", reason="No Content")
    return answer(status, b"", reason="Whatever")  # cargo-lambda: 200, empty body


@pytest.mark.parametrize("status", [200, 201, 202, 204])
async def test_any_2xx_is_success_for_every_call(status: int) -> None:
    reply = _status_answer(status)
    peers = [RawPeer() for _ in range(4)]
    async with contextlib.AsyncExitStack() as stack:
        for peer in peers:
            await stack.enter_async_context(peer)
            for match in ("/response", "/error", "/init/error", "/restore/"):
                peer.script(match, lambda req: (reply, False))
        buffered, streamed, init, restore = peers
        # /next itself answered with the status (204 has no body: an event that is not JSON).
        body = b"" if status == 204 else b'{"n":1}'
        buffered.push(buffered.invocation("b-1", body, status=status, reason="X"))
        buffered.push(buffered.invocation("b-2", b'{"raise":"boom"}'))
        streamed.push(streamed.invocation("s-1", b'{"chunks":["a"]}'))
        for peer in peers:
            peer.finish()
        procs = [await stack.enter_async_context(runtime(peer.authority, handler, env))
                 for peer, handler, env in [
                     (buffered, H + "echo", {}), (streamed, H + "stream", {}),
                     (init, H + "missing", {}),
                     (restore, "tests.handlers.lifecycle_handlers.handler",
                      {"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start", "HOOK_FAIL": "after"})]]
        codes = await asyncio.gather(*(p.wait(T) for p in procs))
    # 1: /next's final 500; 65: the after-restore hook's failure (restore/next succeeded).
    assert codes == [1, 1, 1, 65]
    first = "error" if status == 204 else "response"
    assert [t for m, t in targets(buffered) if m == "POST"] == [
        f"{RT}/invocation/b-1/{first}", f"{RT}/invocation/b-2/error"]
    assert [t for m, t in targets(streamed) if m == "POST"] == [f"{RT}/invocation/s-1/response"]
    assert targets(init) == [("POST", f"{RT}/init/error")]
    assert targets(restore) == [("GET", f"{RT}/restore/next"), ("POST", f"{RT}/restore/error")]
    for proc in procs:
        assert warnings(proc.stdout) == []
        assert f"answered {status}" not in (proc.stdout + proc.stderr).decode()
    for proc in procs[:2]:
        assert proc.stderr.decode() == (f"aruntime: exiting: Runtime API {NEXT} answered 500: "
                                        '{"errorType":"Runtime.Exit"}\n')
    assert "could not report" not in procs[2].stderr.decode()


# -- 3. the prelude and its separator: two chunks ---------------------------------------------


async def test_prelude_and_separator_are_two_chunks_then_the_body() -> None:
    prelude = {"status": 201, "headers": {"x-a": "1"}, "cookies": ["k=v"]}
    async with RawPeer() as peer:
        peer.push(peer.invocation("u-1", json.dumps({"prelude": prelude, "chunks": ["body", "!"]}).encode()))
        peer.push(peer.invocation("u-2", json.dumps({"prelude": {"status": 204}}).encode()))
        peer.finish()
        async with runtime(peer.authority, H + "stream") as proc:
            assert await proc.wait(T) == 1
    full, empty = [r for r in peer.requests if r.method == "POST"]
    json1 = b'{"statusCode":201,"headers":{"x-a":"1"},"cookies":["k=v"]}'
    json2 = b'{"statusCode":204,"headers":{},"cookies":[]}'
    nul = b"\0" * 8
    assert full.header("content-type") == "application/vnd.awslambda.http-integration-response"
    assert full.raw.split(b"\r\n\r\n", 1)[1] == (
        b"%x\r\n%s\r\n8\r\n%s\r\n4\r\nbody\r\n1\r\n!\r\n0\r\n\r\n" % (len(json1), json1, nul))
    assert full.chunks == [json1, nul, b"body", b"!"]
    # An empty body still gets the prelude, as two chunks, then the terminator.
    assert empty.raw.split(b"\r\n\r\n", 1)[1] == (
        b"%x\r\n%s\r\n8\r\n%s\r\n0\r\n\r\n" % (len(json2), json2, nul))
    assert empty.chunks == [json2, nul]


# -- 4. a /next answer cut short is logged --------------------------------------------------


def _cut(peer: RawPeer, rid: str, how: str) -> bytes:
    whole = peer.invocation(rid, b'{"lost":"' + rid.encode() + b'"}')
    head, body = whole.split(b"\r\n\r\n", 1)
    if how == "short body":
        return head + b"\r\n\r\n" + body[:5]
    if how == "head only":
        return head + b"\r\n\r\n"
    if how == "in the head":
        return head[:40]
    chunked = peer.invocation(rid, b'{"lost":"' + rid.encode() + b'"}', framing="chunked")
    return chunked[:chunked.index(b"\r\n\r\n") + 4 + 6]  # size line, then part of the chunk


CUTS = ["short body", "head only", "chunked mid-chunk", "in the head"]


async def test_next_answer_cut_short_is_logged_then_retried() -> None:
    async with RawPeer() as peer:
        for i, how in enumerate(CUTS):
            peer.push(_cut(peer, f"cut-{i}", how), close=True)
            peer.push(peer.invocation(f"ok-{i}", b'{"n":%d}' % i))
        peer.finish()
        async with runtime(peer.authority, H + "echo") as proc:
            assert await proc.wait(T) == 1
    # Every cut answer was followed by a new connection and the next invocation was served.
    assert [t.rsplit("/", 2)[1] for m, t in targets(peer) if m == "POST"] == [
        "ok-0", "ok-1", "ok-2", "ok-3"]
    lines = warnings(proc.stdout)
    assert len(lines) == len(CUTS), proc.stdout.decode()
    start = f"the Runtime API's answer to GET {NEXT} was cut short"
    for line, (i, how) in zip(lines, enumerate(CUTS)):
        assert start in line and line.endswith("; sending the request again"), line
        if how == "in the head":
            assert f"{start} (before its head was complete): " in line
        else:
            assert f"{start} (request id cut-{i}, status 200): " in line


# -- siblings: servers that are odd but legal -----------------------------------------------


def _style(style: str, data: bytes) -> tuple[bytes, bool]:
    """Re-frame a well-formed answer the way an odd server would send it."""
    head, body = data.split(b"\r\n\r\n", 1)
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"content-length")]
    if style == "connection: close":
        return head + b"\r\nConnection: close\r\n\r\n" + body, True
    if style == "http/1.0, body until close":
        lines[0] = lines[0].replace(b"HTTP/1.1", b"HTTP/1.0")
        return b"\r\n".join(lines) + b"\r\n\r\n" + body, True
    if style == "http/1.1, body until close":
        return b"\r\n".join(lines) + b"\r\n\r\n" + body, True
    if style == "1xx first":
        return b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + data, False
    if style == "chunked, extensions and trailers":
        framed = b"%x;ext=1\r\n%s\r\n" % (len(body), body) if body else b""
        return (b"\r\n".join(lines) + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + framed
                + b"0\r\nX-Trailer: t\r\n\r\n"), False
    if style == "header names in odd case":
        status, *fields = head.split(b"\r\n")
        fields = [name.swapcase() + b":" + value for name, value in (f.split(b":", 1) for f in fields)]
        return b"\r\n".join([status, *fields]) + b"\r\n\r\n" + body, False
    raise AssertionError(style)


STYLES = ["connection: close", "http/1.0, body until close", "http/1.1, body until close",
          "1xx first", "chunked, extensions and trailers", "header names in odd case"]


@pytest.mark.parametrize("style", STYLES)
async def test_odd_but_legal_servers(style: str) -> None:
    async with RawPeer() as peer:
        def post(req: Request) -> tuple[bytes, bool]:
            return _style(style, answer(202, b'{"status":"OK"}', [("Content-Type", "application/json")]))

        peer.script("/response", post)
        peer.script("/error", post)
        for rid, body in [("o-1", b'{"n":1}'), ("o-2", b'{"raise":"boom"}'), ("o-3", b'{"n":3}')]:
            data, close = _style(style, peer.invocation(rid, body))
            peer.push(data, close=close)
        peer.finish()
        async with runtime(peer.authority, H + "echo") as proc:
            assert await proc.wait(T) == 1
    assert [t for m, t in targets(peer) if m == "POST"] == [
        f"{RT}/invocation/o-1/response", f"{RT}/invocation/o-2/error", f"{RT}/invocation/o-3/response"]
    assert json.loads(peer.requests[1].body) == {"event": {"n": 1}, "rid": "o-1"}
    assert json.loads(peer.requests[5].body) == {"event": {"n": 3}, "rid": "o-3"}
    assert warnings(proc.stdout) == []
    closes = style in ("connection: close", "http/1.0, body until close", "http/1.1, body until close")
    # A server that closes after each answer gets a new connection per request; others keep one.
    assert peer.connections == (len(peer.requests) if closes else 1)


# -- ARUNTIME_HTTP: an engine name, or a one-line refusal ---------------------------------------


async def test_unknown_engine_is_refused_at_start(tmp_path) -> None:
    async with RawPeer() as peer:
        async with runtime(peer.authority, H + "echo", {"ARUNTIME_HTTP": "bogus"}) as proc:
            assert await proc.wait(T) == 1
        assert proc.stderr.decode() == (
            "aruntime: ARUNTIME_HTTP must be one of h11, httptools (or unset), got 'bogus'\n")
        # httptools asked for but not importable: one line too (a stand-in package that fails).
        (tmp_path / "httptools").mkdir()
        (tmp_path / "httptools" / "__init__.py").write_text("raise ImportError('not here')\n")
        env = {"ARUNTIME_HTTP": "httptools", "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO_ROOT}"}
        async with runtime(peer.authority, H + "echo", env) as proc:
            assert await proc.wait(T) == 1
        assert proc.stderr.decode() == ("aruntime: ARUNTIME_HTTP=httptools, but httptools is not "
                                        "installed: install the fast extra (not on PyPI yet: from a checkout of aruntime, pip install -e '.[fast]')\n")
    assert peer.requests == []  # refused before a single request


@pytest.mark.parametrize("value, shown", [
    ("httptools", "(wire engine httptools)"),
    ("h11", "(wire engine h11)"),
    ("bogus", "(wire engine none: ARUNTIME_HTTP must be one of h11, httptools (or unset), got 'bogus')"),
])
async def test_serve_banner_shows_the_engine(value: str, shown: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aruntime", "serve", "examples/echo.py:handler", "--port", "0",
        "--env", f"ARUNTIME_HTTP={value}", cwd=str(REPO_ROOT), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=scratch_env())
    try:
        banner = b""
        while b"Ctrl-C stops." not in banner:
            line = await asyncio.wait_for(proc.stdout.readline(), T)  # type: ignore[union-attr]
            assert line, banner
            banner += line
    finally:
        proc.send_signal(signal.SIGINT)  # its Ctrl-C; no runtime started yet (it starts lazily)
        try:
            await asyncio.wait_for(proc.wait(), T)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
    runtime_line = [line for line in banner.decode().splitlines() if line.startswith("  runtime: ")]
    assert len(runtime_line) == 1 and f"-m aruntime {shown}; timeout " in runtime_line[0], banner
