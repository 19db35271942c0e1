"""aruntime against cargo-lambda's Runtime API (`cargo lambda watch --only-lambda-apis`).

cargo-lambda (PyPI `cargo-lambda`, a binary wheel; Rust, hyper) is an independent implementation
of the Lambda Runtime API and of the Invoke and Function URL surfaces in front of it (docs/SPEC.md §8).
It differs from the service where aruntime used to fail: it sets AWS_LAMBDA_RUNTIME_API to
`http://host:port/.rt[/<function>]`, answers `200` instead of `202`, and parses the
HTTP-integration prelude per chunk.

One cargo-lambda serves the whole module, in an empty Cargo project made in a temporary
directory (it reads the project's binaries with `cargo metadata`, so it needs `cargo`; it
compiles nothing with `--only-lambda-apis`). Each binary is one function name, so each test's
runtime polls its own queue at `/.rt/<name>`. Loopback only, every wait bounded, every process
killed on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest

from fakeapi import REPO_ROOT, RuntimeProcess, runtime_env

pytestmark = pytest.mark.interop

T = 15.0
H = "tests.handlers.peers_handlers."
FUNCTIONS = ("echo", "aecho", "url")


def _cargo_lambda() -> str | None:
    here = Path(sys.executable).parent / ("cargo-lambda.exe" if os.name == "nt" else "cargo-lambda")
    return str(here) if here.exists() else shutil.which("cargo-lambda")


def _cargo() -> str | None:
    # rustup installs into ~/.cargo/bin, which a non-login shell may not have on PATH.
    return shutil.which("cargo") or shutil.which("cargo", path=str(Path.home() / ".cargo" / "bin"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path, limit: float = 30) -> None:  # type: ignore[type-arg]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"cargo-lambda exited {proc.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise AssertionError(f"cargo-lambda did not listen within {limit} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def cargo_lambda(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port of a running `cargo lambda watch --only-lambda-apis`, with FUNCTIONS."""
    binary, cargo = _cargo_lambda(), _cargo()
    if binary is None:
        pytest.skip("cargo-lambda is not installed: its wheel (pip install cargo-lambda) exists for "
                    "Linux and macOS on x86_64/arm64 and Windows on x86_64")
    if cargo is None:
        pytest.skip("cargo-lambda needs cargo on PATH (it runs `cargo metadata`): install Rust")
    project = tmp_path_factory.mktemp("cargo-project")
    bins = "".join(f'\n[[bin]]\nname = "{n}"\npath = "src/bin/{n}.rs"\n' for n in FUNCTIONS)
    (project / "Cargo.toml").write_text(
        f'[package]\nname = "aruntime-interop"\nversion = "0.1.0"\nedition = "2021"\n{bins}'
        "\n[workspace]\n")
    (project / "src" / "bin").mkdir(parents=True)
    for name in FUNCTIONS:
        (project / "src" / "bin" / f"{name}.rs").write_text("fn main() {}\n")
    port = _free_port()
    log = project / "cargo-lambda.log"
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(cargo).parent), os.environ.get("PATH", "")])}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [binary, "lambda", "watch", "--only-lambda-apis", "--ignore-changes",
             "--invoke-address", "127.0.0.1", "--invoke-port", str(port)],
            cwd=project, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, proc, log)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.asynccontextmanager
async def runtime(port: int, function: str, handler: str) -> AsyncIterator[RuntimeProcess]:
    """aruntime polling cargo-lambda's queue of `function`, at the address cargo-lambda gives
    it (`http://127.0.0.1:<port>/.rt/<function>`: a scheme and a two-segment prefix)."""
    address = f"http://127.0.0.1:{port}/.rt/{function}"
    env = {"AWS_LAMBDA_FUNCTION_NAME": function, "AWS_LAMBDA_FUNCTION_VERSION": "1",
           "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "4096"}
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


def _no_warnings(proc: RuntimeProcess) -> None:
    # A 200 answer taken for a failure used to log a WARNING on every invocation.
    out = proc.stdout.decode()
    assert "[WARNING]" not in out and "answered" not in out, out
    assert proc.returncode is None, proc.stderr.decode()  # still serving


async def _invoke(session: aiohttp.ClientSession, port: int, function: str,
                  event: object) -> tuple[int, object]:
    url = f"http://127.0.0.1:{port}/2015-03-31/functions/{function}/invocations"
    async with session.post(url, json=event) as r:
        return r.status, json.loads(await r.read())


async def test_buffered_echo_and_a_raised_error(cargo_lambda: int) -> None:
    timeout = aiohttp.ClientTimeout(total=T)
    async with runtime(cargo_lambda, "echo", H + "echo") as proc, \
            aiohttp.ClientSession(timeout=timeout) as session:
        status, body = await _invoke(session, cargo_lambda, "echo", {"n": 1})
        assert status == 200 and isinstance(body, dict)
        assert body["event"] == {"n": 1} and len(body["rid"]) == 36
        status, error = await _invoke(session, cargo_lambda, "echo", {"raise": "boom"})
        assert status == 500 and isinstance(error, dict)
        assert (error["errorType"], error["errorMessage"]) == ("ValueError", "boom")
        assert 'raise ValueError(event["raise"])' in error["stackTrace"][-1]
        status, body = await _invoke(session, cargo_lambda, "echo", [1, 2])  # it goes on
        assert status == 200 and body["event"] == [1, 2]  # type: ignore[index]
        _no_warnings(proc)


async def test_async_handler(cargo_lambda: int) -> None:
    timeout = aiohttp.ClientTimeout(total=T)
    async with runtime(cargo_lambda, "aecho", H + "async_echo") as proc, \
            aiohttp.ClientSession(timeout=timeout) as session:
        for n in range(2):  # the loop lives on between invocations
            status, body = await _invoke(session, cargo_lambda, "aecho", {"n": n})
            assert status == 200 and isinstance(body, dict)
            # cargo-lambda's deadline header is "600000", a duration: read as no deadline (the
            # longest timeout), not as 1970 (no time left).
            assert body == {"async": True, "event": {"n": n}, "remaining_ms": body["remaining_ms"]}
            assert 890_000 < body["remaining_ms"] <= 900_000
        _no_warnings(proc)


async def test_function_url_stream_with_prelude_and_chunk_timing(cargo_lambda: int) -> None:
    url = f"http://127.0.0.1:{cargo_lambda}/lambda-url/url/hello/there?status=201"
    timeout = aiohttp.ClientTimeout(total=T)
    async with runtime(cargo_lambda, "url", H + "url_stream") as proc, \
            aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url) as r:
            # The prelude's status, headers and cookies, as an HTTP client sees them.
            assert r.status == 201
            assert r.headers["content-type"] == "text/plain"
            assert r.headers["x-path"] == "/hello/there"
            assert r.headers.getall("set-cookie") == ["a=1; Path=/", "b=2"]
            arrivals = []
            body = b""
            async for data in r.content.iter_any():
                body += data
                arrivals.append((time.monotonic(), data))
        assert body == b"line 0\nline 1\nline 2\n"
        # Written 0.3 s apart, they arrive apart: nothing buffered the stream on the way.
        times = [next(t for t, d in arrivals if f"line {i}".encode() in d) for i in range(3)]
        assert times[1] - times[0] > 0.2 and times[2] - times[1] > 0.2, arrivals
        _no_warnings(proc)
