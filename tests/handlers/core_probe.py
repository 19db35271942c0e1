"""Reports what the handler saw (event type, context, environment), or fails as event["do"] asks.

Used by the core wire/bad-input/log tests. `event["do"]`: "ok" (default), "value_error",
"system_exit", "keyboard_interrupt", "sleep" (bounded), "bytes" (return raw bytes).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any


def _raise_value_error() -> None:
    raise ValueError("bad value")


def report(event: Any, context: Any) -> dict[str, Any]:
    return {
        "event_type": type(event).__name__,
        "event": event.decode("latin-1") if isinstance(event, bytes) else event,
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "trace_env": os.environ.get("_X_AMZN_TRACE_ID"),
        "telemetry_env": os.environ.get("_LAMBDA_TELEMETRY_LOG_FD"),
    }


def _do(event: Any) -> str:
    return event.get("do", "ok") if isinstance(event, dict) else "ok"


def fail(event: Any) -> None:
    # Each call is a whole line, so no Python version adds "^^^" markers to the trace.
    do = _do(event)
    if do == "value_error":
        _raise_value_error()
    if do == "system_exit":
        raise SystemExit(3)
    if do == "keyboard_interrupt":
        raise KeyboardInterrupt("stop")


def act(event: Any) -> Any:
    do = _do(event)
    if do == "bytes":
        return b"\x00\xffraw"
    if do == "log":
        logging.getLogger("probe").warning("probe says %s", "hi")
    return None


def handler(event: Any, context: Any) -> Any:
    fail(event)
    special = act(event)
    return special if special is not None else report(event, context)


async def async_handler(event: Any, context: Any) -> Any:
    fail(event)
    special = act(event)
    return special if special is not None else report(event, context)


def slow_handler(event: Any, context: Any) -> Any:
    time.sleep(min(float(event.get("sleep", 0)), 5.0))
    return report(event, context)


def echo(event: Any, context: Any) -> Any:
    """Deterministic output, for exact-bytes tests."""
    if isinstance(event, dict) and event.get("do") == "bytes":
        return b"\x00\xffraw"
    return {"event": event, "rid": context.aws_request_id}


async def async_echo(event: Any, context: Any) -> Any:
    return echo(event, context)


def partial_line_error(event: Any, context: Any) -> Any:
    """The failing call is part of a line: Python 3.11+ tracebacks mark it with carets."""
    value = _raise_value_error()
    return value


def context_repr(event: Any, context: Any) -> Any:
    return {"repr": repr(context), "w3c": context.w3c(), "memory": context.memory_limit_in_mb}
