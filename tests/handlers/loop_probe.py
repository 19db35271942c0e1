"""Says which event loop runs it (tests/test_loops.py)."""

import asyncio
import sys


async def handler(event, context):
    loop = asyncio.get_running_loop()
    uvloop = sys.modules.get("uvloop")
    return {"loop": "uvloop" if uvloop and isinstance(loop, uvloop.Loop) else type(loop).__module__}
