"""What the emulator prints: its own lines and its echo of the function's output.

Printing must never fail, whatever the emulator's stdout is: a terminal or pipe whose encoding
cannot write a character (PYTHONIOENCODING=ascii, a C locale without UTF-8 mode), a closed
pipe (`aruntime serve | head`), a stream that raises. The echo runs in the tasks that read the
function's stdout and stderr; if one of them stopped, the function would block on a full pipe
and time out. So a character the stream cannot encode is escaped as `\\uXXXX` (the runtime's
own rule, `aruntime.logs.escape`), the U+00A0 indent of error lines becomes plain spaces there,
a stream that fails is replaced by stderr, and a line no stream takes is dropped.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from ..logs import escape_indented

LogSink = Callable[[str], None]


def echo(line: str) -> None:
    """Print `line` (without its newline) to stdout, else stderr, else nowhere; never raises."""
    _write_first((sys.stdout, sys.stderr), line)


def report(line: str) -> None:
    """One line of the emulator's own on stderr, else stdout, else nowhere; never raises."""
    _write_first((sys.stderr, sys.stdout), line)


def _write_first(streams: tuple[TextIO | None, ...], line: str) -> None:
    for stream in streams:
        if stream is None:
            continue
        try:
            try:
                stream.write(line + "\n")
            except UnicodeEncodeError:
                encoding = getattr(stream, "encoding", None) or "ascii"
                stream.write(escape_indented(line, encoding) + "\n")
            stream.flush()
            return
        except Exception:  # noqa: BLE001, S112 - closed, a broken pipe, raising: the next one
            continue


class SafeSink:
    """A log sink (`Emulator(log=...)`, default `echo`) that never raises into the emulator.

    A sink that raises is reported once on stderr (through `echo`'s rules) and then still
    called for every later line: the emulator goes on reading the function's output either way.
    """

    def __init__(self, sink: LogSink) -> None:
        self.sink = sink
        self.failed = False

    def __call__(self, line: str) -> None:
        try:
            self.sink(line)
        except Exception as e:  # noqa: BLE001 - reported, never propagated
            if not self.failed:
                self.failed = True
                report(f"aruntime serve: the log sink failed on a line ({type(e).__name__}: {e}); "
                       "the function's output is still read, so the function never blocks")

