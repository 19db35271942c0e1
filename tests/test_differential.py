"""Parity with the reference client, measured: the same handlers and events under awslambdaric
4.2.2 and under aruntime, each against its own FakeRuntimeAPI, and what each sent compared.

Every difference found is classified. The deliberate ones are listed in DELIBERATE below and the
test asserts that exactly those were seen; anything else is reported as UNEXPECTED with the
request, the reference's bytes and ours, and fails the test.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fakeapi import REPO_ROOT, Exchange, FakeRuntimeAPI, run_runtime

# name -> why we differ on purpose. test_deliberate_differences_are_exactly_the_table checks that
# the ones marked measured are all seen, and that nothing outside this table is.
DELIBERATE: dict[str, str] = {
    "error_type_header": (
        "On /invocation/{id}/error we send Lambda-Runtime-Function-Error-Type: Function.<Class> for "
        "handler exceptions (Runtime.<Reason> for runtime faults); the reference sends no type, so "
        "the service records Runtime.Unknown."
    ),
    "compact_json": (
        "We serialise JSON compactly with orjson (',' and ':'); the reference uses simplejson's "
        "', ' and ': '. Compared as parsed values (numbers kept as their exact text)."
    ),
    "non2xx_survival": (
        "The reference exits on any non-2xx answer; we survive 410/413 and go on to /next. Not "
        "measured here (see the runtime's own tests)."
    ),
    "async_handler": (
        "An async def handler: the reference calls it, gets a coroutine and fails with "
        "Runtime.MarshalError ('Object of type coroutine is not JSON serializable'); we await it "
        "and post its result."
    ),
    "utf8_json": (
        "Non-ASCII text goes out as raw UTF-8, as the reference itself does on python3.12+ "
        "managed runtimes (AWS_EXECUTION_ENV); without that variable the reference escapes it "
        "as \\uXXXX. Same value either way."
    ),
    "init_user_frames": (
        "An exception raised while importing the handler module: our stackTrace (and error log "
        "line) holds only the user's frames; the reference's starts with importlib's frames."
    ),
    "error_log_chain": (
        "The error log line of an exception raised from another (`raise X from e`, or while "
        "handling one) shows the whole chain as Python prints it, each part with the user's "
        "frames; the reference shows only the last exception. The /error body is the same."
    ),
    "handler_exit_reported": (
        "A handler calling sys.exit(): the reference dies without answering (the service then "
        "reports Runtime.ExitError and restarts the sandbox); we post SystemExit as that "
        "invocation's error and keep serving."
    ),
}
NOT_MEASURED_HERE = {"non2xx_survival"}

REFERENCE = [sys.executable, "-m", "awslambdaric"]
OURS = [sys.executable, "-m", "aruntime"]
PROCESS_TIMEOUT = 30.0
ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "difftest",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/difftest",
    "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/27/[$LATEST]0123456789abcdef",
    "LAMBDA_TASK_ROOT": str(REPO_ROOT),
}
SYNTAX_MODULE = "def handler(event, context):\n    return {'a': 1\n\nx = 2\n"


# -- scenarios ---------------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    handler: str
    pushes: list[dict[str, Any]] = field(default_factory=list)  # kwargs for FakeRuntimeAPI.push
    init_failure: bool = False
    env: dict[str, str] = field(default_factory=dict)


def _results() -> Scenario:
    from tests.handlers.diff_results import CASES

    pushes = [{"body": {"case": c}, "request_id": f"res-{c}"} for c in CASES]
    pushes += [
        {"body": b"plain text body", "request_id": "res-text-plain", "content_type": "text/plain"},
        {"body": b'{"a": 1}', "request_id": "res-json-charset", "content_type": "application/json; charset=utf-8"},
        {"body": b'{"a": ', "request_id": "res-bad-json"},
        {"body": b"", "request_id": "res-empty-json"},
    ]
    return Scenario("results", "tests.handlers.diff_results.handler", pushes)


def _errors() -> Scenario:
    pushes = [
        {"body": {"case": "value_error"}, "request_id": "err-value", "headers": {"Lambda-Runtime-Invocation-Id": "inv-7"}},
        {"body": {"case": "custom"}, "request_id": "err-custom"},
        {"body": {"case": "empty_message"}, "request_id": "err-empty"},
        {"body": {"case": "chained"}, "request_id": "err-chained"},
        {"body": {"case": "ok"}, "request_id": "err-ok-after", "headers": {"Lambda-Runtime-Invocation-Id": "inv-8"}},
    ]
    return Scenario("errors", "tests.handlers.diff_errors.handler", pushes)


def _context() -> Scenario:
    client_context = {
        "custom": {"k": "v"},
        "env": {"platform": "Android"},
        "client": {"installation_id": "inst-1", "app_title": "App", "app_version_name": "1.0", "app_version_code": "10", "app_package_name": "com.x"},
        "w3c": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "a=b", "baggage": 5, "other": "x"},
    }
    identity = {"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}
    pushes = [
        {"body": {}, "request_id": "ctx-minimal"},
        {
            "body": {},
            "request_id": "ctx-full",
            "headers": {
                "Lambda-Runtime-Client-Context": json.dumps(client_context),
                "Lambda-Runtime-Cognito-Identity": json.dumps(identity),
                "Lambda-Runtime-Aws-Tenant-Id": "tenant-9",
                "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:eu-west-1:210987654321:function:other:live",
            },
        },
        {"body": {}, "request_id": "ctx-no-trace", "headers": {"Lambda-Runtime-Trace-Id": None}},
    ]
    return Scenario("context", "tests.handlers.diff_context.handler", pushes)


def _init(name: str, handler: str) -> Scenario:
    return Scenario(f"init_{name}", handler, [{"body": {}, "request_id": f"never-{name}"}], init_failure=True)


SCENARIOS: list[Scenario] = [
    _results(),
    _errors(),
    _context(),
    # Managed python3.12+ runtimes set AWS_EXECUTION_ENV, which makes the reference emit raw UTF-8.
    Scenario(
        "unicode_py313",
        "tests.handlers.diff_results.handler",
        [{"body": {"case": "unicode"}, "request_id": "uni-1"}],
        env={"AWS_EXECUTION_ENV": "AWS_Lambda_python3.13"},
    ),
    Scenario("logging_text", "tests.handlers.diff_logging.handler", [{"body": {"n": 1}, "request_id": "log-1"}], env={"AWS_LAMBDA_LOG_LEVEL": "INFO"}),
    Scenario(
        "logging_json",
        "tests.handlers.diff_logging.handler",
        [{"body": {"n": 2}, "request_id": "log-2", "headers": {"Lambda-Runtime-Aws-Tenant-Id": "t-1"}}],
        env={"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "INFO"},
    ),
    Scenario("sys_exit", "tests.handlers.diff_exit.handler", [{"body": {}, "request_id": "exit-1"}]),
    Scenario("async", "tests.handlers.diff_async.handler", [{"body": {"n": 1}, "request_id": "async-1"}]),
    _init("no_dot", "handler"),
    _init("builtin", "sys.foo"),
    _init("missing_module", "tests.handlers.diff_no_such_module.handler"),
    _init("import_error", "tests.handlers.diff_init_import_error.handler"),
    _init("syntax_error", "diff_init_syntax.handler"),
    _init("missing_attr", "tests.handlers.basic.no_such_function"),
    _init("raises", "tests.handlers.diff_init_raises.handler"),
]


# -- running -----------------------------------------------------------------------------------


@dataclass
class Run:
    exchanges: list[Exchange]
    returncode: int | None
    stdout: bytes
    stderr: bytes
    problem: str | None = None  # the process could not be run to its end


def _fixed_pushes(scenario: Scenario) -> list[dict[str, Any]]:
    """Fill in every default that push() would randomise, so both runtimes see identical events."""
    deadline = int(time.time() * 1000) + 60_000
    fixed = []
    for i, push in enumerate(scenario.pushes):
        push = dict(push)
        headers = {"Lambda-Runtime-Trace-Id": f"Root=1-6747a000-{i:024x};Parent={i:016x};Sampled=1"}
        headers.update(push.get("headers") or {})
        push["headers"] = headers
        push["deadline_ms"] = deadline
        fixed.append(push)
    return fixed


async def _run_one(cmd: list[str], scenario: Scenario, pushes: list[dict[str, Any]], env: dict[str, str]) -> Run:
    async with FakeRuntimeAPI() as api:
        for push in pushes:
            api.push(**push)
        api.finish()
        proc = await run_runtime([*cmd, scenario.handler], api, env=env, timeout=PROCESS_TIMEOUT)
        problem = None
        try:
            await proc.wait()
        except TimeoutError as e:
            problem = str(e)
        return Run(list(api.exchanges), proc.returncode, proc.stdout, proc.stderr, problem)


async def _run_all(syntax_dir: str) -> dict[str, tuple[Run, Run]]:
    env = dict(ENV)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), syntax_dir])

    async def both(scenario: Scenario) -> tuple[str, tuple[Run, Run]]:
        pushes = _fixed_pushes(scenario)
        scenario_env = {**env, **scenario.env}
        ref, ours = await asyncio.gather(
            _run_one(REFERENCE, scenario, pushes, scenario_env), _run_one(OURS, scenario, pushes, scenario_env)
        )
        return scenario.name, (ref, ours)

    return dict(await asyncio.gather(*(both(s) for s in SCENARIOS)))


@pytest.fixture(scope="module")
def runs() -> dict[str, tuple[Run, Run]]:
    # One private event loop runs every process pair concurrently, once for the whole module.
    with tempfile.TemporaryDirectory() as syntax_dir:
        Path(syntax_dir, "diff_init_syntax.py").write_text(SYNTAX_MODULE)
        return asyncio.run(_run_all(syntax_dir))


# -- comparing ---------------------------------------------------------------------------------


@dataclass
class Diff:
    label: str  # a DELIBERATE key, or "UNEXPECTED"
    where: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.label}] {self.where}: {self.detail}"


def _exact(body: bytes) -> Any:
    """Parse JSON keeping every number as its exact text, so 12.50 != 12.5 and NaN != null."""
    keep = lambda s: ("number", s)  # noqa: E731
    return json.loads(body, parse_float=keep, parse_int=keep, parse_constant=keep)


def _outside_strings(body: bytes) -> str:
    """The JSON text with string contents removed: what separators and whitespace look like."""
    text, out, in_str, esc = body.decode("utf-8", "replace"), [], False, False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
                out.append(ch)
        else:
            out.append(ch)
            in_str = ch == '"'
    return "".join(out)


def _compacted(body: bytes) -> str:
    """The JSON text with whitespace outside strings removed."""
    text, out, in_str, esc = body.decode("utf-8", "replace"), [], False, False
    for ch in text:
        if in_str:
            esc, in_str = (False, True) if esc else (ch == "\\", ch != '"')
        elif ch.isspace():
            continue
        else:
            in_str = ch == '"'
        out.append(ch)
    return "".join(out)


def is_compact(body: bytes) -> bool:
    return not re.search(r"\s", _outside_strings(body))


_FRAME = re.compile(r'  File "(?P<path>[^"]*)", line (?P<line>\d+), in (?P<func>[^\n]*)\n(?P<src>.*)', re.S)


def _frames(trace: Any) -> list[Any]:
    """(path, line, function, source text) per traceback.format_list entry; other shapes as is."""
    if not isinstance(trace, list):
        return [trace]
    frames = []
    for entry in trace:
        m = _FRAME.fullmatch(entry) if isinstance(entry, str) else None
        frames.append((m["path"], int(m["line"]), m["func"], m["src"].strip()) if m else entry)
    return frames


def _xray(value: str | None) -> Any:
    if value is None:
        return None
    data = json.loads(value)
    if isinstance(data.get("paths"), list):
        data["paths"] = sorted(data["paths"])
    return data


def _show(ex: Exchange | None) -> str:
    return "nothing" if ex is None else repr(ex.raw[:1200])


def compare(scenario: Scenario, ref: Run, ours: Run) -> list[Diff]:
    diffs: list[Diff] = []

    def unexpected(where: str, detail: str) -> None:
        diffs.append(Diff("UNEXPECTED", f"{scenario.name}: {where}", detail))

    if ref.problem:
        unexpected("reference run", ref.problem)
    if ours.problem:
        unexpected("our run", ours.problem)
    if scenario.init_failure and (ref.returncode, ours.returncode) != (1, 1):
        unexpected("exit code", f"reference {ref.returncode}, ours {ours.returncode}; ours stderr={ours.stderr[-1500:]!r}")

    ref_seq = [(e.method, e.path) for e in ref.exchanges]
    ours_seq = [(e.method, e.path) for e in ours.exchanges]
    if _exit_reported(ref, ours):
        diffs.append(Diff("handler_exit_reported", f"{scenario.name}: request sequence",
                          f"reference {ref_seq} (exit {ref.returncode}), ours {ours_seq}"))
        return diffs
    if ref_seq != ours_seq and not _async_paths_only(ref.exchanges, ours.exchanges):
        unexpected("request sequence", f"reference {ref_seq}\n ours {ours_seq}\n ours stderr={ours.stderr[-1500:]!r}")
        return diffs
    for r, o in zip(ref.exchanges, ours.exchanges):
        if r.method == "POST":
            diffs += _compare_post(scenario, r, o)

    ref_log, ours_log = _log(ref.stdout), _log(ours.stdout)
    if len(ref_log) == len(ours_log) and any(a != b for a, b in zip(ref_log, ours_log)):
        # JSON log lines: compared as values, the separators being the compact_json difference.
        for i, (a, b) in enumerate(zip(ref_log, ours_log)):
            if a != b and _json_line(a) is not None and _json_line(a) == _json_line(b):
                if is_compact(b.encode()) and _compacted(a.encode()) == _compacted(b.encode()):
                    diffs.append(Diff("compact_json", f"{scenario.name}: stdout log line {i}", "separators"))
                    ours_log[i] = a
    if ref_log != ours_log:
        delta = "\n".join(difflib.unified_diff(ref_log, ours_log, "reference stdout", "our stdout", lineterm="", n=0))
        if any(d.label == "async_handler" for d in diffs):
            # The reference logs the MarshalError it posted; ours had no error to log.
            diffs.append(Diff("async_handler", f"{scenario.name}: stdout log", delta))
        elif any(d.label == "init_user_frames" for d in diffs) and _log_without_machinery(ref_log) == ours_log:
            diffs.append(Diff("init_user_frames", f"{scenario.name}: stdout log", delta))
        elif [_without_chain(line) for line in ours_log] == ref_log:
            diffs.append(Diff("error_log_chain", f"{scenario.name}: stdout log", delta))
        else:
            unexpected("stdout log", repr(delta))
    return diffs


_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z")
# The reference's C client logs its own failure on the fake's final 500; ours says it on stderr.
# It may be glued to the end of the previous record, which need not end with a newline.
_SHUTDOWN = re.compile(r"\[ERROR\] \[\d+\] LAMBDA_RUNTIME Failed to get next invocation[^\n]*\n")


def _log(stdout: bytes) -> list[str]:
    """Log records as written to stdout (records are \\n-terminated, their lines \\r-joined)."""
    text = _SHUTDOWN.sub("", _TIMESTAMP.sub("<time>", stdout.decode("utf-8", "replace")))
    return text.split("\n")


def _is_machinery(frame: Any) -> bool:
    return isinstance(frame, tuple) and (frame[0].startswith("<frozen importlib") or "/importlib/" in frame[0])


def _log_without_machinery(lines: list[str]) -> list[str]:
    """Text error lines with importlib's frames (a File line and its source line) taken out."""
    out = []
    for line in lines:
        parts = line.split("\r")
        kept, skip = [], False
        for part in parts:
            if skip:
                skip = False
                continue
            stripped = part.lstrip("\u00a0")
            if stripped.startswith('File "<frozen importlib') or (stripped.startswith("File ") and "/importlib/" in stripped):
                skip = True
                continue
            kept.append(part)
        out.append("\r".join(kept))
    return out


