"""A handler that breaks its process's stdout/stderr as `event["break"]` asks, logs a non-ASCII
record and fails with a non-ASCII message, for tests/test_log_failures.py."""

import logging
import sys

log = logging.getLogger("breaker")


class Raising:
    """A stdout replacement whose every write raises."""

    encoding = "utf-8"

    def write(self, text):
        raise RuntimeError("this stdout refuses to write")

    def flush(self):
        raise RuntimeError("this stdout refuses to flush")


def handler(event, context):
    how = event.get("break")
    if how == "raising":
        sys.stdout = Raising()
    elif how == "none":
        sys.stdout = None
    elif how == "closed":
        sys.stdout.close()
    elif how == "both_none":
        sys.stdout = None
        sys.stderr = None
    log.warning("grüße %s", event.get("n"))
    if event.get("surrogate"):  # text decoded with surrogateescape: not encodable as UTF-8
        log.warning("file \udcff")
        raise ValueError("bad \udcff name")
    if event.get("fail"):
        raise ValueError("über ☃")
    return {"ok": event.get("n")}
