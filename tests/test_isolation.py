"""What the host exports never reaches a process the tests start, nor the function the emulator runs.

`.ci/run` also runs the suite with hostile values exported (HOSTILE there); these tests pin the
environments themselves, key by key, with hostile values put into this process's environment.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

import fakeapi
from fakeapi import REPO_ROOT, FakeRuntimeAPI, run_runtime

# What a host may export that would change a result if it leaked (issue 15).
HOSTILE = {
    "PYTHONUNBUFFERED": "1",
    "PYTHONIOENCODING": "ascii",
    "PYTHONPATH": "/nonexistent",
    "AWS_LAMBDA_MAX_CONCURRENCY": "2",
    "AWS_REGION": "eu-west-1",
    "AWS_LAMBDA_LOG_FORMAT": "JSON",
    "AWS_LAMBDA_LOG_LEVEL": "DEBUG",
    "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:1",
    "_HANDLER": "hostile.handler",
    "_X_AMZN_TRACE_ID": "Root=hostile",
    "LAMBDA_TASK_ROOT": "/nonexistent",
    "ARUNTIME_HTTP": "bogus",
    "LANG": "C",
    "LC_ALL": "C",
    "TZ": "Pacific/Kiritimati",
    "SOME_TOOL_SETTING": "x",
}

ENV_REPORT = "import json, os; print(json.dumps(dict(os.environ)))"


def host_needs() -> dict[str, str]:
    return {k: os.environ[k] for k in fakeapi.HOST_NEEDS if k in os.environ}


def test_this_process_was_scrubbed_before_the_tests_ran() -> None:
    from conftest import SCRUBBED  # noqa: F401 - the names are shown in pytest's header

    lambda_like = [k for k in os.environ
                   if k.startswith(("AWS_", "LAMBDA_", "_LAMBDA_", "_X_AMZN_", "PYTHON", "LC_"))
                   or k in ("_HANDLER", "TZ")]
    assert lambda_like == []
    assert os.environ["LANG"] == "C.UTF-8"
    assert os.environ["ARUNTIME_HTTP"] == fakeapi.WIRE_ENGINE in ("h11", "httptools")


async def test_runtime_env_is_built_from_scratch(fake_api: FakeRuntimeAPI,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in HOSTILE.items():
        monkeypatch.setenv(key, value)
    proc = await run_runtime([sys.executable, "-c", ENV_REPORT], fake_api, env={"EXTRA": "yes"})
    assert await proc.wait(20) == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen == {**host_needs(), "LANG": "C.UTF-8", "PYTHONPATH": str(REPO_ROOT),
                    "ARUNTIME_HTTP": fakeapi.WIRE_ENGINE,
                    "AWS_LAMBDA_RUNTIME_API": fake_api.address, "EXTRA": "yes"}


async def test_emulator_passes_lambdas_variables_and_env_only(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from aruntime.emulator.config import default_runtime_command
    from aruntime.emulator.process import FROM_CALLER
    from emulator.helpers import emulator, invoke

    (tmp_path / "envfn.py").write_text(
        "import os\n"
        "def handler(event, context):\n"
        "    return dict(os.environ)\n")
    for key, value in HOSTILE.items():
        if key != "AWS_REGION":  # the function's region: pinned below
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")  # a function gets its role's keys

    async with emulator(f"{tmp_path}/envfn.py:handler", runtime_command=default_runtime_command(),
                        env={"AWS_LAMBDA_LOG_LEVEL": "INFO", "MY_SETTING": "1"},
                        function_name="envfn") as emu:
        status, _, body = await invoke(emu, {}, path="/2015-03-31/functions/envfn/invocations")
    assert status == 200, body
    seen = json.loads(body)
    caller = {k: os.environ[k] for k in FROM_CALLER if k in os.environ}
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", seen.pop("AWS_LAMBDA_LOG_STREAM_NAME"))
    host, _, port = seen.pop("AWS_LAMBDA_RUNTIME_API").rpartition(":")
    # Set by the runtime for each invocation (docs/SPEC.md §1), from the emulator's trace header.
    assert seen.pop("_X_AMZN_TRACE_ID").startswith("Root=1-")
    # Python's own: where en_US.UTF-8 is not installed it coerces the C locale (PEP 538).
    assert seen.pop("LC_CTYPE", "C.UTF-8") == "C.UTF-8"
    assert host == "127.0.0.1" and port.isdigit()
    assert seen == {
        **caller,
        "_HANDLER": "envfn.handler",
        "LAMBDA_TASK_ROOT": str(tmp_path),
        "LAMBDA_RUNTIME_DIR": str(tmp_path),
        "AWS_LAMBDA_FUNCTION_NAME": "envfn",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/envfn",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": str(REPO_ROOT),
        "AWS_LAMBDA_LOG_LEVEL": "INFO",
        "MY_SETTING": "1",
    }
    assert seen["AWS_ACCESS_KEY_ID"] == "AKIDEXAMPLE"
