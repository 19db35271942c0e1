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


def closes_stdio(event, context):
    """Closes fds 0-2 when asked (a library that daemonizes), then writes to fds 1 and 2 as a
    subprocess inheriting them or a C library would; reports whether any of them is a socket
    (a Runtime API connection opened after the close would take the lowest free number)."""
    import os
    import stat

    if event.get("close"):
        for fd in (0, 1, 2):
            os.close(fd)
    for fd in (1, 2):
        try:
            os.write(fd, b"GARBAGE\r\n\r\n")
        except OSError:
            pass
    sockets = []
    for fd in (0, 1, 2):
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                sockets.append(fd)
        except OSError:
            pass
    return {"n": event.get("n"), "stdio_sockets": sockets}
