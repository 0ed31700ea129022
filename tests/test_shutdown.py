"""Shutdown: closing the limiter or stopping the app releases HTTP pools and Redis connections,
counted from the other side (the upstream's open sockets, Redis ``CLIENT LIST``)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

redis = pytest.importorskip("redis")
uvicorn = pytest.importorskip("uvicorn")

from conftest import HOST, free_port  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import PlainTextResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from otel_ratelimit import RateLimiter, RateLimitMiddleware  # noqa: E402
from otel_ratelimit.testing import Upstream  # noqa: E402


def _counters(port: int, up: Upstream) -> tuple[Callable[[], int], Callable[[], int], object]:
    """(Redis clients but ours, upstream's open connections, the admin client to close)."""
    admin = redis.Redis(host=HOST, port=port, client_name="admin")

    def clients() -> int:
        return sum(1 for c in admin.client_list() if c["name"] != "admin")

    def sockets() -> int:
        with up._server._conns_lock:  # type: ignore[union-attr]
            return len(up._server._conns)  # type: ignore[union-attr]

    return clients, sockets, admin


def _settles_at_zero(count: Callable[[], int], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while count():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_close_releases_redis_connections_and_http_pools(redis_factory):
    """Sync threads, two event loops, then close(): no Redis client, no upstream socket left."""
    port, _ = redis_factory()
    with Upstream("ietf", limit=200, latency=0.01) as up:
        clients, sockets, admin = _counters(port, up)
        assert clients() == 0
        limiter = RateLimiter(storage=f"redis://{HOST}:{port}/0")

        def calls() -> None:
            for _ in range(5):
                assert limiter.request("GET", up.url).status_code == 200

        threads = [threading.Thread(target=calls) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        async def burst() -> None:
            await asyncio.gather(*(limiter.arequest("GET", up.url) for _ in range(8)))

        asyncio.run(burst())  # this loop ends without aclose(): its pool closes with it
        assert clients() >= 2 and sockets() >= 1  # the counters see what is open

        async def last() -> None:
            await burst()
            await limiter.aclose()

        asyncio.run(last())
        assert _settles_at_zero(clients), admin.client_list()  # type: ignore[attr-defined]
        assert _settles_at_zero(sockets)
        admin.close()  # type: ignore[attr-defined]


def test_sync_only_close_releases_everything(redis_factory):
    """A limiter used from threads only: close() (or the with block) leaves nothing open."""
    port, _ = redis_factory()
    with Upstream("github", limit=200, latency=0.0) as up:
        clients, sockets, admin = _counters(port, up)
        with RateLimiter(storage=f"redis://{HOST}:{port}/0") as limiter:
            with limiter.client() as client:
                for _ in range(5):
                    client.get(up.url)
            limiter.request("GET", up.url)
            assert clients() >= 1
        assert _settles_at_zero(clients) and _settles_at_zero(sockets)
        admin.close()  # type: ignore[attr-defined]


def _app(limiter: RateLimiter) -> Starlette:
    async def call(request: Request) -> PlainTextResponse:
        answer = await request.state.api_client.get("/v1")
        return PlainTextResponse(str(answer.status_code))

    def call_sync(request: Request) -> PlainTextResponse:
        answer = request.state.api_client_sync.get("/v1")
        return PlainTextResponse(str(answer.status_code))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await limiter.aclose()  # the app's own shutdown hook: the limiter's Redis connections

    app = Starlette(routes=[Route("/a", call), Route("/s", call_sync)], lifespan=lifespan)
    return app


def test_app_shutdown_under_uvicorn_closes_pools_and_redis(redis_factory):
    """A real uvicorn serving async and sync views: after shutdown, nothing is left open."""
    port, _ = redis_factory()
    with Upstream("openai", limit=500, latency=0.01) as up:
        clients, sockets, admin = _counters(port, up)
        limiter = RateLimiter(storage=f"redis://{HOST}:{port}/0")
        app = _app(limiter)
        app.add_middleware(RateLimitMiddleware, limiter=limiter, base_url=up.url)
        web_port = free_port()
        config = uvicorn.Config(app, host=HOST, port=web_port, log_level="warning",
                                lifespan="on")  # fmt: skip
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run)
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not server.started:
                assert time.monotonic() < deadline and thread.is_alive()
                time.sleep(0.02)
            with httpx.Client(base_url=f"http://{HOST}:{web_port}") as web:
                for path in ("/a", "/s") * 6:
                    assert web.get(path).text == "200"
            assert clients() >= 1 and sockets() >= 2  # the async and the sync pool
        finally:
            server.should_exit = True
            thread.join(10)
        assert not thread.is_alive()
        assert _settles_at_zero(clients), admin.client_list()  # type: ignore[attr-defined]
        assert _settles_at_zero(sockets), "a pool outlived the app"
        admin.close()  # type: ignore[attr-defined]
