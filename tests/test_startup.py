"""Start-up: only the wire engine in use is imported, and it is imported at start, with
everything else the first invocation needs (README "Start-up"). Both engines, whatever
ARUNTIME_HTTP the suite runs with."""

from __future__ import annotations

import sys

import pytest

from fakeapi import FakeRuntimeAPI, run_runtime

T = 20.0
UNUSED = {"h11": "httptools", "httptools": "h11"}


@pytest.mark.parametrize("engine", ["h11", "httptools"])
async def test_first_invocation_imports_nothing_and_only_the_engine_in_use(
        fake_api: FakeRuntimeAPI, engine: str) -> None:
    fake_api.push({}, request_id="i-1")
    fake_api.push({}, request_id="i-2")
    proc = await run_runtime([sys.executable, "-m", "aruntime", "tests.handlers.startup_probe.handler"],
                             fake_api, env={"ARUNTIME_HTTP": engine})
    await fake_api.wait_for(lambda e: e.path.endswith("/i-2/response"), timeout=T)
    fake_api.finish()
    assert await proc.wait(T) == 1
    first, second = [e.json() for e in fake_api.exchanges if e.method == "POST"]
    assert first == {"after_init": []}  # nothing imported between init's end and the handler
    assert second["during_first_answer"] == []  # nor while the first answer went out
    loaded = second["loaded"]
    assert engine in loaded
    assert not [m for m in loaded if m.split(".")[0] == UNUSED[engine]], loaded
    # No tool, no thread pool, no other event loop with one invocation at a time.
    assert not [m for m in loaded if m.startswith((
        "aiohttp", "uvloop", "aruntime.emulator", "aruntime.web", "aruntime.layer",
        "concurrent.futures.thread"))], loaded
