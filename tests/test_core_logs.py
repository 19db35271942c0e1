"""Logging (docs/SPEC.md §4): frame bytes, JSON and text records, error lines, telemetry fd, stdout.

The first half drives `aruntime.logs` in-process and compares with awslambdaric's own code on
the same input; the second runs the real runtime process against the fake Runtime API.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from awslambdaric import lambda_runtime_log_utils as ref_log

from aruntime import invocation, logs
from fakeapi import REPO_ROOT, FakeRuntimeAPI, RuntimeProcess, run_runtime, runtime_env

RID = "8476a536-e9f4-11e8-9739-2dfe598c3fcd"
HANDLER = "tests.handlers.core_logs.handler"
T = 10.0


class CaptureSink:
    """A log sink that keeps what it was given, in the two shapes sinks receive."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None]] = []
        self.errors: list[list[str]] = []

    def log(self, msg: str, frame_type: bytes | None = None) -> None:
        self.records.append((msg, frame_type))

    def log_error(self, lines: list[str]) -> None:
        self.errors.append(list(lines))


# -- frames ----------------------------------------------------------------------------------


def test_frame_bytes() -> None:
    got = logs.frame(b"\xa5\x5a\x00\x03", "héllo\nworld".encode(), 1_700_000_000_123_456)
    assert got == (b"\xa5\x5a\x00\x03" + b"\x00\x00\x00\x0c" + (1_700_000_000_123_456).to_bytes(8, "big")
                   + "héllo\nworld".encode())


def test_frame_types_equal_reference() -> None:
    assert logs.TEXT_FRAME_TYPES == ref_log._TEXT_FRAME_TYPES
    assert logs.JSON_FRAME_TYPES == ref_log._JSON_FRAME_TYPES
    assert logs.TEXT_FRAME_TYPES[logging.INFO] == bytes.fromhex("a55a000f")
    assert logs.JSON_FRAME_TYPES[logging.ERROR] == bytes.fromhex("a55a0016")


def test_telemetry_sink_writes_whole_frames_to_fd() -> None:
    r, w = os.pipe()
    try:
        sink = logs.TelemetrySink(w, logs.TEXT_FRAME_TYPES[logging.ERROR])
        before = time.time_ns() // 1000
        sink.log("one\ntwo", logs.TEXT_FRAME_TYPES[logging.WARNING])
        sink.log_error(["[ERROR] E: m", "Traceback (most recent call last):"])
        after = time.time_ns() // 1000
        os.close(w)
        w = -1
        data = b""
        while chunk := os.read(r, 65536):
            data += chunk
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    frames = parse_frames(data)
    assert [(t, m) for t, _, m in frames] == [
        (0xA55A0013, b"one\ntwo"),
        (0xA55A0017, b"[ERROR] E: m\nTraceback (most recent call last):"),
    ]
    assert all(before <= ts <= after for _, ts, _ in frames)


def test_logs_deletes_telemetry_variable_from_environ() -> None:
    r, w = os.pipe()
    try:
        environ = {"_LAMBDA_TELEMETRY_LOG_FD": str(w), "AWS_LAMBDA_LOG_FORMAT": "Json"}
        made = logs.Logs(environ)
        assert "_LAMBDA_TELEMETRY_LOG_FD" not in environ
        assert isinstance(made.sink, logs.TelemetrySink)
        assert made.json
        assert made.sink.error_frame_type == bytes.fromhex("a55a0016")
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("value, level", [
    ("TRACE", "DEBUG"), ("debug", "DEBUG"), ("Info", "INFO"), ("", ""), (None, ""),
])
def test_log_level_mapping_like_reference(value: str | None, level: str) -> None:
    environ = {} if value is None else {"AWS_LAMBDA_LOG_LEVEL": value}
    assert logs.Logs(environ).level == level == ref_log._get_log_level_from_env_var(value)


def test_lowercase_trace_is_debug() -> None:
    # The reference maps only "TRACE" (upper-cased after the lookup, so "trace" stays unknown
    # and the level is left at WARNING); we accept any case, as for the other names.
    assert logs.Logs({"AWS_LAMBDA_LOG_LEVEL": "trace"}).level == "DEBUG"


# -- JSON records ----------------------------------------------------------------------------


