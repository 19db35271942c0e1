"""Handlers that misbehave in ways a runtime must survive (tests/test_hostile.py)."""


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no str for you")


Weird = type("Bad\r\nX-Injected: 1", (Exception,), {})


def handler(event, context):
    kind = event.get("kind")
    if kind == "unprintable":
        raise Unprintable()
    if kind == "weird_name":
        raise Weird("crlf in the class name")
    if kind == "junk":
        return object()
    return {"ok": True}


def big_error(event, context):
    raise ValueError("x" * event["size"])
