"""The ASGI middleware: per-request client, lifecycle and deadline (httpx.ASGITransport)."""

from __future__ import annotations

import asyncio
import gc
import os
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from otel_ratelimit import ConfigurationError, RateLimiter, RateLimitExceeded, RateLimitMiddleware
from otel_ratelimit._scoped import RequestClients
from otel_ratelimit.testing import Upstream

SEEN: list[httpx.AsyncClient] = []


async def call(request: Request) -> JSONResponse:
    client = request.state.api_client
    SEEN.append(client)
    response = await client.get("/items/1")
    return JSONResponse({"status": response.status_code, "closed": client.is_closed})


def sync_call(request: Request) -> JSONResponse:
    """A sync endpoint (run in a worker thread) uses the sync client."""
    client = request.state.api_client_sync
    SEEN.append(client)
    return JSONResponse({"status": client.get("/items/3").status_code})


async def touch(request: Request) -> PlainTextResponse:
    SEEN.append(request.state.api_client)  # made, never used for a call
    return PlainTextResponse("touched")


async def plain(request: Request) -> PlainTextResponse:
    return PlainTextResponse("plain")


async def handled(request: Request) -> PlainTextResponse:
    try:
        await request.state.api_client.get("/items/2")
    except RateLimitExceeded as exc:
        return PlainTextResponse(f"handled {exc.retry_after > 0.5}", status_code=200)
    return PlainTextResponse("sent")


ROUTES = [Route(p, f) for p, f in [("/call", call), ("/touch", touch), ("/plain", plain),
                                   ("/handled", handled), ("/sync", sync_call)]]  # fmt: skip


class Made:
    """A Starlette app with the middleware added, and a test client speaking ASGI to it."""

    def __init__(self, upstream_url: str, **options) -> None:
        self.app = Starlette(routes=ROUTES)
        self.app.add_middleware(RateLimitMiddleware, limiter=RateLimiter(max_wait=30),
                                base_url=upstream_url, **options)  # fmt: skip
        transport = httpx.ASGITransport(self.app)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://app")

    @property
    def middleware(self) -> RateLimitMiddleware:
        """Our instance in the app's middleware stack (built at the first request)."""
        middleware = self.app.middleware_stack.app
        assert isinstance(middleware, RateLimitMiddleware)
        return middleware

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.middleware.aclose()


def test_client_is_made_on_first_use_and_closed_after_the_request():
    """A view that calls out gets an open AsyncClient; it is closed once the request ends."""

    async def main(url: str) -> None:
        made = Made(url)
        client = made.client
        try:
            SEEN.clear()
            response = await client.get("/call")
            assert response.json() == {"status": 200, "closed": False}
            assert isinstance(SEEN[0], httpx.AsyncClient)
            assert SEEN[0].is_closed
            before = RequestClients.created
            assert (await client.get("/plain")).text == "plain"
            assert RequestClients.created == before  # untouched: no client made
            assert (await client.get("/sync")).json() == {"status": 200}
            assert isinstance(SEEN[1], httpx.Client)
            assert SEEN[1].is_closed
        finally:
            await made.aclose()

    with Upstream("github", limit=50, window=5.0, latency=0) as up:
        asyncio.run(main(up.url))
        assert up.stats()["ok"] == 2


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.slow
def test_ten_thousand_requests_leak_no_client_or_connection():
    """10,000 requests: every client made is closed, and sockets and clients do not pile up."""

    async def main(url: str) -> None:
        made = Made(url)
        client = made.client
        try:
            await client.get("/call")  # the shared pool opens its connection
            fds, created, closed = _open_fds(), RequestClients.created, RequestClients.closed
            for start in range(0, 10_000, 100):
                paths = ["/call" if (start + i) % 50 == 0 else "/touch" for i in range(100)]
                answers = await asyncio.gather(*(client.get(p) for p in paths))
                assert all(a.status_code == 200 for a in answers)
                SEEN.clear()
            assert RequestClients.created - created == 10_000
            assert RequestClients.closed - closed == 10_000
            assert _open_fds() <= fds + 10  # the shared pool, not one socket per request
            gc.collect()
            alive = [o for o in gc.get_objects() if isinstance(o, httpx.AsyncClient)]
            assert len(alive) == 1  # only the test's own client
            assert made.middleware.pools.open_async() == 1
        finally:
            await made.aclose()

    with Upstream("github", limit=100_000, window=1.0, latency=0) as up:
        asyncio.run(main(up.url))
        assert up.stats() == {"ok": 201, "rejected": 0, "total": 201}


