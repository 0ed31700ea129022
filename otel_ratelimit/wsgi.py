"""WSGI middleware for any WSGI app: a limited client at ``environ["otel_ratelimit.api_client"]``.

    app.wsgi_app = RateLimitMiddleware(app.wsgi_app, limiter=limiter)   # or wrap any WSGI app

    def view(environ, start_response):
        environ["otel_ratelimit.api_client"].get("https://api.github.com/...")

The client (an ``httpx.Client``, behind a proxy that makes it on first use) is closed when
the response ends, also when the server closes the response iterable early. All requests
share one limited connection pool per process. Flask users want ``otel_ratelimit.flask``.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from typing import Any

import httpx

from ._scoped import Middleware, RequestClients, find_exceeded, rejection

__all__ = ["ENVIRON_KEY", "LazyClient", "RateLimitMiddleware"]

ENVIRON_KEY = "otel_ratelimit.api_client"
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class LazyClient:
    """Stands for one request's ``httpx.Client`` and makes it on first use."""

    __slots__ = ("_clients",)

    def __init__(self, clients: RequestClients) -> None:
        self._clients = clients

    @property
    def client(self) -> httpx.Client:
        """The real ``httpx.Client`` (made now if it was not yet)."""
        return self._clients.sync_client()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._clients.sync_client(), name)


class RateLimitMiddleware(Middleware):
    """Wraps a WSGI app; same options as ``otel_ratelimit.RateLimitMiddleware``."""

    app: WSGIApp

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if self.options.metrics_path is not None and (
            environ.get("PATH_INFO") == self.options.metrics_path
        ):
            served: Iterable[bytes] = metrics_wsgi_app(environ, start_response)
            return served
        clients = RequestClients(self.options, self.pools, time.monotonic())
        environ[ENVIRON_KEY] = LazyClient(clients)
        started: list[bool] = []

        def start(status: str, headers: Any, exc_info: Any = None) -> Any:
            started.append(True)
            return start_response(status, headers, exc_info)

        def reject(exc: Exception) -> list[bytes]:
            return self._reject(exc, start_response, bool(started))

        try:
            body = self.app(environ, start)
        except Exception as exc:
            clients.close()
            return reject(exc)
        return _ClosingBody(body, clients.close, reject)

    def _reject(self, exc: Exception, start_response: Callable[..., Any],
                started: bool) -> list[bytes]:  # fmt: skip
        """The 503 answer when ``exc`` is (or holds) a RateLimitExceeded; else re-raise it."""
        exceeded = find_exceeded(exc)
        if exceeded is None:
            raise exc
        status, headers, payload = rejection(exceeded, self.options.deadline_status)
        # exc_info only when the app had set headers: it allows replacing them, nothing else
        start_response(_status_line(status), headers, sys.exc_info() if started else None)
        return [payload]

    def close(self) -> None:
        """Close the shared pool (at shutdown, in tests)."""
        self.pools.close()


class _ClosingBody:
    """The app's response iterable; closing it also closes the request's client."""

    __slots__ = ("_body", "_on_close", "_reject")

    def __init__(self, body: Iterable[bytes], on_close: Callable[[], None],
                 reject: Callable[[Exception], list[bytes]]) -> None:  # fmt: skip
        self._body = body
        self._on_close = on_close
        self._reject = reject

    def __iter__(self) -> Iterator[bytes]:
        iterator = iter(self._body)
        try:
            first = next(iterator)  # a generator app does its work (and its calls) here
        except StopIteration:
            return
        except Exception as exc:  # nothing sent yet: the deadline answer can still be given
            yield from self._reject(exc)
            return
        yield first
        yield from iterator

    def close(self) -> None:
        """Close the app's iterable, then the request's client."""
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._on_close()


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Error"


def metrics_wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    """Answer with the Prometheus metrics (``otel_ratelimit.prometheus``, imported when asked)."""
    prometheus = importlib.import_module("otel_ratelimit.prometheus")
    return prometheus.metrics_wsgi_app(environ, start_response)