_TRACEBACK = "\rTraceback (most recent call last):\r"


def _without_chain(line: str) -> str:
    """A text error line with the earlier exceptions of its chain taken out: its head, then the
    last exception's traceback only (what the reference prints)."""
    first, last = line.find(_TRACEBACK), line.rfind(_TRACEBACK)
    if not line.startswith("[ERROR]") or first == last:
        return line
    return line.partition("\r")[0] + line[last:]


def _escape_non_ascii(text: str) -> str:
    return "".join(c if ord(c) < 128 else json.dumps(c)[1:-1] for c in text)


def _exit_reported(ref: Run, ours: Run) -> bool:
    """The reference died on sys.exit() without a post; we posted SystemExit and went on."""
    ref_posts = [e for e in ref.exchanges if e.method == "POST"]
    ours_posts = [e for e in ours.exchanges if e.method == "POST"]
    return (
        not ref_posts
        and ref.returncode not in (0, 1)
        and len(ours_posts) == 1
        and ours_posts[0].path.endswith("/error")
        and ours_posts[0].json().get("errorType") == "SystemExit"
    )


def _json_line(line: str) -> Any:
    try:
        return _exact(line.encode())
    except ValueError:
        return None


def _async_paths_only(ref: list[Exchange], ours: list[Exchange]) -> bool:
    """The sequences differ only where the reference failed an async handler with /error."""
    if len(ref) != len(ours):
        return False
    for r, o in zip(ref, ours):
        if (r.method, r.path) != (o.method, o.path) and not (_is_async_failure(r) and o.path.endswith("/response")):
            return False
    return True


