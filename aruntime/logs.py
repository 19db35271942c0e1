"""Log formats and sinks: text and JSON records, telemetry-fd frames, error lines.

Byte formats follow the reference client (docs/SPEC.md §4). The request id and tenant id of a record
are those of the invocation the logging code works for (`invocation.py`).

Writing a log line never raises: whatever stdout has become (another encoding, closed, None, a
broken pipe, an object whose `write` raises) or if the telemetry fd is gone, the line is
escaped, or written to the process's fd 1 (then 2) instead, or, as a last resort, dropped; the
invocation is answered either way.
"""

from __future__ import annotations

import codecs
import io
import logging
import os
import re
import sys
import time
import traceback
from typing import Any

import orjson

from . import invocation

DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
TEXT_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"
ERROR_LINE_TERMINATOR = "\r"
ERROR_INDENT = "\u00a0"
UNHANDLED_WARNING = (
    "LAMBDA_WARNING: Unhandled exception. The most likely cause is an issue in the function code. "
    "However, in rare cases, a Lambda runtime update can cause unexpected function behavior. "
    "For functions using managed runtimes, runtime updates can be triggered by a function "
    "change, or can be applied automatically. To determine if the runtime has been updated, "
    "check the runtime version in the INIT_START log entry. If this error correlates with a "
    "change in the runtime version, you may be able to mitigate this error by temporarily "
    "rolling back to the previous runtime version. For more information, see "
    "https://docs.aws.amazon.com/lambda/latest/dg/runtimes-update.html\r"
)


_LEVELS = (logging.NOTSET, logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR,
           logging.CRITICAL)
# Text 0xA55A0003, then 0x..0B DEBUG, 0x..0F INFO, 0x..13 WARNING, 0x..17 ERROR, 0x..1B CRITICAL;
# JSON 0xA55A0002, then 0x..0A, 0x..0E, 0x..12, 0x..16, 0x..1A.
TEXT_FRAME_TYPES = {lvl: (0xA55A0003 + (4 + 4 * i if i else 0)).to_bytes(4, "big")
                    for i, lvl in enumerate(_LEVELS)}
JSON_FRAME_TYPES = {lvl: (0xA55A0002 + (4 + 4 * i if i else 0)).to_bytes(4, "big")
                    for i, lvl in enumerate(_LEVELS)}
DEFAULT_FRAME_TYPE = TEXT_FRAME_TYPES[logging.NOTSET]


def bucket(levelno: int) -> int:
    """Custom levels fall into the standard level at or below them."""
    return min(50, max(0, levelno)) // 10 * 10


def frame(frame_type: bytes, message: bytes, timestamp_us: int) -> bytes:
    """One telemetry frame: u32 type | u32 length | u64 µs timestamp | message (big-endian)."""
    return (frame_type + len(message).to_bytes(4, "big") + timestamp_us.to_bytes(8, "big")
            + message)


def write_stdout(text: str, indented: bool = False) -> None:
    """Write `text` to `sys.stdout` as it is now; never raises (see the module docstring).

    `indented`: `text` is an error record whose lines are indented with ERROR_INDENT; where
    stdout cannot encode that character the indent becomes plain spaces (`escape_indented`)."""
    stream = sys.stdout
    try:
        stream.write(text)
        return
    except UnicodeEncodeError:  # e.g. PYTHONIOENCODING=ascii, or a C locale without UTF-8
        try:
            encoding = getattr(stream, "encoding", None) or "ascii"
            stream.write(escape_indented(text, encoding) if indented else escape(text, encoding))
            return
        except Exception:  # noqa: BLE001, S110 - fall through to the fds
            pass
    except Exception:  # noqa: BLE001, S110 - None, closed, broken, or raising on purpose
        pass
    write_fd(text)


def write_stderr(text: str) -> None:
    """The runtime's own messages (fatal ones, before exit): like `write_stdout`, on stderr."""
    try:
        sys.stderr.write(text)
    except Exception:  # noqa: BLE001
        write_fd(text, (2, 1))


