"""`aruntime layer build` and its exec wrapper, run the way Lambda's managed Python runtime runs it.

The managed bootstrap (`/var/runtime/bootstrap`) ends with
`exec -- "$AWS_LAMBDA_EXEC_WRAPPER" /var/lang/bin/python3.x [flags] /var/runtime/bootstrap.py`.
These tests unpack the layer into a temporary `/opt`, put a decoy managed `bootstrap.py` where
`/var/runtime` would be, and start the wrapper with that command line and Lambda's environment
against the fake Runtime API. The decoy exits 3 and says so: it must never run.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # the test extra installs tomli there
    import tomli as tomllib

from fakeapi import REPO_ROOT, Exchange, FakeRuntimeAPI, RuntimeProcess, run_runtime, scratch_env

from aruntime import __version__
from aruntime.tools import layer
from aruntime.tools.layer import (
    DEPENDENCIES,
    FAST_DEPENDENCIES,
    WRAPPER_NAME,
    LayerError,
    build_layer,
    find_interpreter,
    host_arch,
    interpreter_candidates,
    main as layer_main,
)

HOST_PY = f"{sys.version_info[0]}.{sys.version_info[1]}"
DECOY_MARKER = "MANAGED BOOTSTRAP RAN"
DECOY = f"import sys\nsys.stderr.write({DECOY_MARKER!r} + '\\n')\nsys.exit(3)\n"
ELF_MACHINE = {"x86_64": 62, "arm64": 183}
# Other CPythons this machine has (pyenv's, the OS's), for bytecode made by the target version.
OTHER_PYTHONS = [v for v in ("3.12", "3.13", "3.10", "3.11", "3.14") if v != HOST_PY]


def other_python() -> tuple[str, str]:
    """(version, interpreter) of a CPython other than this one, found without the code under
    test (pyenv's versions, /usr/bin, /usr/local/bin); skips the test without one."""
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    for version in OTHER_PYTHONS:
        for found in [*sorted(pyenv.glob(f"{version}.*/bin/python{version}")),
                      Path(f"/usr/bin/python{version}"), Path(f"/usr/local/bin/python{version}")]:
            if found.is_file() and os.access(found, os.X_OK):
                return version, str(found)
    pytest.skip(f"no CPython other than {HOST_PY} on this machine (looked for {OTHER_PYTHONS})")


def clean_env(**extra: str) -> dict[str, str]:
    """A subprocess environment built from scratch: what finding programs needs, plus `extra`."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", **extra}

# The function code the tests deploy: reports where its imports came from and how Python runs.
FUNCTION = '''
import importlib.util
import sys

import aruntime
import h11
import orjson


def buffered(event, context):
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {
        "aruntime": aruntime.__file__,
        "h11": h11.__file__,
        "orjson": orjson.__file__,
        "aiohttp": importlib.util.find_spec("aiohttp") is not None,
        "argv0": sys.argv[0],
        "flags": {"utf8": sys.flags.utf8_mode, "no_bytecode": sys.flags.dont_write_bytecode,
                  "no_site": sys.flags.no_site, "ignore_env": sys.flags.ignore_environment},
        "request_id": context.aws_request_id,
    }


def stream(event, context):
    for word in event["words"]:
        yield word.encode()
'''


# -- building and unpacking -----------------------------------------------------------------


# Without a reachable index pip would retry for minutes; fail fast, then build offline.
_PIP_FAST = {"PIP_RETRIES": "1", "PIP_TIMEOUT": "10"}
_pip_failed: list[str] = []


@contextlib.contextmanager
def fast_pip() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in _PIP_FAST}
    os.environ.update({k: os.environ.get(k, v) for k, v in _PIP_FAST.items()})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def no_index(pip_output: str, needs: str) -> str:
    """A one-line skip reason from pip's output when no package index could answer."""
    errors = [line for line in pip_output.splitlines() if line.startswith("ERROR:")]
    last = errors[0] if errors else (pip_output.strip().splitlines() or ["no output"])[-1]
    return (f"needs {needs} from a package index, and pip reached none ({last.strip()[:160]}); "
            "configure one (pip config, PIP_INDEX_URL) to run it")


def build_with_pip(out: Path, **options: Any) -> Path:
    """build_layer through pip download; skips the test when no package index answers."""
    needs = f"wheels for Python {options.get('python')} on {options.get('arch')}"
    if _pip_failed:
        pytest.skip(no_index(_pip_failed[0], needs))
    with fast_pip():
        try:
            return build_layer(out, **options)
        except LayerError as e:
            if "pip download failed" not in str(e):
                raise
            _pip_failed.append(str(e))
            pytest.skip(no_index(_pip_failed[0], needs))


def build_for_host(out: Path) -> Path:
    """The layer for this machine's Python: from pip's wheels, or installed ones when offline."""
    if not _pip_failed:
        with fast_pip():
            try:
                return build_layer(out, python=HOST_PY, arch=host_arch())
            except LayerError as e:
                _pip_failed.append(str(e))
    return build_layer(out, python=HOST_PY, arch=host_arch(), from_local=True)


def unpack(zip_path: Path, dest: Path) -> Path:
    """Unzip as Lambda does: with `unzip` when there is one (it applies the stored modes)."""
    dest.mkdir(parents=True, exist_ok=True)
    if shutil.which("unzip"):
        subprocess.run(["unzip", "-q", "-o", str(zip_path), "-d", str(dest)], check=True, timeout=60)
        return dest
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            zf.extract(info, dest)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(dest / info.filename, mode)
    return dest


@pytest.fixture(scope="module")
def layer_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_for_host(tmp_path_factory.mktemp("layer") / "aruntime-layer.zip")


@pytest.fixture(scope="module")
def opt(layer_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return unpack(layer_zip, tmp_path_factory.mktemp("opt"))


@pytest.fixture
def sandbox(tmp_path: Path) -> dict[str, Path]:
    """A function's /var/task with FUNCTION in it, and a /var/runtime holding the decoy."""
    task = tmp_path / "task"
    task.mkdir()
    (task / "fn.py").write_text(FUNCTION)
    runtime_dir = tmp_path / "runtime"
    runtime_dir.mkdir()
    (runtime_dir / "bootstrap.py").write_text(DECOY)
    return {"task": task, "runtime": runtime_dir}


def lambda_env(task: Path, runtime_dir: Path, handler: str, wrapper: Path) -> dict[str, str]:
    """What Lambda's managed Python runtime puts in the environment (PYTHONPATH included)."""
    return {
        "_HANDLER": handler,
        "LAMBDA_TASK_ROOT": str(task),
        "LAMBDA_RUNTIME_DIR": str(runtime_dir),
        "PYTHONPATH": str(runtime_dir),
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{HOST_PY}",
        "AWS_LAMBDA_EXEC_WRAPPER": str(wrapper),
        "AWS_LAMBDA_FUNCTION_NAME": "layer-test",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/layer-test",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]0123456789abcdef",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
    }


async def start_managed(api: FakeRuntimeAPI, opt: Path, sandbox: dict[str, Path], handler: str,
                        flags: tuple[str, ...] = ()) -> RuntimeProcess:
    """Start the wrapper with the managed bootstrap's exact argv shape and environment."""
    wrapper = opt / WRAPPER_NAME
    cmd = [str(wrapper), sys.executable, *flags, str(sandbox["runtime"] / "bootstrap.py")]
    env = lambda_env(sandbox["task"], sandbox["runtime"], handler, wrapper)
    return await run_runtime(cmd, api, env=env, cwd=str(sandbox["task"]))


async def response_of(api: FakeRuntimeAPI, proc: RuntimeProcess, rid: str,
                      kind: str = "response") -> Exchange:
    """The runtime's answer to invocation `rid`; fails fast, with its output, if it dies first."""
    want = asyncio.ensure_future(
        api.wait_for(lambda ex: ex.method == "POST" and ex.path.endswith(f"/{rid}/{kind}"), timeout=15))
    died = asyncio.ensure_future(proc.wait(15))
    try:
        await asyncio.wait({want, died}, return_when=asyncio.FIRST_COMPLETED, timeout=20)
        if want.done():
            return want.result()
    finally:
        want.cancel()
        died.cancel()
    raise AssertionError(f"no /{kind} for {rid}; runtime exit {proc.returncode}, "
                         f"stderr={proc.stderr[-3000:]!r}, exchanges={api.exchanges}")


async def stop(api: FakeRuntimeAPI, proc: RuntimeProcess) -> None:
    """End the run the way the fake ends it (/next answers 500) and check who answered."""
    api.finish()
    code = await proc.wait(15)
    assert code == 1, (proc.stdout, proc.stderr)
    assert DECOY_MARKER.encode() not in proc.stderr + proc.stdout
    agents = {ex.header("user-agent") for ex in api.exchanges}
    assert agents and all(a and a.startswith("aruntime/") for a in agents), agents


def assert_streamed(ex: Exchange, chunks: list[bytes], content_type: str) -> None:
    assert ex.status == 202
    assert ex.header("lambda-runtime-function-response-mode") == "streaming"
    assert (ex.header("transfer-encoding") or "").lower() == "chunked"
    assert ex.header("content-type") == content_type
    assert [c for _, c in ex.chunks] == chunks
    assert ex.trailers == []


# -- the zip ------------------------------------------------------------------------------------


def test_zip_layout(layer_zip: Path) -> None:
    with zipfile.ZipFile(layer_zip) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        wrapper = infos[WRAPPER_NAME]
        assert wrapper.create_system == 3
        assert (wrapper.external_attr >> 16) & 0o777 == 0o755
        assert zf.read(WRAPPER_NAME).startswith(b"#!/bin/sh\n")
        names = set(infos)
    tops = {n.split("/")[0] for n in names}
    assert tops == {"python", WRAPPER_NAME}
    assert {"python/aruntime/__init__.py", "python/aruntime/runtime.py",
            "python/h11/__init__.py", "python/orjson/__init__.py",
            f"python/aruntime-{__version__}.dist-info/METADATA"} <= names
    # The emulator's stack stays out: no aiohttp (or its helpers' top-level names), no emulator.
    packages = {n.split("/")[1] for n in names if n.startswith("python/")}
    assert not {p for p in packages if p.lower().startswith(("aiohttp", "aiosignal", "yarl",
                                                             "multidict", "frozenlist"))}
    assert not any(n.startswith("python/aruntime/emulator") for n in names)
    # Bytecode for this Python ships, so a read-only /opt costs no compile at cold start.
    tag = sys.implementation.cache_tag
    assert f"python/aruntime/__pycache__/runtime.{tag}.pyc" in names


def test_orjson_binary_matches_host(opt: Path) -> None:
    (so,) = list((opt / "python" / "orjson").glob("orjson*.so"))
    assert f"cpython-{sys.version_info[0]}{sys.version_info[1]}" in so.name
    header = so.read_bytes()[:20]
    assert header[:4] == b"\x7fELF"
    assert int.from_bytes(header[18:20], "little") == ELF_MACHINE[host_arch()]


def test_unzipped_wrapper_is_executable(opt: Path) -> None:
    assert os.stat(opt / WRAPPER_NAME).st_mode & stat.S_IXUSR


def test_dependencies_match_pyproject() -> None:
    with open(REPO_ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    assert sorted(project["dependencies"]) == sorted(DEPENDENCIES)


def test_fast_layer_ships_httptools(tmp_path: Path) -> None:
    plain = build_layer(tmp_path / "plain.zip", from_local=True)
    fast = build_layer(tmp_path / "fast.zip", from_local=True, fast=True)
    with zipfile.ZipFile(plain) as zf:
        assert not any(n.startswith("python/httptools/") for n in zf.namelist())
    with zipfile.ZipFile(fast) as zf:
        assert "python/httptools/__init__.py" in zf.namelist()
    with open(REPO_ROOT / "pyproject.toml", "rb") as f:
        assert tomllib.load(f)["project"]["optional-dependencies"]["fast"] == FAST_DEPENDENCIES


def test_build_is_reproducible(tmp_path: Path) -> None:
    a = build_layer(tmp_path / "a.zip", from_local=True)
    b = build_layer(tmp_path / "b.zip", from_local=True)
    assert a.read_bytes() == b.read_bytes()


def test_arm64_build_for_another_python(tmp_path: Path) -> None:
    target, interpreter = other_python()
    out = build_with_pip(tmp_path / "arm.zip", python=target, arch="arm64")
    opt = unpack(out, tmp_path / "opt")
    (so,) = list((opt / "python" / "orjson").glob("orjson*.so"))
    assert f"cpython-{target.replace('.', '')}" in so.name and "aarch64" in so.name
    assert int.from_bytes(so.read_bytes()[18:20], "little") == ELF_MACHINE["arm64"]
    # Bytecode does not depend on the architecture: the target's Python found here wrote it.
    tag = f"cpython-{target.replace('.', '')}"
    pycs = list((opt / "python").rglob("*.pyc"))
    assert (opt / "python" / "aruntime" / "__pycache__" / f"runtime.{tag}.pyc") in pycs
    assert all(p.name.endswith(f".{tag}.pyc") for p in pycs), pycs
    assert not (opt / "python" / "aiohttp").exists()


def pyc_flags(pyc: Path) -> int:
    """The flags word of a pyc header (PEP 552): 0 timestamp, 1 unchecked hash, 3 checked hash."""
    return int.from_bytes(pyc.read_bytes()[4:8], "little")


def test_bytecode_for_another_python_is_what_it_imports(tmp_path: Path) -> None:
    """Built here for another Python, the layer's pycs are the ones that Python loads: imported
    from the unzipped layer, nothing is compiled from source and no bytecode is written."""
    target, interpreter = other_python()
    out = build_with_pip(tmp_path / "layer.zip", python=target, arch=host_arch())
    opt = unpack(out, tmp_path / "opt")
    python_dir = opt / "python"
    pycs = sorted(python_dir.rglob("*.pyc"))
    assert pycs and {pyc_flags(p) for p in pycs} == {1}  # unchecked-hash: zip dates don't matter
    before = sorted(p for p in opt.rglob("*"))
    # PYTHONDONTWRITEBYTECODE unset: a source compile would also leave a new pyc behind.
    proc = subprocess.run(
        [interpreter, "-v", "-X", "importtime", "-c", "import aruntime.runtime, h11, orjson"],
        env=clean_env(PYTHONPATH=str(python_dir)), cwd=str(tmp_path), capture_output=True, text=True,
        timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    matched = {line.split(" matches ", 1)[1] for line in lines if " matches " in line}
    from_source = [line for line in lines
                   if line.startswith("# code object from ") and line.endswith(".py")]
    assert not from_source, from_source
    for module in ("aruntime/__init__.py", "aruntime/runtime.py", "aruntime/protocol.py",
                   "h11/__init__.py", "orjson/__init__.py"):
        assert str(python_dir / module) in matched, module
    assert not [line for line in lines if line.startswith("# wrote ")]
    assert sorted(p for p in opt.rglob("*")) == before


def test_no_interpreter_of_the_target_version_warns_loudly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(layer, "find_interpreter", lambda version: None)
    out = build_layer(tmp_path / "nopyc.zip", from_local=True)
    err = capsys.readouterr().err
    assert f"WARNING: no Python {HOST_PY} found" in err
    assert f"pyenv install {HOST_PY}" in err and "--interpreter" in err
    assert "NO bytecode" in err
    with zipfile.ZipFile(out) as zf:
        assert not [n for n in zf.namelist() if n.endswith(".pyc")]
    # Asked for explicitly, bytecode that cannot be made is an error, not a warning.
    with pytest.raises(LayerError, match=f"needs a Python {HOST_PY}"):
        build_layer(tmp_path / "x.zip", from_local=True, bytecode=True)
    # --no-compile is a choice: no warning.
    build_layer(tmp_path / "src.zip", from_local=True, bytecode=False)
    assert "WARNING" not in capsys.readouterr().err


def test_interpreter_must_be_the_target_version(tmp_path: Path) -> None:
    target, interpreter = other_python()
    with pytest.raises(LayerError) as caught:
        build_layer(tmp_path / "x.zip", from_local=True, interpreter=interpreter)
    assert str(caught.value) == f"--interpreter {interpreter} is CPython {target}, not a CPython {HOST_PY}"
    out = build_layer(tmp_path / "ok.zip", from_local=True, interpreter=sys.executable)
    with zipfile.ZipFile(out) as zf:
        assert f"python/aruntime/__pycache__/runtime.{sys.implementation.cache_tag}.pyc" in zf.namelist()


def test_an_interpreter_that_is_not_there_or_not_python_is_said_so(tmp_path: Path) -> None:
    """Not "is not a CPython 3.x" for a mistyped path: what is wrong with it."""
    with pytest.raises(LayerError) as caught:
        build_layer(tmp_path / "x.zip", from_local=True, interpreter=str(tmp_path / "python3.nope"))
    assert str(caught.value) == (f"--interpreter {tmp_path / 'python3.nope'}: no such executable "
                                 f"(give a CPython {HOST_PY})")
    (tmp_path / "not-python").write_text("#!/bin/sh\nexit 3\n")
    (tmp_path / "not-python").chmod(0o755)
    with pytest.raises(LayerError) as caught:
        build_layer(tmp_path / "x.zip", from_local=True, interpreter=str(tmp_path / "not-python"))
    assert str(caught.value) == (f"--interpreter {tmp_path / 'not-python'} is not a CPython that runs, "
                                 f"not a CPython {HOST_PY}")


def test_interpreter_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PATH first, then pyenv's versions newest patch first (3.9.10 after 3.9.9: numbers, not
    text), then uv's; a candidate that does not run as that version is passed over."""
    home = tmp_path / "home"

    def fake_python(path: Path, says: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"#!/bin/sh\necho '{says}'\n")
        path.chmod(0o755)
        return path

    shim = fake_python(tmp_path / "shims" / "python3.9", "")  # a pyenv shim: runs, says nothing
    shim.write_text("#!/bin/sh\nexit 127\n")
    old = fake_python(home / ".pyenv" / "versions" / "3.9.9" / "bin" / "python3.9", "3.9 cpython")
    new = fake_python(home / ".pyenv" / "versions" / "3.9.10" / "bin" / "python3.9", "3.9 cpython")
    fake_python(home / ".pyenv" / "versions" / "3.9.10-debug" / "bin" / "python3.9", "3.9 cpython")
    uv = fake_python(home / ".local" / "share" / "uv" / "python" / "cpython-3.9.18-linux-x86_64-gnu"
                     / "bin" / "python3.9", "3.9 cpython")
    monkeypatch.delenv("PYENV_ROOT", raising=False)
    found = interpreter_candidates("3.9", path=str(tmp_path / "shims"), home=home)
    assert found[:4] == [str(shim), str(new), str(old), str(uv)]
    assert find_interpreter("3.9", path=str(tmp_path / "shims"), home=home) == str(new)
    new.write_text("#!/bin/sh\necho '3.9 pypy'\n")  # not CPython: its pycs differ
    assert find_interpreter("3.9", path=str(tmp_path / "shims"), home=home) == str(old)


def test_from_local_refuses_a_foreign_target(tmp_path: Path) -> None:
    other = "3.12" if HOST_PY != "3.12" else "3.13"
    with pytest.raises(LayerError, match="--from-local"):
        build_layer(tmp_path / "x.zip", python=other, from_local=True)
    foreign_arch = "arm64" if host_arch() == "x86_64" else "x86_64"
    with pytest.raises(LayerError, match="--from-local"):
        build_layer(tmp_path / "x.zip", arch=foreign_arch, from_local=True)
    assert not (tmp_path / "x.zip").exists()


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert layer_main(["build", "--python", "2.7", "-o", str(tmp_path / "bad.zip")]) == 2
    assert "3.10 or newer" in capsys.readouterr().err
    assert not (tmp_path / "bad.zip").exists()
    # An output that cannot be written: one line, no traceback.
    (tmp_path / "file").write_text("")
    assert layer_main(["build", "--from-local", "--no-compile", "-o", str(tmp_path / "file" / "x.zip")]) == 1
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"aruntime layer: cannot write {tmp_path}/file/x.zip: ")
    # Through the real entry point, as a user types it.
    out = tmp_path / "cli.zip"
    proc = subprocess.run(
        [sys.executable, "-m", "aruntime", "layer", "build", "--from-local", "-o", str(out)],
        cwd=str(tmp_path), env=clean_env(PYTHONPATH=str(REPO_ROOT)),
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "h11-" in proc.stderr and "orjson-" in proc.stderr
    with zipfile.ZipFile(out) as zf:
        assert WRAPPER_NAME in zf.namelist()


# -- the wrapper, started as the managed runtime starts it -----------------------------------------


async def test_managed_runtime_buffered_and_error(fake_api: FakeRuntimeAPI, opt: Path,
                                                  sandbox: dict[str, Path]) -> None:
    # Flags a managed bootstrap may put before its script: kept, except -E (it would hide
    # PYTHONPATH). -S leaves out site-packages, so everything must come from the layer.
    proc = await start_managed(fake_api, opt, sandbox, "fn.buffered",
                               flags=("-S", "-B", "-E", "-X", "utf8"))
    ok = fake_api.push({"hello": 1})
    ex = await response_of(fake_api, proc, ok)
    assert ex.status == 202 and ex.header("content-type") == "application/json"
    got: dict[str, Any] = ex.json()
    layer_python = (opt / "python").resolve()
    for module in ("aruntime", "h11", "orjson"):
        assert Path(got[module]).resolve().is_relative_to(layer_python), got
    assert got["aiohttp"] is False
    assert got["flags"] == {"utf8": 1, "no_bytecode": 1, "no_site": 1, "ignore_env": 0}
    assert Path(got["argv0"]).resolve() == layer_python / "aruntime" / "__main__.py"
    assert got["request_id"] == ok

    bad = fake_api.push({"fail": True})
    ex = await response_of(fake_api, proc, bad, "error")
    assert ex.status == 202
    assert ex.header("lambda-runtime-function-error-type") == "Function.ValueError"
    error = ex.json()
    assert error["errorType"] == "ValueError" and error["errorMessage"] == "asked to fail"
    assert error["requestId"] == bad
    # The user's frames only: every frame is in fn.py (asserted on the file of each frame, not on
    # a substring of a path: a checkout or temporary directory may well be named "aruntime").
    fn = str(sandbox["task"] / "fn.py")
    assert [frame.split('"')[1] for frame in error["stackTrace"]] == [fn]
    assert ", in buffered\n" in error["stackTrace"][0]
    await stop(fake_api, proc)


async def test_managed_runtime_streaming(fake_api: FakeRuntimeAPI, opt: Path,
                                         sandbox: dict[str, Path]) -> None:
    proc = await start_managed(fake_api, opt, sandbox, "fn.stream")
    rid = fake_api.push({"words": ["one", "two", "three"]})
    ex = await response_of(fake_api, proc, rid)
    assert_streamed(ex, [b"one", b"two", b"three"], "application/octet-stream")
    assert ex.body == b"onetwothree"
    # A failure after the first byte ends the stream with the error trailers.
    rid = fake_api.push({"words": ["ok", 5]})
    ex = await response_of(fake_api, proc, rid)
    assert [c for _, c in ex.chunks] == [b"ok"]
    assert ex.trailer("lambda-runtime-function-error-type") == "Function.AttributeError"
    body = json.loads(base64.b64decode(ex.trailer("lambda-runtime-function-error-body") or ""))
    assert body["errorType"] == "AttributeError"
    await stop(fake_api, proc)


async def test_init_error_goes_to_init_error(fake_api: FakeRuntimeAPI, opt: Path,
                                             sandbox: dict[str, Path]) -> None:
    proc = await start_managed(fake_api, opt, sandbox, "fn.missing")
    ex = await fake_api.wait_for(lambda e: e.path.endswith("/runtime/init/error"))
    assert ex.header("lambda-runtime-function-error-type") == "Runtime.HandlerNotFound"
    assert (ex.header("user-agent") or "").startswith("aruntime/")
    assert await proc.wait(15) == 1
    assert DECOY_MARKER.encode() not in proc.stderr


def test_kill_switch_runs_the_managed_bootstrap(opt: Path, sandbox: dict[str, Path]) -> None:
    wrapper = opt / WRAPPER_NAME
    env = {**clean_env(), **lambda_env(sandbox["task"], sandbox["runtime"], "fn.buffered", wrapper),
           "ARUNTIME_DISABLE": "1"}
    proc = subprocess.run([str(wrapper), sys.executable, "-u", str(sandbox["runtime"] / "bootstrap.py")],
                          env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 3 and DECOY_MARKER in proc.stderr


def test_wrapper_without_a_command_line(opt: Path) -> None:
    proc = subprocess.run([str(opt / WRAPPER_NAME)], env=scratch_env(), capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 127 and "expected" in proc.stderr


# -- handing over to another layer's exec wrapper (ARUNTIME_NEXT_WRAPPER) -------------------------

# A stand-in for another layer's exec wrapper (OpenTelemetry's otel-instrument): it records how
# it was started, then runs the command line it was given, as exec wrappers end.
STAND_IN = """#!/bin/sh
printf '%s\\n' "$@" > "$RECORD_DIR/argv"
env > "$RECORD_DIR/env"
exec "$@"
"""


@pytest.fixture
def stand_in(tmp_path: Path) -> tuple[Path, Path]:
    """(the stand-in wrapper, the folder where it records its argv and environment)."""
    record = tmp_path / "record"
    record.mkdir()
    script = tmp_path / "otel-instrument"
    script.write_text(STAND_IN)
    script.chmod(0o755)
    return script, record


async def test_next_wrapper_runs_aruntime_with_both_layers(fake_api: FakeRuntimeAPI, opt: Path,
                                                           sandbox: dict[str, Path],
                                                           stand_in: tuple[Path, Path]) -> None:
    script, record = stand_in
    wrapper = opt / WRAPPER_NAME
    env = {**lambda_env(sandbox["task"], sandbox["runtime"], "fn.buffered", wrapper),
           "ARUNTIME_NEXT_WRAPPER": str(script), "RECORD_DIR": str(record)}
    # Exactly as the managed runtime starts $AWS_LAMBDA_EXEC_WRAPPER.
    proc = await run_runtime([str(wrapper), sys.executable, "-X", "utf8", "-E",
                              str(sandbox["runtime"] / "bootstrap.py")], fake_api, env=env,
                             cwd=str(sandbox["task"]))
    rid = fake_api.push({})
    got = (await response_of(fake_api, proc, rid)).json()
    assert got["request_id"] == rid and got["flags"]["utf8"] == 1
    # The next wrapper got aruntime's command line (the interpreter and its kept flags), as a
    # wrapper gets Lambda's, and Lambda's environment with the layer on PYTHONPATH.
    assert (record / "argv").read_text().splitlines() == [sys.executable, "-X", "utf8", "-m", "aruntime"]
    seen = dict(line.split("=", 1) for line in (record / "env").read_text().splitlines() if "=" in line)
    layer_python = str(opt / "python")
    assert layer_python in seen["PYTHONPATH"].split(":")
    assert seen["PYTHONPATH"].endswith(":" + str(sandbox["runtime"]))  # the managed runtime's own
    for key in ("_HANDLER", "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "AWS_LAMBDA_EXEC_WRAPPER"):
        assert seen[key] == runtime_env_value(fake_api, env, key)
    assert "ARUNTIME_NEXT_WRAPPER" not in seen  # handed over once
    await stop(fake_api, proc)


def runtime_env_value(api: FakeRuntimeAPI, env: dict[str, str], key: str) -> str:
    return api.address if key == "AWS_LAMBDA_RUNTIME_API" else env[key]


def test_next_wrapper_under_the_kill_switch_gets_the_managed_command_line(
        opt: Path, sandbox: dict[str, Path], stand_in: tuple[Path, Path]) -> None:
    script, record = stand_in
    wrapper = opt / WRAPPER_NAME
    managed = [sys.executable, "-u", str(sandbox["runtime"] / "bootstrap.py")]
    env = {**clean_env(), **lambda_env(sandbox["task"], sandbox["runtime"], "fn.buffered", wrapper),
           "ARUNTIME_DISABLE": "1", "ARUNTIME_NEXT_WRAPPER": str(script), "RECORD_DIR": str(record)}
    proc = subprocess.run([str(wrapper), *managed], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 3 and DECOY_MARKER in proc.stderr  # the managed runtime ran
    assert (record / "argv").read_text().splitlines() == managed


@pytest.mark.parametrize("what", ["missing", "not executable", "a directory"])
def test_next_wrapper_that_cannot_run_is_a_one_line_error(opt: Path, sandbox: dict[str, Path],
                                                           tmp_path: Path, what: str) -> None:
    target = tmp_path / "next"
    if what == "not executable":
        target.write_text("#!/bin/sh\nexec \"$@\"\n")
    elif what == "a directory":
        target.mkdir()
    wrapper = opt / WRAPPER_NAME
    env = {**clean_env(), **lambda_env(sandbox["task"], sandbox["runtime"], "fn.buffered", wrapper),
           "ARUNTIME_NEXT_WRAPPER": str(target)}
    proc = subprocess.run([str(wrapper), sys.executable, str(sandbox["runtime"] / "bootstrap.py")],
                          env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 126
    assert proc.stderr == f"aruntime-wrapper: ARUNTIME_NEXT_WRAPPER={target} is not an executable file\n"



def test_find_links_builds_without_an_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheels = tmp_path / "wheels"
    with fast_pip():
        got = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--only-binary=:all:",
             "-d", str(wheels), *DEPENDENCIES], capture_output=True, text=True, timeout=300)
    if got.returncode != 0:
        pytest.skip(no_index(got.stdout + got.stderr, "this Python's wheels for a --find-links folder"))
    # An index that cannot answer: only the folder may be used.
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    out = build_layer(tmp_path / "offline.zip", find_links=str(wheels))
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
    assert "python/h11/__init__.py" in names and "python/orjson/__init__.py" in names
    with pytest.raises(LayerError, match="pip download failed"):
        build_layer(tmp_path / "none.zip", find_links=str(tmp_path / "no-such-dir"))


def test_no_wheel_for_the_target_names_it_and_what_must_match(tmp_path: Path) -> None:
    """pip's "No matching distribution" is said as what it means for the layer: which package has
    no wheel for which Python and architecture, where it was looked for, what must match; not only
    "Offline?" (an empty --find-links folder: nothing is fetched)."""
    empty = tmp_path / "wheels"
    empty.mkdir()
    with pytest.raises(LayerError) as caught:
        build_layer(tmp_path / "none.zip", python="3.12", arch="arm64", find_links=str(empty), bytecode=False)
    message = str(caught.value)
    assert message.startswith("pip download failed (exit 1):\n")
    hint = message.rsplit("\n", 1)[1]
    assert re.fullmatch(
        rf"No wheel of (h11|orjson)\S* for CPython 3\.12 on arm64 was found in {re.escape(str(empty))}\. "
        r"--python and --arch must be the function's \(Lambda's Python runtimes: python3\.10 and newer, on "
        r"x86_64 or arm64\) and the package must publish a wheel for that pair; the folder must hold it\.", hint), hint


# -- end to end: the local emulator starts the wrapper as the managed runtime would -----------


async def test_layer_behind_the_emulator(opt: Path, sandbox: dict[str, Path]) -> None:
    """Buffered, failed and streamed invocations through the emulator's invoke surfaces, with
    the runtime command Lambda's managed Python runtime uses when AWS_LAMBDA_EXEC_WRAPPER is set."""
    from aruntime.emulator import Emulator
    from tests.emulator.helpers import invoke, stream_invoke

    wrapper = opt / WRAPPER_NAME
    command = [str(wrapper), sys.executable, str(sandbox["runtime"] / "bootstrap.py")]
    env = {k: v for k, v in lambda_env(sandbox["task"], sandbox["runtime"], "", wrapper).items()
           if k not in ("_HANDLER", "LAMBDA_TASK_ROOT")}  # the emulator sets these two itself
    logs: list[str] = []
    fn = sandbox["task"] / "fn.py"
    async with Emulator(f"{fn}:buffered", port=0, runtime_command=command, env=env,
                        log=logs.append) as emu:
        status, headers, body = await invoke(emu, {"x": 1})
        assert status == 200 and "X-Amz-Function-Error" not in headers, body
        result = json.loads(body)
        assert result["aruntime"].startswith(str(opt / "python"))
        assert result["orjson"].startswith(str(opt / "python"))
        status, headers, body = await invoke(emu, {"fail": True})
        assert headers["X-Amz-Function-Error"] == "Unhandled"
        assert json.loads(body)["errorType"] == "ValueError"
    assert not any(DECOY_MARKER in line for line in logs)
    async with Emulator(f"{fn}:stream", port=0, runtime_command=command, env=env,
                        log=logs.append) as emu:
        _, messages = await stream_invoke(emu, {"words": ["one ", "two ", "three"]})
    chunks = [m.payload for _, m in messages if m.headers[":event-type"] == "PayloadChunk"]
    assert chunks == [b"one ", b"two ", b"three"]
    complete = json.loads(messages[-1][1].payload)
    assert messages[-1][1].headers[":event-type"] == "InvokeComplete" and not complete.get("ErrorCode")
