"""Spans against real local servers, read with the SDK's in-memory span exporter."""

from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
import pytest
from conftest import free_port
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.trace import SpanKind
from otel_sdk import SECRET, providers

from otel_ratelimit import RateLimiter
from otel_ratelimit.core import drive
from otel_ratelimit.telemetry_http import _STARTS, redact_url
from otel_ratelimit.testing import Upstream


@pytest.fixture
def otel():
    yield from providers()


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
            client.get(echo + "/plain?page=2")
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
    cached = [key[1] for key in _STARTS]  # span attributes are cached per URL...
    assert echo + "/plain?page=2" in cached and not [u for u in cached if SECRET in u]  # not these


def test_redact_url_cases():
    """Credential-like query names are redacted, ordinary ones kept, encoding untouched."""
    assert redact_url("https://a.io/p?key=1&X-Api-Key=2&client_secret=3&page=4#frag") == (
        "https://a.io/p?key=REDACTED&X-Api-Key=REDACTED&client_secret=REDACTED&page=4"
    )
    assert redact_url("https://a.io/p?sig=x&password=y&q=a%20b") == (
        "https://a.io/p?sig=REDACTED&password=REDACTED&q=a%20b"
    )


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

            async def once() -> None:  # the async inner transport too
                await limiter.arequest("GET", up.url)
                await limiter.aclose()

            asyncio.run(once())
    finally:
        instrumentor.uninstrument()
    scopes = [s.instrumentation_scope.name for s in otel.spans() if s.kind is SpanKind.CLIENT]
    theirs, ours = "opentelemetry.instrumentation.httpx", "otel_ratelimit"
    assert scopes == [ours, theirs, theirs, ours]  # ours, the plain client's, the wrapper's, ours


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


def test_failed_attempt_has_error_type_not_message(otel):
    """A refused connection: the CLIENT span says httpx.ConnectError, never the message."""
    port = free_port()  # nothing listens there
    with otel.limiter(retry=False) as limiter, pytest.raises(httpx.ConnectError):
        limiter.request("GET", f"http://127.0.0.1:{port}/x?api_key={SECRET}")
    [span] = otel.spans("GET")
    assert span.attributes["error.type"] == "httpx.ConnectError"
    assert span.status.status_code.name == "ERROR"
    assert not span.events and SECRET not in str(dict(span.attributes))


def test_httpx2_client_gets_the_same_client_span(otel):
    """An httpx2 client (the package the anthropic SDK takes) gets the same CLIENT span."""
    with Upstream("ietf", limit=50, latency=0) as up, otel.limiter() as limiter:
        client = limiter.client(package="httpx2")
        assert client.get(up.url + "/x?key=abc").status_code == 200
        client.close()
    [span] = otel.spans("GET")
    assert span.attributes["url.full"].endswith("/x?key=REDACTED")
    assert span.attributes["http.response.status_code"] == 200


def test_exemplars_link_waits_not_zero_waits(otel):
    """Under a sampled span the waits carry exemplars (trace links); zero waits sample none."""
    with Upstream("ietf", limit=5, latency=0) as up, otel.limiter() as limiter:
        with otel.tracers.get_tracer("t").start_as_current_span("parent"):
            for _ in range(8):
                limiter.request("GET", up.url)
        [wait] = otel.points("ratelimit.wait.duration")
    assert wait.count == 8 and wait.bucket_counts[0] > 0  # zero waits are counted
    assert wait.exemplars and all(e.value > 0 and e.trace_id for e in wait.exemplars)