def _is_async_failure(ex: Exchange) -> bool:
    if not ex.path.endswith("/error"):
        return False
    body = ex.json()
    return body.get("errorType") == "Runtime.MarshalError" and "coroutine" in body.get("errorMessage", "")


def _compare_post(scenario: Scenario, r: Exchange, o: Exchange) -> list[Diff]:
    diffs: list[Diff] = []
    where = f"{scenario.name}: POST {r.path}"

    def unexpected(what: str) -> None:
        diffs.append(Diff("UNEXPECTED", where, f"{what}\n  reference sent {_show(r)}\n  ours sent      {_show(o)}"))

    if _is_async_failure(r) and o.path.endswith("/response"):
        diffs.append(Diff("async_handler", where, f"ours answered {o.body[:200]!r}"))
        return diffs

    # Headers the service reads (the HTTP plumbing ones - user agent, expect, framing - are free).
    for name in ("lambda-runtime-invocation-id", "lambda-runtime-function-response-mode"):
        if r.header(name) != o.header(name):
            unexpected(f"header {name}: reference {r.header(name)!r}, ours {o.header(name)!r}")
    ref_ct, ours_ct = r.header("content-type"), o.header("content-type")
    if r.path.endswith("/response") and ref_ct != ours_ct:
        unexpected(f"content-type: reference {ref_ct!r}, ours {ours_ct!r}")

    is_json = (ref_ct or "").startswith("application/json") or r.path.endswith("/error")
    if not is_json:
        if r.body != o.body:
            unexpected("raw body differs")
        return diffs
    try:
        ref_value, ours_value = _exact(r.body), _exact(o.body)
    except ValueError as e:
        unexpected(f"body is not JSON: {e}")
        return diffs
    if r.body != o.body:
        if is_compact(o.body) and not is_compact(r.body):
            diffs.append(Diff("compact_json", where, "separators"))
        if _compacted(r.body) != _compacted(o.body) and ref_value == ours_value:
            if _compacted(r.body) == _escape_non_ascii(_compacted(o.body)):
                diffs.append(Diff("utf8_json", where, "raw UTF-8 where the reference escapes"))
            else:
                unexpected("same value, but the JSON text differs beyond whitespace (string escaping or key order)")
    if r.path.endswith("/error") or r.path.endswith("/init/error"):
        diffs += _compare_error(where, r, o, ref_value, ours_value, unexpected)
    elif ref_value != ours_value:
        unexpected("body value differs")
    return diffs


