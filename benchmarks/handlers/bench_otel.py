"""The echo handler with the OpenTelemetry SDK set up, for `python -m benchmarks.otel`.

Every runtime runs this same module, so the SDK's import and provider are in every column; only
what makes spans differs: nothing (`off`), aruntime's integration (`ARUNTIME_OTEL=1`), or, for
the reference, OpenTelemetry's Lambda instrumentation (`BENCH_OTEL_INSTRUMENTOR=1`). Spans go
through a BatchSpanProcessor to an exporter that drops them: the cost measured is making,
ending and flushing spans, not a network.
"""

import os

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult


class Drop(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS


provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(Drop()))
trace.set_tracer_provider(provider)


def echo(event, context):
    return event


if os.environ.get("BENCH_OTEL_INSTRUMENTOR"):
    from opentelemetry.instrumentation.aws_lambda import AwsLambdaInstrumentor

    AwsLambdaInstrumentor().instrument()
