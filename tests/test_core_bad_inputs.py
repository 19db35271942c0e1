"""Inputs the reference client crashes on: each gets a clear error and the runtime lives on.

Every scenario runs under a `def` and an `async def` handler (they take different paths through
the runtime), and every one ends with a normal invocation that must be served.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fakeapi import Exchange, FakeRuntimeAPI, run_runtime

T = 10.0
RUNTIME = [sys.executable, "-m", "aruntime"]
KINDS = ["handler", "async_handler"]
NEXT = "/2018-06-01/runtime/invocation/next"
PROBE = Path(__file__).resolve().parent / "handlers" / "core_probe.py"


async def serve_then_check(api: FakeRuntimeAPI, kind: str, env: dict[str, str] | None = None
                           ) -> tuple[bytes, list[Exchange]]:
    """Push a final good event, run until it is answered, end the runtime; (stdout, exchanges)."""
    last = api.push({"final": True}, request_id="final")
    proc = await run_runtime([*RUNTIME, f"tests.handlers.core_probe.{kind}"], api, env=env)
    served = await api.wait_for(lambda e: e.path.endswith(f"/{last}/response"), timeout=T)
    api.finish()
    assert await proc.wait(T) == 1
    assert served.status == 202 and served.json()["event"] == {"final": True}, served
    return proc.stdout, list(api.exchanges)


def posts(exchanges: list[Exchange]) -> list[Exchange]:
    return [e for e in exchanges if e.method == "POST"]


@pytest.mark.parametrize("kind", KINDS)
async def test_missing_request_id_logged_not_posted(fake_api: FakeRuntimeAPI, kind: str) -> None:
    fake_api.push({"n": 1}, headers={"Lambda-Runtime-Aws-Request-Id": None})
    stdout, exchanges = await serve_then_check(fake_api, kind)
    # Nothing can be answered without an id: the only post is the final event's response.
    assert [e.target for e in posts(exchanges)] == ["/2018-06-01/runtime/invocation/final/response"]
    assert [e.target for e in exchanges[:2]] == [NEXT, NEXT]
    assert (b"[ERROR] Runtime.MissingRequestId: The Runtime API sent an invocation without "
            b"Lambda-Runtime-Aws-Request-Id; it cannot be answered\r") in stdout


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("deadline", ["0", "abc", "-1", "", None])
async def test_bad_deadline_gives_sane_remaining_time(fake_api: FakeRuntimeAPI, kind: str,
                                                      deadline: str | None) -> None:
    fake_api.push({"n": 1}, request_id="d-1", headers={"Lambda-Runtime-Deadline-Ms": deadline})
    _, exchanges = await serve_then_check(fake_api, kind)
    answer = posts(exchanges)[0]
    assert answer.target == "/2018-06-01/runtime/invocation/d-1/response"
    remaining = answer.json()["remaining_ms"]
    assert isinstance(remaining, int) and 0 < remaining <= 900_000
    assert remaining == 900_000  # "no deadline": Lambda's longest timeout


@pytest.mark.parametrize("kind", KINDS)
async def test_good_deadline_counts_down(fake_api: FakeRuntimeAPI, kind: str) -> None:
    fake_api.push({"n": 1}, request_id="g-1", deadline_ms=int(time.time() * 1000) + 30_000)
    _, exchanges = await serve_then_check(fake_api, kind)
    assert 20_000 < posts(exchanges)[0].json()["remaining_ms"] <= 30_000


@pytest.mark.parametrize("kind", KINDS)
async def test_missing_content_type_is_json(fake_api: FakeRuntimeAPI, kind: str) -> None:
    fake_api.push({"k": [1, "v"]}, request_id="c-1", content_type=None)
    _, exchanges = await serve_then_check(fake_api, kind)
    answer = posts(exchanges)[0]
    assert answer.target.endswith("/c-1/response")
    assert answer.json()["event_type"] == "dict"
    assert answer.json()["event"] == {"k": [1, "v"]}


@pytest.mark.parametrize("kind", KINDS)
async def test_non_utf8_json_event_is_unmarshal_error(fake_api: FakeRuntimeAPI, kind: str) -> None:
    fake_api.push(b'{"k": "\xff"}', request_id="u-1")
    _, exchanges = await serve_then_check(fake_api, kind)
    err = posts(exchanges)[0]
    assert err.target == "/2018-06-01/runtime/invocation/u-1/error"
    assert err.header("lambda-runtime-function-error-type") == "Runtime.UnmarshalError"
    assert err.body == json.dumps({
        "errorMessage": "Unable to unmarshal input: 'utf-8' codec can't decode byte 0xff in position 7: "
                        "invalid start byte",
        "errorType": "Runtime.UnmarshalError", "requestId": "u-1", "stackTrace": []},
        separators=(",", ":")).encode()


@pytest.mark.parametrize("kind", KINDS)
async def test_non_utf8_binary_event_is_bytes(fake_api: FakeRuntimeAPI, kind: str) -> None:
    fake_api.push(b"\xff\xfe\x00", request_id="b-1", content_type="application/octet-stream")
    _, exchanges = await serve_then_check(fake_api, kind)
    answer = posts(exchanges)[0]
    assert answer.json()["event_type"] == "bytes"
    assert answer.json()["event"] == "\xff\xfe\x00"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("header, name", [
    ("Lambda-Runtime-Client-Context", "Client Context"),
    ("Lambda-Runtime-Cognito-Identity", "Cognito Identity"),
])
async def test_context_header_not_json(fake_api: FakeRuntimeAPI, kind: str, header: str, name: str) -> None:
    fake_api.push({"n": 1}, request_id="cc-1", headers={header: "not-json",
                                                        "Lambda-Runtime-Invocation-Id": "inv-cc"})
    _, exchanges = await serve_then_check(fake_api, kind)
    err = posts(exchanges)[0]
    assert err.target == "/2018-06-01/runtime/invocation/cc-1/error"
    assert err.header("lambda-runtime-function-error-type") == "Runtime.LambdaContextUnmarshalError"
    assert err.header("lambda-runtime-invocation-id") == "inv-cc"
    assert err.body == json.dumps({
        "errorMessage": f"Unable to parse {name} JSON: Expecting value: line 1 column 1 (char 0)",
        "errorType": "Runtime.LambdaContextUnmarshalError", "requestId": "cc-1", "stackTrace": []},
        separators=(",", ":")).encode()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("do, error_type, message", [
    ("system_exit", "SystemExit", "3"),
    ("keyboard_interrupt", "KeyboardInterrupt", "stop"),
])
async def test_system_exit_and_keyboard_interrupt_reported(fake_api: FakeRuntimeAPI, kind: str, do: str,
                                                           error_type: str, message: str) -> None:
    fake_api.push({"do": do}, request_id="s-1")
    stdout, exchanges = await serve_then_check(fake_api, kind)
    err = posts(exchanges)[0]
    assert err.target == "/2018-06-01/runtime/invocation/s-1/error"
    assert err.header("lambda-runtime-function-error-type") == f"Function.{error_type}"
    body: dict[str, Any] = err.json()
    assert list(body) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert (body["errorMessage"], body["errorType"], body["requestId"]) == (message, error_type, "s-1")
    assert body["stackTrace"][-1].endswith(
        "raise SystemExit(3)\n" if do == "system_exit" else 'raise KeyboardInterrupt("stop")\n')
    # What the runtime cuts is its own package's frames (wherever the checkout lives): only the
    # handler's file is left.
    assert {Path(line.split('"')[1]).resolve() for line in body["stackTrace"]} == {PROBE}
    assert f"[ERROR] {error_type}: {message}\r".encode() in stdout


@pytest.mark.parametrize("kind", KINDS)
async def test_many_bad_inputs_in_a_row(fake_api: FakeRuntimeAPI, kind: str) -> None:
    # All of the above back to back in one process: none of them may poison the next.
    fake_api.push({}, headers={"Lambda-Runtime-Aws-Request-Id": None})
    fake_api.push({"do": "system_exit"}, request_id="m-1")
    fake_api.push(b"\xff", request_id="m-2")
    fake_api.push({}, request_id="m-3", headers={"Lambda-Runtime-Client-Context": "{"})
    fake_api.push({"do": "keyboard_interrupt"}, request_id="m-4")
    fake_api.push({"n": 5}, request_id="m-5", content_type=None, headers={"Lambda-Runtime-Deadline-Ms": "x"})
    _, exchanges = await serve_then_check(fake_api, kind)
    assert [(e.target.rsplit("/", 2)[-2:], e.status) for e in posts(exchanges)] == [
        (["m-1", "error"], 202), (["m-2", "error"], 202), (["m-3", "error"], 202), (["m-4", "error"], 202),
        (["m-5", "response"], 202), (["final", "response"], 202)]
    assert {e.conn for e in exchanges} == {0}  # and the connection survived all of it
