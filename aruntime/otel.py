"""OpenTelemetry for aruntime: one span per invocation, from its event to its last byte.

Turn it on with `ARUNTIME_OTEL=1` in the function's environment, or by calling `instrument()`
at module level in the handler's module (during init, before the first invocation). Needs the
`otel` extra (opentelemetry-api and -sdk; from a checkout, `pip install -e '.[otel]'`). When it is off this
module is never imported and the runtime pays one `is None` check where an invocation begins
and one where it ends.

The span (kind SERVER, named after the function, as the FaaS semantic conventions for AWS
Lambda ask) starts before the event is decoded and ends once the invocation is answered: after
the buffered response or error is posted, or when a streamed response has sent its last chunk
or failed (midstream failures included). A failed invocation gets status ERROR and an
`exception` event. Attributes: `faas.invocation_id` (the request id), `faas.coldstart` (true for
the process's first invocation), `faas.trigger` when the event's shape tells it (`http`,
`pubsub`, `datasource`, `timer`), `cloud.resource_id` (the function's ARN, alias replaced by the
function version), `cloud.account.id` and `aws.lambda.invoked_arn` from the invoked ARN.
Resource-level attributes (`cloud.provider`, `cloud.region`, `faas.name`, `faas.version`, ...)
belong on the TracerProvider's resource: `resource()` builds them.

The parent (decided like OpenTelemetry's Lambda instrumentation and the AWS X-Ray Lambda
propagator: an explicit W3C context first, X-Ray's only when nothing else is there):

1. the W3C `traceparent` (and `tracestate`) the caller passed in the client context
   (`context.w3c()`), when valid;
2. else the X-Ray header `Lambda-Runtime-Trace-Id` when it is sampled (`Sampled=1`: active
   tracing, or a sampled caller): the span joins the trace Lambda itself records. An unsampled
   header is what every invocation carries when active tracing is off; taking it as parent
   would drop every span under the default parent-based sampler, so it is ignored;
3. else the span is a new trace's root.

The span is current while the handler runs (its task, the threads and pool tasks it starts,
like `aruntime.current()`), so spans the handler or instrumented libraries start are its
children. With one invocation at a time (`AWS_LAMBDA_MAX_CONCURRENCY` unset or 1) the tracer
provider is flushed after each invocation is answered, before the runtime asks for the next
(Lambda may freeze the process then), within `OTEL_INSTRUMENTATION_AWS_LAMBDA_FLUSH_TIMEOUT`
ms (default 30000, the variable OpenTelemetry's Lambda instrumentation reads); under
concurrency, spans are exported by the provider's own processor. On SIGTERM the provider is
flushed within the shutdown budget.
"""

from __future__ import annotations

import contextvars
import os
from time import time_ns
from typing import Any, Callable

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace import TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from . import __version__, invoke
from .errors import RuntimeFault, _Escaped, describe
from .lifecycle import DEFAULT_SHUTDOWN_BUDGET_MS, on_shutdown
from .protocol import Invocation

__all__ = ["instrument", "resource", "resource_attributes"]

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_DEFAULT_FLUSH_TIMEOUT_MS = 30_000


def instrument(tracer_provider: Any = None) -> None:
    """Give every invocation from now on its span (see the module's docstring).

    `tracer_provider`: an `opentelemetry.trace.TracerProvider`; by default the global one, as
    it is when each span starts (so the provider may be set up after this call). Call it at
    module level: the runtime picks the instrumentation up before its first invocation.
    Calling it again does nothing.
    """
    if invoke.observer is not None:
        return
    invoke.observer = _Spans(tracer_provider)
    on_shutdown(invoke.observer.flush_at_shutdown)


def resource_attributes() -> dict[str, Any]:
    """The FaaS resource attributes of this function, from Lambda's environment variables.

    `cloud.provider` ("aws"), `cloud.platform` ("aws_lambda"), `cloud.region` (`AWS_REGION`),
    `faas.name`, `faas.version`, `faas.instance` (the log stream name) and `faas.max_memory`
    (bytes), each when known. For a TracerProvider's resource:
    `TracerProvider(resource=aruntime.otel.resource())`.
    """
    env = os.environ
    attributes: dict[str, Any] = {"cloud.provider": "aws", "cloud.platform": "aws_lambda"}
    for key, name in (("cloud.region", "AWS_REGION"), ("faas.name", "AWS_LAMBDA_FUNCTION_NAME"),
                      ("faas.version", "AWS_LAMBDA_FUNCTION_VERSION"),
                      ("faas.instance", "AWS_LAMBDA_LOG_STREAM_NAME")):
        value = env.get(name)
        if value:
            attributes[key] = value
    memory = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    if memory.isdigit():
        attributes["faas.max_memory"] = int(memory) * 1024 * 1024
    return attributes


def resource() -> Any:
    """`resource_attributes()` as an `opentelemetry.sdk.resources.Resource` (the SDK's defaults
    and `OTEL_RESOURCE_ATTRIBUTES` merged in, as `Resource.create` does)."""
    from opentelemetry.sdk.resources import Resource

    return Resource.create(resource_attributes())


class _Live:
    """The span of one invocation; `span` is None once ended (ending is idempotent)."""

    __slots__ = ("span",)

    def __init__(self) -> None:
        self.span: Any = None


# The span of the invocation the calling code answers. The holder object is shared by every
# copy of the context made after `begin` (the answer's task, a stream's), so whichever ends it
# ends it for all.
_live: contextvars.ContextVar[_Live | None] = contextvars.ContextVar("aruntime_otel_span",
                                                                    default=None)


