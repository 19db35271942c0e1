"""The event loop the runtime runs on: asyncio's, or uvloop's where it is measured to be cheaper.

`ARUNTIME_LOOP` unset: uvloop when several invocations run at once (`AWS_LAMBDA_MAX_CONCURRENCY`
> 1), the wire engine is httptools and uvloop is installed (the `fast` extra brings both);
asyncio's loop otherwise. Measured here (benchmarks/README.md, "uvloop"): with httptools,
uvloop takes 15 % less CPU per invocation at N=64 and 10 % less at N=8, but 6 % more one at a
time (the runtime stops and restarts the loop around every sync handler, and uvloop sets its
signal handling up again at each start), and with h11 it gains nothing. `ARUNTIME_LOOP=asyncio`
or `=uvloop` forces the choice; any other value stops the runtime at start.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

LOOPS = ("asyncio", "uvloop")


def loop_name(value: str | None, concurrency: int, engine: str | None) -> str:
    """`"asyncio"` or `"uvloop"` for an `ARUNTIME_LOOP` value (see the module docstring).
    Raises `ValueError` (one line) for another value, or for `uvloop` when it is missing."""
    choice = (value or "").strip().lower()
    if choice not in ("", *LOOPS):
        raise ValueError(f"ARUNTIME_LOOP must be one of {', '.join(LOOPS)} (or unset), "
                         f"got {value!r}")
    if choice == "asyncio" or (not choice and (concurrency < 2 or engine != "httptools")):
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        if choice:
            raise ValueError("ARUNTIME_LOOP=uvloop, but uvloop is not installed: "
                             "install the fast extra (not on PyPI yet: from a checkout of "
                             "aruntime, pip install -e '.[fast]')") from None
        return "asyncio"
    return "uvloop"


CLOSE_REFUSED = ("this is aruntime's event loop, which serves every invocation of the process: "
                 "a handler cannot close it (for a loop of your own: asyncio.run(), or "
                 "asyncio.new_event_loop())")


def new_loop(name: str) -> asyncio.AbstractEventLoop:
    """A new event loop of the kind `loop_name` chose. While its `serving` attribute is True
    (the runtime sets it), `close()` raises `RuntimeError` (`CLOSE_REFUSED`): a handler that
    kept the loop from import (`asyncio.get_event_loop()` at module level) cannot close it under
    the runtime."""
    if name != "uvloop":
        class AsyncioLoop(_RefusesClose, asyncio.SelectorEventLoop):  # type: ignore[misc,valid-type]
            pass

        return AsyncioLoop()
    import uvloop

    class Loop(_RefusesClose, uvloop.Loop):  # type: ignore[misc,name-defined]
        """uvloop's loop, keeping `_signal_handlers` as asyncio's does: a handler module's
        `loop.add_signal_handler(SIGTERM, ...)` must stay findable (lifecycle.install_sigterm
        calls it after the shutdown hooks), and uvloop keeps its own out of reach."""

        def __init__(self) -> None:
            super().__init__()
            self._signal_handlers: dict[int, asyncio.Handle] = {}

        def add_signal_handler(  # type: ignore[override]
                self, sig: int, callback: Callable[..., Any], *args: Any) -> None:
            super().add_signal_handler(sig, callback, *args)
            self._signal_handlers[sig] = asyncio.Handle(callback, args, self)

        def remove_signal_handler(self, sig: int) -> bool:
            self._signal_handlers.pop(sig, None)
            return bool(super().remove_signal_handler(sig))

    return Loop()


class _RefusesClose:
    """Mixed in before the loop class: `close()` raises while the runtime serves on the loop."""

    serving = False

    def close(self) -> None:
        if self.serving:
            raise RuntimeError(CLOSE_REFUSED)
        super().close()  # type: ignore[misc]
