"""Shared fixtures. The fake Runtime API lives in fakeapi.py (import it as `from fakeapi import ...`)."""

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

from fakeapi import FakeRuntimeAPI  # noqa: E402

# Runtime processes started by the tests use h11, the default engine, unless the run asks for
# the other one (.ci/run repeats the wire-level suites with ARUNTIME_HTTP=httptools).
os.environ.setdefault("ARUNTIME_HTTP", "h11")


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeRuntimeAPI]:
    """A started FakeRuntimeAPI; closed (and its runtime processes killed) after the test."""
    async with FakeRuntimeAPI() as api:
        yield api
