"""`aruntime serve`: parsing, start-up, serving, and a clean stop on Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from aruntime.tools.serve import main
from aruntime.emulator.config import parse_handler

from .helpers import INVOKE, LIMIT, RIC, ROOT


def test_parse_handler_forms(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "app.py").write_text("")
    assert parse_handler("pkg/app.py:run", str(tmp_path)) == ("app.run", str(tmp_path / "pkg"))
    assert parse_handler("pkg/app.py", str(tmp_path)) == ("app.handler", str(tmp_path / "pkg"))
    assert parse_handler("pkg.app.run", str(tmp_path)) == ("pkg.app.run", str(tmp_path))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def serve_and_invoke(args: list[str], cwd: Path) -> tuple[int, str, dict]:  # type: ignore[type-arg]
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aruntime", "serve", *args, "--port", str(port),
        cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async def call() -> dict:  # type: ignore[type-arg]
            async with aiohttp.ClientSession() as session:
                while True:
                    try:
                        async with session.post(f"http://127.0.0.1:{port}{INVOKE}", json={"cli": True}) as r:
                            return json.loads(await r.read())
                    except aiohttp.ClientConnectionError:
                        await asyncio.sleep(0.1)

        result = await asyncio.wait_for(call(), LIMIT)
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = await asyncio.wait_for(proc.communicate(), LIMIT)
    return proc.returncode or 0, output.decode(), result


async def test_serve_file_handler_with_the_reference_runtime() -> None:
    code, output, result = await serve_and_invoke(
        ["examples/echo.py:handler", "--runtime-command", shlex.join(RIC), "--timeout", "3", "--env", "GREETING=hi"],
        ROOT,
    )
    assert code == 0, output
    assert result["echo"] == {"cli": True} and result["function_name"] == "echo"
    assert 2000 < result["remaining_ms"] <= 3000
    assert "Function URL:  http://127.0.0.1:" in output
    assert f"START RequestId: {result['request_id']}" in output
    assert f"REPORT RequestId: {result['request_id']}" in output


async def test_serve_module_handler_with_the_default_runtime() -> None:
    code, output, result = await serve_and_invoke(["echo.handler"], ROOT / "examples")
    assert code == 0, output
    assert result["echo"] == {"cli": True}


def test_port_in_use_is_a_clear_error(capsys) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main([f"{ROOT}/examples/echo.py:handler", "--port", str(port)]) == 1
    assert "cannot listen" in capsys.readouterr().err
