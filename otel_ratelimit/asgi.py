"""Pure ASGI middleware (FastAPI, Starlette): ``request.state.api_client`` in every request.

    app.add_middleware(RateLimitMiddleware, limiter=limiter)

    async def view(request):
        await request.state.api_client.get("https://api.github.com/...")  # httpx.AsyncClient

    def sync_view(request: Request):  # FastAPI runs it in a thread
        request.state.api_client_sync.get(...)  # httpx.Client

Both clients are made when the view first touches them and closed when the request ends;
they share one limited connection pool per event loop (async) or per process (sync).
Websocket scopes pass through untouched; lifespan ones too, except that the app's
``lifespan.shutdown.complete`` first closes the shared pools (async and sync).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Awaitable, Callable, MutableMapping
from functools import cached_property
from typing import Any

from ._scoped import Middleware, RequestClients, find_exceeded, rejection

__all__ = ["RateLimitMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _LazyState(dict[str, Any]):
    """``scope["state"]`` whose ``api_client`` and ``api_client_sync`` are made on first lookup.

    Each middleware has its own subclass naming it (``middleware``), so a request's state is
    just a dict copy: no per-request attributes unless a deadline or a client needs them.
    """

    middleware: RateLimitMiddleware
    started = 0.0  # when the request came in (set only when a deadline counts from it)
    clients: RequestClients | None = None  # only once a view asks

    def __missing__(self, key: str) -> Any:
        if key not in ("api_client", "api_client_sync"):
            raise KeyError(key)
        if self.clients is None:
            middleware = self.middleware
            self.clients = RequestClients(middleware.options, middleware.pools, self.started)
        if key == "api_client":
            value: Any = self.clients.async_client()
        else:
            value = self.clients.sync_client()
        self[key] = value
        return value


class RateLimitMiddleware(Middleware):
    """Gives every HTTP request a rate-limited httpx client at ``request.state.api_client``.

    ``base_url``, ``headers`` and ``timeout`` go to every request's client. ``deadline``
    (seconds from the start of the incoming request) bounds how long its outbound calls may
    wait for quota: past it they raise ``RateLimitExceeded``, and if the view lets that
    escape the middleware answers ``deadline_status`` (503) with ``Retry-After``.
    ``metrics_path`` (e.g. "/metrics") serves the Prometheus metrics there.
    """

    app: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # the app's shutdown closes the pools it leaves
            await self.app(scope, receive, self._closing_at_shutdown(send))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.options.metrics_path is not None and scope["path"] == self.options.metrics_path:
            prometheus = importlib.import_module("otel_ratelimit.prometheus")
            await prometheus.metrics_asgi_app(scope, receive, send)
            return
        state = scope["state"] = self._state_class(scope.get("state") or ())
        if self.options.deadline is not None:
            state.started = time.monotonic()
        responded = False  # past that, a 503 can no longer be sent

        def send_tracking(message: Message) -> Awaitable[None]:  # no coroutine of its own
            nonlocal responded
            if message["type"] == "http.response.start":
                responded = True
            return send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception as exc:
            exceeded = find_exceeded(exc)
            if exceeded is None or responded:
                raise
            await _reject(send, *rejection(exceeded, self.options.deadline_status))
        finally:
            if state.clients is not None:
                await state.clients.aclose()

    @cached_property
    def _state_class(self) -> type[_LazyState]:
        state_class: type[_LazyState] = type("LazyState", (_LazyState,), {"middleware": self})
        return state_class

    def _closing_at_shutdown(self, send: Send) -> Send:
        async def send_closing(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self.pools.aclose()  # the sync pool too: no view runs after this
            await send(message)

        return send_closing

    async def aclose(self) -> None:
        """Close the shared pools of the running event loop (at shutdown, in tests)."""
        await self.pools.aclose()


async def _reject(send: Send, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
    raw = [(name.encode(), value.encode()) for name, value in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