def write_fd(text: str, fds: tuple[int, ...] = (1, 2)) -> None:
    """`text` as UTF-8 straight to the first of `fds` that takes it; dropped if none does."""
    data = text.encode("utf-8", "backslashreplace")
    for fd in fds:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            return
        except OSError:
            continue


def _escape_error(err: UnicodeError) -> tuple[str, int]:
    if not isinstance(err, UnicodeEncodeError):
        raise err
    units = []
    for ch in err.object[err.start:err.end]:
        code = ord(ch)
        if code > 0xFFFF:  # as a UTF-16 surrogate pair, so the escape is valid in JSON too
            code -= 0x10000
            units += [0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF)]
        else:
            units.append(code)
    return "".join(f"\\u{u:04x}" for u in units), err.end


_ESCAPE = "aruntime-escape"
_escape_registered = False


def escape(text: str, encoding: str) -> str:
    """`text` with every character `encoding` cannot write as `\\uXXXX` (valid in JSON lines)."""
    global _escape_registered
    if not _escape_registered:
        codecs.register_error(_ESCAPE, _escape_error)
        _escape_registered = True
    try:
        return text.encode(encoding, _ESCAPE).decode(encoding)
    except LookupError:  # an encoding Python does not know
        return text.encode("ascii", _ESCAPE).decode("ascii")


def escape_indented(text: str, encoding: str) -> str:
    """`escape(text, encoding)`, but where `encoding` cannot write ERROR_INDENT (U+00A0, the
    indent of Lambda's error lines) each line's leading run of it becomes as many spaces:
    `  File "app.py"` stays readable instead of `\\u00a0\\u00a0File "app.py"`. Lines begin
    after `\\r` or `\\n`; an ERROR_INDENT inside a line is escaped as any other character."""
    if not _encodes(ERROR_INDENT, encoding):
        text = _LEADING_INDENT.sub(lambda m: " " * len(m.group()), text)
    return escape(text, encoding)


_LEADING_INDENT = re.compile(f"(?:^|(?<=[\r\n])){ERROR_INDENT}+")


def _encodes(char: str, encoding: str) -> bool:
    try:
        char.encode(encoding)
        return True
    except (UnicodeError, LookupError):
        return False


class StandardSink:
    """Logs to stdout, as Lambda captures it when no telemetry fd is given."""

    def log(self, msg: str, frame_type: bytes | None = None) -> None:
        write_stdout(msg)

    def log_error(self, lines: list[str]) -> None:
        write_stdout(ERROR_LINE_TERMINATOR.join(lines) + "\n", indented=True)


