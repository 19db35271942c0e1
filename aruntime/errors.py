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
# importlib's frames sit between the runtime and a module that failed to import.
_MACHINERY = ("<frozen importlib", os.path.dirname(traceback.__file__) + os.sep + "importlib" + os.sep)


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
    """Carries a `SystemExit`/`KeyboardInterrupt` raised by a handler.

    Inside an asyncio task those would stop the whole loop; wrapped they are reported as that
    invocation's error and the runtime keeps serving.
    """

    def __init__(self, exc: BaseException) -> None:
        super().__init__(exc)
        self.exc = exc


def user_frames(tb: TracebackType | None) -> traceback.StackSummary:
    """The traceback without the runtime's leading frames (and importlib's, at import)."""
    frames = traceback.extract_tb(tb)
    start = 0
    for start, frame in enumerate(frames):
        name = frame.filename
        if not (name.startswith(_PACKAGE_DIR) or name.startswith(_MACHINERY)):
            break
    else:
        start = len(frames)
    return traceback.StackSummary.from_list(frames[start:])


def error_body(exc: BaseException, request_id: str = "") -> tuple[str, dict[str, Any], bytes]:
    """(error-type header, error dict, X-Ray cause JSON) for an invocation or init failure.

    The dict keeps the reference's key order: errorMessage, errorType, requestId, stackTrace.
    """
    if isinstance(exc, _Escaped):
        exc = exc.exc
    if isinstance(exc, RuntimeFault):
        error = {"errorMessage": exc.message, "errorType": exc.error_type,
                 "requestId": request_id, "stackTrace": exc.stack or []}
        cause = xray_cause("LambdaValidationError", exc.message, traceback.StackSummary())
        return exc.error_type, error, cause
    frames = user_frames(exc.__traceback__)
    name = type(exc).__name__
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 - a handler's exception may not even print
        message = f"<unprintable {name} object>"
    # format_list of plain tuples, as the reference: no 3.11+ '^^^^' position markers.
    stack = traceback.format_list(
        [(f.filename, f.lineno or 0, f.name, f.line) for f in frames])
    error = {"errorMessage": message, "errorType": name, "requestId": request_id,
             "stackTrace": stack}
    return "Function." + name, error, xray_cause(name, message, frames)


def xray_cause(error_type: str, message: str, frames: traceback.StackSummary) -> bytes:
    """`Lambda-Runtime-Function-XRay-Error-Cause` as the reference builds it."""
    stack = [{"label": f.name, "path": f.filename, "line": f.lineno} for f in frames]
    paths = list(dict.fromkeys(f.filename for f in frames))
    return orjson.dumps({
        "working_directory": os.getcwd(),
        "exceptions": [{"message": message, "type": error_type, "stack": stack}],
        "paths": paths,
    })