def _expected_error_type(error_type: str) -> str:
    # Runtime faults already carry their category; handler exceptions are the user's class name.
    return error_type if error_type.startswith("Runtime.") else f"Function.{error_type}"


def _compare_error(where: str, r: Exchange, o: Exchange, rv: Any, ov: Any, unexpected: Any) -> list[Diff]:
    diffs: list[Diff] = []
    if not isinstance(rv, dict) or not isinstance(ov, dict):
        unexpected("error body is not an object")
        return diffs
    if set(rv) != set(ov):
        unexpected(f"error body keys: reference {sorted(rv)}, ours {sorted(ov)}")
    for key in ("errorMessage", "errorType", "requestId"):
        if rv.get(key) != ov.get(key):
            unexpected(f"{key}: reference {rv.get(key)!r}, ours {ov.get(key)!r}")
    ref_frames, ours_frames = _frames(rv.get("stackTrace")), _frames(ov.get("stackTrace"))
    if ref_frames != ours_frames and r.path.endswith("/init/error") and ours_frames == [
        f for f in ref_frames if not _is_machinery(f)
    ]:
        diffs.append(Diff("init_user_frames", where, f"{len(ref_frames)} frames vs our {len(ours_frames)}"))
    elif ref_frames != ours_frames:
        unexpected(f"stackTrace: reference {len(ref_frames)} frames {ref_frames}\n  ours {len(ours_frames)} frames {ours_frames}")

    ref_type, ours_type = r.header("lambda-runtime-function-error-type"), o.header("lambda-runtime-function-error-type")
    error_type = rv.get("errorType") if isinstance(rv.get("errorType"), str) else ""
    if r.path.endswith("/init/error"):
        if ref_type != ours_type:
            unexpected(f"init error type header: reference {ref_type!r}, ours {ours_type!r}")
    elif ref_type is None and ours_type is not None and ours_type == _expected_error_type(error_type):
        diffs.append(Diff("error_type_header", where, f"ours {ours_type!r}"))
    elif ref_type != ours_type:
        unexpected(f"error type header: reference {ref_type!r}, ours {ours_type!r}")

    cause = "lambda-runtime-function-xray-error-cause"
    if _xray(r.header(cause)) != _xray(o.header(cause)):
        unexpected(f"X-Ray cause: reference {r.header(cause)!r}, ours {o.header(cause)!r}")
    return diffs


