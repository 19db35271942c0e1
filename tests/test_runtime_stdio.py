"""The function's stdout and stderr reach their pipes at once (docs/SPEC.md §4), whatever the host exports.

Lambda may freeze the process right after an answer, so nothing may sit in a buffer: a partial
line written to stdout or stderr is on the pipe while the handler still runs. The runtime starts
without PYTHONUNBUFFERED (fakeapi.scratch_env), so only the runtime itself can make this hold.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from fakeapi import FakeRuntimeAPI, RuntimeProcess, run_runtime


async def until(proc: RuntimeProcess, want_out: bytes, want_err: bytes, timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not (want_out in proc.stdout and want_err in proc.stderr):
            assert proc.returncode is None, (proc.stdout, proc.stderr)
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(poll(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"still buffered after {timeout} s: stdout={proc.stdout!r} "
                             f"stderr={proc.stderr!r}") from None


async def test_partial_lines_reach_the_pipes_while_the_handler_runs(fake_api: FakeRuntimeAPI,
                                                                    tmp_path: Path) -> None:
    go = tmp_path / "go"
    rid = fake_api.push({"go": str(go)})
    proc = await run_runtime([sys.executable, "-m", "aruntime", "tests.handlers.stdio_probe.handler"],
                             fake_api)
    await until(proc, b"to stdout", b"to stderr")
    assert proc.stdout.startswith(b"to stdout")
    assert not [e for e in fake_api.exchanges if e.method == "POST"]  # the handler still waits
    await until(proc, b"\tlogged\n", b"")  # the root logger's line, also at once
    go.write_text("")
    answer = await fake_api.wait_for(lambda e: e.method == "POST")
    assert answer.path.endswith(f"/{rid}/response") and answer.json() == {"waited": True}
    fake_api.finish()
    assert await proc.wait(10) == 1