class _Spans:
    """The runtime's observer (`invoke.Invoker.observer`): starts and ends invocation spans."""

    def __init__(self, tracer_provider: Any) -> None:
        self.provider = tracer_provider
        self.tracer = trace.get_tracer("aruntime", __version__, tracer_provider)
        self.cold = True
        concurrency = os.environ.get("AWS_LAMBDA_MAX_CONCURRENCY", "")
        self.flush_each = not (concurrency.isdigit() and int(concurrency) > 1)
        timeout = os.environ.get("OTEL_INSTRUMENTATION_AWS_LAMBDA_FLUSH_TIMEOUT", "")
        self.flush_timeout_ms = int(timeout) if timeout.isdigit() else _DEFAULT_FLUSH_TIMEOUT_MS
        self.name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or "lambda"
        version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "")
        self.version = version if version.isdigit() else None

    def begin(self, inv: Invocation, arguments: Callable[[Invocation], tuple[Any, Any]]
              ) -> tuple[Any, Any]:
        """Start `inv`'s span around `arguments(inv)` (the event and context); make it current."""
        start = time_ns()
        live = _Live()
        _live.set(live)
        try:
            event, context = arguments(inv)
        except BaseException:
            live.span = self._start(inv, None, None, start)
            raise
        live.span = self._start(inv, event, context, start)
        return event, context

    def _start(self, inv: Invocation, event: Any, context: Any, start: int) -> Any:
        parent = _parent(inv, context)
        attributes: dict[str, Any] = {"faas.invocation_id": inv.request_id,
                                      "faas.coldstart": self.cold}
        self.cold = False
        arn = inv.function_arn
        if arn:
            attributes["aws.lambda.invoked_arn"] = arn
            parts = arn.split(":")
            if len(parts) >= 7:
                attributes["cloud.account.id"] = parts[4]
                # The same process serves every alias: the resource is the function (its
                # version when it is a published one), not the invoked alias.
                resource_id = ":".join(parts[:7])
                if self.version is not None:
                    resource_id += ":" + self.version
                attributes["cloud.resource_id"] = resource_id
        trigger = _trigger(event)
        if trigger is not None:
            attributes["faas.trigger"] = trigger
        span = self.tracer.start_span(self.name, context=parent, kind=SpanKind.SERVER,
                                      attributes=attributes, start_time=start)
        otel_context.attach(trace.set_span_in_context(span, parent))
        return span

    def end(self, exc: BaseException | None) -> None:
        """End the current invocation's span, if it is not ended yet: status ERROR and an
        `exception` event when `exc` is given. Then flush, with one invocation at a time."""
        live = _live.get()
        if live is None or live.span is None:
            return
        span, live.span = live.span, None
        if exc is not None:
            if isinstance(exc, _Escaped):
                exc = exc.exc
            if isinstance(exc, RuntimeFault):
                description = f"{exc.error_type}: {exc.message}"
            else:  # its str() may raise anything, SystemExit included: never here
                description = "%s: %s" % describe(exc)
            span.set_status(Status(StatusCode.ERROR, description))
            try:
                span.record_exception(exc)
            except BaseException:  # noqa: BLE001 - the SDK's str(exc) raised: the status says it
                pass
        span.end()
        if self.flush_each:
            self._flush(self.flush_timeout_ms)

    def _flush(self, timeout_ms: int) -> None:
        provider = self.provider or trace.get_tracer_provider()
        flush = getattr(provider, "force_flush", None)
        if flush is not None:
            try:
                flush(timeout_ms)
            except Exception:  # noqa: BLE001 - an exporter's failure must not fail the runtime
                import logging

                logging.getLogger("aruntime").exception("flushing the tracer provider failed")

    def flush_at_shutdown(self) -> None:
        budget = os.environ.get("ARUNTIME_SHUTDOWN_BUDGET_MS", "")
        self._flush(int(budget) if budget.isdigit() else DEFAULT_SHUTDOWN_BUDGET_MS)


def _parent(inv: Invocation, context: Any) -> Any:
    """The parent context of `inv`'s span: W3C from the client context, else a sampled X-Ray
    header, else an empty context (a new root, never the span current in the caller)."""
    if context is not None:
        w3c = context.w3c()
        if "traceparent" in w3c:
            parent = TraceContextTextMapPropagator().extract(w3c)
            if trace.get_current_span(parent).get_span_context().is_valid:
                return parent
    span_context = _xray(inv.trace_id) if inv.trace_id else None
    if span_context is not None:
        return trace.set_span_in_context(NonRecordingSpan(span_context), otel_context.Context())
    return otel_context.Context()


def _xray(header: str) -> SpanContext | None:
    """The span context of a sampled X-Ray header `Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;
    Sampled=1` (AWS X-Ray developer guide, "Tracing header"), or None."""
    fields = {}
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        fields[key] = value
    root, parent = fields.get("Root", ""), fields.get("Parent", "")
    if fields.get("Sampled") != "1" or len(root) != 35 or root[:2] != "1-" or root[10] != "-":
        return None
    try:
        trace_id = int(root[2:10] + root[11:], 16)
        span_id = int(parent, 16) if len(parent) == 16 else 0
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=_SAMPLED)


def _trigger(event: Any) -> str | None:
    """`faas.trigger` from the event's shape, when it tells (the AWS event formats)."""
    if not isinstance(event, dict):
        return None
    if "requestContext" in event:  # API Gateway REST / HTTP API, Function URL, ALB
        return "http"
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict):
        source = records[0].get("eventSource") or records[0].get("EventSource")
        if source in ("aws:sqs", "aws:sns", "aws:kinesis"):
            return "pubsub"
        if source in ("aws:s3", "aws:dynamodb"):
            return "datasource"
        return None
    if event.get("source") == "aws.events" or "detail-type" in event:
        return "timer" if event.get("detail-type") == "Scheduled Event" else "pubsub"
    return None
