"""Nothing in the error-reporting path raises (breaker finding 1, a sibling of issue 10's
"handlers that break the reporting path").

A handler fails in a way that makes its error hard to describe: its cwd was removed (the X-Ray
cause reads os.getcwd()), its exception's `__str__` raises SystemExit / KeyboardInterrupt /
GeneratorExit (directly or as the cause of the raised one), its class's `__name__` raises. The
invocation is still answered with /error (or the stream's error trailers after the first byte),
with a fallback message; the error is logged; the other invocations in flight (N=4) are
answered; the runtime keeps serving and exits only on the fake's 500 (status 1).
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest

from fakeapi import Exchange, FakeRuntimeAPI, run_runtime

H = "tests.handlers.reporting_breakers."
T = 20.0
# event["do"] -> (errorType, errorMessage)
CASES = {
    "str_exits": ("StrExits", "<unprintable StrExits object>"),
    "str_interrupts": ("StrInterrupts", "<unprintable StrInterrupts object>"),
    "str_generator_exit": ("StrGeneratorExit", "<unprintable StrGeneratorExit object>"),
    "cause_str_exits": ("ValueError", "outer"),
    "name_exits": ("NameExits", "named"),
    "gone_cwd": ("ValueError", "failed in a removed directory"),  # the cwd stays gone: run apart
}


async def _serve(api: FakeRuntimeAPI, handler: str, concurrency: int, expected: set[str],
                 env: dict[str, str] | None = None) -> tuple[dict[str, Exchange], bytes]:
    """Run the runtime until every invocation in `expected` is answered, then stop it with the
    fake's 500 (exit status 1); its POSTs by request id, and its stdout."""
    proc = await run_runtime([sys.executable, "-m", "aruntime", H + handler], api,
                             env={"AWS_LAMBDA_MAX_CONCURRENCY": str(concurrency), **(env or {})})
    return await api.serve_until_answered(proc, expected, timeout=T), proc.stdout


def _int_str_error() -> str:
    """This Python's words for an integer with too many digits for str() (3.10 and 3.11 differ)."""
    try:
        str(10**5000)
    except ValueError as e:
        return str(e)
    raise AssertionError("str(10**5000) worked: no limit on integer string conversion")


def _logged(stdout: bytes) -> list[tuple[str, str]]:
    """(errorType, errorMessage) of each error the runtime logged, text (N=1) or JSON (N>1)."""
    out = []
    for line in stdout.split(b"\n"):
        if line.startswith(b"[ERROR] "):
            head = line.split(b"\r", 1)[0].decode()[len("[ERROR] "):]
            name, _, message = head.partition(": ")
            out.append((name, message))
        elif line.startswith(b"{"):
            record = json.loads(line)
            if record.get("level") == "ERROR":
                out.append((record["errorType"], record["errorMessage"]))
    return out


@pytest.mark.parametrize("concurrency", [1, 4])
@pytest.mark.parametrize("handler", ["handler", "async_handler"])
@pytest.mark.parametrize("part", ["printable cwd", "cwd gone"])
async def test_unreportable_failures_are_still_answered(fake_api: FakeRuntimeAPI, handler: str,
                                                        concurrency: int, part: str) -> None:
    # The cwd is the process's: a sync handler at N=4 removing it, in its worker thread, would
    # race with the others' X-Ray causes (which read it) — so it fails in a runtime of its own.
    cases = {do: case for do, case in CASES.items() if (do == "gone_cwd") == (part == "cwd gone")}
    rids = {}
    slow = []
    for n, do in enumerate(cases):
        # Under N=4, slow invocations are in flight around each failing one.
        slow.append(fake_api.push({"n": n, "sleep": 0.3 if concurrency > 1 else 0}))
        rids[do] = fake_api.push({"do": do})
    final = fake_api.push({"n": "final"})
    posts, stdout = await _serve(fake_api, handler, concurrency,
                                 set(rids.values()) | set(slow) | {final})
    for n, rid in enumerate(slow):
        assert posts[rid].json() == {"ok": n}
    assert posts[final].json() == {"ok": "final"}
    for do, (error_type, message) in cases.items():
        ex = posts[rids[do]]
        assert (ex.path, ex.status) == (f"/2018-06-01/runtime/invocation/{rids[do]}/error", 202)
        assert ex.header("lambda-runtime-function-error-type") == f"Function.{error_type}"
        error = ex.json()
        assert list(error) == ["errorMessage", "errorType", "requestId", "stackTrace"]
        assert (error["errorType"], error["errorMessage"], error["requestId"]) == (
            error_type, message, rids[do])
        assert error["stackTrace"] and "_fail" in error["stackTrace"][-1], error
        cause = json.loads(ex.header("lambda-runtime-function-xray-error-cause") or "")
        assert cause["exceptions"][0]["message"] == message
        assert cause["working_directory"] == ("" if do == "gone_cwd" else str(
            Path(__file__).resolve().parent.parent)), cause
    assert sorted(_logged(stdout)) == sorted(cases.values()), stdout.decode()


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_unreportable_failure_after_first_byte_ends_the_stream(
        fake_api: FakeRuntimeAPI, concurrency: int) -> None:
    rids = {do: fake_api.push({"do": do}) for do in CASES}
    final = fake_api.push({"n": "final"})
    posts, stdout = await _serve(fake_api, "generator", concurrency, set(rids.values()) | {final})
    assert [c for _, c in posts[final].chunks] == [b"first", b"ok"]
    for do, (error_type, message) in CASES.items():
        ex = posts[rids[do]]
        assert [c for _, c in ex.chunks] == [b"first"], ex
        assert ex.trailer("lambda-runtime-function-error-type") == f"Function.{error_type}"
        body = base64.b64decode(ex.trailer("lambda-runtime-function-error-body") or "", validate=True)
        error = json.loads(body)
        assert (error["errorType"], error["errorMessage"]) == (error_type, message)
    assert sorted(_logged(stdout)) == sorted(CASES.values()), stdout.decode()


