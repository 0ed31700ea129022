"""Each request's client, in the ASGI middleware and in Flask: configured once, shared by none.

A view may change its client (headers, cookies, params, timeout); the next request's client
has none of it and is what ``httpx.Client(**options)`` would be. Real upstream, real clients.
"""

from __future__ import annotations

import asyncio
from typing import Any

import flask
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from test_asgi_client_copy import _public

from otel_ratelimit import RateLimiter, RateLimitMiddleware
from otel_ratelimit.flask import FlaskRateLimit
from otel_ratelimit.testing import Upstream

OPTIONS = {"headers": {"X-Team": "a"}, "timeout": 7.0}


def _spoil(client: Any) -> None:
    """What a careless view might do to its client."""
    client.headers["X-Leak"] = "1"
    client.cookies.set("leak", "1")
    client.params = {"leak": "1"}
    client.timeout = 1.0


def _check_fresh(client: Any, sent: Any, reference: Any) -> None:
    """A later request's client: configured from the options, nothing of the spoiled one."""
    assert _public(client) == {**_public(reference), "closed": True}
    expected = reference.build_request("GET", "/items/2")
    assert sent.url == expected.url and "leak" not in str(sent.url)
    assert sent.headers.multi_items() == expected.headers.multi_items()
    assert "x-leak" not in sent.headers and "cookie" not in sent.headers


def test_asgi_requests_get_isolated_clients_configured_once() -> None:
    """Each request's client (async and sync) has the options and none of another's changes."""
    seen: dict[str, Any] = {}

    async def spoil(request: Request) -> PlainTextResponse:
        _spoil(request.state.api_client)
        _spoil(request.state.api_client_sync)
        answer = await request.state.api_client.get("/items/1")
        assert "x-leak" in answer.request.headers and "leak=1" in str(answer.request.url)
        return PlainTextResponse("spoiled")

    async def fresh(request: Request) -> PlainTextResponse:
        client = seen["async"] = request.state.api_client
        seen["async sent"] = (await client.get("/items/2")).request
        return PlainTextResponse("fresh")

    def fresh_sync(request: Request) -> PlainTextResponse:
        client = seen["sync"] = request.state.api_client_sync
        seen["sync sent"] = client.get("/items/2").request
        return PlainTextResponse("fresh")

    with Upstream("github", limit=50, window=5.0, latency=0) as up:
        app = Starlette(routes=[Route("/spoil", spoil), Route("/fresh", fresh),
                                Route("/fresh_sync", fresh_sync)])  # fmt: skip
        app.add_middleware(RateLimitMiddleware, limiter=RateLimiter(), base_url=up.url, **OPTIONS)

        async def main() -> None:
            transport = httpx.ASGITransport(app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as c:
                for path in ("/spoil", "/fresh", "/spoil", "/fresh_sync"):
                    assert (await c.get(path)).status_code == 200
            await app.middleware_stack.app.aclose()  # type: ignore[union-attr]

        asyncio.run(main())
        assert up.stats()["ok"] == 4
        for kind, cls in (("async", httpx.AsyncClient), ("sync", httpx.Client)):
            assert type(seen[kind]) is cls
            reference = cls(base_url=up.url, transport=httpx.MockTransport(print), **OPTIONS)
            _check_fresh(seen[kind], seen[f"{kind} sent"], reference)


def test_flask_requests_get_isolated_clients_configured_once() -> None:
    """The same for Flask: request.state.api_client and g.api_client, one client per request."""
    seen: dict[str, Any] = {}
    with Upstream("github", limit=50, window=5.0, latency=0) as up:
        app = flask.Flask(__name__)
        FlaskRateLimit(app, limiter=RateLimiter(), base_url=up.url, **OPTIONS)

        @app.get("/spoil")
        def spoil() -> str:
            _spoil(flask.g.api_client)
            return str(flask.request.state.api_client.get("/items/1").request.headers["x-leak"])

        @app.get("/fresh")
        def fresh() -> str:
            client = seen["sync"] = flask.request.state.api_client
            assert flask.g.api_client is client
            seen["sync sent"] = client.get("/items/2").request
            return "fresh"

        with httpx.Client(transport=httpx.WSGITransport(app), base_url="http://app") as c:
            assert [c.get(p).text for p in ("/spoil", "/fresh")] == ["1", "fresh"]
        app.extensions["otel_ratelimit"].close()
        assert up.stats()["ok"] == 2
        assert type(seen["sync"]) is httpx.Client
        reference = httpx.Client(base_url=up.url, transport=httpx.MockTransport(print), **OPTIONS)
        _check_fresh(seen["sync"], seen["sync sent"], reference)