class TelemetrySink:
    """Logs as binary frames on the fd Lambda passes in `_LAMBDA_TELEMETRY_LOG_FD`.

    If the fd stops taking frames (closed, a broken pipe) the records go to stdout instead.
    """

    def __init__(self, fd: int, error_frame_type: bytes) -> None:
        self.file = io.FileIO(fd, "wb", closefd=False)
        self.error_frame_type = error_frame_type
        self.broken = False

    def log(self, msg: str, frame_type: bytes | None = None, as_text: str | None = None,
            indented: bool = False) -> None:
        if not self.broken:
            data = frame(frame_type or DEFAULT_FRAME_TYPE, msg.encode("utf-8", "backslashreplace"),
                         time.time_ns() // 1000)
            # FileIO.write may write less than asked on a pipe; a frame must never be cut.
            view = memoryview(data)
            try:
                while view:
                    view = view[self.file.write(view) or 0:]
                return
            except (OSError, ValueError):
                self.broken = True
        if as_text is None:
            as_text = msg if msg.endswith("\n") else msg + "\n"
        write_stdout(as_text, indented)

    def log_error(self, lines: list[str]) -> None:
        self.log("\n".join(lines), self.error_frame_type,
                 ERROR_LINE_TERMINATOR.join(lines) + "\n", indented=True)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        current = invocation.get()
        if current is None:
            record.aws_request_id = ""
            record.tenant_id = None
        else:
            record.aws_request_id = current.request_id
            record.tenant_id = current.tenant_id
        return True


class SinkHandler(logging.Handler):
    """Root-logger handler writing one record per sink call (one frame per record)."""

    def __init__(self, sink: StandardSink | TelemetrySink, framed: bool) -> None:
        super().__init__()
        self.log_sink = sink
        self._framed = framed
        self.addFilter(_RequestIdFilter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            frame_type = None
            if self._framed:
                frame_type = getattr(record, "_frame_type", None) or TEXT_FRAME_TYPES.get(
                    bucket(record.levelno))
            self.log_sink.log(msg, frame_type)
        except Exception:  # noqa: BLE001 - logging must never fail an invocation
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:
        # logging's report goes to sys.stderr, which may be broken too.
        try:
            super().handleError(record)
        except Exception:  # noqa: BLE001, S110
            pass


_RESERVED = frozenset({
    "name", "msg", "args", "levelname", "levelno", "pathname", "filename", "module",
    "exc_info", "exc_text", "stack_info", "lineno", "funcName", "created", "msecs",
    "relativeCreated", "thread", "threadName", "processName", "process", "aws_request_id",
    "tenant_id", "_frame_type", "taskName",
})


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the keys Lambda's JSON log format defines."""

    def __init__(self) -> None:
        super().__init__(datefmt=DATETIME_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        level = bucket(record.levelno)
        record._frame_type = JSON_FRAME_TYPES.get(level, JSON_FRAME_TYPES[logging.NOTSET])
        msg = record.msg
        exc = record.exc_info
        result: dict[str, Any] = {
            "timestamp": self.formatTime(record, self.datefmt),
            "level": logging.getLevelName(level),
            "message": msg if isinstance(msg, dict) and not record.args else record.getMessage(),
            "logger": record.name,
        }
        if exc:
            result["stackTrace"] = _record_stack(exc)
            result["errorType"] = _type_name(exc[0]) if exc[0] else None
            result["errorMessage"] = _message(exc[1])
        result["requestId"] = getattr(record, "aws_request_id", None)
        if exc:
            result["location"] = f"{record.pathname}:{record.funcName}:{record.lineno}"
        tenant = getattr(record, "tenant_id", None)
        if tenant is not None:
            result["tenantId"] = tenant
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key not in result:
                result[key] = value
        result = {k: v for k, v in result.items() if v is not None}
        try:
            return orjson.dumps(result, default=str, option=orjson.OPT_NON_STR_KEYS).decode() + "\n"
        except TypeError:  # text that is not UTF-8 (lone surrogates): escaped, not dropped
            return _stdlib_json(result) + "\n"


def _type_name(cls: type) -> str:
    # Read past a metaclass that redefines `__name__` (it may raise anything).
    return type.__dict__["__name__"].__get__(cls, type)  # type: ignore[no-any-return]


def _message(exc: BaseException | None) -> str:
    """`str(exc)`, or `<unprintable Name object>` when its `__str__` raises anything at all: a
    handler's `logger.exception()` must not fail because its exception does not print."""
    try:
        return str(exc)
    except BaseException:  # noqa: BLE001 - SystemExit from a __str__ is no reason to exit
        return f"<unprintable {_type_name(type(exc))} object>"


def _stdlib_json(value: Any) -> str:
    import json

    return json.dumps(value, default=str, separators=(",", ":"))


def _record_stack(exc: Any) -> list[str]:
    """A record's stackTrace: its frames as the reference has them; with a cause or context,
    the whole chain as Python prints it (without the last exception's own line)."""
    value = exc[1]
    if value is None or (value.__cause__ is None and (
            value.__context__ is None or value.__suppress_context__)):
        return traceback.format_tb(exc[2])
    lines = traceback.format_exception(exc[0], value, exc[2])
    return lines[:len(lines) - len(traceback.format_exception_only(exc[0], value))]


class Logs:
    """The runtime's logging setup: a sink, a root handler, and error lines."""

    def __init__(self, environ: os._Environ[str] | dict[str, str] = os.environ,
                 force_json: bool = False) -> None:
        self.json = force_json or (environ.get("AWS_LAMBDA_LOG_FORMAT") or "").upper() == "JSON"
        level = (environ.get("AWS_LAMBDA_LOG_LEVEL") or "").upper()
        self.level = "DEBUG" if level == "TRACE" else level
        error_type = (JSON_FRAME_TYPES if self.json else TEXT_FRAME_TYPES)[logging.ERROR]
        fd = environ.get("_LAMBDA_TELEMETRY_LOG_FD")
        self.sink: StandardSink | TelemetrySink
        self.sink = StandardSink()
        if fd is not None:
            del environ["_LAMBDA_TELEMETRY_LOG_FD"]  # not to be inherited by child processes
            try:
                self.sink = TelemetrySink(int(fd), error_type)
            except (ValueError, OSError) as e:
                write_stderr(f"aruntime: _LAMBDA_TELEMETRY_LOG_FD={fd!r} is unusable ({e}); "
                             "logging to stdout\n")

    def install(self) -> None:
        """Unbuffered stdio, UTC timestamps, and our handler on the root logger."""
        _unbuffer()
        logging.Formatter.converter = time.gmtime
        handler = SinkHandler(self.sink, framed=self.json or bool(self.level))
        if self.json:
            handler.setFormatter(JsonFormatter())
        else:
            handler.setFormatter(logging.Formatter(TEXT_FORMAT, "%Y-%m-%dT%H:%M:%S"))
        root = logging.getLogger()
        if self.level in logging._nameToLevel:  # noqa: SLF001 - the reference's check
            root.setLevel(self.level)
        root.addHandler(handler)

    def error(self, error: dict[str, Any], chain: list[str] | None = None) -> None:
        """The error line Lambda shows for a failed init or invocation; never raises.

        `chain` (`errors.log_stack`) replaces the stack when the exception has a cause or a
        context, so the line shows the whole chain.
        """
        try:
            self._error(error, chain)
        except Exception:  # noqa: BLE001 - the invocation is answered even if this is lost
            write_stderr(f"aruntime: could not log an error: {error.get('errorType')}\n")

    def _error(self, error: dict[str, Any], chain: list[str] | None) -> None:
        if self.json:
            record = {"timestamp": time.strftime(DATETIME_FORMAT, time.gmtime()), "level": "ERROR",
                      **error}
            if chain is not None:
                record["stackTrace"] = chain
            try:
                line = orjson.dumps(record, default=str).decode()
            except TypeError:
                line = _stdlib_json(record)
            self.sink.log_error([line])
            return
        head = "[ERROR]"
        if error.get("errorType"):
            head += " " + error["errorType"]
        if error.get("errorMessage"):
            head += (":" if error.get("errorType") else "") + " " + error["errorMessage"]
        lines = [head]
        stack = error.get("stackTrace") if chain is None else chain
        if stack is not None:
            if chain is None:
                lines.append("Traceback (most recent call last):")
            for element in stack:
                if element == "":
                    lines.append("")
                    continue
                for line in element.splitlines():
                    stripped = line.lstrip(" ")
                    lines.append(ERROR_INDENT * (len(line) - len(stripped)) + stripped)
        self.sink.log_error(lines)


def settle_stdio() -> None:
    """Before exit: a stdout/stderr that cannot flush any more (a handler replaced or broke it)
    is dropped, so Python's own flush at exit cannot turn the runtime's exit status into 120."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None:
            continue
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            setattr(sys, name, None)


def _unbuffer() -> None:
    # Every write reaches the fd at once (Lambda may freeze us right after a response); a
    # write-through text layer over an unbuffered FileIO does that without a flush per call.
    # A stream that is missing, closed or broken is left as it is.
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        try:
            fd = stream.fileno()
            stream.flush()
            raw = io.FileIO(fd, "w", closefd=False)
            setattr(sys, name, io.TextIOWrapper(
                raw, encoding=stream.encoding, errors=stream.errors, write_through=True,
                line_buffering=False))
        except Exception:  # noqa: BLE001, S112
            continue