def test_deadline_answers_503_with_retry_after_instead_of_hanging():
    """Quota that can't be had within the deadline: 503 + Retry-After, fast; views may catch it."""

    async def main(url: str) -> None:
        made = Made(url, deadline=0.5)
        client = made.client
        try:
            assert (await client.get("/call")).status_code == 200  # spends the only request
            started = time.monotonic()
            response = await client.get("/call")
            assert time.monotonic() - started < 1.0
            assert response.status_code == 503
            assert 5 <= int(response.headers["retry-after"]) <= 11
            assert (await client.get("/handled")).text == "handled True"
        finally:
            await made.aclose()

    with Upstream("github", limit=1, window=10.0, latency=0) as up:
        asyncio.run(main(up.url))
        assert up.stats()["rejected"] == 0


def test_deadline_status_is_configurable():
    """deadline_status=429 answers 429 instead of 503."""

    async def main(url: str) -> None:
        made = Made(url, deadline=0.2, deadline_status=429)
        client = made.client
        try:
            await client.get("/call")
            response = await client.get("/call")
            assert response.status_code == 429
            assert "retry-after" in response.headers
        finally:
            await made.aclose()

    with Upstream("github", limit=1, window=10.0, latency=0) as up:
        asyncio.run(main(up.url))


def test_lifespan_and_websocket_scopes_pass_through_untouched():
    """Non-HTTP scopes reach the app as the very same objects, with no state added."""
    calls = []

    async def app(scope, receive, send):
        calls.append((scope, receive, send))

    middleware = RateLimitMiddleware(app, limiter=RateLimiter())

    async def receive():
        return {"type": "lifespan.startup"}

    async def send(message):
        return None

    for kind in ("lifespan", "websocket"):
        scope = {"type": kind, "path": "/ws"}
        asyncio.run(middleware(scope, receive, send))
        assert calls[-1][:2] == (scope, receive)
        assert calls[-1][2] is send or kind == "lifespan"  # lifespan: closes pools at shutdown
        assert calls[-1][0] is scope
        assert scope == {"type": kind, "path": "/ws"}


def test_bad_options_raise_configuration_error_naming_the_value():
    """A negative deadline or a non-limiter is refused at construction, naming the value."""
    with pytest.raises(ConfigurationError, match="-1"):
        RateLimitMiddleware(Starlette(), limiter=RateLimiter(), deadline=-1)
    with pytest.raises(ConfigurationError, match="'nope'"):
        RateLimitMiddleware(Starlette(), limiter="nope")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="200"):
        RateLimitMiddleware(Starlette(), limiter=RateLimiter(), deadline_status=200)


def test_shared_pool_closes_itself_when_the_event_loop_shuts_down():
    """Without any explicit close, asyncio.run's shutdown closes the pool's connections."""

    async def main(url: str) -> None:
        made = Made(url)
        async with made.client:
            assert (await made.client.get("/call")).json()["status"] == 200
            assert made.middleware.pools.open_async() == 1

    with Upstream("github", limit=50, window=5.0, latency=0) as up:
        before = _open_fds()
        asyncio.run(main(up.url))
        deadline = time.monotonic() + 2
        while _open_fds() > before and time.monotonic() < deadline:
            time.sleep(0.01)  # the upstream's handler thread closes its side on EOF
        assert _open_fds() == before


def test_lifespan_state_stays_visible_next_to_the_client():
    """State the server copied from the lifespan (scope["state"]) is still on request.state."""
    seen = {}

    async def view(request: Request) -> PlainTextResponse:
        seen["db"] = request.state.db
        seen["client"] = request.state.api_client
        request.state.extra = 1  # views may still set their own attributes
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", view)])
    app.add_middleware(RateLimitMiddleware, limiter=RateLimiter())

    async def main() -> None:
        scope = {"type": "http", "method": "GET", "path": "/", "raw_path": b"/", "headers": [],
                 "query_string": b"", "root_path": "", "scheme": "http", "http_version": "1.1",
                 "server": ("app", 80), "client": ("127.0.0.1", 1),
                 "state": {"db": "pool"}}  # fmt: skip

        async def receive():
            return {"type": "http.request", "body": b""}

        sent = []

        async def send(message):
            sent.append(message)

        await app(scope, receive, send)
        assert sent[0]["status"] == 200
        assert scope["state"]["extra"] == 1
        await app.middleware_stack.app.aclose()

    asyncio.run(main())
    assert seen["db"] == "pool"
    assert isinstance(seen["client"], httpx.AsyncClient)
    assert seen["client"].is_closed
