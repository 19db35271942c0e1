"""`aruntime serve --reload`: a .py change under the code directory restarts the runtime; the
next invocation cold-starts with the new code, and an invocation in flight finishes first."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from aruntime.emulator.config import default_runtime_command

from .helpers import emulator, invoke

APP = '''
import os
import time

import aruntime

VERSION = {version!r}


@aruntime.on_shutdown
def goodbye():
    print("SHUTDOWN HOOK", VERSION, flush=True)


def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {{"version": VERSION, "pid": os.getpid()}}
'''


def write_app(path: Path, version: str) -> None:
    path.write_text(APP.format(version=version))


async def test_reload_restarts_with_the_new_code(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    write_app(app, "one")
    (tmp_path / "notes.txt").write_text("")
    async with emulator(f"{app}:handler", runtime_command=default_runtime_command(), reload=True,
                        timeout=10) as emu:
        first = json.loads((await invoke(emu, {}))[2])
        assert first["version"] == "one"

        # A change while an invocation runs: it finishes on the old code, in the old process.
        await emu.logs.wait_for("REPORT RequestId")
        emu.logs.clear()
        slow = asyncio.ensure_future(invoke(emu, {"sleep": 1.5}))
        await emu.logs.wait_for("START RequestId", timeout=10)
        write_app(app, "two")
        line = await emu.logs.wait_for("app.py changed", timeout=10)
        assert "the invocation in flight finishes first" in line
        status, _, body = await asyncio.wait_for(slow, 15)
        assert status == 200 and json.loads(body) == first  # same code, same process

        _, headers, body = await invoke(emu, {})
        second = json.loads(body)
        assert second["version"] == "two" and second["pid"] != first["pid"]
        report = await emu.logs.wait_for(f"REPORT RequestId: {headers['X-Amzn-RequestId']}")
        assert "Init Duration" in report  # a cold start
        # The old process was shut down as Lambda does it: SIGTERM first, so its hooks ran.
        await emu.logs.wait_for("SHUTDOWN HOOK one", timeout=10)

        # Changes that are not Python code do not restart anything.
        emu.logs.clear()
        (tmp_path / "notes.txt").write_text("edited")
        (tmp_path / "__pycache__").mkdir(exist_ok=True)
        (tmp_path / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"")
        await asyncio.sleep(1.0)  # longer than the watcher's debounce
        third = json.loads((await invoke(emu, {}))[2])
        assert third["pid"] == second["pid"]
        assert not [line for line in emu.logs if "changed" in line]


async def test_without_reload_nothing_restarts(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    write_app(app, "one")
    async with emulator(f"{app}:handler", runtime_command=default_runtime_command()) as emu:
        first = json.loads((await invoke(emu, {}))[2])
        write_app(app, "two")
        os.utime(app)
        await asyncio.sleep(1.0)
        again = json.loads((await invoke(emu, {}))[2])
        assert again == first
