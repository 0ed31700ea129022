"""What telemetry adds to a limited request: hooks, no-op providers, the SDK exporting.

    python benchmarks/telemetry_overhead.py [--requests 2000] [--rounds 5]

One limited sync httpx client per variant, timed interleaved (best round of each):
- "plain httpx": no limiter (reference);
- "limited, hooks stubbed": the limiter with its telemetry calls replaced by empty ones,
  i.e. the cost before telemetry existed;
- "limited, no-op providers": the default when no OpenTelemetry SDK is configured;
- "limited, SDK exporting": an SDK MeterProvider with the Prometheus reader and an SDK
  TracerProvider exporting every span through a BatchSpanProcessor, under a parent span.
Each runs against httpx.MockTransport (no network: the pure CPU cost, a worst case), a real
local HTTP server on loopback (``Upstream``, no added latency: still far faster than any real
API), and the same server answering after 5 ms (a fast real API; a tenth of the requests).
Target in the issue: SDK exporting <= 10% over telemetry off.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import httpx
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_ratelimit import RateLimiter
from otel_ratelimit.testing import Upstream

HEADERS = {"x-ratelimit-limit-requests": "100000000", "x-ratelimit-remaining-requests": "99999999",
           "x-ratelimit-reset-requests": "60s"}  # fmt: skip


class _NoHooks:
    """Telemetry calls that do nothing: what the flow cost before telemetry."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


def _handler(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers=HEADERS, json={"ok": True})


def _variants(url: str, mock: bool, tracers: TracerProvider, meters: MeterProvider) -> dict:
    def client(limiter: RateLimiter | None) -> Any:
        transport = httpx.MockTransport(_handler) if mock else httpx.HTTPTransport()
        if limiter is None:
            return httpx.Client(transport=transport)
        limiter.set_limit(url, 10**9, "1s", burst=10**9)
        return limiter.client(transport=transport)

    stubbed = RateLimiter()
    stubbed.core.telemetry = _NoHooks()  # type: ignore[assignment]
    return {
        "plain httpx": (client(None), False),
        "limited, hooks stubbed": (client(stubbed), False),
        "limited, no-op providers": (client(RateLimiter()), False),
        "limited, SDK exporting": (
            client(RateLimiter(meter_provider=meters, tracer_provider=tracers)), True),
    }  # fmt: skip


def _measure(url: str, mock: bool, n: int, rounds: int, tracers, meters) -> dict[str, float]:
    parent = tracers.get_tracer("bench")
    variants = _variants(url, mock, tracers, meters)

    def timed(client: httpx.Client, traced: bool) -> Callable[[], float]:
        def run() -> float:
            start = time.perf_counter()
            with parent.start_as_current_span("incoming") if traced else nullcontext():
                for _ in range(n):
                    client.get(url)
            return (time.perf_counter() - start) / n

        return run

    runs = {name: timed(*variant) for name, variant in variants.items()}
    for run in runs.values():
        run()  # warm up: connections, first-contact probes
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, run in runs.items():  # interleaved: load drifts hit every variant
            best[name] = min(best[name], run())
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    exporter = InMemorySpanExporter()
    tracers = TracerProvider()
    tracers.add_span_processor(BatchSpanProcessor(exporter))
    meters = MeterProvider(metric_readers=[PrometheusMetricReader()])
    print("| transport | variant | per request | vs hooks stubbed | vs no-op providers |")
    print("|---|---|---|---|---|")
    fast = Upstream("openai", limit=10**8, latency=0).start()
    slow = Upstream("openai", limit=10**8, latency=0.005).start()
    cases = (("MockTransport", "http://api.bench.test/items", True, args.requests),
             ("loopback Upstream", fast.url + "/items", False, args.requests),
             ("loopback Upstream, 5 ms latency", slow.url + "/items", False,
              args.requests // 10))  # fmt: skip
    try:
        for label, url, mock, n in cases:
            best = _measure(url, mock, n, args.rounds, tracers, meters)
            base, noop = best["limited, hooks stubbed"], best["limited, no-op providers"]
            for name, cost in best.items():
                print(f"| {label} | {name} | {cost * 1e6:.1f} us | {cost / base:.3f} | "
                      f"{cost / noop:.3f} |")  # fmt: skip
    finally:
        fast.stop()
        slow.stop()
    tracers.shutdown()
    meters.shutdown()
    print(f"\nspans exported: {len(exporter.get_finished_spans())}")


if __name__ == "__main__":
    main()
