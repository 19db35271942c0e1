"""Powertools for AWS Lambda under aruntime, for tests/test_powertools.py.

Every invocation logs through three Loggers (before and after the other invocations ran):
`plain` with `@inject_lambda_context` (its keys live in the Logger's shared state), `safe` with
the request id added by `thread_safe_append_keys` (a context variable), and `fixed` with
`@inject_lambda_context` and aruntime's `InvocationFormatter`. It adds one metric to an
`EphemeralMetrics` it flushes itself, and (sync handler) opens Tracer subsegments.
`event["s"]`: seconds to work. Loggers with InvocationFormatter write Powertools' thread-safe
keys, which every Logger of the process shows (Powertools' design), so `plain` and `fixed` are
driven by different handlers.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import EphemeralMetrics, Metrics, MetricUnit
from aws_xray_sdk.core import xray_recorder

from aruntime.powertools import InvocationFormatter

emitted: list[dict[str, Any]] = []


class KeepEmitter:
    """Keeps what the X-Ray SDK would send to the daemon."""

    def send_entity(self, entity: Any) -> None:
        emitted.append({"name": entity.name, "trace_id": entity.trace_id,
                        "parent_id": getattr(entity, "parent_id", None)})

    def set_daemon_address(self, address: Any) -> None:
        pass


plain = Logger(service="plain")
safe = Logger(service="safe")
fixed = Logger(service="fixed", logger_formatter=InvocationFormatter())
tracer = Tracer(service="svc")
xray_recorder.configure(emitter=KeepEmitter(), streaming_threshold=0)
late = Metrics(namespace="ns", service="svc")


def _log(logger: Logger, context: Any, when: str) -> None:
    # The message holds the truth: which invocation wrote the record.
    message = f"{when} {context.aws_request_id}"
    logger.info(message)
    safe.info(message)


def _metric(context: Any) -> None:
    metrics = EphemeralMetrics(namespace="ns", service="svc")
    metrics.add_dimension(name="request", value=context.aws_request_id)
    metrics.add_metric(name="work", unit=MetricUnit.Count, value=1)
    metrics.flush_metrics()


async def _work(logger: Logger, event: Any, context: Any) -> Any:
    if event.get("probe") == "emitted":
        return emitted
    safe.thread_safe_append_keys(request=context.aws_request_id)
    _log(logger, context, "before")
    await asyncio.sleep(event["s"])
    _log(logger, context, "after")
    _metric(context)
    return {"rid": context.aws_request_id}


@plain.inject_lambda_context
async def async_plain(event: Any, context: Any) -> Any:
    return await _work(plain, event, context)


@fixed.inject_lambda_context
async def async_fixed(event: Any, context: Any) -> Any:
    return await _work(fixed, event, context)


@late.log_metrics
async def metrics_handler(event: Any, context: Any) -> Any:
    # The decorator is sync: it flushes when the coroutine is created, before this line runs.
    late.add_metric(name="late", unit=MetricUnit.Count, value=event["n"])
    return {"n": event["n"]}


def _sync_work(logger: Logger, event: Any, context: Any) -> Any:
    if event.get("probe") == "emitted":
        return emitted
    safe.thread_safe_append_keys(request=context.aws_request_id)
    _log(logger, context, "before")
    with tracer.provider.in_subsegment("## work"):
        time.sleep(event["s"])
    _log(logger, context, "after")
    _metric(context)
    return {"rid": context.aws_request_id}


@plain.inject_lambda_context
@tracer.capture_lambda_handler
def sync_plain(event: Any, context: Any) -> Any:
    return _sync_work(plain, event, context)


@fixed.inject_lambda_context
@tracer.capture_lambda_handler
def sync_fixed(event: Any, context: Any) -> Any:
    return _sync_work(fixed, event, context)
