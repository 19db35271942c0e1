"""Which event loop the runtime runs on (aruntime/loops.py): uvloop only where it was measured to
be cheaper (several invocations at once, with the fast extra's httptools), asyncio's otherwise;
and the SIGTERM rule holds on uvloop too."""

from __future__ import annotations

import signal
import sys

import pytest

from aruntime import loops
from fakeapi import FakeRuntimeAPI, run_runtime

T = 20.0


@pytest.mark.parametrize("value, concurrency, engine, name", [
    (None, 1, "httptools", "asyncio"),  # one at a time: uvloop costs more there
    (None, 2, "httptools", "uvloop"),
    (None, 64, "httptools", "uvloop"),
    (None, 64, "h11", "asyncio"),  # with h11 it gains nothing
    (None, 64, None, "asyncio"),  # a refused engine: the runtime stops anyway
    ("asyncio", 64, "httptools", "asyncio"),
    (" UVLOOP ", 1, "h11", "uvloop"),
])
def test_loop_name(value, concurrency, engine, name):
    assert loops.loop_name(value, concurrency, engine) == name


def test_loop_name_refuses_other_values():
    with pytest.raises(ValueError) as e:
        loops.loop_name("trio", 2, "httptools")
    assert str(e.value) == "ARUNTIME_LOOP must be one of asyncio, uvloop (or unset), got 'trio'"


def test_uvloop_asked_for_but_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hint is a command that works today: aruntime is not on PyPI yet."""
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import now raises ImportError
    assert loops.loop_name(None, 64, "httptools") == "asyncio"  # not asked for: no error
    with pytest.raises(ValueError) as e:
        loops.loop_name("uvloop", 1, "h11")
    assert str(e.value) == ("ARUNTIME_LOOP=uvloop, but uvloop is not installed: install the fast "
                            "extra (not on PyPI yet: from a checkout of aruntime, pip install -e '.[fast]')")


@pytest.mark.parametrize("env, module", [
    ({"AWS_LAMBDA_MAX_CONCURRENCY": "2", "ARUNTIME_HTTP": "httptools"}, "uvloop"),
    ({"ARUNTIME_HTTP": "httptools"}, "asyncio.unix_events"),
    ({"AWS_LAMBDA_MAX_CONCURRENCY": "2", "ARUNTIME_HTTP": "h11"}, "asyncio.unix_events"),
    ({"AWS_LAMBDA_MAX_CONCURRENCY": "2", "ARUNTIME_HTTP": "httptools", "ARUNTIME_LOOP": "asyncio"},
     "asyncio.unix_events"),
])
async def test_the_loop_that_runs_handlers(fake_api: FakeRuntimeAPI, env: dict[str, str],
                                           module: str) -> None:
    fake_api.push({}, request_id="l-1")
    proc = await run_runtime([sys.executable, "-m", "aruntime", "tests.handlers.loop_probe.handler"],
                             fake_api, env=env)
    done = await fake_api.wait_for(lambda e: e.path.endswith("/l-1/response"), timeout=T)
    fake_api.finish()
    assert await proc.wait(T) == 1
    got = done.json()["loop"]
    assert got == module


async def test_unknown_loop_stops_the_runtime_at_start(fake_api: FakeRuntimeAPI) -> None:
    proc = await run_runtime([sys.executable, "-m", "aruntime", "tests.handlers.loop_probe.handler"],
                             fake_api, env={"ARUNTIME_LOOP": "trio"})
    assert await proc.wait(T) == 1
    assert proc.stderr.decode() == (
        "aruntime: ARUNTIME_LOOP must be one of asyncio, uvloop (or unset), got 'trio'\n")
    assert fake_api.exchanges == []


async def test_sigterm_rule_on_uvloop(fake_api: FakeRuntimeAPI) -> None:
    # A handler the module added with loop.add_signal_handler at import is called after the
    # hooks, on uvloop as on asyncio's loop (uvloop keeps its handlers out of reach).
    fake_api.push({}, request_id="first")
    proc = await run_runtime([sys.executable, "-m", "aruntime", "tests.handlers.sigterm_handlers.handler"],
                             fake_api, env={"PREVIOUS": "loop", "AWS_LAMBDA_MAX_CONCURRENCY": "2",
                                            "ARUNTIME_HTTP": "httptools"})
    await fake_api.wait_for(lambda ex: ex.path.endswith("/first/response"), timeout=T)
    proc._proc.send_signal(signal.SIGTERM)
    assert await proc.wait(T) == 0
    assert proc.stdout.decode().splitlines() == ["aruntime hook", "loop handler"]
