"""`aruntime serve` and the `aruntime` command: parsing, start-up checks, serving, a clean stop on
Ctrl-C, and one-line errors that say what to do."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path

import aiohttp
import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from aruntime import __version__
from aruntime.emulator import Emulator
from aruntime.emulator.config import parse_handler, resolve_runtime_command
from aruntime.tools.hints import install_hint
from aruntime.tools.serve import _listen_problem, banner, build_parser, main, startup_warnings

from .helpers import INVOKE, LIMIT, RIC, ROOT


def test_parse_handler_forms(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "app.py").write_text("")
    assert parse_handler("pkg/app.py:run", str(tmp_path)) == ("app.run", str(tmp_path / "pkg"))
    assert parse_handler("pkg/app.py", str(tmp_path)) == ("app.handler", str(tmp_path / "pkg"))
    assert parse_handler("pkg.app.run", str(tmp_path)) == ("pkg.app.run", str(tmp_path))


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment built from scratch for `python -m aruntime` (the checkout importable),
    outside Lambda: no AWS_LAMBDA_RUNTIME_API, whatever the host exports."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(tmp_path),
            "PYTHONPATH": str(ROOT), **extra}


def run_cli(args: list[str], tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aruntime", *args], cwd=str(tmp_path),
                          env=cli_env(tmp_path, **extra), capture_output=True, text=True, timeout=60)


async def serve_and_invoke(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, dict]:  # type: ignore[type-arg]
    """Start `aruntime serve ARGS --port 0`, invoke it once through the address its banner
    prints, stop it with Ctrl-C; (exit status, everything it printed, the invoke's result)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aruntime", "serve", *args, "--port", "0",
        cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    printed: list[str] = []
    try:
        async def address() -> str:
            while True:
                line = (await proc.stdout.readline()).decode()  # type: ignore[union-attr]
                assert line, f"serve ended before listening: {printed}"
                printed.append(line)
                if m := re.search(r"Function URL:\s+(http://\S+)/", line):
                    return m.group(1)

        url = await asyncio.wait_for(address(), LIMIT)

        async def call() -> dict:  # type: ignore[type-arg]
            async with aiohttp.ClientSession() as session:
                async with session.post(url + INVOKE, json={"cli": True}) as r:
                    return json.loads(await r.read())

        result = await asyncio.wait_for(call(), LIMIT)
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = await asyncio.wait_for(proc.communicate(), LIMIT)
    return proc.returncode or 0, "".join(printed) + output.decode(), result


async def test_serve_file_handler_with_the_reference_runtime(tmp_path: Path) -> None:
    code, output, result = await serve_and_invoke(
        ["examples/echo.py:handler", "--runtime-command", shlex.join(RIC), "--timeout", "3", "--env", "GREETING=hi"],
        ROOT, cli_env(tmp_path),
    )
    assert code == 0, output
    assert result["echo"] == {"cli": True} and result["function_name"] == "echo"
    assert 2000 < result["remaining_ms"] <= 3000
    assert "Function URL:  http://127.0.0.1:" in output
    assert f"START RequestId: {result['request_id']}" in output
    assert f"REPORT RequestId: {result['request_id']}" in output


async def test_serve_module_handler_with_the_default_runtime(tmp_path: Path) -> None:
    code, output, result = await serve_and_invoke(["echo.handler"], ROOT / "examples", cli_env(tmp_path))
    assert code == 0, output
    assert result["echo"] == {"cli": True}
    assert "warning" not in output


async def test_a_bare_python_in_the_runtime_command_is_the_serving_interpreter(tmp_path: Path) -> None:
    """`--runtime-command "python -m awslambdaric"` must not run whatever `python` is first on
    PATH: here that one only fails, loudly."""
    decoys = tmp_path / "bin"
    decoys.mkdir()
    for name in ("python", "python3"):
        (decoys / name).write_text("#!/bin/sh\necho WRONG PYTHON >&2\nexit 9\n")
        (decoys / name).chmod(0o755)
    env = cli_env(tmp_path, PATH=f"{decoys}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}")
    for command in ("python -m awslambdaric", "python3 -m aruntime"):
        code, output, result = await serve_and_invoke(
            ["examples/echo.py:handler", "--runtime-command", command], ROOT, env)
        assert code == 0, output
        assert result["echo"] == {"cli": True}, output
        assert "WRONG PYTHON" not in output
        runtime = shlex.join([sys.executable, *command.split()[1:]])
        # The wire engine is aruntime's: shown for it only.
        shown = " (wire engine " if command.endswith("aruntime") else "; timeout "
        assert f"runtime: {runtime}{shown}" in output
    emu = Emulator(f"{ROOT}/examples/echo.py:handler", runtime_command=["python3", "-m", "awslambdaric"])
    assert emu.config.runtime_command == [sys.executable, "-m", "awslambdaric"]


def test_port_in_use_is_a_clear_error(capsys) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main([f"{ROOT}/examples/echo.py:handler", "--port", str(port)]) == 1
    # One line: the OS's reason (not asyncio's "error while attempting to bind on address
    # ('127.0.0.1', N)" repeating the address) and what to do.
    assert capsys.readouterr().err == (
        f"aruntime serve: cannot listen on 127.0.0.1:{port}: address already in use "
        "(another aruntime serve? --port N picks another port, --port 0 a free one)\n")
    # The other reasons a newcomer meets, as asyncio raises them (tests bind loopback only).
    wrapped = "error while attempting to bind on address ('h', 1): "
    assert _listen_problem(OSError(errno.EADDRNOTAVAIL, wrapped + "cannot assign requested address")) == (
        "cannot assign requested address (--host must be an address of this machine, such as 127.0.0.1)")
    assert _listen_problem(OSError(errno.EACCES, wrapped + "permission denied")) == (
        "permission denied (ports below 1024 need privileges: --port N picks another)")
    assert _listen_problem(OverflowError("bind(): port must be 0-65535.")) == "bind(): port must be 0-65535."


def test_bad_options_are_one_line_errors(tmp_path: Path) -> None:
    for args, says in ((["--port", "90510"], "--port: must be from 0 to 65535"),
                       (["--port", "http"], "--port: must be a number from 0 to 65535"),
                       (["--timeout", "0"], "--timeout: must be more than 0 and at most 900 s"),
                       (["--memory", "64"], "--memory: must be from 128 to 10240 MB"),
                       (["--env", "NOEQUALS"], "--env: expected KEY=VALUE"),
                       (["--env", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=512"],
                        "--env: AWS_LAMBDA_FUNCTION_MEMORY_SIZE is one of Lambda's reserved keys, which a "
                        "function's configuration cannot set (--memory sets it)"),
                       (["--env", "AWS_LAMBDA_RUNTIME_API=127.0.0.1:9"], "AWS_LAMBDA_RUNTIME_API is one of Lambda's"),
                       (["--env", "_HANDLER=other.handler"], "_HANDLER is one of Lambda's reserved keys"),
                       (["--function-name", "my fn"], "--function-name: must be 1 to 64 letters, digits"),
                       (["--function-name", "a/b"], "--function-name: must be 1 to 64 letters, digits"),
                       (["--function-name", "f" * 65], "--function-name: must be 1 to 64 letters, digits")):
        proc = run_cli(["serve", f"{ROOT}/examples/echo.py:handler", *args], tmp_path)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        error_lines = [line for line in proc.stderr.splitlines() if "error:" in line]
        assert len(error_lines) == 1 and says in error_lines[0], (args, proc.stderr)
    # Lambda's names pass: a path segment of the Invoke URLs as they are.
    for name in ("my-fn_2", "F" * 64):
        assert build_parser().parse_args(["app.handler", "--function-name", name]).function_name == name


def test_serve_without_the_emulator_extra(tmp_path: Path) -> None:
    # aiohttp made unimportable, as in an install without the `emulator` extra.
    code = ("import sys; sys.modules['aiohttp'] = None; from aruntime.__main__ import main; "
            f"sys.exit(main(['serve', {str(ROOT / 'examples/echo.py')!r} + ':handler']))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), env=cli_env(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    # Run from this checkout: the hint is the command that installs the extra for it, today.
    hint = f"{shlex.quote(sys.executable)} -m pip install -e {shlex.quote(f'{ROOT}[emulator]')}"
    assert proc.stderr == f"aruntime serve: the local Lambda needs aiohttp, from the emulator extra: {hint}\n"


def test_install_hints_are_true_today(tmp_path: Path) -> None:
    """aruntime is not on PyPI: a hint naming only `aruntime[extra]` would fail as given."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert install_hint("reference") == (
        f"{shlex.quote(sys.executable)} -m pip install -e {shlex.quote(f'{ROOT}[reference]')}")
    # An aruntime that is not a checkout (a copy in site-packages): the published name, and
    # the command that works today beside it, on one line.
    shutil.copytree(ROOT / "aruntime", tmp_path / "site" / "aruntime",
                    ignore=shutil.ignore_patterns("__pycache__"))
    code = "from aruntime.tools.hints import install_hint as h; print(h('emulator')); print(h('fast'))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True, text=True,
                          env=cli_env(tmp_path, PYTHONPATH=str(tmp_path / "site")), timeout=60)
    assert proc.stdout.splitlines() == [
        f"pip install 'aruntime[{extra}]' once published (not on PyPI yet: from a checkout of aruntime, "
        f"pip install -e '.[{extra}]')"
        for extra in ("emulator", "fast")], proc.stderr
    for extra in ("emulator", "reference", "fast", "otel", "boto3"):
        assert extra in extras
    # Each place a tool prints a hint uses it: --reload without watchfiles, a reference
    # runtime this interpreter lacks (awslambdaric made unimportable), a layer-only copy.
    code = ("import sys; sys.modules['watchfiles'] = None; sys.modules['awslambdaric'] = None\n"
            "from aruntime.emulator.reload import check_available, ReloadUnavailable\n"
            "from aruntime.tools.serve import startup_warnings\n"
            "try: check_available()\nexcept ReloadUnavailable as e: print(e)\n"
            f"print(startup_warnings({str(ROOT / 'examples/echo.py')!r} + ':handler', "
            "[sys.executable, '-m', 'awslambdaric'])[0])")
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True, text=True,
                          env=cli_env(tmp_path), timeout=60)
    assert proc.stdout.splitlines() == [
        f"--reload needs watchfiles, from the emulator extra: {install_hint('emulator')}",
        f"awslambdaric is not installed for {sys.executable} ({install_hint('reference')}): "
        "the runtime cannot start"], proc.stderr
    layer_copy = tmp_path / "layer"
    shutil.copytree(ROOT / "aruntime", layer_copy / "aruntime",
                    ignore=shutil.ignore_patterns("__pycache__", "tools"))
    # -S, site-packages on PYTHONPATH: its packages (orjson) without its .pth files, whose
    # editable-install finder would supply this checkout's tools to the copy.
    path = os.pathsep.join([str(layer_copy), sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    proc = subprocess.run([sys.executable, "-S", "-m", "aruntime", "serve", "app.handler"], cwd=str(tmp_path),
                          capture_output=True, text=True, env=cli_env(tmp_path, PYTHONPATH=path), timeout=60)
    assert (proc.returncode, proc.stderr) == (2, (
        "aruntime: this copy holds the runtime only (as a Lambda layer does): install the package "
        "for the command-line tools (not on PyPI yet: from a checkout of aruntime, pip install -e .)\n"))
    # Every other hint in the package (the runtime's own, for ARUNTIME_HTTP / ARUNTIME_LOOP
    # naming a module not installed, too) says the same: none names only the unpublished package.
    for path in (ROOT / "aruntime").rglob("*.py"):
        text = path.read_text()
        for m in re.finditer(r"pip install '?aruntime\b", text):
            line = text[text.rfind("\n", 0, m.start()) + 1:text.find("\n", m.end())]
            assert "not on PyPI" in line or "from a checkout" in line, (path, line)


def test_aruntime_outside_lambda(tmp_path: Path) -> None:
    """No arguments outside Lambda: a usage line naming the tools, not a Runtime API error."""
    proc = run_cli([], tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("usage: aruntime serve HANDLER")
    assert "aruntime layer build" in proc.stderr and "AWS_LAMBDA_RUNTIME_API" not in proc.stderr
    for flag in ("--version", "-V"):
        proc = run_cli([flag], tmp_path)
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"aruntime {__version__}\n", "")
    proc = run_cli(["--help"], tmp_path)
    assert proc.returncode == 0 and "aruntime serve HANDLER" in proc.stdout
    # A handler outside Lambda: say how to run it locally.
    proc = run_cli(["app.handler"], tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == ("aruntime: AWS_LAMBDA_RUNTIME_API is not set, so there is no Lambda to serve "
                           "'app.handler': run it locally with `aruntime serve app.handler`\n")
    # A mistyped command word is not a handler to serve: usage, and the command it resembles.
    for args, says in ((["server", "app.py:handler"], "aruntime: unknown command 'server' (did you mean 'serve'?)\n"),
                       (["layers", "build"], "aruntime: unknown command 'layers' (did you mean 'layer'?)\n"),
                       (["frobnicate"], "aruntime: unknown command 'frobnicate'\n")):
        proc = run_cli(args, tmp_path)
        assert (proc.returncode, proc.stdout) == (2, ""), (args, proc)
        assert proc.stderr.startswith(says) and "usage: aruntime serve HANDLER" in proc.stderr, (args, proc.stderr)
    # The console script is the same entry point.
    script = Path(sys.executable).with_name("aruntime")
    if script.exists():
        proc = subprocess.run([str(script), "--version"], env=cli_env(tmp_path), capture_output=True,
                              text=True, timeout=60)
        assert proc.stdout == f"aruntime {__version__}\n"


def test_every_option_has_help_and_is_in_the_readme_usage() -> None:
    parser = build_parser()
    options = [a for a in parser._actions if a.dest != "help"]
    assert all(a.help and len(a.help) > 10 for a in options), [a.dest for a in options if not a.help]
    readme = (ROOT / "README.md").read_text()
    usage = re.search(r"```\n(aruntime serve HANDLER .*?)```", readme, re.S)
    assert usage, "README's usage block for aruntime serve"
    for action in options:
        for flag in action.option_strings:
            if flag.startswith("--"):
                assert flag in usage.group(1), flag


async def test_a_missing_handler_file_is_a_warning_at_start(tmp_path: Path) -> None:
    (tmp_path / "there.py").write_text("def handler(event, context):\n    return 1\n")
    for handler, says in (("gone.py:handler", f"no gone.py (nor package gone/) in {tmp_path}"),
                          ("missing.handler", f"no missing.py (nor package missing/) in {tmp_path}"),
                          ("sub/gone.handler", f"no sub/gone.py (nor package sub/gone/) in {tmp_path}")):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "aruntime", "serve", handler, "--port", "0", cwd=tmp_path,
            env=cli_env(tmp_path), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert proc.stderr is not None and proc.stdout is not None
        try:
            warning = (await asyncio.wait_for(proc.stderr.readline(), LIMIT)).decode()
            banner_line = (await asyncio.wait_for(proc.stdout.readline(), LIMIT)).decode()
        finally:
            proc.send_signal(signal.SIGINT)
            await asyncio.wait_for(proc.communicate(), LIMIT)
        assert warning.startswith("aruntime serve: warning: ") and says in warning, warning
        assert "Runtime.ImportModuleError" in warning
        assert banner_line.startswith("aruntime: function ")  # it serves all the same
        assert proc.returncode == 0
    for handler in ("there.py:handler", "there.handler"):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "aruntime", "serve", handler, "--port", "0", cwd=tmp_path,
            env=cli_env(tmp_path), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert proc.stdout is not None
        try:
            await asyncio.wait_for(proc.stdout.readline(), LIMIT)
        finally:
            proc.send_signal(signal.SIGINT)
            _, err = await asyncio.wait_for(proc.communicate(), LIMIT)
        assert b"warning" not in err, err


def test_a_missing_runtime_module_is_a_warning() -> None:
    handler = f"{ROOT}/examples/echo.py:handler"
    command = resolve_runtime_command(["python", "-m", "no_such_runtime_xyz"])
    assert startup_warnings(handler, command) == [
        f"no_such_runtime_xyz is not installed for {sys.executable}: the runtime cannot start"]
    assert startup_warnings(handler, resolve_runtime_command(["python", "-m", "awslambdaric"])) == []
    assert startup_warnings(handler, None) == []


def test_a_runtime_command_that_cannot_start_is_a_warning(tmp_path: Path) -> None:
    """A mistyped --runtime-command is said at start, as the runtime's PATH and working
    directory (the code directory) would resolve it, not found out by the first invoke."""
    (tmp_path / "app.py").write_text("def handler(event, context):\n    return 1\n")
    (tmp_path / "bootstrap").write_text("#!/bin/sh\n")
    handler = f"{tmp_path}/app.py:handler"
    fail = ": every invocation will fail with Runtime.InvalidEntrypoint"
    assert startup_warnings(handler, ["no-such-runtime-xyz", "-x"]) == [
        f"the runtime command's program 'no-such-runtime-xyz' is not on PATH{fail}"]
    assert startup_warnings(handler, ["/nonexistent/runtime"]) == [
        f"the runtime command's program '/nonexistent/runtime' is not an executable file{fail}"]
    assert startup_warnings(handler, ["./bootstrap"]) == [  # there, but not executable
        f"the runtime command's program './bootstrap' is not an executable file in {tmp_path} "
        f"(the runtime's working directory){fail}"]
    (tmp_path / "bootstrap").chmod(0o755)
    assert startup_warnings(handler, ["./bootstrap"]) == []
    # The runtime's PATH: the caller's, or the one given with --env.
    assert startup_warnings(handler, ["bootstrap"], {"PATH": str(tmp_path / "elsewhere")}) != []
    assert startup_warnings(handler, ["bootstrap"], {"PATH": str(tmp_path)}) == []
    assert startup_warnings(handler, ["sh", "-c", "true"]) == []
    # Through the command line, on stderr before the banner; serving goes on.
    proc = subprocess.Popen([sys.executable, "-m", "aruntime", "serve", handler, "--port", "0",
                             "--runtime-command", "no-such-runtime-xyz -x"], cwd=str(tmp_path),
                            env=cli_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        banner_line = proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=LIMIT)
    assert banner_line.startswith("aruntime: function 'app'")
    assert err == f"aruntime serve: warning: the runtime command's program 'no-such-runtime-xyz' is not on PATH{fail}\n"
    assert proc.returncode == 0


def test_banner_does_not_show_the_runtime_api() -> None:
    emu = Emulator(f"{ROOT}/examples/echo.py:handler", port=0, reload=True)
    text = banner(emu)
    assert "reloads on .py changes" in text
    assert "2018-06-01" not in text and "9001" not in text


def test_the_banner_names_a_wire_engine_only_for_aruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    handler = f"{ROOT}/examples/echo.py:handler"
    for command in (["python", "-m", "awslambdaric"], [sys.executable, "-m", "awslambdaric"], ["./bootstrap"]):
        text = banner(Emulator(handler, port=0, runtime_command=command))
        assert "wire engine" not in text, text
        assert f"  runtime: {shlex.join(resolve_runtime_command(command))}; timeout 30 s;" in text
    for command in (None, ["python3", "-m", "aruntime"], ["/opt/bin/aruntime"]):
        assert " (wire engine " in banner(Emulator(handler, port=0, runtime_command=command))
    # The engine the runtime will use: this shell's ARUNTIME_HTTP never reaches it (its
    # environment is built from scratch), an --env one does.
    monkeypatch.setenv("ARUNTIME_HTTP", "bogus")
    assert "(wire engine none:" not in banner(Emulator(handler, port=0))
    assert "(wire engine h11)" in banner(Emulator(handler, port=0, env={"ARUNTIME_HTTP": "h11"}))
