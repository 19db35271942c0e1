"""What an invocation's error shows: the user's frames only, whatever ran the handler (issue #10
item 10, #15 item 9), and the whole exception chain in the log line (issue #10 item 11).

Every handler style, one invocation at a time (text logs) and two at once (JSON logs, sync code
in the thread pool), before and after the first streamed chunk: the /error body and the
trailers hold the failing exception's user frames in the reference's shape; the error log line
holds the same frames, preceded by its cause or context as Python prints them.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from fakeapi import REPO_ROOT, Exchange, FakeRuntimeAPI, run_runtime
from tests.handlers import frames

PATH = str(REPO_ROOT / "tests" / "handlers" / "frames.py")
STYLES = ["sync", "async_", "sync_gen", "async_gen", "writer"]
STREAMING = {"sync_gen", "async_gen", "writer"}
KINDS = ["plain", "cause", "context", "suppressed"]
CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"
TRACEBACK = "Traceback (most recent call last):\n"


def frame(function: Any, text: str) -> str:
    """`traceback.format_list`'s entry for the line of `function` that is `text`."""
    lines, first = inspect.getsourcelines(function)
    (number,) = [first + i for i, line in enumerate(lines) if line.strip() == text]
    return f'  File "{PATH}", line {number}, in {function.__name__}\n    {text}\n'


def outer_frames(style: str, kind: str) -> list[str]:
    raiser = frames.FAIL[kind]
    raise_line = {"cause": 'raise LookupError("could not load") from e',
                  "suppressed": 'raise LookupError("could not load") from None'}.get(
                      kind, 'raise LookupError("could not load")')
    return [frame(getattr(frames, style), '_outer(event["kind"])'),
            frame(frames._outer, "FAIL[kind]()"),
            frame(raiser, raise_line)]


def log_stack(style: str, kind: str) -> list[str]:
    """The error log line's stack: the chain as Python prints it, user frames only."""
    stack = outer_frames(style, kind)
    if kind in ("cause", "context"):
        return [TRACEBACK, frame(frames.FAIL[kind], '{}["missing"]'), "KeyError: 'missing'\n",
                CAUSE if kind == "cause" else CONTEXT, TRACEBACK, *stack]
    return stack


def text_lines(stack: list[str], chained: bool) -> list[str]:
    """The text error line after its head, NBSP indentation read as spaces, as plain lines."""
    out = [] if chained else ["Traceback (most recent call last):"]
    for element in stack:
        out += element.splitlines() if element.strip() else [""] * element.count("\n")
    return out


