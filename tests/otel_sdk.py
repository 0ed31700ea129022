"""The OpenTelemetry SDK with in-memory readers, for the telemetry tests."""

from __future__ import annotations

from collections.abc import Iterator

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_ratelimit import RateLimiter

SECRET = "s3cr3t-VALUE-42"


class Otel:
    """An SDK meter and tracer provider with in-memory readers, for one test."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.meters = MeterProvider(metric_readers=[self.reader])
        self.exporter = InMemorySpanExporter()
        self.tracers = TracerProvider()
        self.tracers.add_span_processor(SimpleSpanProcessor(self.exporter))

    def limiter(self, **kwargs) -> RateLimiter:
        return RateLimiter(meter_provider=self.meters, tracer_provider=self.tracers, **kwargs)

    def metrics(self) -> dict[str, object]:
        data = self.reader.get_metrics_data()
        return {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics
                for m in sm.metrics}  # fmt: skip

    def points(self, name: str) -> list:
        """The points of one metric; counters' zero points (new keys start at 0) left out."""
        metric = self.metrics().get(name)
        if metric is None:
            return []
        counter = getattr(metric.data, "is_monotonic", False)
        return [p for p in metric.data.data_points if not counter or p.value]

    def spans(self, name: str | None = None) -> list:
        return [s for s in self.exporter.get_finished_spans() if name in (None, s.name)]


def providers() -> Iterator[Otel]:
    """Fresh providers for one test, shut down after it (``yield from`` it in a fixture)."""
    o = Otel()
    yield o
    o.meters.shutdown()
    o.tracers.shutdown()
