"""Returns a value chosen by event["case"]: exercises result marshalling (differential test)."""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Any, Callable


class Colour(enum.IntEnum):
    RED = 1


class Mode(str, enum.Enum):
    FAST = "fast"


CASES: dict[str, Callable[[], Any]] = {
    "dict": lambda: {"a": 1, "b": [True, False, None], "c": {"d": "e"}},
    "str": lambda: "hello",
    "int": lambda: 42,
    "float": lambda: 1.5,
    "list": lambda: [1, "two", 3.0],
    "none": lambda: None,
    "bytes": lambda: b"\x00\x01raw bytes\xff",
    "decimal": lambda: {"price": Decimal("12.50"), "n": [Decimal("1"), Decimal("-0.001")]},
    "tuple": lambda: (1, (2, 3), "x"),
    "int_enum": lambda: {"colour": Colour.RED},
    "str_enum": lambda: {"mode": Mode.FAST},
    "nonstr_keys": lambda: {1: "one", 2.5: "two and a half", True: "yes", None: "none"},
    "unicode": lambda: {"text": "caf\u00e9 \u2603 \U0001f600", "quote": 'say "hi"\n'},
    "set": lambda: {"s": {1, 2}},
    "empty_str": lambda: "",
    # Over 1 MiB, so libcurl in the reference sends `Expect: 100-continue`.
    "big": lambda: {"blob": "x" * 1_200_000},
}


def handler(event: Any, context: Any) -> Any:
    if isinstance(event, (bytes, bytearray)):
        # Non-JSON content types reach the handler as raw bytes.
        return {"type": type(event).__name__, "len": len(event)}
    return CASES[event["case"]]()
