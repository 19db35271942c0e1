"""`aruntime serve --reload`: watch the code directory, restart the runtime when a .py changes.

File watching is watchfiles' (inotify on Linux, FSEvents on macOS, polling elsewhere; the
watcher uvicorn's --reload uses): changes are debounced, so saving several files at once
restarts once, and `__pycache__`, `.git`, `.venv` and the like are ignored.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

# How long changes are gathered into one restart, and how often the watcher looks for the
# stop signal (both milliseconds; watchfiles' defaults are 1600 and 50).
DEBOUNCE_MS = 300
STEP_MS = 50


class ReloadUnavailable(Exception):
    """watchfiles is not installed (it comes with the `emulator` extra)."""


def check_available() -> None:
    try:
        import watchfiles  # noqa: F401
    except ImportError as e:
        from ..tools.hints import install_hint

        raise ReloadUnavailable(f"--reload needs watchfiles, from the emulator extra: {install_hint('emulator')}") from e


async def watch(root: str, on_change: Callable[[list[str]], None], stop: asyncio.Event) -> None:
    """Call `on_change(paths)` (sorted, relative to `root`) for each batch of changed .py files
    under `root`, until `stop` is set."""
    from watchfiles import PythonFilter, awatch

    async for changes in awatch(root, watch_filter=PythonFilter(), stop_event=stop,
                                debounce=DEBOUNCE_MS, step=STEP_MS):
        on_change(sorted({os.path.relpath(path, root) for _, path in changes}))