async def _run(style: str, concurrency: int) -> None:
    async with FakeRuntimeAPI() as api:
        cases = {}
        for kind in KINDS:
            for after in ([False, True] if style in STREAMING else [False]):
                cases[api.push({"kind": kind, "after": after})] = (kind, after)
        logged = api.push({"kind": "logged"}) if style == "sync" else None
        proc = await run_runtime([sys.executable, "-m", "aruntime", "tests.handlers.frames." + style],
                                 api, env={"AWS_LAMBDA_MAX_CONCURRENCY": str(concurrency),
                                           "AWS_LAMBDA_LOG_LEVEL": "INFO"})
        wanted = {*cases} | ({logged} if logged else set())
        posts: dict[str, Exchange] = {}
        while set(posts) != wanted:
            await api.wait_for(lambda ex: ex.method == "POST" and ex.path.split("/")[-2] not in posts)
            posts = {ex.path.split("/")[-2]: ex for ex in api.exchanges if ex.method == "POST"}
        api.finish()
        assert await proc.wait(15) == 1
    out = proc.stdout.decode()
    where = f"{style} N={concurrency}"
    if concurrency > 1:
        records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        error_lines = {r["requestId"]: r for r in records if r.get("level") == "ERROR" and "errorType" in r
                       and r.get("logger") is None}
    else:
        error_lines = {}
        for line in out.split("\n"):
            if line.startswith("[ERROR] LookupError"):
                # The request id is in the matching /error or trailer body; pair by order below.
                error_lines[str(len(error_lines))] = line
        by_order = iter(error_lines.values())
    for rid, (kind, after) in cases.items():
        post = posts[rid]
        if after:
            assert post.trailer("lambda-runtime-function-error-type") == "Function.LookupError"
            body = json.loads(base64.b64decode(post.trailer("lambda-runtime-function-error-body")))
        else:
            assert post.path.endswith("/error"), (where, kind)
            body = post.json()
        # The body: the failing exception only, its user frames only (the reference's shape).
        assert (body["errorType"], body["errorMessage"]) == ("LookupError", "could not load")
        assert body["stackTrace"] == outer_frames(style, kind), (where, kind, after)
        # The log line: the same, preceded by the chain.
        expected = log_stack(style, kind)
        chained = kind in ("cause", "context")
        if concurrency > 1:
            record = error_lines[rid]
            assert record["stackTrace"] == expected, (where, kind, after)
            assert (record["errorType"], record["errorMessage"]) == ("LookupError", "could not load")
        else:
            line = next(by_order)
            head, *rest = line.replace("\u00a0", " ").split("\r")
            assert head == "[ERROR] LookupError: could not load"
            assert rest == text_lines(expected, chained), (where, kind, after)
    if logged and concurrency > 1:
        # A record logged with a chained exception: the chain too, the frames as the reference
        # formats them (traceback.format_tb).
        (record,) = [r for r in records if r.get("logger") == "frames"]
        assert record["requestId"] == logged
        stack = record["stackTrace"]
        assert stack[0] == TRACEBACK and stack[2] == "KeyError: 'missing'\n" and stack[3] == CAUSE
        assert stack[4] == TRACEBACK and len(stack) == 8, stack
    elif logged:
        # Text records use logging's own formatter, which prints the chain already.
        assert "KeyError: 'missing'\n\nThe above exception was the direct cause" in out


@pytest.mark.parametrize("style", STYLES)
async def test_user_frames_and_chains_whatever_ran_the_handler(style: str) -> None:
    await asyncio.gather(_run(style, 1), _run(style, 2))


# -- aruntime vendored next to the user's code -------------------------------------------------

VENDORED_APP = '''\
import aruntime


def _helper():
    raise ValueError("from the app")


def handler(event, context):
    if event.get("where"):
        return {"aruntime": aruntime.__file__}
    _helper()
'''


@pytest.mark.parametrize("how", ["copy", "symlink"])
async def test_vendored_aruntime_does_not_hide_aruntime_app(fake_api: FakeRuntimeAPI,
                                                            tmp_path: Path, how: str) -> None:
    # The custom-runtime layout: /var/task/aruntime (the package) and /var/task/aruntime_app.py.
    task = tmp_path / "task"
    task.mkdir()
    if how == "copy":
        shutil.copytree(REPO_ROOT / "aruntime", task / "aruntime",
                        ignore=shutil.ignore_patterns("__pycache__", "emulator"))
    else:
        os.symlink(REPO_ROOT / "aruntime", task / "aruntime")
    app = task / "aruntime_app.py"
    app.write_text(VENDORED_APP)
    fake_api.push({"where": True}, request_id="where")
    fake_api.push({}, request_id="fails")
    proc = await run_runtime([sys.executable, "-m", "aruntime", "aruntime_app.handler"], fake_api,
                             cwd=str(task), env={"PYTHONPATH": str(task), "LAMBDA_TASK_ROOT": str(task)})
    await fake_api.wait_for(lambda ex: ex.path.endswith("/fails/error"))
    fake_api.finish()
    assert await proc.wait(15) == 1
    posts = {ex.path.split("/")[-2]: ex for ex in fake_api.exchanges if ex.method == "POST"}
    # The runtime that ran is the vendored one.
    assert posts["where"].json() == {"aruntime": str(task / "aruntime" / "__init__.py")}
    body = posts["fails"].json()
    assert body["stackTrace"] == [
        f'  File "{app}", line 11, in handler\n    _helper()\n',
        f'  File "{app}", line 5, in _helper\n    raise ValueError("from the app")\n',
    ]
    assert f'File "{app}", line 5, in _helper' in proc.stdout.decode()
