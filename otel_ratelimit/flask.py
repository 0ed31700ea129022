"""Flask extension: ``request.state.api_client`` and ``g.api_client`` in every view.

    FlaskRateLimit(app, limiter=limiter)  # or ext = FlaskRateLimit(); ext.init_app(app, ...)

    @app.get("/")
    def view():
        return request.state.api_client.get("https://api.github.com/...").json()

The client is an ``httpx.Client``, made when the view first touches it and closed at the
request's teardown; all requests of the process (every thread) share one limited pool.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import cached_property
from typing import Any

import httpx

from ._scoped import RequestClients, RequestState, SharedPools, WebOptions, rejection
from .errors import ConfigurationError, RateLimitExceeded
from .limiter import RateLimiter
from .wsgi import metrics_wsgi_app

try:
    import flask
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError("Flask is not installed: pip install 'otel-ratelimit[flask]'") from None

__all__ = ["FlaskRateLimit"]

_EXTENSION = "otel_ratelimit"


class FlaskRateLimit:
    """Binds a ``RateLimiter`` to a Flask app; options as for ``RateLimitMiddleware``."""

    def __init__(
        self, app: flask.Flask | None = None, *, limiter: RateLimiter | None = None, **options: Any
    ) -> None:
        self.limiter = limiter
        self.options = options
        if app is not None:
            self.init_app(app)

    def init_app(
        self, app: flask.Flask, *, limiter: RateLimiter | None = None, **options: Any
    ) -> None:
        """Install the per-request client, its teardown and the deadline answer on ``app``."""
        limiter = limiter or self.limiter
        if limiter is None:
            raise ConfigurationError("FlaskRateLimit needs limiter=RateLimiter(...), got None")
        web = _web_options(limiter, {**self.options, **options})
        pools = SharedPools(limiter, web.client_kwargs())
        app.extensions[_EXTENSION] = pools

        def exceeded(exc: RateLimitExceeded) -> flask.Response:
            status, headers, body = rejection(exc, web.deadline_status)
            return flask.Response(body, status=status, headers=headers)

        # No before/teardown hooks: a request class whose state is made on first use and
        # whose close() (called by Flask as the request ends) closes the client.
        request_class: Any = type("RateLimitRequest", (_Request, app.request_class),
                                  {"_otel_ratelimit": (web, pools)})  # fmt: skip
        app.request_class = request_class
        app.register_error_handler(RateLimitExceeded, exceeded)
        if not issubclass(app.app_ctx_globals_class, _Globals):
            base = app.app_ctx_globals_class
            globals_class: Any = type("RateLimitGlobals", (_Globals, base), {})
            app.app_ctx_globals_class = globals_class
        if web.metrics_path is not None:
            app.wsgi_app = _MetricsDispatch(app.wsgi_app, web.metrics_path)  # type: ignore[method-assign]


class _Request:
    """Mixed into the app's request class: ``request.state``, made when first read."""

    _otel_ratelimit: tuple[WebOptions, SharedPools]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._otel_started = time.monotonic()  # the deadline counts from here

    @cached_property
    def state(self) -> RequestState:
        """Per-request state; ``state.api_client`` is this request's ``httpx.Client``."""
        options, pools = self._otel_ratelimit
        return RequestState(RequestClients(options, pools, self._otel_started))

    def close(self) -> None:
        """Close the request (files), then its client if one was made."""
        try:
            super().close()  # type: ignore[misc]
        finally:
            state = self.__dict__.get("state")
            if state is not None:
                state.close_clients()


class _Globals:
    """Mixed into ``flask.g``'s class: ``g.api_client`` is the request's client."""

    def __getattr__(self, name: str) -> Any:
        if name == "api_client" and flask.has_request_context():
            state = getattr(flask.request, "state", None)
            if isinstance(state, RequestState):
                return state.api_client
        return super().__getattr__(name)  # type: ignore[misc]


class _MetricsDispatch:
    """Answers ``path`` with the Prometheus metrics, everything else with the app."""

    def __init__(self, app: Any, path: str) -> None:
        self.app = app
        self.path = path

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == self.path:
            return metrics_wsgi_app(environ, start_response)
        return self.app(environ, start_response)


def _web_options(limiter: RateLimiter, options: Mapping[str, Any]) -> WebOptions:
    known = {"base_url", "headers", "timeout", "deadline", "deadline_status", "metrics_path"}
    unknown = set(options) - known
    if unknown:
        raise ConfigurationError(f"unknown FlaskRateLimit options: {sorted(unknown)!r}")
    timeout: float | httpx.Timeout | None = options.get("timeout", 30.0)
    return WebOptions(
        limiter,
        base_url=options.get("base_url"),
        headers=options.get("headers"),
        timeout=timeout,
        deadline=options.get("deadline"),
        deadline_status=options.get("deadline_status", 503),
        metrics_path=options.get("metrics_path"),
    )