# -- tests -------------------------------------------------------------------------------------


def test_reference_runs_against_the_fake(runs: dict[str, tuple[Run, Run]]) -> None:
    """Pins what awslambdaric really sends, so a broken fake cannot make parity look good."""
    ref = runs["results"][0]
    assert ref.problem is None and ref.returncode == 1  # it dies on the final 500, by design
    posts = {e.path.split("/")[-2]: e for e in ref.exchanges if e.method == "POST"}
    assert posts["res-decimal"].body == b'{"price": 12.50, "n": [1, -0.001]}'
    assert posts["res-bytes"].header("content-type") == "application/unknown"
    assert posts["res-bytes"].body == b"\x00\x01raw bytes\xff"
    assert posts["res-text-plain"].json() == {"type": "bytes", "len": 15}
    assert posts["res-json-charset"].json() == {"type": "bytes", "len": 8}
    assert posts["res-set"].path.endswith("/error") and posts["res-set"].json()["errorType"] == "Runtime.MarshalError"
    assert posts["res-bad-json"].json()["errorType"] == "Runtime.UnmarshalError"
    assert posts["res-big"].json() == {"blob": "x" * 1_200_000}  # over 1 MiB arrives whole
    assert len({e.conn for e in ref.exchanges if e.path.endswith("/next")}) == 1  # libcurl keeps its connection

    init = runs["init_raises"][0].exchanges
    assert [(e.method, e.path) for e in init] == [("POST", "/2018-06-01/runtime/init/error")]
    assert init[0].header("lambda-runtime-function-error-type") == "ConfigError"
    errs = {e.path.split("/")[-2]: e for e in runs["errors"][0].exchanges if e.method == "POST"}
    assert errs["err-value"].header("lambda-runtime-invocation-id") == "inv-7"
    assert errs["err-value"].header("lambda-runtime-function-error-type") is None


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_parity(runs: dict[str, tuple[Run, Run]], scenario: Scenario) -> None:
    ref, ours = runs[scenario.name]
    bad = [d for d in compare(scenario, ref, ours) if d.label not in DELIBERATE]
    assert not bad, "\n\n".join(map(str, bad))