async def test_unprintable_init_error_is_reported(fake_api: FakeRuntimeAPI, tmp_path: Path) -> None:
    (tmp_path / "initfail.py").write_text(
        "from tests.handlers.reporting_breakers import StrExits\n"
        "raise StrExits()\n")
    proc = await run_runtime([sys.executable, "-m", "aruntime", "initfail.handler"], fake_api,
                             env={"LAMBDA_TASK_ROOT": str(tmp_path)})
    assert await proc.wait(T) == 1, proc.stderr.decode()  # not StrExits's SystemExit(3)
    (ex,) = fake_api.exchanges
    assert ex.path == "/2018-06-01/runtime/init/error" and ex.status == 202
    assert ex.header("lambda-runtime-function-error-type") == "StrExits"
    assert ex.json()["errorMessage"] == "<unprintable StrExits object>"
    assert b"[ERROR] StrExits: <unprintable StrExits object>\r" in proc.stdout


@pytest.mark.parametrize("concurrency", [1, 4])
@pytest.mark.parametrize("handler", ["result", "async_result", "returning_generator"])
async def test_unmarshallable_results_are_the_runtimes_marshal_error(
        fake_api: FakeRuntimeAPI, handler: str, concurrency: int) -> None:
    # Breaker finding 7: the reference's Runtime.MarshalError with no stack, never a
    # Function.RecursionError / Function.ValueError with the json module's frames; a lone
    # surrogate (half an emoji cut from UTF-16 text) goes back as a valid JSON escape.
    deep = fake_api.push({"r": "deep"})
    huge = fake_api.push({"r": "huge_int"})
    echo = fake_api.push(b'{"r": "echo", "text": "cut emoji \\ud83d"}')
    posts, stdout = await _serve(fake_api, handler, concurrency, {deep, huge, echo})
    assert posts[echo].path.endswith("/response")
    assert posts[echo].body == b'"cut emoji \\ud83d"'
    assert posts[echo].header("content-type") == "application/json"
    messages = {
        deep: "Unable to marshal response: maximum recursion depth exceeded while encoding a "
              "JSON object",
        huge: "Unable to marshal response: " + _int_str_error(),
    }
    for rid, message in messages.items():
        ex = posts[rid]
        assert ex.path == f"/2018-06-01/runtime/invocation/{rid}/error"
        assert ex.header("lambda-runtime-function-error-type") == "Runtime.MarshalError"
        error = ex.json()
        assert (error["errorType"], error["stackTrace"]) == ("Runtime.MarshalError", [])
        assert error["errorMessage"] == message, error
    assert sorted(t for t, _ in _logged(stdout)) == ["Runtime.MarshalError"] * 2, stdout.decode()


async def test_logging_an_unprintable_exception_does_not_fail_the_invocation(
        fake_api: FakeRuntimeAPI) -> None:
    # The JSON log format reads the exception's str() and its class's name: a __str__ raising
    # SystemExit made the handler's logger.exception() raise it.
    rid = fake_api.push({})
    posts, stdout = await _serve(fake_api, "logs_hostile", 1, {rid},
                                 env={"AWS_LAMBDA_LOG_FORMAT": "JSON"})
    assert posts[rid].json() == {"ok": True}
    records = [json.loads(line) for line in stdout.splitlines() if line.startswith(b"{")]
    caught = [(r["errorType"], r["errorMessage"]) for r in records if r.get("message") == "caught"]
    assert caught == [("StrExits", "<unprintable StrExits object>"), ("NameExits", "")]
