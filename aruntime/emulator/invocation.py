"""One invocation: its event, its state, and the response flowing from runtime to caller.

The Runtime API side produces (`begin`, `write`, `finish`); the invoke surface consumes
with `next_item()`, which yields a `ResponseHead`, then body `bytes`, then one `Outcome`.
A failure before any response yields the `Outcome` alone.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from .process import RuntimeProcess

# Bytes queued for a slow caller before the runtime's upload is paused (TCP backpressure).
HIGH_WATER = 1 << 20


class State(Enum):
    QUEUED = "queued"
    RUNNING = "running"  # handed to the runtime by /next
    RESPONDING = "responding"  # a streamed /response has begun
    DONE = "done"


@dataclass(frozen=True)
class ResponseHead:
    content_type: str
    streaming: bool


@dataclass(frozen=True)
class Outcome:
    error_type: str | None = None
    error_body: bytes | None = None

    @property
    def ok(self) -> bool:
        return self.error_type is None and self.error_body is None

    @property
    def error_message(self) -> str:
        try:
            return str(orjson.loads(self.error_body or b"{}").get("errorMessage", ""))
        except (orjson.JSONDecodeError, AttributeError):
            return (self.error_body or b"").decode(errors="replace")


# The error of an invocation the service itself failed (serve stopping before it ran): an
# Invoke caller gets it as the service's HTTP 500, not as a function error.
SERVICE_EXCEPTION = "ServiceException"


def error_outcome(error_type: str, message: str) -> Outcome:
    return Outcome(error_type, orjson.dumps({"errorMessage": message, "errorType": error_type}))


Item = ResponseHead | bytes | Outcome


class Invocation:
    def __init__(
        self,
        payload: bytes,
        *,
        client_context: str | None = None,
        cognito_identity: str | None = None,
        trace_id: str | None = None,
    ) -> None:
        self.request_id = str(uuid.uuid4())
        self.payload = payload
        self.client_context = client_context
        self.cognito_identity = cognito_identity
        self.trace_id = trace_id or trace_header()
        self.state = State.QUEUED
        self.timed_out = False
        self.deadline_ms = 0
        self.started_at = 0.0  # monotonic, set at dispatch
        self.proc: RuntimeProcess | None = None  # the process it was handed to
        self.head: ResponseHead | None = None
        self.outcome: Outcome | None = None
        self.log_lines: deque[str] = deque(maxlen=200)
        self.done = asyncio.Event()
        self.reported = asyncio.Event()  # END/REPORT logged
        self._items: deque[Item] = deque()
        self._buffered = 0
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._detached = False

    # -- producer side -------------------------------------------------------------
    def begin(self, head: ResponseHead) -> None:
        self.head = head
        if head.streaming:
            self.state = State.RESPONDING
        self._push(head)

    async def write(self, data: bytes) -> None:
        if not data or self._detached or self.state is State.DONE:
            return
        self._push(data)
        self._buffered += len(data)
        while self._buffered > HIGH_WATER and not self._detached and self.state is not State.DONE:
            self._writable.clear()
            await self._writable.wait()

    def finish(self, outcome: Outcome) -> bool:
        """Settle the invocation; the first outcome wins. Returns whether this one did."""
        if self.state is State.DONE:
            return False
        self.state = State.DONE
        self.outcome = outcome
        self._push(outcome)
        self._writable.set()
        self.done.set()
        return True

    # -- consumer side -------------------------------------------------------------
    async def next_item(self) -> Item:
        while not self._items:
            self._readable.clear()
            await self._readable.wait()
        item = self._items.popleft()
        if isinstance(item, bytes):
            self._buffered -= len(item)
            if self._buffered <= HIGH_WATER:
                self._writable.set()
        return item

    def detach(self) -> None:
        """The caller is gone: drop queued bytes and never block the runtime again."""
        self._detached = True
        self._items.clear()
        self._buffered = 0
        self._writable.set()

    def _push(self, item: Item) -> None:
        if self._detached:
            return
        self._items.append(item)
        self._readable.set()


_ROOT = re.compile(r"1-[0-9a-f]{8}-[0-9a-f]{24}")
_SEGMENT_ID = re.compile(r"[0-9a-f]{16}")


def trace_header(caller: str | None = None) -> str:
    """The invocation's `Lambda-Runtime-Trace-Id` (`_X_AMZN_TRACE_ID`), given the caller's
    `X-Amzn-Trace-Id` (`Root=…;Parent=…;Sampled=…`), or None when it sent none.

    As Lambda does for a function in its default tracing mode, PassThrough ("Lambda will only
    trace the request from an upstream service if it contains a tracing header with
    sampled=1": the Lambda API's TracingConfig): the caller's trace carries on. Its Root is
    kept, and its sampling decision: with Sampled=1 Lambda traces the invocation, so Parent
    becomes the id of Lambda's own segment; otherwise the caller's Parent passes through
    unchanged and the invocation is not sampled (Sampled=0; a missing or deferred `?` decision
    is not a yes). A header without a valid Root starts a new trace, not sampled, as for a
    caller that sent none. Other fields (Self, Lineage, data) are not passed on.
    """
    fields: dict[str, str] = {}
    for part in (caller or "").split(";"):
        key, sep, value = part.partition("=")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    root = fields.get("root", "").lower()
    if not _ROOT.fullmatch(root):
        root = f"1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
        fields = {}
    parent = fields.get("parent", "").lower()
    sampled = fields.get("sampled") == "1"
    if sampled or not _SEGMENT_ID.fullmatch(parent):
        parent = uuid.uuid4().hex[:16]  # a segment of Lambda's own
    return f"Root={root};Parent={parent};Sampled={1 if sampled else 0}"
