"""Who is at fault, and what each fault looks like on the wire.

Three parties can fail an invocation: the handler (its exceptions become `Function.<Class>`),
the runtime's own work around it (`Runtime.<Reason>`: bad event, unserialisable result, bad
headers) and the Runtime API itself (non-2xx answers, dead connections). Every exception is
turned into an error body and an error-type header here, and nowhere else.
"""

from __future__ import annotations

import os
import traceback
from types import TracebackType
from typing import Any

import orjson

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_STDLIB = os.path.dirname(traceback.__file__) + os.sep
# Frames that run a handler before the user's own code does, cut from the front of every stack:
# the runtime's package (a directory and its separator: a user module `aruntime_app.py` next to a
# vendored `aruntime/` is the user's), and the stdlib machinery that can sit between the runtime
# and the handler (the import system at init; tasks, futures and thread pools at invoke).
_RUNTIME_FRAMES = tuple(dict.fromkeys((
    _PACKAGE_DIR + os.sep,
    # Frames keep the path the package was imported by: relative through a relative path entry.
    (os.path.dirname(__file__) or os.curdir) + os.sep,
    "<frozen importlib",
    _STDLIB + "importlib" + os.sep,
    _STDLIB + "asyncio" + os.sep,
    _STDLIB + "concurrent" + os.sep,
    _STDLIB + "threading.py",
)))
_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"
_TRACEBACK = "Traceback (most recent call last):\n"


