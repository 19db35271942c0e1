"""A handler module's own SIGTERM handling is kept (issue #10 item 13; README, Lifecycle).

The rule: on SIGTERM aruntime's shutdown hooks run first, then the handler the module had
installed is called; what it does decides the end (returning: exit 0; `sys.exit(n)`: exit n;
`default_int_handler`: KeyboardInterrupt, as Python ends on it). SIG_IGN: the hooks run and the
runtime keeps serving. A real SIGTERM to a real runtime process, sent once the first invocation
was answered (init and aruntime's handler are in place by then).
"""

from __future__ import annotations

import signal
import sys

import pytest

from fakeapi import FakeRuntimeAPI, run_runtime

HANDLER = "tests.handlers.sigterm_handlers.handler"


async def terminated(api: FakeRuntimeAPI, previous: str) -> tuple[int, list[str]]:
    """Start the runtime, wait for the first answer, SIGTERM it; (exit status, printed lines)."""
    api.push({}, request_id="first")
    proc = await run_runtime([sys.executable, "-m", "aruntime", HANDLER], api,
                             env={"PREVIOUS": previous})
    await api.wait_for(lambda ex: ex.path.endswith("/first/response"))
    proc._proc.send_signal(signal.SIGTERM)
    code = await proc.wait(10)
    return code, proc.stdout.decode().splitlines()


@pytest.mark.parametrize("previous, code, lines", [
    ("none", 0, ["aruntime hook"]),
    ("dfl", 0, ["aruntime hook"]),
    ("callable", 0, ["aruntime hook", "user handler 15 True"]),
    ("callable_exit", 3, ["aruntime hook", "user handler 15 True"]),
    ("loop", 0, ["aruntime hook", "loop handler"]),
])
async def test_hooks_then_the_modules_handler(fake_api: FakeRuntimeAPI, previous: str, code: int,
                                              lines: list[str]) -> None:
    assert await terminated(fake_api, previous) == (code, lines)


async def test_default_int_handler_ends_as_python_does(fake_api: FakeRuntimeAPI) -> None:
    code, lines = await terminated(fake_api, "default_int")
    assert lines == ["aruntime hook"]
    # An uncaught KeyboardInterrupt: Python ends the process by SIGINT.
    assert code == -signal.SIGINT


async def test_sig_ign_runs_the_hooks_and_keeps_serving(fake_api: FakeRuntimeAPI) -> None:
    fake_api.push({}, request_id="first")
    proc = await run_runtime([sys.executable, "-m", "aruntime", HANDLER], fake_api,
                             env={"PREVIOUS": "ign"})
    await fake_api.wait_for(lambda ex: ex.path.endswith("/first/response"))
    proc._proc.send_signal(signal.SIGTERM)
    # The hooks ran (their line is out), the process did not end, and it still serves.
    for rid in ("after-1", "after-2"):
        fake_api.push({}, request_id=rid)
        await fake_api.wait_for(lambda ex: ex.path.endswith(f"/{rid}/response"))
    proc._proc.send_signal(signal.SIGTERM)  # ignored from now on: SIG_IGN is back in place
    fake_api.push({}, request_id="still")
    await fake_api.wait_for(lambda ex: ex.path.endswith("/still/response"))
    assert proc.returncode is None
    fake_api.finish()
    assert await proc.wait(10) == 1
    assert proc.stdout.decode().splitlines() == ["aruntime hook"]
