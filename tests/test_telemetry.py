"""Metrics and spans against a real local upstream, read with the SDK's in-memory readers."""

from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
import pytest
from conftest import free_port, stop_server
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_ratelimit import RateLimiter, RateLimitExceeded
from otel_ratelimit.core import drive
from otel_ratelimit.storage import MemoryStorage
from otel_ratelimit.telemetry_http import redact_url
from otel_ratelimit.testing import Upstream

ALLOWED = {"server.address", "ratelimit.key", "ratelimit.policy", "ratelimit.outcome",
           "ratelimit.backoff.reason", "error.type"}  # fmt: skip
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


@pytest.fixture
def otel():
    o = Otel()
    yield o
    o.meters.shutdown()
    o.tracers.shutdown()


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
    with Upstream("429-only", limit=3, latency=0) as up, otel.limiter(max_wait=5) as limiter:
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


def test_spans_parented_waits_outside_client_span(otel):
    """Under a parent (server) span: wait span, then CLIENT span, both children of it."""
    tracer = otel.tracers.get_tracer("test")
    incoming = tracer.start_as_current_span("GET /incoming", kind=SpanKind.SERVER)
    with Upstream("ietf", limit=2, latency=0) as up, otel.limiter() as limiter, incoming as parent:
        for _ in range(4):
            limiter.request("GET", up.url + "/items")
    clients = otel.spans("GET")
    waits = otel.spans("ratelimit.wait")
    assert len(clients) == 4 and waits
    parent_id = parent.get_span_context().span_id
    for span in clients + waits:
        assert span.parent.span_id == parent_id
    for span in clients:
        assert span.kind is SpanKind.CLIENT
        assert span.attributes["http.request.method"] == "GET"
        assert span.attributes["server.address"] == "127.0.0.1"
        assert span.attributes["server.port"] == int(up.url.rsplit(":", 1)[1])
        assert span.attributes["http.response.status_code"] == 200
        assert "http.request.resend_count" not in span.attributes
    for wait in waits:  # each wait ends before a CLIENT span starts: latency is not inflated
        assert any(c.start_time >= wait.end_time for c in clients)
        assert wait.kind is SpanKind.INTERNAL


def test_async_spans_and_resend_count(otel):
    """The async path makes the same spans; a retry attempt carries resend_count."""

    async def main(url: str, limiter: RateLimiter) -> None:
        with otel.tracers.get_tracer("t").start_as_current_span("parent"):
            await limiter.arequest("GET", url)
        await limiter.aclose()

    with Upstream("ietf", limit=50, latency=0) as up:
        limiter = otel.limiter()
        asyncio.run(main(up.url, limiter))
        limiter = otel.limiter()
        with httpx.HTTPTransport() as inner:
            request = httpx.Request("GET", up.url)
            flow = limiter.core.flow(request, attempt=2)
            assert drive(flow, limiter.storage, inner.handle_request).status_code == 200
        limiter.close()
    [first, retry] = otel.spans("GET")
    assert first.parent is not None and "http.request.resend_count" not in first.attributes
    assert retry.attributes["http.request.resend_count"] == 2
    assert [p.value for p in otel.points("ratelimit.retries")] == [1]