class RuntimeFault(Exception):
    """A fault in the runtime's work around the handler, reported as `Runtime.<Reason>`."""

    def __init__(self, error_type: str, message: str, stack: list[str] | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.stack = stack


# The reference client's names for these faults (`FaultException` in awslambdaric).
MARSHAL_ERROR = "Runtime.MarshalError"
UNMARSHAL_ERROR = "Runtime.UnmarshalError"
USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
CONTEXT_UNMARSHAL_ERROR = "Runtime.LambdaContextUnmarshalError"
BEFORE_SNAPSHOT_ERROR = "Runtime.BeforeSnapshotError"
AFTER_RESTORE_ERROR = "Runtime.AfterRestoreError"
MISSING_REQUEST_ID = "Runtime.MissingRequestId"
# The ASGI / WSGI adapters (aruntime/web): an event that is no HTTP request, a failed lifespan.
INVALID_EVENT = "Runtime.InvalidEvent"
LIFESPAN_STARTUP_ERROR = "Runtime.LifespanStartupError"
# Under concurrency: the OS refused a thread for a sync handler (aruntime/workers.py).
NO_WORKER_THREAD = "Runtime.NoWorkerThread"


class RuntimeAPIError(Exception):
    """The Runtime API answered a request with a status it should not have."""

    def __init__(self, target: str, status: int, body: bytes) -> None:
        super().__init__(
            f"Runtime API {target} answered {status}: {body[:512].decode('utf-8', 'replace')}"
        )
        self.target = target
        self.status = status
        self.body = body

    @property
    def fatal(self) -> bool:
        """500 means the execution environment is broken: the runtime must exit.

        410 (invocation gone), 413 (response too large), 400 and 403 fail one invocation and the
        service keeps serving `/next`, so the runtime goes on.
        """
        return self.status >= 500


class RuntimeAPIUnavailable(Exception):
    """The Runtime API could not be reached after the bounded number of attempts."""


class _Escaped(Exception):
    """Carries a `BaseException` that is not an `Exception`, raised by a handler.

    `SystemExit`/`KeyboardInterrupt` escaping an asyncio task stop the event loop itself, and a
    `GeneratorExit` thrown back into the coroutine awaiting a task closes that coroutine; wrapped
    they are reported as that invocation's error and the runtime keeps serving.
    """

    def __init__(self, exc: BaseException) -> None:
        super().__init__(exc)
        self.exc = exc


def user_frames(tb: TracebackType | None) -> traceback.StackSummary:
    """The traceback without the runtime's leading frames (see `_RUNTIME_FRAMES`)."""
    frames = traceback.extract_tb(tb)
    start = 0
    for start, frame in enumerate(frames):
        if not frame.filename.startswith(_RUNTIME_FRAMES):
            break
    else:
        start = len(frames)
    return traceback.StackSummary.from_list(frames[start:])


def error_body(exc: BaseException, request_id: str = ""
               ) -> tuple[str, dict[str, Any], bytes | None]:
    """(error-type header, error dict, X-Ray cause JSON or None) for an invocation or init
    failure.

    The dict keeps the reference's shape and key order: errorMessage, errorType, requestId,
    stackTrace (docs/SPEC.md §2); only the exception itself, not its cause or context
    (`log_stack` has those). Every string in it is an exact `str` encodable as UTF-8 (lone
    surrogates are escaped). Never raises, whatever the exception does when printed (its
    `__str__` may raise SystemExit) or whatever the process has become (its cwd removed): the
    invocation must still be answered. What cannot be computed is left out: the message becomes
    `<unprintable Name object>`, the stack and the X-Ray cause (then None) are dropped.
    """
    try:
        return _error_body(exc, request_id)
    except BaseException:  # noqa: BLE001 - the reporting path must not fail (see above)
        name = _type_name(exc)
        error = {"errorMessage": f"<unprintable {name} object>", "errorType": name,
                 "requestId": _utf8(request_id) if type(request_id) is str else "",
                 "stackTrace": []}
        return "Function." + name, error, None


def _error_body(exc: BaseException, request_id: str) -> tuple[str, dict[str, Any], bytes | None]:
    if isinstance(exc, _Escaped):
        exc = exc.exc
    if isinstance(exc, RuntimeFault):
        message = _utf8(exc.message)
        error = {"errorMessage": message, "errorType": exc.error_type,
                 "requestId": request_id, "stackTrace": exc.stack or []}
        cause = xray_cause("LambdaValidationError", message, traceback.StackSummary())
        return exc.error_type, error, cause
    frames = user_frames(exc.__traceback__)
    name = _type_name(exc)
    message = _message(exc)
    stack = _format(frames)
    error = {"errorMessage": message, "errorType": name, "requestId": request_id,
             "stackTrace": stack}
    return "Function." + name, error, xray_cause(name, message, frames)


def describe(exc: BaseException) -> tuple[str, str]:
    """(class name, message) of `exc`, as the error body has them; never raises (see
    `error_body`): for instrumentation that reports a failed invocation (`aruntime.otel`)."""
    try:
        return _type_name(exc), _message(exc)
    except BaseException:  # noqa: BLE001
        return "BaseException", "<unprintable object>"


def _type_name(exc: BaseException) -> str:
    """The exception class's name, read past any metaclass that redefines `__name__`."""
    name = type.__dict__["__name__"].__get__(type(exc), type)
    return _utf8(name)


def log_stack(exc: BaseException) -> list[str] | None:
    """The stack for the error log line when `exc` has a cause or a context: the whole chain,
    oldest first, as Python prints it (each exception with its user frames only, without the
    last line, which the log line's head already says). None for a lone exception: its log
    line shows the body's stackTrace, as the reference's does. Never raises (as `error_body`):
    None when the chain cannot be walked or printed.
    """
    try:
        return _log_stack(exc)
    except BaseException:  # noqa: BLE001 - the reporting path must not fail
        return None


def _log_stack(exc: BaseException) -> list[str] | None:
    if isinstance(exc, _Escaped):
        exc = exc.exc
    if isinstance(exc, RuntimeFault):  # the runtime's own words, as the reference logs them
        return None
    chain: list[tuple[BaseException, str]] = []
    seen = {id(exc)}
    current = exc
    while True:
        if current.__cause__ is not None:
            earlier, link = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            earlier, link = current.__context__, _CONTEXT
        else:
            break
        if id(earlier) in seen:  # a cycle: Python stops there too
            break
        seen.add(id(earlier))
        chain.append((earlier, link))
        current = earlier
    if not chain:
        return None
    out: list[str] = []
    for earlier, link in reversed(chain):
        if earlier.__traceback__ is not None:
            out.append(_TRACEBACK)
            out += _format(user_frames(earlier.__traceback__))
        try:
            out += traceback.format_exception_only(type(earlier), earlier)
        except BaseException:  # noqa: BLE001 - a hostile exception type; its name is enough
            out.append(f"{_type_name(earlier)}: {_message(earlier)}\n")
        out.append(link)
    if exc.__traceback__ is not None:
        out.append(_TRACEBACK)
        out += _format(user_frames(exc.__traceback__))
    return [_utf8(line) for line in out]


def _message(exc: BaseException) -> str:
    """`str(exc)` as an exact, UTF-8-encodable `str`, or `<unprintable Name object>` when its
    `__str__` raises anything at all (SystemExit and KeyboardInterrupt included: they are the
    handler's, not the process's) or returns a `str` subclass whose methods may be hostile."""
    try:
        text = str(exc)
        if type(text) is not str:
            text = str.__str__(text)
        return _utf8(text)
    except BaseException:  # noqa: BLE001 - a handler's exception may not even print
        return f"<unprintable {_type_name(exc)} object>"


def _format(frames: traceback.StackSummary) -> list[str]:
    # format_list of plain tuples, as the reference: no 3.11+ '^^^^' position markers.
    return [_utf8(line) for line in traceback.format_list(
        [(f.filename, f.lineno or 0, f.name, f.line) for f in frames])]


def _utf8(text: str) -> str:
    """`text`, with what UTF-8 cannot encode (lone surrogates) escaped: it must reach the wire."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def xray_cause(error_type: str, message: str, frames: traceback.StackSummary) -> bytes:
    """`Lambda-Runtime-Function-XRay-Error-Cause` as the reference builds it. The working
    directory is "" when the process has none any more (a handler removed the directory it
    had changed into): the reference's os.getcwd() raises there and the process dies."""
    stack = [{"label": f.name, "path": f.filename, "line": f.lineno} for f in frames]
    paths = list(dict.fromkeys(f.filename for f in frames))
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = ""
    cause = {
        "working_directory": cwd,
        "exceptions": [{"message": message, "type": error_type, "stack": stack}],
        "paths": paths,
    }
    try:
        return orjson.dumps(cause)
    except TypeError:  # a path that is not UTF-8 (surrogate-escaped): escape it instead
        import json

        return json.dumps(cause, separators=(",", ":")).encode()
