"""Local Lambda emulator (aiohttp). Imported by `aruntime serve`, tests and benchmarks only;
the runtime itself never imports it, so it stays free of aiohttp.

`Emulator` is loaded on first use, so the aiohttp-free parts (`config`, `limits`) import
without the `emulator` extra installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import Emulator

__all__ = ["Emulator"]


def __getattr__(name: str) -> Any:
    if name == "Emulator":
        from .server import Emulator

        return Emulator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