def _record(msg: Any, *args: Any, level: int = logging.INFO, exc: bool = False,
            **extra: Any) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("kaput")
        except ValueError:
            exc_info = sys.exc_info()
    record = logging.getLogger("app.mod").makeRecord(
        "app.mod", level, "/var/task/app.py", 12, msg, args, exc_info, func="handler", extra=extra)
    record.created = 1_800_000_000.123
    record.msecs = 123.0
    record.aws_request_id = RID
    record.tenant_id = None
    return record


def _both(make: Any) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(ours parsed, reference parsed, our raw line) for two records built the same way."""
    ours = logs.JsonFormatter().format(make())
    theirs = ref_log.JsonFormatter().format(make())
    return json.loads(ours), json.loads(theirs), ours


def test_json_formatter_plain_message() -> None:
    got, expected, raw = _both(lambda: _record("hello %s", "world"))
    assert got == expected
    assert list(got) == ["timestamp", "level", "message", "logger", "requestId"]
    assert got == {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.localtime(1_800_000_000.123)),
                   "level": "INFO", "message": "hello world", "logger": "app.mod", "requestId": RID}
    assert raw.endswith("}\n") and raw.count("\n") == 1


def test_json_formatter_dict_message_extra_tenant_and_custom_level() -> None:
    def make() -> logging.LogRecord:
        record = _record({"event": "x", "n": 1}, level=25, color="blue", obj=object)
        record.tenant_id = "tenant-1"
        return record

    got, expected, _ = _both(make)
    assert got == expected
    assert got["message"] == {"event": "x", "n": 1}
    assert got["level"] == "INFO"  # 25 falls into INFO, as in the reference
    assert got["tenantId"] == "tenant-1"
    assert got["color"] == "blue"
    assert list(got) == ["timestamp", "level", "message", "logger", "requestId", "tenantId", "color", "obj"]


def test_json_formatter_exception_keys() -> None:
    got, expected, _ = _both(lambda: _record("failed", level=logging.ERROR, exc=True))
    assert got == expected
    assert list(got) == ["timestamp", "level", "message", "logger", "stackTrace", "errorType",
                         "errorMessage", "requestId", "location"]
    assert got["errorType"] == "ValueError"
    assert got["errorMessage"] == "kaput"
    assert got["location"] == "/var/task/app.py:handler:12"
    assert got["stackTrace"][0].startswith(f'  File "{__file__}"')


def test_json_formatter_has_no_task_name() -> None:
    # Python 3.12+ sets taskName on records made inside a task; Lambda's format has no such key.
    def make() -> logging.LogRecord:
        record = _record("in a task")
        record.taskName = "Task-1"
        return record

    got = json.loads(logs.JsonFormatter().format(make()))
    assert "taskName" not in got
    assert got["message"] == "in a task"


async def test_json_formatter_no_task_name_inside_task() -> None:
    async def inside() -> str:
        record = logging.getLogger("t").makeRecord("t", logging.WARNING, "f.py", 1, "m", (), None)
        record.aws_request_id = ""
        return logs.JsonFormatter().format(record)

    line = await asyncio.wait_for(asyncio.ensure_future(inside()), T)
    assert "taskName" not in json.loads(line)


# -- text records through the root handler ---------------------------------------------------


def _handler(json_format: bool, framed: bool) -> tuple[logs.SinkHandler, CaptureSink]:
    sink = CaptureSink()
    handler = logs.SinkHandler(sink, framed=framed)  # type: ignore[arg-type]
    if json_format:
        handler.setFormatter(logs.JsonFormatter())
    else:
        formatter = logging.Formatter(logs.TEXT_FORMAT, "%Y-%m-%dT%H:%M:%S")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    return handler, sink


def test_text_line_exact_with_request_id_from_contextvar() -> None:
    handler, sink = _handler(json_format=False, framed=True)
    record = _record("hello %s", "there", level=logging.WARNING)

    def emit() -> None:
        invocation._var.set(invocation.CurrentInvocation("req-42", None, None, None))
        handler.handle(record)

    contextvars.copy_context().run(emit)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_800_000_000))
    assert sink.records == [(f"[WARNING]\t{stamp}.123Z\treq-42\thello there\n", bytes.fromhex("a55a0013"))]
    assert stamp == "2027-01-15T08:00:00"


def test_text_unframed_has_no_frame_type_and_json_has_json_types() -> None:
    handler, sink = _handler(json_format=False, framed=False)
    handler.handle(_record("x", level=logging.ERROR))
    assert sink.records[0][1] is None
    handler, sink = _handler(json_format=True, framed=True)
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL):
        handler.handle(_record("x", level=level))
    assert [t for _, t in sink.records] == [bytes.fromhex(h) for h in
                                            ("a55a000a", "a55a000e", "a55a0012", "a55a0016", "a55a001a")]


# -- error lines -----------------------------------------------------------------------------

ERROR = {
    "errorMessage": "bad value",
    "errorType": "ValueError",
    "requestId": RID,
    "stackTrace": [
        '  File "/var/task/app.py", line 3, in handler\n    raise ValueError("bad value")\n',
        "",
        '  File "/var/task/lib.py", line 9, in helper\n    if x:\n',
    ],
}


@pytest.mark.parametrize("error", [
    ERROR,
    {"errorMessage": "", "errorType": "KeyError", "requestId": "", "stackTrace": []},
    {"errorMessage": "only message", "errorType": "", "requestId": "", "stackTrace": []},
    {"errorMessage": "Syntax error in module 'm': invalid syntax", "errorType": "Runtime.UserCodeSyntaxError",
     "requestId": "", "stackTrace": ['  File "/var/task/m.py" Line 1\n    def f(:\n']},
])
def test_text_error_lines_equal_reference(error: dict[str, Any]) -> None:
    from awslambdaric import bootstrap

    # The reference fixes its format at import from AWS_LAMBDA_LOG_FORMAT; conftest removes a
    # host's value before any test imports it, so this always compares the text format.
    assert bootstrap._AWS_LAMBDA_LOG_FORMAT == ref_log.LogFormat.TEXT
    ours, theirs = CaptureSink(), CaptureSink()
    made = logs.Logs({})
    made.sink = ours  # type: ignore[assignment]
    made.error(error)
    bootstrap.log_error(error, theirs)
    assert ours.errors == theirs.errors
    assert len(ours.errors) == 1


def test_text_error_line_exact_bytes(capsys: pytest.CaptureFixture[str]) -> None:
    made = logs.Logs({})
    made.error(ERROR)
    nb = "\u00a0"
    assert capsys.readouterr().out == (
        "[ERROR] ValueError: bad value\rTraceback (most recent call last):\r"
        f'{nb * 2}File "/var/task/app.py", line 3, in handler\r{nb * 4}raise ValueError("bad value")\r'
        f'\r{nb * 2}File "/var/task/lib.py", line 9, in helper\r{nb * 4}if x:\n')


def test_json_error_line() -> None:
    made = logs.Logs({"AWS_LAMBDA_LOG_FORMAT": "JSON"})
    sink = CaptureSink()
    made.sink = sink  # type: ignore[assignment]
    made.error(ERROR)
    assert len(sink.errors) == 1 and len(sink.errors[0]) == 1
    got = json.loads(sink.errors[0][0])
    assert list(got) == ["timestamp", "level", "errorMessage", "errorType", "requestId", "stackTrace"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", got.pop("timestamp"))
    assert got == {"level": "ERROR", **ERROR}


# -- the real runtime process ----------------------------------------------------------------


def parse_frames(data: bytes) -> list[tuple[int, int, bytes]]:
    """(type, µs timestamp, message) per frame; asserts the stream is whole frames only."""
    frames = []
    while data:
        assert len(data) >= 16, data
        ftype = int.from_bytes(data[:4], "big")
        length = int.from_bytes(data[4:8], "big")
        ts = int.from_bytes(data[8:16], "big")
        assert len(data) >= 16 + length, (length, data)
        frames.append((ftype, ts, data[16:16 + length]))
        data = data[16 + length:]
    return frames


async def serve(api: FakeRuntimeAPI, events: list[dict[str, Any]], env: dict[str, str],
                rid: str = "rid-1", headers: dict[str, str | None] | None = None) -> RuntimeProcess:
    for i, event in enumerate(events):
        api.push(event, request_id=f"{rid}-{i}" if len(events) > 1 else rid, headers=headers)
    proc = await run_runtime([sys.executable, "-m", "aruntime", HANDLER], api, env=env)
    await api.wait(2 * len(events), timeout=T)  # the last /next is still waiting
    api.finish()
    assert await proc.wait(T) == 1
    return proc


@pytest.mark.parametrize("env", [{}, {"AWS_LAMBDA_LOG_LEVEL": "VERBOSE"}], ids=["unset", "unknown"])
async def test_text_format_lines_on_stdout(env: dict[str, str]) -> None:
    async with FakeRuntimeAPI() as api:
        proc = await serve(api, [{"do": "levels"}], env)
    out = proc.stdout.decode()
    # No usable AWS_LAMBDA_LOG_LEVEL: the root stays at WARNING, debug and info are not shown.
    assert "debug line" not in out and "info line" not in out
    ts = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.search(rf"(?m)^\[WARNING\]\t{ts}\trid-1\twarning line\nsecond line\n", out), out
    assert re.search(rf"(?m)^\[ERROR\]\t{ts}\trid-1\t\{{'structured': True, 'n': 2\}}\n", out), out
    assert re.search(rf"(?m)^\[WARNING\]\t{ts}\trid-1\twith extra\n", out), out


async def test_json_format_one_object_per_record() -> None:
    async with FakeRuntimeAPI() as api:
        proc = await serve(api, [{"do": "levels"}, {"do": "fail"}],
                           {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "DEBUG"},
                           headers={"Lambda-Runtime-Aws-Tenant-Id": "tenant-9"})
    lines = proc.stdout.decode().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    mine = [r for r in records if r.get("logger") == "core"]
    assert [(r["level"], r["message"]) for r in mine] == [
        ("DEBUG", "debug line"), ("INFO", "info line 1"), ("WARNING", "warning line\nsecond line"),
        ("ERROR", {"structured": True, "n": 2}), ("WARNING", "with extra"), ("ERROR", "caught it")]
    assert all(r["requestId"] == "rid-1-0" for r in mine)
    assert all(r["tenantId"] == "tenant-9" for r in mine)
    assert mine[4]["color"] == "blue"
    assert mine[5]["errorType"] == "ValueError" and mine[5]["errorMessage"] == "logged failure"
    assert not any("taskName" in r for r in records)
    failure = [r for r in records if r.get("errorMessage") == "invocation failed"]
    assert len(failure) == 1
    assert list(failure[0]) == ["timestamp", "level", "errorMessage", "errorType", "requestId", "stackTrace"]
    assert failure[0]["requestId"] == "rid-1-1"
    assert failure[0]["level"] == "ERROR"


async def test_trace_level_shows_debug_in_text() -> None:
    async with FakeRuntimeAPI() as api:
        proc = await serve(api, [{"do": "levels"}], {"AWS_LAMBDA_LOG_LEVEL": "TRACE"})
    out = proc.stdout.decode()
    assert re.search(r"(?m)^\[DEBUG\]\t\S+\trid-1\tdebug line\n", out), out
    assert re.search(r"(?m)^\[INFO\]\t\S+\trid-1\tinfo line 1\n", out), out


async def test_debug_level_shows_no_runtime_internal_records() -> None:
    # e.g. asyncio's "Using selector" record, if the loop were made after logging is set up.
    async with FakeRuntimeAPI() as api:
        proc = await serve(api, [{"do": "ok"}], {"AWS_LAMBDA_LOG_LEVEL": "DEBUG"})
    assert proc.stdout == b""


async def start_with_telemetry(api: FakeRuntimeAPI, env: dict[str, str]) -> tuple[RuntimeProcess, asyncio.Future[bytes]]:
    """Start the runtime with a telemetry pipe; returns the process and the pipe's full contents."""
    r, w = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "aruntime", HANDLER,
            env=runtime_env(api, {**env, "_LAMBDA_TELEMETRY_LOG_FD": str(w)}),
            cwd=str(REPO_ROOT), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, pass_fds=(w,))
    finally:
        os.close(w)  # the child holds the only write end now: EOF when it exits

    def read_all() -> bytes:
        data = b""
        try:
            while chunk := os.read(r, 65536):
                data += chunk
        finally:
            os.close(r)
        return data

    rp = RuntimeProcess(proc, T)
    api.processes.append(rp)  # killed when the fake closes, which also ends read_all
    return rp, asyncio.ensure_future(asyncio.to_thread(read_all))


