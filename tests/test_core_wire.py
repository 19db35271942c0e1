"""The real runtime process against the recording fake Runtime API: exact bytes on the wire.

docs/SPEC.md §1 (init errors), §2 (responses, errors, Invocation-Id echo, keep-alive), plus the async
contract: one event loop for the life of the process.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from aruntime import __version__
from fakeapi import DEFAULT_ARN, REPO_ROOT, Exchange, FakeRuntimeAPI, RuntimeProcess, run_runtime

T = 10.0
UA = f"aruntime/{__version__} (python/{sys.version_info[0]}.{sys.version_info[1]}.{sys.version_info[2]})"
PROBE = REPO_ROOT / "tests" / "handlers" / "core_probe.py"
RAISES = REPO_ROOT / "tests" / "handlers" / "core_init_raises.py"
RUNTIME = [sys.executable, "-m", "aruntime"]


def head(api: FakeRuntimeAPI, method: str, target: str, *headers: str) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {api.address}", f"User-Agent: {UA}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def line_of(path: Path, text: str) -> int:
    """1-based number of the only line of `path` that is `text` (indentation aside)."""
    hits = [i for i, line in enumerate(path.read_text().splitlines(), 1) if line.strip() == text]
    assert len(hits) == 1, (path, text, hits)
    return hits[0]


async def run(api: FakeRuntimeAPI, handler: str, n: int, env: dict[str, str] | None = None,
              cwd: str | None = None) -> tuple[RuntimeProcess, list[Exchange]]:
    """Run the runtime until it made `n` recorded requests, then end it (exit status 1)."""
    proc = await run_runtime([*RUNTIME, handler], api, env=env, cwd=cwd)
    exchanges = await api.wait(n, timeout=T)
    api.finish()
    assert await proc.wait(T) == 1
    return proc, exchanges


L_ACT = line_of(PROBE, "_raise_value_error()")
L_RAISE = line_of(PROBE, 'raise ValueError("bad value")')
L_INIT_CALL = line_of(RAISES, "_boom()")
L_INIT_RAISE = line_of(RAISES, 'raise RuntimeError("init exploded")')


# -- buffered responses ----------------------------------------------------------------------


async def test_buffered_response_exact_bytes(fake_api: FakeRuntimeAPI) -> None:
    rid = fake_api.push({"a": [1, 2]}, request_id="r-1", headers={"Lambda-Runtime-Invocation-Id": "inv-1"})
    _, ex = await run(fake_api, "tests.handlers.core_probe.echo", 2)
    assert ex[0].raw == head(fake_api, "GET", "/2018-06-01/runtime/invocation/next")
    body = b'{"event":{"a":[1,2]},"rid":"r-1"}'
    assert ex[1].raw == head(
        fake_api, "POST", f"/2018-06-01/runtime/invocation/{rid}/response",
        "Content-Type: application/json", f"Content-Length: {len(body)}",
        "Lambda-Runtime-Invocation-Id: inv-1") + body
    assert ex[1].status == 202


async def test_bytes_result_raw_and_no_echo_without_invocation_id(fake_api: FakeRuntimeAPI) -> None:
    fake_api.push({"do": "bytes"}, request_id="r-2")
    _, ex = await run(fake_api, "tests.handlers.core_probe.echo", 2)
    assert ex[1].raw == head(
        fake_api, "POST", "/2018-06-01/runtime/invocation/r-2/response",
        "Content-Type: application/unknown", "Content-Length: 5") + b"\x00\xffraw"


async def test_async_handler_response(fake_api: FakeRuntimeAPI) -> None:
    fake_api.push('"x"', request_id="r-3", headers={"Lambda-Runtime-Invocation-Id": "inv-3"})
    _, ex = await run(fake_api, "tests.handlers.core_probe.async_echo", 2)
    body = b'{"event":"x","rid":"r-3"}'
    assert ex[1].raw == head(
        fake_api, "POST", "/2018-06-01/runtime/invocation/r-3/response",
        "Content-Type: application/json", f"Content-Length: {len(body)}",
        "Lambda-Runtime-Invocation-Id: inv-3") + body


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("handler", ["handler", "async_handler"])
async def test_error_post_exact(fake_api: FakeRuntimeAPI, handler: str) -> None:
    fake_api.push({"do": "value_error"}, request_id="e-1", headers={"Lambda-Runtime-Invocation-Id": "inv-e"})
    proc, ex = await run(fake_api, f"tests.handlers.core_probe.{handler}", 2)
    err = ex[1]
    assert err.target == "/2018-06-01/runtime/invocation/e-1/error"
    # Our frames are cut: the trace starts in the handler's module.
    lines = PROBE.read_text().splitlines()
    first = next(i for i, line in enumerate(lines, 1)
                 if line.startswith(("async def " if handler.startswith("async") else "def ") + handler + "("))
    call_line = first + 1
    assert lines[call_line - 1].strip() == "fail(event)"
    p = str(PROBE)
    trace = [
        f'  File "{p}", line {call_line}, in {handler}\n    fail(event)\n',
        f'  File "{p}", line {L_ACT}, in fail\n    _raise_value_error()\n',
        f'  File "{p}", line {L_RAISE}, in _raise_value_error\n    raise ValueError("bad value")\n',
    ]
    body = json.dumps({"errorMessage": "bad value", "errorType": "ValueError", "requestId": "e-1",
                       "stackTrace": trace}, separators=(",", ":")).encode()
    assert err.body == body
    cause = err.header("lambda-runtime-function-xray-error-cause")
    assert cause is not None
    assert json.loads(cause) == {
        "working_directory": str(REPO_ROOT),
        "exceptions": [{"message": "bad value", "type": "ValueError", "stack": [
            {"label": handler, "path": p, "line": call_line},
            {"label": "fail", "path": p, "line": L_ACT},
            {"label": "_raise_value_error", "path": p, "line": L_RAISE},
        ]}],
        "paths": [p],
    }
    assert err.raw == head(
        fake_api, "POST", "/2018-06-01/runtime/invocation/e-1/error",
        "Content-Type: application/json", f"Content-Length: {len(body)}",
        "Lambda-Runtime-Function-Error-Type: Function.ValueError",
        f"Lambda-Runtime-Function-XRay-Error-Cause: {cause}",
        "Lambda-Runtime-Invocation-Id: inv-e") + body
    # And the error line in the function's log.
    assert b"[ERROR] ValueError: bad value\rTraceback (most recent call last):\r" in proc.stdout


async def test_error_stack_trace_has_no_caret_lines(fake_api: FakeRuntimeAPI) -> None:
    fake_api.push({}, request_id="e-2")
    _, ex = await run(fake_api, "tests.handlers.core_probe.partial_line_error", 2)
    p = str(PROBE)
    assert ex[1].json()["stackTrace"] == [
        f'  File "{p}", line {line_of(PROBE, "value = _raise_value_error()")}, in partial_line_error\n'
        '    value = _raise_value_error()\n',
        f'  File "{p}", line {L_RAISE}, in _raise_value_error\n    raise ValueError("bad value")\n',
    ]


# -- init errors (docs/SPEC.md §1) -----------------------------------------------------------


def _init_rows() -> list[Any]:
    raises = str(RAISES)
    return [
        pytest.param("app", "Runtime.MalformedHandlerName",
                     "Bad handler 'app': not enough values to unpack (expected 2, got 1)", [], id="no-dot"),
        pytest.param("sys.handler", "Runtime.BuiltInModuleConflict",
                     "Cannot use built-in module sys as a handler module", [], id="built-in"),
        pytest.param("core_missing_module.handler", "Runtime.ImportModuleError",
                     "Unable to import module 'core_missing_module': No module named 'core_missing_module'",
                     [], id="module-missing"),
        pytest.param("tests.handlers.core_init_import_error.handler", "Runtime.ImportModuleError",
                     "Unable to import module 'tests.handlers.core_init_import_error': "
                     "No module named 'core_no_such_dependency'", [], id="import-error-inside"),
        pytest.param("tests.handlers.core_probe.missing", "Runtime.HandlerNotFound",
                     "Handler 'missing' missing on module 'tests.handlers.core_probe'", [], id="attr-missing"),
        pytest.param("tests.handlers.core_init_raises.handler", "RuntimeError", "init exploded", [
            f'  File "{raises}", line {L_INIT_CALL}, in <module>\n    _boom()\n',
            f'  File "{raises}", line {L_INIT_RAISE}, in _boom\n'
            '    raise RuntimeError("init exploded")\n',
        ], id="other-exception"),
    ]


@pytest.mark.parametrize("handler, error_type, message, trace", _init_rows())
async def test_init_error_rows(fake_api: FakeRuntimeAPI, handler: str, error_type: str, message: str,
                               trace: list[str]) -> None:
    proc = await run_runtime([*RUNTIME, handler], fake_api)
    assert await proc.wait(T) == 1
    assert len(fake_api.exchanges) == 1, fake_api.exchanges  # no /next after a failed init
    ex = fake_api.exchanges[0]
    body = json.dumps({"errorMessage": message, "errorType": error_type, "requestId": "",
                       "stackTrace": trace}, separators=(",", ":")).encode()
    # docs/SPEC.md §1: the header carries the errorType itself, as the reference sends it.
    header = error_type
    assert ex.raw == head(
        fake_api, "POST", "/2018-06-01/runtime/init/error", "Content-Type: application/json",
        f"Content-Length: {len(body)}", f"Lambda-Runtime-Function-Error-Type: {header}") + body
    assert ex.status == 202
    out = proc.stdout.decode()
    assert "LAMBDA_WARNING: Unhandled exception." in out
    assert f"[ERROR] {error_type}: {message}\rTraceback (most recent call last):" in out


def _syntax_module(tmp_path: Path, name: str, source: str) -> tuple[str, int, str]:
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    try:
        compile(source, str(path), "exec")
    except SyntaxError as e:
        assert e.lineno is not None and e.text is not None
        return str(e), e.lineno, e.text
    raise AssertionError("source compiles")


@pytest.mark.parametrize("name, source", [
    ("core_syn", "def f(:\n    pass\n"),
    ("core_indent", "def f(e, c):\n    return 1\n      return 2\n"),
])
async def test_init_error_syntax(fake_api: FakeRuntimeAPI, tmp_path: Path, name: str, source: str) -> None:
    reason, _, _ = _syntax_module(tmp_path, name, source)
    proc = await run_runtime([*RUNTIME, f"{name}.f"], fake_api, env={"LAMBDA_TASK_ROOT": str(tmp_path)})
    assert await proc.wait(T) == 1
    ex = fake_api.exchanges[0]
    assert ex.target == "/2018-06-01/runtime/init/error"
    assert ex.header("lambda-runtime-function-error-type") == "Runtime.UserCodeSyntaxError"
    got = ex.json()
    assert list(got) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert got["errorMessage"] == f"Syntax error in module '{name}': {reason}"
    assert got["errorType"] == "Runtime.UserCodeSyntaxError"
    assert len(got["stackTrace"]) == 1
    assert got["stackTrace"][0].startswith(f'  File "{tmp_path / name}.py" Line ')


async def test_init_error_syntax_trace_like_reference(fake_api: FakeRuntimeAPI, tmp_path: Path) -> None:
    _, lineno, text = _syntax_module(tmp_path, "core_syn2", "x = (\n")
    proc = await run_runtime([*RUNTIME, "core_syn2.f"], fake_api, env={"LAMBDA_TASK_ROOT": str(tmp_path)})
    assert await proc.wait(T) == 1
    got = fake_api.exchanges[0].json()["stackTrace"]
    # awslambdaric: '  File "%s" Line %s\n    %s' % (e.filename, e.lineno, e.text)
    assert got == ['  File "%s" Line %s\n    %s' % (tmp_path / "core_syn2.py", lineno, text)]


@pytest.mark.parametrize("spec, files, expected", [
    ("app.handler", {"app.py": "def handler(e, c):\n    return 'flat'\n"}, b'"flat"'),
    ("pkg.sub.mod.handler", {"pkg/__init__.py": "", "pkg/sub/__init__.py": "",
                             "pkg/sub/mod.py": "def handler(e, c):\n    return 'dotted'\n"}, b'"dotted"'),
    ("nopkg/inner.handler", {"nopkg/inner.py": "def handler(e, c):\n    return 'slash'\n"}, b'"slash"'),
])
async def test_handler_string_forms(fake_api: FakeRuntimeAPI, tmp_path: Path, spec: str,
                                    files: dict[str, str], expected: bytes) -> None:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    fake_api.push({}, request_id="h-1")
    # cwd elsewhere: LAMBDA_TASK_ROOT alone must put the code on sys.path.
    _, ex = await run(fake_api, spec, 2, env={"LAMBDA_TASK_ROOT": str(tmp_path)}, cwd="/")
    assert ex[1].target == "/2018-06-01/runtime/invocation/h-1/response"
    assert ex[1].body == expected


async def test_handler_from_environment(fake_api: FakeRuntimeAPI) -> None:
    fake_api.push(7, request_id="env-1")
    proc = await run_runtime(RUNTIME, fake_api, env={"_HANDLER": "tests.handlers.core_probe.echo"})
    await fake_api.wait(2, timeout=T)
    fake_api.finish()
    assert await proc.wait(T) == 1
    assert fake_api.exchanges[1].body == b'{"event":7,"rid":"env-1"}'


# -- the connection --------------------------------------------------------------------------


async def test_keep_alive_one_connection_for_five_invocations(fake_api: FakeRuntimeAPI) -> None:
    ids = [fake_api.push({"i": i}) for i in range(5)]
    _, ex = await run(fake_api, "tests.handlers.core_probe.echo", 10)
    assert [e.path.rsplit("/", 2)[-2:] for e in ex[1::2]] == [[rid, "response"] for rid in ids]
    assert all(e.status == 202 for e in ex[1::2])
    assert [e.conn for e in fake_api.exchanges] == [0] * len(fake_api.exchanges)
    assert fake_api.connections == 1


async def test_reconnect_after_server_closes(fake_api: FakeRuntimeAPI) -> None:
    fake_api.answer("/response", 202, b'{"status":"OK"}', close=True)
    first = fake_api.push({"n": 1}, request_id="c-1")
    second = fake_api.push({"n": 2}, request_id="c-2")
    proc = await run_runtime([*RUNTIME, "tests.handlers.core_probe.echo"], fake_api)
    done = await fake_api.wait_for(lambda e: e.path.endswith(f"/{second}/response"), timeout=T)
    fake_api.finish()
    assert await proc.wait(T) == 1
    assert done.status == 202 and done.body == b'{"event":{"n":2},"rid":"c-2"}'
    assert done.conn >= 1
    served_next = [e for e in fake_api.exchanges if e.path.endswith("/next") and e.status == 200]
    assert [e.conn for e in served_next][0] == 0
    assert served_next[1].conn >= 1  # the second event came over a new connection
    assert [e.target for e in fake_api.exchanges if e.path.endswith("/response")] == [
        f"/2018-06-01/runtime/invocation/{first}/response", f"/2018-06-01/runtime/invocation/{second}/response"]
    assert fake_api.connections == 2


# -- the event loop and the trace id ---------------------------------------------------------


async def test_async_state_survives_between_invocations(fake_api: FakeRuntimeAPI) -> None:
    fake_api.push({"n": 41})
    fake_api.push({"n": 42})
    _, ex = await run(fake_api, "tests.handlers.core_loop.handler", 4)
    one, two = ex[1].json(), ex[3].json()
    assert ex[1].path.endswith("/response") and ex[3].path.endswith("/response")
    assert one["got"] is None
    assert two == {"loop": one["loop"], "got": 41}  # the queue from invocation 1, on the same loop


async def test_sync_handler_may_call_asyncio_run(fake_api: FakeRuntimeAPI) -> None:
    fake_api.push({"a": 1, "b": 2})
    fake_api.push({"a": 3, "b": 4})
    _, ex = await run(fake_api, "tests.handlers.core_loop.sync_with_asyncio_run", 4)
    # Called on the main thread, no loop running: no thread hop for a plain def handler.
    assert [ex[1].body, ex[3].body] == [b'{"sum":3,"main_thread":true}', b'{"sum":7,"main_thread":true}']


@pytest.mark.parametrize("kind", ["handler", "async_handler"])
async def test_trace_id_environment(fake_api: FakeRuntimeAPI, kind: str) -> None:
    fake_api.push({}, request_id="t-1", headers={"Lambda-Runtime-Trace-Id": "Root=1-aaa;Sampled=1"})
    fake_api.push({}, request_id="t-2", headers={"Lambda-Runtime-Trace-Id": None})
    fake_api.push({}, request_id="t-3", headers={"Lambda-Runtime-Trace-Id": "Root=1-ccc"})
    fake_api.push({}, request_id="t-4", headers={"Lambda-Runtime-Trace-Id": None})
    # An inherited value must not leak into an invocation without a trace header either.
    _, ex = await run(fake_api, f"tests.handlers.core_probe.{kind}", 8,
                      env={"_X_AMZN_TRACE_ID": "Root=inherited"})
    assert [e.json()["trace_env"] for e in ex[1::2]] == ["Root=1-aaa;Sampled=1", None, "Root=1-ccc", None]


async def test_context_on_the_wire_matches_reference_repr(fake_api: FakeRuntimeAPI,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from awslambdaric.lambda_context import LambdaContext as Reference

    env = {"AWS_LAMBDA_FUNCTION_NAME": "fn", "AWS_LAMBDA_FUNCTION_VERSION": "7",
           "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512", "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn",
           "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/27/[7]abc"}
    client_context = {"custom": {"k": "v"}, "env": {"os": "x"},
                      "client": {"installation_id": "i", "app_title": "t"},
                      "w3c": {"traceparent": "00-1-2-01", "junk": "x"}}
    identity = {"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}
    fake_api.push({}, request_id="ctx-1", headers={
        "Lambda-Runtime-Client-Context": json.dumps(client_context),
        "Lambda-Runtime-Cognito-Identity": json.dumps(identity),
        "Lambda-Runtime-Aws-Tenant-Id": "tenant-1"})
    _, ex = await run(fake_api, "tests.handlers.core_probe.context_repr", 2, env=env)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    expected = Reference("ctx-1", client_context, identity, 0, DEFAULT_ARN, "tenant-1")
    assert ex[1].json() == {"repr": repr(expected), "w3c": {"traceparent": "00-1-2-01"}, "memory": "512"}
