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


def act(event: Any) -> Any:
    do = event.get("do", "ok") if isinstance(event, dict) else "ok"
    if do == "value_error":
        _raise_value_error()
    if do == "system_exit":
        raise SystemExit(3)
    if do == "keyboard_interrupt":
        raise KeyboardInterrupt("stop")
    if do == "bytes":
        return b"\x00\xffraw"
    if do == "log":
        logging.getLogger("probe").warning("probe says %s", "hi")
    return None


def handler(event: Any, context: Any) -> Any:
    special = act(event)
    return special if special is not None else report(event, context)


async def async_handler(event: Any, context: Any) -> Any:
    special = act(event)
    return special if special is not None else report(event, context)


def slow_handler(event: Any, context: Any) -> Any:
    time.sleep(min(float(event.get("sleep", 0)), 5.0))
    return report(event, context)