class _Echo(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []  # noqa: RUF012

    def do_GET(self) -> None:
        _Echo.seen.append(dict(self.headers))
        self.send_response(200)
        self.send_header("x-ratelimit-remaining", "NaN")  # garbage: a header error
        self.send_header("x-ratelimit-limit", "10")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def echo():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Echo.seen.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_traceparent_injected_and_header_errors(otel, echo):
    """The upstream receives the CLIENT span's traceparent; a NaN header is counted."""
    with otel.limiter() as limiter:
        limiter.request("GET", echo + "/x")
    [client] = otel.spans("GET")
    ctx = client.get_span_context()
    assert _Echo.seen[0]["traceparent"].startswith(f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-")
    assert [p.value for p in otel.points("ratelimit.header.errors")] == [1]


def test_no_secret_in_any_attribute(otel, echo):
    """Authorization, cookies, api_key= and user info reach no span or metric attribute."""
    url = echo.replace("http://", f"http://user:{SECRET}@") + f"/x?api_key={SECRET}&q=1"
    with otel.limiter() as limiter:
        with limiter.client(headers={"Authorization": f"Bearer {SECRET}"},
                            cookies={"session": SECRET}) as client:  # fmt: skip
            client.get(url)
            client.get(echo + f"/y?access_token={SECRET}&Signature={SECRET}")
        metrics = otel.metrics()
    assert _Echo.seen[1]["Authorization"] == f"Bearer {SECRET}"  # it was really sent...
    assert SECRET in _Echo.seen[1]["Cookie"]
    texts = [str(dict(s.attributes)) for s in otel.spans()]
    texts += [str(dict(p.attributes)) for m in metrics.values() for p in m.data.data_points]
    assert texts and not [t for t in texts if SECRET in t]  # ...and recorded nowhere
    fulls = [s.attributes["url.full"] for s in otel.spans("GET")]
    assert fulls[0].startswith("http://REDACTED:REDACTED@127.0.0.1:")
    assert fulls[0].endswith("/x?api_key=REDACTED&q=1")
    assert fulls[1].endswith("/y?access_token=REDACTED&Signature=REDACTED")


def test_redact_url_cases():
    """Credential-like query names are redacted, ordinary ones kept, encoding untouched."""
    assert redact_url("https://a.io/p?key=1&X-Api-Key=2&client_secret=3&page=4#frag") == (
        "https://a.io/p?key=REDACTED&X-Api-Key=REDACTED&client_secret=REDACTED&page=4"
    )
    assert redact_url("https://a.io/p?sig=x&password=y&q=a%20b") == (
        "https://a.io/p?sig=REDACTED&password=REDACTED&q=a%20b"
    )


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
    limiter = otel.limiter(storage=f"redis://127.0.0.1:{port}/0")
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


def test_noop_by_default_and_global_provider():
    """Without providers the limiter works and records nothing; tracer() is None."""
    limiter = RateLimiter()
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    assert limiter.core.telemetry.tracer() is None
    limiter.close()


def test_no_second_client_span_with_httpx_instrumentation(otel):
    """opentelemetry-instrumentation-httpx, globally or on the client: one CLIENT span a send."""
    instrumentor = HTTPXClientInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracers, meter_provider=otel.meters)
    try:
        with Upstream("ietf", limit=50, latency=0) as up, otel.limiter() as limiter:
            with limiter.client() as client:
                client.get(up.url)
            with httpx.Client() as plain:  # proves the instrumentation is live
                plain.get(up.url)
            with limiter.client() as client:
                HTTPXClientInstrumentor.instrument_client(client, tracer_provider=otel.tracers)
                client.get(up.url)
    finally:
        instrumentor.uninstrument()
    scopes = [s.instrumentation_scope.name for s in otel.spans() if s.kind is SpanKind.CLIENT]
    theirs = "opentelemetry.instrumentation.httpx"
    assert scopes == ["otel_ratelimit", theirs, theirs]  # ours, the plain client's, the wrapper's


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_client_span_under_a_real_wsgi_request(otel):
    """Through a real HTTP hop: test span -> WSGI server span -> our wait/CLIENT spans."""
    tracer = otel.tracers.get_tracer("test")
    with Upstream("ietf", limit=3, latency=0) as up, otel.limiter() as limiter:

        def view(environ, start_response):
            codes = [limiter.request("GET", up.url + f"/x?token={SECRET}").status_code
                     for _ in range(4)]  # fmt: skip
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [repr(codes).encode()]

        app = OpenTelemetryMiddleware(view, tracer_provider=otel.tracers)
        server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            with tracer.start_as_current_span("caller", kind=SpanKind.CLIENT) as caller:
                headers = {"Authorization": f"Bearer {SECRET}", "Cookie": f"sid={SECRET}"}
                propagate.inject(headers)
                reply = httpx.get(f"http://127.0.0.1:{server.server_port}/report", headers=headers)
        finally:
            server.shutdown()
            server.server_close()
    assert reply.text == "[200, 200, 200, 200]"
    [incoming] = [s for s in otel.spans() if s.kind is SpanKind.SERVER]
    assert incoming.parent.span_id == caller.get_span_context().span_id
    ours = [s for s in otel.spans() if s.instrumentation_scope.name == "otel_ratelimit"]
    assert {s.name for s in ours} == {"GET", "ratelimit.wait"}  # 4 at 3/s: someone waited
    for span in ours:
        assert span.parent.span_id == incoming.get_span_context().span_id
        assert span.context.trace_id == caller.get_span_context().trace_id
        assert SECRET not in str(dict(span.attributes))


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


def test_failed_attempt_has_error_type_not_message(otel):
    """A refused connection: the CLIENT span says httpx.ConnectError, never the message."""
    port = free_port()  # nothing listens there
    with otel.limiter() as limiter, pytest.raises(httpx.ConnectError):
        limiter.request("GET", f"http://127.0.0.1:{port}/x?api_key={SECRET}")
    [span] = otel.spans("GET")
    assert span.attributes["error.type"] == "httpx.ConnectError"
    assert span.status.status_code.name == "ERROR"
    assert not span.events and SECRET not in str(dict(span.attributes))
