"""The WSGI middleware and the Flask extension: lazy clients, closing, deadline (WSGITransport)."""

from __future__ import annotations

import gc
import os
import time

import flask
import httpx
import pytest

from otel_ratelimit import ConfigurationError, RateLimiter
from otel_ratelimit._scoped import RequestClients
from otel_ratelimit.flask import FlaskRateLimit
from otel_ratelimit.testing import Upstream
from otel_ratelimit.wsgi import ENVIRON_KEY, RateLimitMiddleware

SEEN: list[httpx.Client] = []


def wsgi_app(environ, start_response):
    """Calls out on /call, touches the client on /touch, ignores it elsewhere; streams its body."""
    path = environ["PATH_INFO"]
    body = b"plain"
    if path in ("/call", "/touch"):
        client = environ[ENVIRON_KEY].client
        SEEN.append(client)
        if path == "/call":
            body = str(client.get("/items/1").status_code).encode()
    start_response("200 OK", [("content-type", "text/plain")])
    yield body
    yield b"!"


def test_wsgi_client_is_lazy_and_closed_with_the_response():
    """environ's client is made only when used, and closed when the response ends."""
    with Upstream("github", limit=50, window=5.0, latency=0) as up:
        middleware = RateLimitMiddleware(wsgi_app, limiter=RateLimiter(), base_url=up.url)
        with httpx.Client(transport=httpx.WSGITransport(middleware), base_url="http://app") as c:
            SEEN.clear()
            assert c.get("/call").text == "200!"
            assert SEEN[0].is_closed
            before = RequestClients.created
            assert c.get("/plain").text == "plain!"
            assert RequestClients.created == before
        middleware.close()


def test_wsgi_client_closed_when_the_server_closes_the_iterable_early():
    """A server that stops reading and calls close() still closes the client and the body."""
    middleware = RateLimitMiddleware(wsgi_app, limiter=RateLimiter())
    SEEN.clear()
    environ = {"PATH_INFO": "/touch", "REQUEST_METHOD": "GET"}
    body = middleware(environ, lambda status, headers, exc_info=None: None)
    iterator = iter(body)
    assert next(iterator) == b"plain"
    assert not SEEN[0].is_closed
    body.close()
    assert SEEN[0].is_closed


def test_wsgi_deadline_answers_503_with_retry_after():
    """Quota out of reach within the deadline: 503 with Retry-After, in well under a second."""
    with Upstream("github", limit=1, window=10.0, latency=0) as up:
        middleware = RateLimitMiddleware(
            wsgi_app, limiter=RateLimiter(), base_url=up.url, deadline=0.3
        )
        with httpx.Client(transport=httpx.WSGITransport(middleware), base_url="http://app") as c:
            assert c.get("/call").text == "200!"
            started = time.monotonic()
            response = c.get("/call")
            assert time.monotonic() - started < 1.0
            assert response.status_code == 503
            assert 5 <= int(response.headers["retry-after"]) <= 11
        middleware.close()
        assert up.stats()["rejected"] == 0


def make_flask(limiter: RateLimiter, url: str, **options) -> flask.Flask:
    app = flask.Flask(__name__)

    @app.get("/call")
    def call():
        client = flask.request.state.api_client
        assert flask.g.api_client is client
        SEEN.append(client)
        return str(client.get("/items/1").status_code)

    @app.get("/plain")
    def plain():
        return "plain"

    ext = FlaskRateLimit(limiter=limiter, base_url=url, **options)
    ext.init_app(app)
    return app


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.slow
def test_flask_ten_thousand_requests_close_every_client():
    """10,000 Flask requests: g/request.state share one client per request, all closed, no leak."""
    with Upstream("github", limit=100_000, window=1.0, latency=0) as up:
        app = make_flask(RateLimiter(), up.url)
        transport = httpx.WSGITransport(app)
        with httpx.Client(transport=transport, base_url="http://app") as c:
            c.get("/call")
            fds, created, closed = _open_fds(), RequestClients.created, RequestClients.closed
            for i in range(10_000):
                answer = c.get("/call" if i % 50 == 0 else "/plain")
                assert answer.status_code == 200
            assert all(client.is_closed for client in SEEN)
            assert RequestClients.created - created == 200
            assert RequestClients.closed - closed == 200
            assert _open_fds() <= fds + 5
            SEEN.clear()
            gc.collect()
            alive = [o for o in gc.get_objects() if isinstance(o, httpx.Client)]
            assert len(alive) == 1  # the test's own client
        app.extensions["otel_ratelimit"].close()
        assert up.stats() == {"ok": 201, "rejected": 0, "total": 201}


def test_flask_deadline_answers_503_and_options_are_checked():
    """FlaskRateLimit turns an unhandled RateLimitExceeded into 503 + Retry-After."""
    with Upstream("github", limit=1, window=10.0, latency=0) as up:
        app = flask.Flask(__name__)
        FlaskRateLimit(app, limiter=RateLimiter(), base_url=up.url, deadline=0.3)

        @app.get("/call")
        def call():
            return str(flask.request.state.api_client.get("/x").status_code)

        client = app.test_client()
        assert client.get("/call").text == "200"
        response = client.get("/call")
        assert response.status_code == 503
        assert 5 <= int(response.headers["Retry-After"]) <= 11
        app.extensions["otel_ratelimit"].close()
    with pytest.raises(ConfigurationError, match="deadlin"):
        FlaskRateLimit(flask.Flask(__name__), limiter=RateLimiter(), deadlin=3)
    with pytest.raises(ConfigurationError, match="None"):
        FlaskRateLimit(flask.Flask(__name__))