def test_deliberate_differences_are_exactly_the_table(runs: dict[str, tuple[Run, Run]]) -> None:
    seen: set[str] = set()
    for scenario in SCENARIOS:
        seen |= {d.label for d in compare(scenario, *runs[scenario.name])}
    seen.discard("UNEXPECTED")  # reported per scenario by test_parity
    assert seen == set(DELIBERATE) - NOT_MEASURED_HERE


def test_our_json_is_compact(runs: dict[str, tuple[Run, Run]]) -> None:
    bodies = [
        e.body
        for _, ours in runs.values()
        for e in ours.exchanges
        if e.method == "POST" and (e.header("content-type") or "").startswith("application/json")
    ]
    assert len(bodies) >= 10
    loose = [b for b in bodies if not is_compact(b)]
    assert not loose, loose[:3]


def test_comparator_sees_no_difference_between_identical_runs(runs: dict[str, tuple[Run, Run]]) -> None:
    for scenario in SCENARIOS:
        ref = runs[scenario.name][0]
        assert compare(scenario, ref, ref) == [], scenario.name


def test_comparator_catches_what_it_must(runs: dict[str, tuple[Run, Run]]) -> None:
    """Doctored copies of the reference run: each change must be classified as intended."""
    import copy

    scenario = next(s for s in SCENARIOS if s.name == "results")
    ref = runs["results"][0]

    def doctored(rid: str, **changes: Any) -> list[Diff]:
        ours = copy.deepcopy(ref)
        ex = next(e for e in ours.exchanges if f"/{rid}/" in e.path)
        for name, value in changes.items():
            setattr(ex, name, value)
        return compare(scenario, ref, ours)

    labels = lambda ds: sorted(d.label for d in ds)  # noqa: E731
    assert labels(doctored("res-decimal", body=b'{"price":12.50,"n":[1,-0.001]}')) == ["compact_json"]
    assert labels(doctored("res-decimal", body=b'{"price":12.5,"n":[1,-0.001]}')) == ["UNEXPECTED", "compact_json"]
    assert labels(doctored("res-unicode", body='{"text":"café ☃ 😀","quote":"say \\"hi\\"\\n"}'.encode())) == [
        "compact_json",
        "utf8_json",
    ]
    assert labels(doctored("res-unicode", body='{"text":"cafe ☃ 😀","quote":"say \\"hi\\"\\n"}'.encode())) == [
        "UNEXPECTED",
        "compact_json",
    ]
    assert labels(doctored("res-bytes", body=b"other")) == ["UNEXPECTED"]
    set_error = next(e for e in ref.exchanges if "/res-set/" in e.path)
    typed = [*set_error.headers, ("lambda-runtime-function-error-type", "Runtime.MarshalError")]
    assert labels(doctored("res-set", headers=typed)) == ["error_type_header"]
    typed_wrong = [*set_error.headers, ("lambda-runtime-function-error-type", "Function.MarshalError")]
    assert labels(doctored("res-set", headers=typed_wrong)) == ["UNEXPECTED"]
    ours = copy.deepcopy(ref)
    del ours.exchanges[-2:]
    assert labels(compare(scenario, ref, ours)) == ["UNEXPECTED"]
