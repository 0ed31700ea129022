"""A Flask app whose views call rate-limited APIs through ``request.state.api_client``.

    OTEL_RATELIMIT_STORAGE=redis://localhost:6379/0 UPSTREAMS=github=https://api.github.com \\
        gunicorn --chdir examples -w 2 --threads 4 flask_app:app

Environment: ``OTEL_RATELIMIT_STORAGE`` (default "memory"; share one Redis between workers),
``UPSTREAMS`` ("name=url,name=url"; default "github=https://api.github.com") and
``OTEL_RATELIMIT_DEADLINE`` (seconds a request may wait for quota; default 10).

    GET /call/<api>/<path>   a view calling the API (request.state.api_client, also g.api_client)
    GET /limits              what the limiter knows of each API
"""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Flask, abort, g, request

from otel_ratelimit import RateLimiter
from otel_ratelimit.flask import FlaskRateLimit

STORAGE = os.environ.get("OTEL_RATELIMIT_STORAGE", "memory")
APIS = dict(
    item.split("=", 1)
    for item in os.environ.get("UPSTREAMS", "github=https://api.github.com").split(",")
)
DEADLINE = float(os.environ.get("OTEL_RATELIMIT_DEADLINE", "10"))

limiter = RateLimiter(storage=STORAGE, max_wait=30)
app = Flask(__name__)
FlaskRateLimit(app, limiter=limiter, deadline=DEADLINE)


@app.get("/call/<api>/<path:path>")
def call(api: str, path: str) -> dict[str, Any]:
    """Call the API; concurrent threads and workers share its limit."""
    base = APIS.get(api) or abort(404)
    assert g.api_client is request.state.api_client  # one client per request, either name
    started = time.perf_counter()
    response = request.state.api_client.get(f"{base.rstrip('/')}/{path}")
    return {"api": api, "status": response.status_code, "seconds": time.perf_counter() - started}


@app.get("/limits")
def limits() -> dict[str, Any]:
    """Per API: the limit, what is left and when it resets."""
    known: dict[str, Any] = {}
    for name, base in APIS.items():
        status = limiter.get_status(base)
        known[name] = None if status is None else {
            "limit": status.limit, "remaining": status.remaining, "reset_in": status.reset_in,
        }  # fmt: skip
    return known
