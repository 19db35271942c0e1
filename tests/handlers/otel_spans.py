"""Handlers for tests/test_otel.py: the OpenTelemetry SDK with an in-memory exporter.

`event["do"]`: "ok" (buffered), "raise" (fails), "stream" (an async generator: chunks, then
its own timings), "stream_fail" (fails after two chunks), "stream_fail_first" (fails before
any byte), "dump" (the finished spans and the handlers' own timings, once `event["expect"]`
spans are finished). `event["s"]`: seconds to work. Each invocation records when its handler
started and finished (wall clock, ns, as span times are) and the span current in its code.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import aruntime

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
if os.environ.get("TEST_OTEL_CALL"):  # turned on by the call instead of ARUNTIME_OTEL
    import aruntime.otel

    aruntime.otel.instrument()

timings: dict[str, dict[str, Any]] = {}


def _current_span() -> list[str]:
    ctx = trace.get_current_span().get_span_context()
    return [format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")]


def _record(context: Any, start: int) -> None:
    timings[context.aws_request_id] = {"start": start, "end": time.time_ns(),
                                       "span": _current_span()}


def _dump(event: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while len(exporter.get_finished_spans()) < event["expect"] and time.monotonic() < deadline:
        time.sleep(0.01)
    spans = []
    for span in exporter.get_finished_spans():
        parent = span.parent
        spans.append({
            "name": span.name, "kind": span.kind.name,
            "trace_id": format(span.context.trace_id, "032x"),
            "span_id": format(span.context.span_id, "016x"),
            "parent": [format(parent.trace_id, "032x"), format(parent.span_id, "016x")]
            if parent is not None else None,
            "trace_state": str(span.context.trace_state.to_header()),
            "start": span.start_time, "end": span.end_time,
            "status": span.status.status_code.name, "description": span.status.description,
            "attributes": dict(span.attributes or {}),
            "events": [{"name": e.name, "attributes": dict(e.attributes or {})} for e in span.events],
        })
    return {"spans": spans, "timings": timings}


async def _stream(event: Any, context: Any, start: int) -> Any:
    for i in range(3):
        await asyncio.sleep(event["s"] / 3)
        yield f"chunk {i};"
        if event["do"] == "stream_fail" and i == 1:
            _record(context, start)
            raise ValueError("midstream")
    _record(context, start)
    yield "end"


async def handler(event: Any, context: Any) -> Any:
    start = time.time_ns()
    do = event.get("do", "ok")
    if do == "dump":
        return _dump(event)
    if do.startswith("stream"):
        if do == "stream_fail_first":
            await asyncio.sleep(event["s"])
            _record(context, start)
            raise KeyError("before the first byte")
        return _stream(event, context, start)
    await asyncio.sleep(event["s"])
    _record(context, start)
    if do == "raise":
        raise ValueError("boom")
    if do == "raise_unprintable":
        raise _StrExits()
    return {"ok": context.aws_request_id}


class _StrExits(Exception):
    def __str__(self) -> str:
        raise SystemExit(3)


def sync_handler(event: Any, context: Any) -> Any:
    start = time.time_ns()
    do = event.get("do", "ok")
    if do == "dump":
        return _dump(event)
    if do == "stream":
        return _sync_stream(event, context, start)
    time.sleep(event["s"])
    _record(context, start)
    if do == "raise":
        raise ValueError("boom")
    return {"ok": context.aws_request_id}


def _sync_stream(event: Any, context: Any, start: int) -> Any:
    for i in range(3):
        time.sleep(event["s"] / 3)
        yield f"chunk {i};"
    _record(context, start)