@pytest.mark.parametrize("json_format", [False, True])
async def test_telemetry_fd_frames(json_format: bool) -> None:
    env = {"AWS_LAMBDA_LOG_LEVEL": "INFO"}
    if json_format:
        env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
    async with FakeRuntimeAPI() as api:
        api.push({"do": "levels"}, request_id="r-0")
        api.push({"do": "fail"}, request_id="r-1")
        api.push({"do": "env"}, request_id="r-2")
        before = time.time_ns() // 1000
        proc, pipe = await start_with_telemetry(api, env)
        exchanges = await api.wait(6, timeout=T)
        api.finish()
        assert await proc.wait(T) == 1
        data = await asyncio.wait_for(pipe, T)
        after = time.time_ns() // 1000
    frames = parse_frames(data)
    assert all(before <= ts <= after for _, ts, _ in frames)
    base = 0xA55A0002 if json_format else 0xA55A0003
    info, warning, error = base + 0x0C, base + 0x10, base + 0x14
    mine = [(t, m.decode()) for t, _, m in frames if b"LAMBDA_WARNING" not in m]
    assert [t for t, _ in mine] == [info, warning, error, warning, error, error]
    texts = [m for _, m in mine]
    if json_format:
        parsed = [json.loads(m) for m in texts]
        assert [p.get("message") for p in parsed[:5]] == [
            "info line 1", "warning line\nsecond line", {"structured": True, "n": 2}, "with extra", "caught it"]
        assert [p["requestId"] for p in parsed] == ["r-0"] * 5 + ["r-1"]
        assert parsed[5]["errorMessage"] == "invocation failed"
    else:
        assert re.fullmatch(r"\[INFO\]\t\S+Z\tr-0\tinfo line 1\n", texts[0])
        # A multi-line record is one frame, its newline kept inside.
        assert re.fullmatch(r"\[WARNING\]\t\S+Z\tr-0\twarning line\nsecond line\n", texts[1])
        assert texts[4].startswith("[ERROR]\t") and "Traceback (most recent call last):\n" in texts[4]
        # The failed invocation's error line: one frame, lines joined with \n (not \r).
        assert texts[5].startswith("[ERROR] ValueError: invocation failed\nTraceback (most recent call last):\n"
                                   '\u00a0\u00a0File "')
        assert "\r" not in texts[5]
    # Nothing went to stdout through logging: it all went to the fd.
    assert b"info line" not in proc.stdout and b"invocation failed" not in proc.stdout
    # The variable is gone from the handler's environment.
    env_answer = [e for e in exchanges if e.path.endswith("/r-2/response")]
    assert env_answer[0].json()["telemetry_env"] is None


