"""The unmodified reference client (awslambdaric) runs against the emulator."""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from pathlib import Path

from .helpers import ECHO, emulator, invoke


async def test_buffered_result_and_report_lines() -> None:
    async with emulator(timeout=5) as emu:
        status, headers, body = await invoke(emu, {"print": "hello from the function"})
        assert status == 200
        assert "X-Amz-Function-Error" not in headers
        assert headers["X-Amz-Executed-Version"] == "$LATEST"
        result = json.loads(body)
        assert result["echo"] == {"print": "hello from the function"}
        assert result["function_name"] == "echo"
        # Deadline header consistent with --timeout 5.
        assert 3000 < result["remaining_ms"] <= 5000
        request_id = result["request_id"]
        await emu.logs.wait_for(f"REPORT RequestId: {request_id}")
        status, _, body = await invoke(emu, {"n": 2})
        second = json.loads(body)["request_id"]
        await emu.logs.wait_for(f"REPORT RequestId: {second}")
        text = emu.logs.text()
        assert f"START RequestId: {request_id} Version: $LATEST" in text
        assert f"END RequestId: {request_id}" in text
        assert "hello from the function" in text
        first_report = await emu.logs.wait_for(f"REPORT RequestId: {request_id}")
        assert re.search(
            r"Duration: \d+\.\d\d ms\tBilled Duration: \d+ ms\tMemory Size: 128 MB\t"
            r"Max Memory Used: [1-9]\d* MB\tInit Duration: \d+\.\d\d ms",
            first_report,
        ), first_report
        # Init Duration only on a process's first invoke.
        assert "Init Duration" not in await emu.logs.wait_for(f"REPORT RequestId: {second}")


async def test_handler_error_is_unhandled_function_error() -> None:
    async with emulator() as emu:
        status, headers, body = await invoke(emu, {"raise": "boom"})
        assert status == 200
        assert headers["X-Amz-Function-Error"] == "Unhandled"
        error = json.loads(body)
        assert error["errorType"] == "ValueError"
        assert error["errorMessage"] == "boom"
        assert any("raise ValueError" in frame for frame in error["stackTrace"])
        # The process survives a handler error: same environment, no new init.
        pid = emu.sandbox.pid
        status, headers, _ = await invoke(emu, {"ok": 1})
        assert "X-Amz-Function-Error" not in headers and emu.sandbox.pid == pid


async def test_init_error_fails_the_invoke_and_the_next_invoke_restarts(tmp_path: Path) -> None:
    # Fails to import the first time only: proves the environment is started again.
    marker = tmp_path / "imported-once"
    (tmp_path / "flaky.py").write_text(
        "import pathlib\n"
        f"marker = pathlib.Path({str(marker)!r})\n"
        "if not marker.exists():\n"
        "    marker.write_text('x')\n"
        "    raise RuntimeError('first import fails')\n"
        "def handler(event, context):\n"
        "    return 'recovered'\n"
    )
    async with emulator(f"{tmp_path}/flaky.py:handler") as emu:
        started = time.monotonic()
        status, headers, body = await invoke(emu, {})
        elapsed_ms = (time.monotonic() - started) * 1000
        assert headers["X-Amz-Function-Error"] == "Unhandled"
        error = json.loads(body)
        assert error["errorType"] == "RuntimeError"
        assert error["errorMessage"] == "first import fails"
        report = await emu.logs.wait_for("INIT_REPORT")
        found = re.fullmatch(r"INIT_REPORT Init Duration: (\d+\.\d\d) ms\tPhase: init\tStatus: error"
                             r"\tError Type: (\S+)", report)
        assert found, report
        assert 0 < float(found.group(1)) <= elapsed_ms
        # The reference sends the bare class name (RuntimeError) as the error type; the service
        # keeps only Runtime.X / Function.X types and records anything else as Runtime.Unknown.
        assert found.group(2) == "Runtime.Unknown"
        status, headers, body = await invoke(emu, {})
        assert status == 200 and "X-Amz-Function-Error" not in headers
        assert json.loads(body) == "recovered"


async def test_missing_handler_is_reported_on_every_invoke() -> None:
    async with emulator(ECHO.replace(":handler", ":nope")) as emu:
        for _ in range(2):
            _, headers, body = await invoke(emu, {})
            assert headers["X-Amz-Function-Error"] == "Unhandled"
            assert json.loads(body)["errorType"] == "Runtime.HandlerNotFound"


async def test_timeout_kills_and_the_next_invoke_works() -> None:
    async with emulator(timeout=1.0) as emu:
        await invoke(emu, {"warm": 1})
        first_pid = emu.sandbox.pid
        started = time.monotonic()
        status, headers, body = await invoke(emu, {"sleep": 20})
        elapsed = time.monotonic() - started
        assert 0.9 < elapsed < 5
        assert headers["X-Amz-Function-Error"] == "Unhandled"
        error = json.loads(body)
        assert error["errorType"] == "Sandbox.Timedout"
        assert error["errorMessage"].endswith("Task timed out after 1.00 seconds")
        report = await emu.logs.wait_for("Status: timeout")
        fields = dict(field.split(": ", 1) for field in report.split("\t"))
        duration = float(fields["Duration"].removesuffix(" ms"))
        # Ended by the 1 s timeout, within the time the caller waited.
        assert 1000.0 <= duration <= elapsed * 1000, (duration, elapsed)
        assert fields["Billed Duration"] == f"{math.ceil(duration)} ms"
        assert (fields["Memory Size"], fields["Status"]) == ("128 MB", "timeout")
        status, headers, body = await invoke(emu, {"after": "timeout"})
        assert status == 200 and "X-Amz-Function-Error" not in headers
        assert json.loads(body)["echo"] == {"after": "timeout"}
        assert emu.sandbox.pid != first_pid


