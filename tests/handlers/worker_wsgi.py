"""A WSGI app that asks for "the" event loop, for tests/test_sync_workers.py."""

import asyncio

import aruntime

RUNTIME_LOOP = asyncio.get_event_loop()  # at import, on the main thread: the runtime's


def app(environ, start_response):
    loop = asyncio.get_event_loop()
    value = loop.run_until_complete(asyncio.sleep(0, result="ran"))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{value} runtime_loop={loop is RUNTIME_LOOP}".encode()]


handler = aruntime.wsgi(app, invoke_mode="buffered")