async def test_telemetry_fd_without_level_uses_default_text_frame_type() -> None:
    async with FakeRuntimeAPI() as api:
        api.push({"do": "levels"}, request_id="r-0")
        api.push({"do": "fail"}, request_id="r-1")
        proc, pipe = await start_with_telemetry(api, {})
        await api.wait(4, timeout=T)
        api.finish()
        assert await proc.wait(T) == 1
        data = await asyncio.wait_for(pipe, T)
    frames = [(t, m) for t, _, m in parse_frames(data)]
    # Unframed text records get 0xA55A0003 as in the reference; the error line 0xA55A0017.
    assert [t for t, _ in frames] == [0xA55A0003] * 4 + [0xA55A0017]
    assert frames[-1][1].startswith(b"[ERROR] ValueError: invocation failed\n")


async def test_print_reaches_stdout_before_the_response(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    async with FakeRuntimeAPI() as api:
        api.push({"do": "print_then_wait", "flag": str(flag)}, request_id="p-1")
        proc = await run_runtime([sys.executable, "-m", "aruntime", HANDLER], api)

        async def printed() -> None:
            while b"PRINTED p-1\n" not in proc.stdout:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(printed(), T)
        # The handler is still blocked on the flag, so the line cannot have come from an exit flush.
        assert not any(e.path.endswith("/response") for e in api.exchanges)
        flag.touch()
        response = await api.wait_for(lambda e: e.path.endswith("/p-1/response"), timeout=T)
        assert response.json() == {"flag_seen": True}
        api.finish()
        assert await proc.wait(T) == 1
    assert proc.stdout.startswith(b"PRINTED p-1\n")
