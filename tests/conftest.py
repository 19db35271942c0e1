"""Shared fixtures and the suite's isolation from the host.

The fake Runtime API lives in fakeapi.py (import it as `from fakeapi import ...`).

Nothing the host exports may change a result. Processes the tests start get an environment
built from scratch (`fakeapi.scratch_env`); for code that runs inside this pytest process (the
emulator, in-process runtime pieces, the reference client's modules, subprocesses started with a
copy of `os.environ`), the variables that configure Lambda, aruntime or Python are removed from
`os.environ` here, before any test module is imported. The wire engine under test is chosen with
`--wire` (default h11), never by the host's `ARUNTIME_HTTP`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# Test modules import `fakeapi` (tests/ is on sys.path via pytest's rootdir-relative import) and
# in-process tests import `tests.handlers.*`, which needs the repository root.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import fakeapi  # noqa: E402
from fakeapi import FakeRuntimeAPI  # noqa: E402

# Lambda's variables (AWS_*, LAMBDA_*, _HANDLER, _X_AMZN_TRACE_ID, _LAMBDA_TELEMETRY_LOG_FD),
# aruntime's own (ARUNTIME_*), Python's (PYTHONUNBUFFERED, PYTHONIOENCODING, PYTHONPATH...) and
# the locale's. LANG is then set to one every glibc has.
_SCRUB_PREFIXES = ("AWS_", "LAMBDA_", "_LAMBDA_", "_X_AMZN_", "_AWS_", "ARUNTIME_", "PYTHON", "LC_")
_SCRUB_NAMES = ("_HANDLER", "LANG", "LANGUAGE", "TZ")
SCRUBBED = sorted(k for k in os.environ if k.startswith(_SCRUB_PREFIXES) or k in _SCRUB_NAMES)
for _name in SCRUBBED:
    del os.environ[_name]
os.environ["LANG"] = "C.UTF-8"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--wire", choices=("h11", "httptools"), default="h11",
                     help="the wire engine (ARUNTIME_HTTP) of every runtime the tests start; "
                          ".ci/run repeats the wire-level suites with --wire=httptools")


def pytest_configure(config: pytest.Config) -> None:
    engine = config.getoption("--wire")
    fakeapi.WIRE_ENGINE = engine
    os.environ["ARUNTIME_HTTP"] = engine  # in-process connections (aruntime.wire.new_wire)


def pytest_report_header(config: pytest.Config) -> list[str]:
    ignored = ", ".join(SCRUBBED) if SCRUBBED else "none"
    return [f"aruntime: wire engine {config.getoption('--wire')}; host variables ignored: {ignored}"]


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeRuntimeAPI]:
    """A started FakeRuntimeAPI; closed (and its runtime processes killed) after the test."""
    async with FakeRuntimeAPI() as api:
        yield api
