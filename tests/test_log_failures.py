"""Writing a log line never stops the runtime from answering (issue #10 item 9).

Whatever stdout/stderr have become — an ASCII encoding, replaced by an object whose write
raises, None, closed, a broken pipe, a telemetry fd whose reader is gone — the invocation is
answered with its exact error, the next one is served, and what can be logged is logged
(escaped rather than dropped).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import pytest

from fakeapi import REPO_ROOT, FakeRuntimeAPI, run_runtime, runtime_env

HANDLER = "tests.handlers.log_breakers.handler"
MESSAGE = "über ☃"
ASCII_ONLY = {"LC_ALL": "C", "LANG": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}


def events(api: FakeRuntimeAPI, first: dict[str, Any]) -> list[str]:
    """The breaking event (which fails), a second failing one, then a good one; their ids."""
    return [api.push({"n": 1, "fail": True, **first}, request_id="e-1"),
            api.push({"n": 2, "fail": True}, request_id="e-2"),
            api.push({"n": 3}, request_id="ok-3")]


async def answered(api: FakeRuntimeAPI) -> None:
    """Wait for the three answers, end the runtime, and check them byte for byte."""
    await api.wait_for(lambda ex: ex.path.endswith("/ok-3/response"), timeout=15)
    api.finish()
    posts = api.posts()
    for rid in ("e-1", "e-2"):
        error = posts[rid]
        assert error.path.endswith("/error") and error.status == 202
        assert error.header("lambda-runtime-function-error-type") == "Function.ValueError"
        body = error.json()
        assert (body["errorType"], body["errorMessage"], body["requestId"]) == (
            "ValueError", MESSAGE, rid)
        assert MESSAGE.encode() in error.body  # raw UTF-8 on the wire, as every other answer
    assert posts["ok-3"].body == b'{"ok":3}'


# -- encodings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding_env", [{"PYTHONIOENCODING": "ascii"}, ASCII_ONLY],
                         ids=["PYTHONIOENCODING=ascii", "LANG=C"])
async def test_text_logs_on_an_ascii_stdout_are_escaped(fake_api: FakeRuntimeAPI,
                                                        encoding_env: dict[str, str]) -> None:
    events(fake_api, {})
    env = {"PYTHONIOENCODING": "", **encoding_env}
    proc = await run_runtime([sys.executable, "-m", "aruntime", HANDLER], fake_api, env=env)
    await answered(fake_api)
    assert await proc.wait(15) == 1
    assert proc.stdout.isascii(), proc.stdout
    out = proc.stdout.decode()
    for rid in ("e-1", "e-2"):
        assert f"[ERROR] ValueError: \\u00fcber \\u2603\rTraceback (most recent call last):\r" in out
    assert "\te-1\tgr\\u00fc\\u00dfe 1\n" in out and "\tok-3\tgr\\u00fc\\u00dfe 3\n" in out
    # The error lines' U+00A0 indent cannot be written either: plain spaces keep it readable.
    assert out.count('Traceback (most recent call last):\r  File "') == 2, out
    assert "\\u00a0" not in out


@pytest.mark.parametrize("encoding_env", [{"PYTHONIOENCODING": "ascii"}, ASCII_ONLY],
                         ids=["PYTHONIOENCODING=ascii", "LANG=C"])
async def test_json_logs_on_an_ascii_stdout_stay_valid_json(fake_api: FakeRuntimeAPI,
                                                            encoding_env: dict[str, str]) -> None:
    events(fake_api, {})
    env = {"PYTHONIOENCODING": "", "AWS_LAMBDA_LOG_FORMAT": "JSON", **encoding_env}
    proc = await run_runtime([sys.executable, "-m", "aruntime", HANDLER], fake_api, env=env)
    await answered(fake_api)
    assert await proc.wait(15) == 1
    assert proc.stdout.isascii(), proc.stdout
    records = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    errors = [(r["requestId"], r["errorMessage"]) for r in records if "errorType" in r]
    assert errors == [("e-1", MESSAGE), ("e-2", MESSAGE)]
    warnings = [(r["requestId"], r["message"]) for r in records if r.get("logger") == "breaker"]
    assert warnings == [("e-1", "grüße 1"), ("e-2", "grüße 2"), ("ok-3", "grüße 3")]


# -- stdout/stderr replaced or closed by the handler -----------------------------------------------


@pytest.mark.parametrize("how", ["raising", "none", "closed", "both_none"])
async def test_a_broken_sys_stdout_falls_back_to_fd_1(fake_api: FakeRuntimeAPI, how: str) -> None:
    events(fake_api, {"break": how})
    proc = await run_runtime([sys.executable, "-m", "aruntime", HANDLER], fake_api)
    await answered(fake_api)
    assert await proc.wait(15) == 1
    out = proc.stdout.decode()
    # Every line still reaches Lambda's log (fd 1), after the handler broke sys.stdout too.
    assert out.count(f"[ERROR] ValueError: {MESSAGE}\rTraceback") == 2, out
    for rid, n in (("e-1", 1), ("e-2", 2), ("ok-3", 3)):
        assert f"\t{rid}\tgrüße {n}\n" in out, out
    assert "Logging error" not in out + proc.stderr.decode()


# -- the file descriptors themselves broken ----------------------------------------------------


async def spawn(api: FakeRuntimeAPI, env: dict[str, str], stdout: int, stderr: int,
                pass_fds: tuple[int, ...] = ()) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aruntime", HANDLER, cwd=str(REPO_ROOT), env=runtime_env(api, env),
        stdin=asyncio.subprocess.DEVNULL, stdout=stdout, stderr=stderr, pass_fds=pass_fds)
    return proc


async def test_stdout_a_broken_pipe_logs_go_to_stderr(fake_api: FakeRuntimeAPI) -> None:
    events(fake_api, {})
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will ever read: every write to fd 1 fails with EPIPE
    try:
        proc = await spawn(fake_api, {}, write_end, asyncio.subprocess.PIPE)
    finally:
        os.close(write_end)
    await answered(fake_api)
    _, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 1
    text = err.decode()
    assert text.count(f"[ERROR] ValueError: {MESSAGE}\rTraceback") == 2, text
    assert "\tok-3\tgrüße 3\n" in text


async def test_stdout_and_stderr_broken_pipes_still_answered(fake_api: FakeRuntimeAPI) -> None:
    events(fake_api, {})
    fds = [os.pipe(), os.pipe()]
    for read_end, _ in fds:
        os.close(read_end)
    try:
        proc = await spawn(fake_api, {}, fds[0][1], fds[1][1])
    finally:
        for _, write_end in fds:
            os.close(write_end)
    await answered(fake_api)  # nothing can be logged anywhere; every invocation is answered
    assert await asyncio.wait_for(proc.wait(), 15) == 1


async def test_telemetry_fd_reader_gone_logs_go_to_stdout(fake_api: FakeRuntimeAPI) -> None:
    events(fake_api, {})
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = await spawn(fake_api, {"_LAMBDA_TELEMETRY_LOG_FD": str(write_end)},
                           asyncio.subprocess.PIPE, asyncio.subprocess.PIPE, (write_end,))
    finally:
        os.close(write_end)
    await answered(fake_api)
    out, _ = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 1
    text = out.decode()
    assert text.count(f"[ERROR] ValueError: {MESSAGE}\rTraceback") == 2, text
    assert "\tok-3\tgrüße 3\n" in text


async def test_telemetry_fd_not_open_at_start(fake_api: FakeRuntimeAPI) -> None:
    events(fake_api, {})
    fd = os.open(os.devnull, os.O_RDONLY)  # a number that is surely not open in the child
    os.close(fd)
    proc = await run_runtime([sys.executable, "-m", "aruntime", HANDLER], fake_api,
                             env={"_LAMBDA_TELEMETRY_LOG_FD": str(fd)})
    await answered(fake_api)
    assert await proc.wait(15) == 1
    assert proc.stderr.decode().startswith(
        f"aruntime: _LAMBDA_TELEMETRY_LOG_FD='{fd}' is unusable (")
    assert proc.stdout.decode().count(f"[ERROR] ValueError: {MESSAGE}\rTraceback") == 2


@pytest.mark.parametrize("log_format", ["Text", "JSON"])
async def test_text_utf8_cannot_encode_is_escaped_not_fatal(fake_api: FakeRuntimeAPI,
                                                            log_format: str) -> None:
    # A lone surrogate (a file name decoded with surrogateescape) in the error and a record.
    fake_api.push({"n": 1, "surrogate": True}, request_id="s-1")
    fake_api.push({"n": 2}, request_id="ok-2")
    # Strict UTF-8 (a UTF-8 locale that is not C): the surrogate cannot be written as is.
    proc = await run_runtime([sys.executable, "-m", "aruntime", HANDLER], fake_api,
                             env={"AWS_LAMBDA_LOG_FORMAT": log_format,
                                  "PYTHONIOENCODING": "utf-8:strict"})
    await fake_api.wait_for(lambda ex: ex.path.endswith("/ok-2/response"), timeout=15)
    fake_api.finish()
    assert await proc.wait(15) == 1
    error = next(ex for ex in fake_api.exchanges if ex.path.endswith("/s-1/error"))
    assert error.json()["errorMessage"] == "bad \\udcff name"
    out = proc.stdout.decode()
    if log_format == "JSON":
        records = [json.loads(line) for line in out.splitlines()]
        assert [r["message"] for r in records if r.get("logger") == "breaker"] == [
            "grüße 1", "file \udcff", "grüße 2"]
        assert [r["errorMessage"] for r in records if "errorType" in r] == ["bad \\udcff name"]
    else:
        assert "\ts-1\tfile \\udcff\n" in out and "[ERROR] ValueError: bad \\udcff name\r" in out
    assert "Logging error" not in out + proc.stderr.decode()


async def test_stdio_closed_by_the_handler_never_gets_a_runtime_api_socket(
        fake_api: FakeRuntimeAPI) -> None:
    # Each answer closes its connection, so every /next after the handler closed fds 0-2
    # opens a new socket: were it numbered 1, the handler's (or a subprocess's) writes to
    # "stdout" would go into the Runtime API connection.
    fake_api.answer("/response", 202, close=True, times=10)
    for n in (1, 2, 3):
        fake_api.push({"n": n, "close": n == 1}, request_id=f"c-{n}")
    proc = await run_runtime([sys.executable, "-m", "aruntime",
                              "tests.handlers.log_breakers.closes_stdio"], fake_api)
    await fake_api.wait_for(lambda ex: ex.path.endswith("/c-3/response"), timeout=15)
    fake_api.finish()
    assert await proc.wait(15) == 1
    posts = [(ex.path, ex.body) for ex in fake_api.exchanges if ex.method == "POST"]
    assert posts == [(f"/2018-06-01/runtime/invocation/c-{n}/response",
                      b'{"n":%d,"stdio_sockets":[]}' % n) for n in (1, 2, 3)]
