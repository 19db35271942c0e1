"""OpenTelemetry's own Lambda instrumentation (`AwsLambdaInstrumentor`) under aruntime, with the
SDK's in-memory exporter, for tests/test_otel.py. It wraps the function `_HANDLER` names."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.aws_lambda import AwsLambdaInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)


def _dump() -> list[dict[str, Any]]:
    return [{"rid": s.attributes["faas.invocation_id"], "start": s.start_time, "end": s.end_time}
            for s in exporter.get_finished_spans()]


def sync_handler(event: Any, context: Any) -> Any:
    if event.get("dump"):
        return _dump()
    start = time.time_ns()
    time.sleep(event["s"])
    return {"rid": context.aws_request_id, "start": start, "end": time.time_ns()}


async def async_handler(event: Any, context: Any) -> Any:
    if event.get("dump"):
        return _dump()
    start = time.time_ns()
    await asyncio.sleep(event["s"])
    return {"rid": context.aws_request_id, "start": start, "end": time.time_ns()}


AwsLambdaInstrumentor().instrument()
