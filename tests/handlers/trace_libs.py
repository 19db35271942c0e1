"""What tracing libraries read as the invocation's trace, from the handler, its threads and pool.

Used by tests/test_trace_env.py with the real aws-xray-sdk and OpenTelemetry's X-Ray
propagators: each invocation reports, before and after awaiting (so that invocations run under
AWS_LAMBDA_MAX_CONCURRENCY > 1 interleave), what `os.environ` and the libraries give it.
`{"probe": "outside"}` instead reports what code outside every invocation saw meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_xray_sdk.core import xray_recorder
from opentelemetry import trace
from opentelemetry.propagators.aws import AwsXRayLambdaPropagator

import aruntime

KEY = "_X_AMZN_TRACE_ID"
emitted: list[dict[str, Any]] = []


class KeepEmitter:
    """Keeps the (sub)segments the X-Ray SDK would send to the daemon, instead of UDP."""

    def send_entity(self, entity: Any) -> None:
        emitted.append({"name": entity.name, "trace_id": entity.trace_id,
                        "parent_id": getattr(entity, "parent_id", None)})

    def set_daemon_address(self, address: Any) -> None:
        pass


xray_recorder.configure(emitter=KeepEmitter(), context_missing="LOG_ERROR", streaming_threshold=0)
pool = ThreadPoolExecutor(2, "user-pool")

# Code working for no invocation: a thread and a task started at import, sampling all along.
outside: set[Any] = set()
stop = threading.Event()


outside_current: list[Any] = []


def _sample_outside() -> None:
    while not stop.wait(0.005):
        outside.add(os.environ.get(KEY))
        if aruntime.current() is not None:
            outside_current.append(_current())


threading.Thread(target=_sample_outside, daemon=True).start()


async def _sample_outside_task() -> None:
    while not stop.is_set():
        outside.add(os.getenv(KEY))
        await asyncio.sleep(0.005)


_outside_task = asyncio.get_event_loop().create_task(_sample_outside_task())


def read() -> dict[str, Any]:
    """Every way a library reads the trace, as seen from the calling code."""
    try:
        item = os.environ[KEY]
    except KeyError:
        item = None
    segment = xray_recorder.current_segment()
    with xray_recorder.in_subsegment("work") as sub:
        sub_ids = [sub.trace_id, sub.parent_id] if sub is not None else None
    span = trace.get_current_span(AwsXRayLambdaPropagator().extract({})).get_span_context()
    return {
        "env": [item, os.environ.get(KEY), os.getenv(KEY), KEY in os.environ,
                os.environ.copy().get(KEY)],
        "xray": [getattr(segment, "trace_id", None), getattr(segment, "id", None)],
        "xray_sub": sub_ids,
        "otel": [format(span.trace_id, "032x"), format(span.span_id, "016x"), span.trace_flags.sampled]
        if span.is_valid else None,
        "aruntime": aruntime.trace_id(),
        "current": _current(),
    }


def _current() -> list[Any] | None:
    current = aruntime.current()
    if current is None:
        return None
    return [current.request_id, current.tenant_id, current.trace_id, current.invocation_id]


def _in_thread() -> dict[str, Any]:
    got: list[dict[str, Any]] = []
    worker = threading.Thread(target=lambda: got.append(read()))
    worker.start()
    worker.join()
    return got[0]


def _report(context: Any, first: dict[str, Any], later: dict[str, Any],
            thread: dict[str, Any], pooled: dict[str, Any]) -> dict[str, Any]:
    return {"rid": context.aws_request_id, "first": first, "later": later, "thread": thread,
            "pool": pooled}


def _outside() -> dict[str, Any]:
    stop.set()
    return {"outside": sorted(outside, key=repr), "emitted": emitted,
            "current_outside": outside_current}


async def handler(event: Any, context: Any) -> Any:
    if event.get("probe") == "outside":
        stop.set()
        await _outside_task
        return _outside()
    first = read()
    await asyncio.sleep(event["s"])  # the other invocations run meanwhile
    later = read()
    thread = await asyncio.get_running_loop().run_in_executor(None, _in_thread)
    pooled = await asyncio.get_running_loop().run_in_executor(pool, read)
    return _report(context, first, later, thread, pooled)


def sync_handler(event: Any, context: Any) -> Any:
    if event.get("probe") == "outside":
        return _outside()
    first = read()
    time.sleep(event["s"])
    later = read()
    return _report(context, first, later, _in_thread(), pool.submit(read).result())
