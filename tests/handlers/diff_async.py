"""An async handler (differential test: the reference cannot await it)."""

from __future__ import annotations

import asyncio
from typing import Any


async def handler(event: Any, context: Any) -> Any:
    await asyncio.sleep(0)
    return {"async": True, "echo": event}
