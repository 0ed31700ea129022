"""What telemetry adds to a limited request: no-op providers vs the SDK exporting.

    python benchmarks/telemetry_overhead.py [--requests 5000] [--rounds 5]

The same limited httpx client path as benchmarks/overhead.py (MockTransport, a limit far
above the loop's pace) is timed three ways, interleaved, best round of each:
- plain httpx (reference),
- limited, telemetry off (the API's no-op providers),
- limited, telemetry on: an SDK MeterProvider with the Prometheus reader and an SDK
  TracerProvider exporting every span through a BatchSpanProcessor, under a parent span.
Target in the issue: telemetry on costs <= 10% more than telemetry off.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from contextlib import nullcontext

import httpx
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_ratelimit import RateLimiter

URL = "http://api.bench.test/items"
HEADERS = {"x-ratelimit-limit-requests": "100000000", "x-ratelimit-remaining-requests": "99999999",
           "x-ratelimit-reset-requests": "60s"}  # fmt: skip


def _handler(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers=HEADERS, json={"ok": True})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    exporter = InMemorySpanExporter()
    tracers = TracerProvider()
    tracers.add_span_processor(BatchSpanProcessor(exporter))
    meters = MeterProvider(metric_readers=[PrometheusMetricReader()])
    parent = tracers.get_tracer("bench")

    off = RateLimiter()
    on = RateLimiter(meter_provider=meters, tracer_provider=tracers)
    for limiter in (off, on):
        limiter.set_limit("api.bench.test", 10**9, "1s", burst=10**9)
    clients = {
        "plain httpx": httpx.Client(transport=httpx.MockTransport(_handler)),
        "limited, telemetry off": off.client(transport=httpx.MockTransport(_handler)),
        "limited, telemetry on (SDK exporting)": on.client(transport=httpx.MockTransport(_handler)),
    }

    def timed(client: httpx.Client, traced: bool) -> Callable[[], float]:
        def run() -> float:
            start = time.perf_counter()
            with parent.start_as_current_span("incoming") if traced else nullcontext():
                for _ in range(args.requests):
                    client.get(URL)
            return (time.perf_counter() - start) / args.requests

        return run

    runs = {name: timed(client, "SDK" in name) for name, client in clients.items()}
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(args.rounds):
        for name, run in runs.items():  # interleaved: load drifts hit every variant
            best[name] = min(best[name], run())
    tracers.force_flush()
    off_cost = best["limited, telemetry off"]
    print("| variant | per request | vs telemetry off |\n|---|---|---|")
    for name, cost in best.items():
        print(f"| {name} | {cost * 1e6:.1f} us | {cost / off_cost:.3f} |")
    print(f"\nspans exported: {len(exporter.get_finished_spans())}")
    tracers.shutdown()
    meters.shutdown()


if __name__ == "__main__":
    main()