async def test_crash_fails_with_exit_error_and_restarts() -> None:
    async with emulator() as emu:
        _, headers, body = await invoke(emu, {"exit": 3})
        assert headers["X-Amz-Function-Error"] == "Unhandled"
        error = json.loads(body)
        assert error["errorType"] == "Runtime.ExitError"
        assert error["errorMessage"].endswith("Runtime exited with error: exit status 3")
        _, headers, body = await invoke(emu, {"alive": True})
        assert "X-Amz-Function-Error" not in headers
        assert json.loads(body)["echo"] == {"alive": True}


async def test_concurrent_invokes_queue_one_at_a_time() -> None:
    async with emulator(timeout=10) as emu:
        await invoke(emu, {"warm": 1})
        started = time.monotonic()
        results = await asyncio.gather(*(invoke(emu, {"sleep": 0.4, "i": i}) for i in range(3)))
        elapsed = time.monotonic() - started
        assert [json.loads(b)["echo"]["i"] for _, _, b in results] == [0, 1, 2]
        assert elapsed >= 1.15  # three 0.4 s invokes, never overlapping


async def test_client_context_reaches_the_function(tmp_path: Path) -> None:
    (tmp_path / "ctx.py").write_text(
        "def handler(event, context):\n"
        "    return {'custom': context.client_context.custom, 'arn': context.invoked_function_arn}\n"
    )
    import base64

    cc = base64.b64encode(json.dumps({"custom": {"k": "v"}, "env": {}, "client": {}}).encode()).decode()
    async with emulator(f"{tmp_path}/ctx.py:handler") as emu:
        _, _, body = await invoke(emu, {}, headers={"X-Amz-Client-Context": cc})
        result = json.loads(body)
        assert result["custom"] == {"k": "v"}
        assert result["arn"].endswith(":function:ctx")


async def test_service_errors_never_tracebacks() -> None:
    async with emulator() as emu:
        status, headers, body = await invoke(emu, b"{not json")
        assert status == 400 and headers["X-Amzn-ErrorType"] == "InvalidRequestContentException"
        status, headers, body = await invoke(emu, {}, path="/2015-03-31/functions/other/invocations")
        assert status == 404 and headers["X-Amzn-ErrorType"] == "ResourceNotFoundException"
        assert "Function not found" in json.loads(body)["Message"]
        status, headers, _ = await invoke(emu, b"x" * (6 * 1024 * 1024 + 1))
        assert status == 413 and headers["X-Amzn-ErrorType"] == "RequestEntityTooLargeException"
        # Still serving.
        status, headers, body = await invoke(emu, {"still": "here"})
        assert status == 200 and json.loads(body)["echo"] == {"still": "here"}


async def test_event_invocation_returns_202_at_once() -> None:
    async with emulator() as emu:
        status, _, body = await invoke(emu, {"print": "async-run"}, headers={"X-Amz-Invocation-Type": "Event"})
        assert status == 202 and body == b""
        await emu.logs.wait_for("async-run")
        status, _, _ = await invoke(emu, {}, headers={"X-Amz-Invocation-Type": "DryRun"})
        assert status == 204


async def test_log_tail() -> None:
    import base64

    async with emulator() as emu:
        _, headers, _ = await invoke(emu, {"print": "tail me"}, headers={"X-Amz-Log-Type": "Tail"})
        log = base64.b64decode(headers["X-Amz-Log-Result"]).decode()
        assert "START RequestId" in log and "tail me" in log and "REPORT RequestId" in log





async def test_reference_client_with_max_concurrency_overlaps() -> None:
    async with emulator(timeout=10, env={"AWS_LAMBDA_MAX_CONCURRENCY": "2"}) as emu:
        await invoke(emu, {"warm": 1})
        started = time.monotonic()
        results = await asyncio.gather(invoke(emu, {"sleep": 1}), invoke(emu, {"sleep": 1}))
        assert all("X-Amz-Function-Error" not in h for _, h, _ in results)
        assert time.monotonic() - started < 1.8  # the two 1 s invokes ran at once


async def test_large_result_through_the_reference_client(tmp_path: Path) -> None:
    # curl inside the reference client sends `Expect: 100-continue` for big bodies.
    (tmp_path / "big.py").write_text("def handler(event, context):\n    return 'x' * event['n']\n")
    async with emulator(f"{tmp_path}/big.py:handler") as emu:
        status, headers, body = await invoke(emu, {"n": 5_000_000})
        assert status == 200 and len(body) == 5_000_002
        _, headers, body = await invoke(emu, {"n": 7_000_000})
        assert headers["X-Amz-Function-Error"] == "Unhandled"
        assert json.loads(body)["errorType"] == "Function.ResponseSizeTooLarge"
        status, headers, body = await invoke(emu, {"n": 3})
        assert body == b'"xxx"'
