"""Outbound spans made in a view are children of the incoming request's server span."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from otel_sdk import SECRET, providers
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from otel_ratelimit import RateLimitMiddleware
from otel_ratelimit.testing import Upstream


@pytest.fixture
def otel():
    yield from providers()


def test_client_spans_are_children_of_the_server_span(otel):
    with Upstream("openai", limit=2, window=1.0) as api:

        async def view(request):
            client = request.state.api_client
            answers = [await client.get(f"/x?api_key={SECRET}") for _ in range(3)]
            return JSONResponse([a.status_code for a in answers])

        app = Starlette(routes=[Route("/call", view)])
        app.add_middleware(RateLimitMiddleware, limiter=otel.limiter(), base_url=api.url)
        traced = OpenTelemetryMiddleware(app, tracer_provider=otel.tracers)

        async def main() -> httpx.Response:
            transport = httpx.ASGITransport(traced)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as c:
                return await c.get("/call", headers={"Authorization": f"Bearer {SECRET}"})

        answer = asyncio.run(main())
    assert answer.json() == [200, 200, 200]
    spans = otel.spans()
    [server] = [s for s in spans if s.kind.name == "SERVER"]
    clients = [s for s in spans if s.kind.name == "CLIENT"]
    waits = [s for s in spans if s.name == "ratelimit.wait"]
    assert len(clients) == 3 and waits  # the third call waited for the next window
    for span in clients + waits:
        assert span.parent is not None and span.parent.span_id == server.context.span_id
        assert span.context.trace_id == server.context.trace_id
    for span in clients:
        assert SECRET not in str(dict(span.attributes))
