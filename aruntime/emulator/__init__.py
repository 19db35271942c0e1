"""Local Lambda emulator (aiohttp). Imported by `aruntime serve`, tests and benchmarks only;
the runtime itself never imports it, so it stays free of aiohttp."""

from .server import Emulator

__all__ = ["Emulator"]
