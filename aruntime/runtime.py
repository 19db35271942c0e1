"""The runtime's main loop: load the handler, then serve invocations until the service stops us.

One event loop lives for the whole process. Sync handlers are called between loop runs, with
no loop running — exactly as under the reference client, so `asyncio.run()` inside a handler
works — and everything else (async handlers, generators, writers) runs on that loop, so clients
an async handler created in one invocation are still usable in the next.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any, Coroutine

from . import errors, protocol
from .connection import RuntimeClient
from .errors import RuntimeAPIError, RuntimeAPIUnavailable
from .invoke import Invoker
from .loader import Kind, kind_of, load
from .logs import UNHANDLED_WARNING, Logs
from .marshal import dumps
from .protocol import Invocation


def main(handler_spec: str | None) -> int:
    """Run the runtime; returns the process exit status."""
    logs = Logs()
    logs.install()
    address = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if not address:
        sys.stderr.write("aruntime: AWS_LAMBDA_RUNTIME_API is not set\n")
        return 1
    client = RuntimeClient(address)
    loop = asyncio.new_event_loop()
    # Module-level code that asks for "the" loop gets the one that will run its coroutines.
    asyncio.set_event_loop(loop)
    try:
        try:
            if not handler_spec:
                raise errors.RuntimeFault(errors.MALFORMED_HANDLER_NAME,
                                          "No handler: pass it as an argument or set _HANDLER")
            handler = load(handler_spec)
            kind = kind_of(handler)
        except BaseException as e:  # noqa: BLE001 - whatever init raises is reported
            return _init_failed(loop, client, logs, e)
        invoker = Invoker(handler, kind, logs)
        _serve(loop, client, invoker)
    except (RuntimeAPIError, RuntimeAPIUnavailable) as e:
        sys.stderr.write(f"aruntime: exiting: {e}\n")
        return 1
    finally:
        client.close()
    return 0


def _init_failed(loop: asyncio.AbstractEventLoop, client: RuntimeClient, logs: Logs,
                 exc: BaseException) -> int:
    _, error, _ = errors.error_body(exc)
    # SPEC §1: init errors carry the errorType itself (the reference does the same).
    header = error["errorType"]
    logging.warning(UNHANDLED_WARNING)
    logs.error(error)
    body = dumps(error)
    request = protocol.error_request(client.host_header, protocol.INIT_ERROR_TARGET, header,
                                     len(body))
    try:
        loop.run_until_complete(client.post(request, body))
    except (RuntimeAPIError, RuntimeAPIUnavailable) as e:
        sys.stderr.write(f"aruntime: could not report the init error: {e}\n")
    return 1


async def _then_next(answer: Coroutine[Any, Any, None], client: RuntimeClient) -> Invocation:
    # One loop run per invocation: answer, then wait for the next event.
    await answer
    return await client.next()


def _serve(loop: asyncio.AbstractEventLoop, client: RuntimeClient, invoker: Invoker) -> None:
    run = loop.run_until_complete
    inv = run(client.next())
    if invoker.kind is not Kind.SYNC:
        while True:
            inv = run(_then_next(invoker.invoke(client, inv), client))
    handler = invoker.handler
    while True:
        try:
            event, context = invoker.begin(inv)
            result = handler(event, context)
        except BaseException as e:  # noqa: BLE001 - reported as this invocation's error
            inv = run(_then_next(invoker.fail(client, inv, e), client))
            continue
        inv = run(_then_next(invoker.answer(client, inv, result), client))
