"""Handlers that misbehave in ways a runtime must survive (tests/test_hostile.py)."""


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no str for you")


Weird = type("Bad\r\nX-Injected: 1", (Exception,), {})


class LyingBytes(bytes):
    """bytes whose len() is not its size: a Content-Length taken from len() would cut it."""

    def __len__(self):
        return 1


class LenRaises(bytes):
    def __len__(self):
        raise RuntimeError("no len for you")


def handler(event, context):
    kind = event.get("kind")
    if kind == "unprintable":
        raise Unprintable()
    if kind == "weird_name":
        raise Weird("crlf in the class name")
    if kind == "junk":
        return object()
    if kind == "lying_bytes":
        return LyingBytes(b"abc")
    if kind == "len_raises":
        return LenRaises(b"xyz")
    return {"ok": True}


def big_error(event, context):
    raise ValueError("x" * event["size"])
