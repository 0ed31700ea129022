"""Metrics against real local servers, read with the SDK's in-memory metric reader."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import weakref
from pathlib import Path

import pytest
from conftest import stop_server
from otel_sdk import Otel, providers

from otel_ratelimit import RateLimitExceeded
from otel_ratelimit.storage import MemoryStorage
from otel_ratelimit.testing import Upstream

ALLOWED = {"server.address", "ratelimit.key", "ratelimit.policy", "ratelimit.outcome",
           "ratelimit.backoff.reason", "error.type"}  # fmt: skip


@pytest.fixture
def otel():
    yield from providers()


def test_instruments_names_units_and_attributes(otel):
    """A burst over a 5/s upstream: requests, waits, gauges, with units and few attributes."""
    with Upstream("ietf", limit=5, latency=0) as up, otel.limiter() as limiter:
        with limiter.client(base_url=up.url) as client:
            for _ in range(9):
                assert client.get("/x").status_code == 200
        metrics = otel.metrics()
        limits = {p.attributes["ratelimit.policy"]: p.value for p in otel.points("ratelimit.limit")}
        utilization = otel.points("ratelimit.utilization")[0].value
    units = {name: m.unit for name, m in metrics.items()}
    assert units["ratelimit.requests"] == "{request}"
    assert units["ratelimit.wait.duration"] == "s"
    assert units["ratelimit.limit"] == units["ratelimit.remaining"] == "{request}"
    assert units["ratelimit.utilization"] == "1"
    assert all(metrics[n].description for n in units)
    [acquired] = otel.points("ratelimit.requests")
    assert acquired.value == 9 and acquired.attributes["ratelimit.outcome"] == "acquired"
    assert acquired.attributes["server.address"] == "127.0.0.1"
    [wait] = otel.points("ratelimit.wait.duration")
    assert wait.count == 9 and wait.max > 0.1  # 9 requests at 5/s: the last ones waited
    assert limits == {"default": 5}
    assert 0 <= utilization <= 1
    assert [p.value for p in otel.points("ratelimit.queued")] == [0]  # every waiter left
    for metric in metrics.values():
        for point in metric.data.data_points:
            assert set(point.attributes) <= ALLOWED, (metric.name, point.attributes)


def test_backoffs_rate_and_backoff_span(otel):
    """An upstream that only answers 429: backoffs by reason, an adaptive rate, a span."""
    with (
        Upstream("429-only", limit=3, latency=0) as up,
        otel.limiter(max_wait=5, retry=False) as limiter,
    ):
        with limiter.client(base_url=up.url) as client:
            statuses = [client.get("/x").status_code for _ in range(8)]
        assert 429 in statuses
        reasons = {
            p.attributes["ratelimit.backoff.reason"] for p in otel.points("ratelimit.backoffs")
        }
        rates = otel.points("ratelimit.rate")
    assert reasons <= {"status_429", "retry_after"} and reasons
    assert rates and rates[0].value > 0
    [backoff, *_] = otel.spans("ratelimit.backoff")
    assert backoff.attributes["http.response.status_code"] == 429
    assert backoff.attributes["ratelimit.backoff.cooldown"] > 0


def test_rejected_and_timeout_outcomes(otel):
    """raise_on_limit rejects; a wait longer than max_wait times out; both counted."""
    with Upstream("ietf", limit=100, latency=0) as up:
        with otel.limiter(raise_on_limit=True) as limiter:
            limiter.set_limit(up.url, 1, "1m")
            limiter.request("GET", up.url)
            with pytest.raises(RateLimitExceeded):
                limiter.request("GET", up.url)
        with otel.limiter(max_wait=0.5) as limiter:
            limiter.set_limit(up.url, 1, "1m")
            limiter.request("GET", up.url)
            with pytest.raises(RateLimitExceeded):
                limiter.request("GET", up.url)
    outcomes = {
        p.attributes["ratelimit.outcome"]: p.value for p in otel.points("ratelimit.requests")
    }
    assert outcomes == {"acquired": 2, "rejected": 1, "timeout": 1}


def test_series_cap_uses_overflow_value(otel):
    """Beyond max_series keys, metrics use _OTHER instead of new series."""
    ups = [Upstream("ietf", limit=50, latency=0).start() for _ in range(3)]
    try:
        with otel.limiter() as limiter:
            limiter.core.telemetry.max_series = 2
            for up in ups:
                limiter.request("GET", up.url)
    finally:
        for up in ups:
            up.stop()
    keys = sorted(p.attributes["ratelimit.key"] for p in otel.points("ratelimit.requests"))
    assert len(keys) == 3 and keys[-1] == "_OTHER"


def test_storage_errors_counted(otel, redis_factory):
    """A Redis server that dies under the limiter counts ratelimit.storage.errors by type."""
    port, proc = redis_factory()
    url = f"redis://127.0.0.1:{port}/0"
    limiter = otel.limiter(storage=url, retry=False, on_storage_error="raise")
    stop_server(proc)
    with pytest.raises(Exception):  # whatever the store raises
        limiter.request("GET", "http://127.0.0.1:9/x")
    limiter.close()
    [point] = otel.points("ratelimit.storage.errors")
    assert point.value == 1 and point.attributes["error.type"] == "StorageError"
    assert not otel.points("ratelimit.requests")  # no outcome: the limiter never decided


def test_fallback_listener_and_gauge(otel):
    """A store with ``listeners`` (FallbackStorage's interface): errors and fallback state."""
    storage = MemoryStorage()
    storage.listeners = []
    otel.limiter(storage=storage)
    [listener] = storage.listeners
    listener("error", "ConnectionError")
    listener("fallback", "memory")
    assert [p.value for p in otel.points("ratelimit.storage.fallback")] == [1]
    listener("error", "Error 111 connecting to redis://u:pw@host")  # a message: not an attribute
    listener("recovered", "")
    assert [p.value for p in otel.points("ratelimit.storage.fallback")] == [0]
    kinds = {p.attributes["error.type"]: p.value for p in otel.points("ratelimit.storage.errors")}
    assert kinds == {"ConnectionError": 1, "_OTHER": 1}


def test_closed_limiter_stops_reading_its_store(otel, tmp_path):
    """After close() the gauges no longer read the (closed) store: no errors, no stale keys."""
    with Upstream("ietf", limit=50, latency=0) as up:
        limiter = otel.limiter(storage=f"sqlite:///{tmp_path / 'limits.db'}")
        limiter.request("GET", up.url)
        assert otel.points("ratelimit.limit")
        limiter.close()
    assert not otel.points("ratelimit.limit")
    assert not otel.points("ratelimit.storage.errors")


def test_gauges_report_the_shared_state(tmp_path):
    """Two "workers" on one SQLite store report the same remaining value (so: max, not sum)."""
    workers = [Otel(), Otel()]
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    with Upstream("429-only", limit=1000, latency=0) as up:  # no headers: only ours
        limiters = [w.limiter(storage=storage) for w in workers]
        for limiter in limiters:
            limiter.set_limit(up.url, 600, "1m", burst=600)  # 10/s refill: ~0 during the test
        for _ in range(5):
            limiters[0].request("GET", up.url)
        limiters[1].request("GET", up.url)
        remaining = [
            {p.attributes["ratelimit.policy"]: p.value for p in w.points("ratelimit.remaining")}
            for w in workers
        ]
        for limiter in limiters:
            limiter.close()
    configured = [r["default"] for r in remaining]
    assert configured[0] == pytest.approx(configured[1], abs=1)
    assert configured[0] == pytest.approx(594, abs=3)  # 600 - 6, whichever worker sent them


def test_request_counts_add_up_across_limiters_and_outlive_them(otel):
    """ratelimit.requests (read from per-key counts) sums the limiters of one provider, and a
    limiter that is closed and collected keeps its counts: the counter never goes down."""
    with Upstream("ietf", limit=100, latency=0) as up:
        first, second = otel.limiter(), otel.limiter()
        for _ in range(3):
            first.request("GET", up.url)
        second.request("GET", up.url)
        assert [p.value for p in otel.points("ratelimit.requests")] == [4]
        gone = weakref.ref(first.core.telemetry)
        first.close()
        del first
        gc.collect()
        assert gone() is None  # collected: its counts now live in the retired series
        assert [p.value for p in otel.points("ratelimit.requests")] == [4]
        second.request("GET", up.url)
        second.close()
    metric = otel.metrics()["ratelimit.requests"]
    assert metric.data.is_monotonic  # a counter: ratelimit_requests_total in Prometheus
    assert [p.value for p in otel.points("ratelimit.requests")] == [5]


def test_limiter_collected_while_the_count_lock_is_held(otel):
    """The garbage collector may finalize a limiter inside a thread holding the count lock (a
    request adding 1, a collection summing): the finalizer must not wait for that lock."""
    with Upstream("ietf", limit=100, latency=0) as up:
        limiter = otel.limiter()
        limiter.request("GET", up.url)
        limiter.close()
    instruments = limiter.core.telemetry.m
    gone = weakref.ref(limiter.core.telemetry)

    def collect_under_lock() -> None:
        with instruments.count_lock:
            gc.collect()  # runs the limiter's finalizer in this thread

    del limiter
    worker = threading.Thread(target=collect_under_lock, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive() and gone() is None
    assert [p.value for p in otel.points("ratelimit.requests")] == [1]


def test_overhead_benchmark_runs_and_exports_spans():
    """benchmarks/telemetry_overhead.py (tiny) prints every case and variant, the SDK rows'
    spans reach the exporter and --hooks times the hooks."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "telemetry_overhead.py"), "--requests", "20",
         "--rounds", "1", "--hooks"],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PYTHONPATH": str(root)},  # this checkout's package
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and " us |" in line]
    assert len(rows) == 4 * 5  # four servers, five variants
    assert done.stdout.count("attempt_started") == 4
    assert "spans exported: {'GET': " in done.stdout
