"""Per-request httpx clients over one shared limited pool: what the web middlewares hand out.

Every incoming request gets its own small client (its own base URL, headers and deadline),
created only when the view first touches it and closed when the request ends. All of them
send through one limited connection pool per process (sync) or per event loop (async); a
request's client reaches that pool through a wrapper whose ``close`` does nothing, so closing
the client never closes the pool.
"""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ._pools import SharedPools
from .core import MAX_WAIT_EXTENSION
from .errors import ConfigurationError, RateLimitExceeded
from .limiter import RateLimiter

__all__ = [
    "RequestClients",
    "RequestState",
    "SharedPools",
    "Middleware",
    "WebOptions",
    "find_exceeded",
    "rejection",
]


@dataclass(frozen=True, slots=True)
class WebOptions:
    """What a middleware is configured with once, checked at construction."""

    limiter: RateLimiter
    base_url: str | None = None
    headers: Mapping[str, str] | None = None
    timeout: float | httpx.Timeout | None = 30.0
    deadline: float | None = None
    deadline_status: int = 503
    metrics_path: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.limiter, RateLimiter):
            raise ConfigurationError(f"limiter must be a RateLimiter, got {self.limiter!r}")
        if self.deadline is not None and not _positive(self.deadline):
            raise ConfigurationError(
                f"deadline must be a number of seconds > 0 or None, got {self.deadline!r}"
            )
        if not isinstance(self.deadline_status, int) or not 400 <= self.deadline_status <= 599:
            raise ConfigurationError(
                f"deadline_status must be an HTTP error status (400-599), "
                f"got {self.deadline_status!r}"
            )
        if self.metrics_path is not None and not (
            isinstance(self.metrics_path, str) and self.metrics_path.startswith("/")
        ):
            raise ConfigurationError(
                f"metrics_path must be a path starting with '/', got {self.metrics_path!r}"
            )
        if self.metrics_path is not None:  # now, so the exporter counts from the first request
            try:
                importlib.import_module("otel_ratelimit.prometheus")
            except ImportError as exc:
                raise ConfigurationError(f"metrics_path needs {exc}") from None
        timeout = self.timeout
        if not (timeout is None or isinstance(timeout, httpx.Timeout) or _positive(timeout)):
            raise ConfigurationError(
                f"timeout must be seconds > 0, an httpx.Timeout or None, got {timeout!r}"
            )

    def client_kwargs(self) -> dict[str, Any]:
        """The httpx client arguments shared by every request's client."""
        kwargs: dict[str, Any] = {"timeout": self.timeout}
        if self.base_url is not None:
            kwargs["base_url"] = self.base_url
        if self.headers is not None:
            kwargs["headers"] = self.headers
        return kwargs


class Middleware:
    """What the ASGI and WSGI middlewares share: the wrapped app, the options, the pools."""

    def __init__(
        self,
        app: Any,
        *,
        limiter: RateLimiter,
        base_url: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout | None = 30.0,
        deadline: float | None = None,
        deadline_status: int = 503,
        metrics_path: str | None = None,
    ) -> None:
        self.app = app
        self.options = WebOptions(
            limiter, base_url, headers, timeout, deadline, deadline_status, metrics_path
        )
        self.pools = SharedPools(limiter, self.options.client_kwargs())


def _positive(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


class _ScopedTransport(httpx.BaseTransport):
    """One request's door to the shared sync pool: adds its deadline, never closes the pool."""

    __slots__ = ("_deadline_at", "_pool")

    def __init__(self, pool: httpx.BaseTransport, deadline_at: float | None) -> None:
        self._pool = pool
        self._deadline_at = deadline_at

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send through the shared pool with what is left of the request's wait budget."""
        _budget(request, self._deadline_at)
        return self._pool.handle_request(request)

    def close(self) -> None:
        """Nothing: the pool outlives the request."""


class _AsyncScopedTransport(httpx.AsyncBaseTransport):
    """One request's door to the shared async pool: adds its deadline, never closes the pool."""

    __slots__ = ("_deadline_at", "_pool")

    def __init__(self, pool: httpx.AsyncBaseTransport, deadline_at: float | None) -> None:
        self._pool = pool
        self._deadline_at = deadline_at

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send through the shared pool with what is left of the request's wait budget."""
        _budget(request, self._deadline_at)
        return await self._pool.handle_async_request(request)

    async def aclose(self) -> None:
        """Nothing: the pool outlives the request."""


def _budget(request: httpx.Request, deadline_at: float | None) -> None:
    if deadline_at is not None:
        left = max(0.0, deadline_at - time.monotonic())
        request.extensions[MAX_WAIT_EXTENSION] = left


class RequestClients:
    """The clients of one incoming request: made on first use, closed when it ends."""

    __slots__ = ("_async", "_sync", "deadline_at", "options", "pools")

    created = 0  # clients made, all requests together (read by tests and benchmarks)
    closed = 0

    def __init__(self, options: WebOptions, pools: SharedPools, started: float) -> None:
        self.options = options
        self.pools = pools
        self.deadline_at = None if options.deadline is None else started + options.deadline
        self._sync: httpx.Client | None = None
        self._async: httpx.AsyncClient | None = None

    def sync_client(self) -> httpx.Client:
        """This request's ``httpx.Client``."""
        if self._sync is None:
            transport = _ScopedTransport(self.pools.sync(), self.deadline_at)
            self._sync = self.pools.sync_clients.client(transport)
            RequestClients.created += 1
        return self._sync

    def async_client(self) -> httpx.AsyncClient:
        """This request's ``httpx.AsyncClient`` (call from the event loop)."""
        if self._async is None:
            transport = _AsyncScopedTransport(self.pools.asynchronous(), self.deadline_at)
            self._async = self.pools.async_clients.client(transport)
            RequestClients.created += 1
        return self._async

    def used(self) -> bool:
        """Whether a client was made for this request."""
        return self._sync is not None or self._async is not None

    def close(self) -> None:
        """Close the sync client, if one was made (the shared pool stays open)."""
        client, self._sync = self._sync, None
        if client is not None:
            client.close()
            RequestClients.closed += 1

    async def aclose(self) -> None:
        """Close both clients, if made."""
        client, self._async = self._async, None
        if client is not None:
            await client.aclose()
            RequestClients.closed += 1
        self.close()


class RequestState:
    """``request.state`` for Flask and WSGI: ``api_client`` made on first use; set anything else."""

    def __init__(self, clients: RequestClients) -> None:
        self._clients = clients

    def close_clients(self) -> None:
        """Close the client, if one was made (called as the request ends)."""
        self._clients.close()

    def __getattr__(self, name: str) -> Any:
        if name == "api_client":
            client = self._clients.sync_client()
            self.__dict__[name] = client
            return client
        raise AttributeError(f"'RequestState' object has no attribute {name!r}")


def rejection(exc: RateLimitExceeded, status: int) -> tuple[int, list[tuple[str, str]], bytes]:
    """The answer to a request whose upstream quota could not be had in time."""
    retry_after = str(max(1, math.ceil(exc.retry_after)))
    body = b'{"detail": "upstream rate limit: retry later"}'
    headers = [
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
        ("retry-after", retry_after),
    ]
    return status, headers, body


def find_exceeded(exc: BaseException) -> RateLimitExceeded | None:
    """The RateLimitExceeded in ``exc`` (or in an exception group around it), if any."""
    if isinstance(exc, RateLimitExceeded):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        found = find_exceeded(inner)
        if found is not None:
            return found
    return None
