"""Raises from a nested call stack, chosen by event["case"] (differential test)."""

from __future__ import annotations

from typing import Any


class OrderRejected(Exception):
    """A user-defined exception class."""


def _validate(order: dict[str, Any]) -> None:
    if order["qty"] < 0:
        raise ValueError(f"negative quantity: {order['qty']}")


def _process(order: dict[str, Any]) -> None:
    _validate(order)


def _reject(reason: str) -> None:
    raise OrderRejected(reason)


def handler(event: Any, context: Any) -> Any:
    case = event["case"]
    if case == "value_error":
        _process({"qty": -3})
    elif case == "custom":
        _reject("out of stock")
    elif case == "empty_message":
        raise KeyError
    elif case == "chained":
        try:
            _reject("inner")
        except OrderRejected as e:
            raise RuntimeError("outer") from e
    elif case == "ok":
        return {"ok": True}
    return None
