"""`path/to/file.py:func`, the handler form `aruntime serve` takes, works wherever a handler is
named: `python -m aruntime FILE.py:FUNC` and `_HANDLER`, relative to LAMBDA_TASK_ROOT (or the
working directory when it is unset), with the reference client's init errors when it cannot load.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fakeapi import FakeRuntimeAPI, run_runtime

T = 15.0
RUNTIME = [sys.executable, "-m", "aruntime"]
APP = '''
import json

def handler(event, context):
    return {"from": __file__, "event": event}

def other(event, context):
    return "other"
'''


@pytest.fixture
def code(tmp_path: Path) -> Path:
    (tmp_path / "src" / "deep").mkdir(parents=True)
    (tmp_path / "src" / "deep" / "app.py").write_text(APP)
    # A module of the same name elsewhere on sys.path must not be the one loaded.
    (tmp_path / "app.py").write_text("raise RuntimeError('the wrong app.py was imported')\n")
    return tmp_path


async def answer(api: FakeRuntimeAPI, argv: list[str], env: dict[str, str], cwd: Path) -> object:
    rid = api.push({"k": 1})
    proc = await run_runtime([*RUNTIME, *argv], api, env=env, cwd=str(cwd))
    ex = await api.wait_for(lambda e: e.method == "POST", timeout=T)
    api.finish()
    await proc.wait(T)
    assert ex.path.endswith(f"/{rid}/response"), (ex, proc.stderr)
    return ex.json()


@pytest.mark.parametrize("how", ["argv", "_HANDLER"])
async def test_file_form_relative_to_the_working_directory(fake_api: FakeRuntimeAPI, code: Path,
                                                           how: str) -> None:
    spec = "src/deep/app.py:handler"
    argv, env = ([spec], {}) if how == "argv" else ([], {"_HANDLER": spec})
    got = await answer(fake_api, argv, env, code)
    assert got == {"from": str(code / "src" / "deep" / "app.py"), "event": {"k": 1}}


async def test_file_form_relative_to_the_task_root(fake_api: FakeRuntimeAPI, code: Path,
                                                   tmp_path: Path) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    got = await answer(fake_api, ["deep/app.py:other"], {"LAMBDA_TASK_ROOT": str(code / "src")}, elsewhere)
    assert got == "other"


async def test_file_form_defaults_to_handler_and_takes_absolute_paths(fake_api: FakeRuntimeAPI,
                                                                      code: Path) -> None:
    got = await answer(fake_api, [f"{code}/src/deep/app.py:"], {}, code)
    assert isinstance(got, dict) and got["event"] == {"k": 1}


@pytest.mark.parametrize(("spec", "error_type", "message"), [
    ("src/deep/nope.py:handler", "Runtime.ImportModuleError",
     "Unable to import module 'src/deep/nope.py': No such file: '{root}/src/deep/nope.py'"),
    ("src/deep/app.py:missing", "Runtime.HandlerNotFound", "Handler 'missing' missing on module 'app'"),
])
async def test_file_form_init_errors(fake_api: FakeRuntimeAPI, code: Path, spec: str, error_type: str,
                                     message: str) -> None:
    proc = await run_runtime([*RUNTIME, spec], fake_api, cwd=str(code))
    ex = await fake_api.wait_for(lambda e: e.path.endswith("/runtime/init/error"), timeout=T)
    assert await proc.wait(T) == 1
    assert ex.header("lambda-runtime-function-error-type") == error_type
    body = ex.json()
    assert body["errorType"] == error_type
    assert body["errorMessage"] == message.format(root=code)
    assert f"[ERROR] {error_type}: {body['errorMessage']}".encode() in proc.stdout


async def test_lambda_form_is_unchanged(fake_api: FakeRuntimeAPI, code: Path) -> None:
    """`src/deep/app.handler` is still Lambda's dir/module.func form (no colon)."""
    got = await answer(fake_api, ["src/deep/app.handler"], {}, code)
    assert isinstance(got, dict) and got["from"] == str(code / "src" / "deep" / "app.py")
