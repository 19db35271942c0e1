"""Plain JSON in, JSON out."""

from typing import Any


def handler(event: Any, context: Any) -> Any:
    return {"echo": event, "request_id": context.aws_request_id}
