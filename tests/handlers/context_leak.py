"""An invocation that sets a context variable, and later ones that read it (tests/test_invocation_context.py)."""

from __future__ import annotations

import contextvars
import functools
from typing import Any

var: contextvars.ContextVar[str | None] = contextvars.ContextVar("set_by_an_invocation", default=None)


async def handler(event: Any, context: Any) -> Any:
    seen = var.get()
    var.set(context.aws_request_id)
    return {"seen": seen}


def sync_handler(event: Any, context: Any) -> Any:
    seen = var.get()
    var.set(context.aws_request_id)
    return {"seen": seen}


def _wrapper(func: Any) -> Any:
    @functools.wraps(func)
    def wrapped(event: Any, context: Any) -> Any:
        var.set("wrapper")  # a sync decorator's own context variable
        return func(event, context)
    return wrapped


@_wrapper
async def wrapped_handler(event: Any, context: Any) -> Any:
    return {"seen": var.get()}
