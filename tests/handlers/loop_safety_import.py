"""Runs its set-up on "its" loop at import and closes it, as code written for the reference
client may (tests/test_loop_safety.py)."""

import asyncio

loop = asyncio.get_event_loop()
SETUP = loop.run_until_complete(asyncio.sleep(0, result="set up"))
loop.close()


def handler(event, context):
    return {"setup": SETUP}


async def ahandler(event, context):
    await asyncio.sleep(0)
    return {"setup": SETUP}
