"""Limited transports for SDKs that build and close an httpx client around them per request.

githubkit closes the client it builds around the given transport after every request; with a
plain transport that closes the shared connection pool under the other threads' feet. Here a
close takes effect when the last request still using the pool has finished.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from .limiter import RateLimiter

__all__ = ["shared_transport"]


class _Users:
    """Counts requests in use of a pool (until their body is closed) and closes it when idle.

    A ``close()`` while other requests are still out only marks the pool; the last one to
    finish closes it. A closed httpcore pool opens new connections when used again.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.close_wanted = False

    def enter(self) -> None:
        with self.lock:
            self.count += 1
            self.close_wanted = False

    def leave(self) -> bool:
        """One request is done; True when the pool should close now."""
        with self.lock:
            self.count -= 1
            return self.count == 0 and self.close_wanted

    def want_close(self) -> bool:
        """A client closed; True when nobody uses the pool, so it can close now."""
        with self.lock:
            self.close_wanted = self.count > 0
            return self.count == 0


class _CountedStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body that tells its pool's counter when it is closed."""

    def __init__(self, inner: Any, done: Callable[[], Any]) -> None:
        self.inner = inner
        self.done = done
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            yield chunk

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            if not self.closed:
                self.closed = True
                self.done()

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        finally:
            if not self.closed:
                self.closed = True
                await self.done()


class _SharedPool(httpx.BaseTransport):
    """A pool that many short-lived clients share: ``close()`` waits for the last user."""

    def __init__(self, **options: Any) -> None:
        self.pool = httpx.HTTPTransport(**options)
        self.users = _Users()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send through the pool; the pool stays open until the response body is closed."""
        self.users.enter()
        try:
            response = self.pool.handle_request(request)
        except BaseException:
            self._done()
            raise
        response.stream = _CountedStream(response.stream, self._done)
        return response

    def _done(self) -> None:
        if self.users.leave():
            self.pool.close()

    def close(self) -> None:
        """Close the pool now if nobody uses it, else when the last response is closed."""
        if self.users.want_close():
            self.pool.close()


class _AsyncSharedPool(httpx.AsyncBaseTransport):
    """``_SharedPool`` for async clients."""

    def __init__(self, **options: Any) -> None:
        self.pool = httpx.AsyncHTTPTransport(**options)
        self.users = _Users()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send through the pool; the pool stays open until the response body is closed."""
        self.users.enter()
        try:
            response = await self.pool.handle_async_request(request)
        except BaseException:
            await self._done()
            raise
        response.stream = _CountedStream(response.stream, self._done)
        return response

    async def _done(self) -> None:
        if self.users.leave():
            await self.pool.aclose()

    async def aclose(self) -> None:
        """Close the pool now if nobody uses it, else when the last response is closed."""
        if self.users.want_close():
            await self.pool.aclose()


def shared_transport(limiter: RateLimiter, *, asynchronous: bool = False, **options: Any) -> Any:
    """A limited httpx transport whose pool closes when its last user is done."""
    if asynchronous:
        return limiter.async_transport(_AsyncSharedPool(**options))
    return limiter.transport(_SharedPool(**options))
