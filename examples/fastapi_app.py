"""A FastAPI app whose views call rate-limited APIs through ``request.state.api_client``.

    OTEL_RATELIMIT_STORAGE=redis://localhost:6379/0 UPSTREAMS=github=https://api.github.com \\
        uvicorn fastapi_app:app --app-dir examples --workers 2

Environment: ``OTEL_RATELIMIT_STORAGE`` (default "memory"; share one Redis between workers),
``UPSTREAMS`` ("name=url,name=url"; default "github=https://api.github.com"),
``OTEL_RATELIMIT_DEADLINE`` (seconds a request may wait for quota; default 10) and
``OTEL_RATELIMIT_METRICS_DIR`` (optional, needs the ``prometheus`` extra: serve ``/metrics``,
and let each worker serve its own metrics port, named in a Prometheus file_sd target file in
that directory, so that Prometheus scrapes every worker; see README "Telemetry").

    GET /call/{api}/{path}   an async view calling the API (request.state.api_client)
    GET /sync/{api}/{path}   a sync view doing the same (request.state.api_client_sync)
    GET /limits              what the limiter knows of each API
    GET /metrics             Prometheus metrics (with OTEL_RATELIMIT_METRICS_DIR)
"""

from __future__ import annotations

import os
import time
from typing import Any

from fastapi import FastAPI, HTTPException, Request

from otel_ratelimit import RateLimiter, RateLimitMiddleware

STORAGE = os.environ.get("OTEL_RATELIMIT_STORAGE", "memory")
APIS = dict(
    item.split("=", 1)
    for item in os.environ.get("UPSTREAMS", "github=https://api.github.com").split(",")
)
DEADLINE = float(os.environ.get("OTEL_RATELIMIT_DEADLINE", "10"))
METRICS_DIR = os.environ.get("OTEL_RATELIMIT_METRICS_DIR")

if METRICS_DIR:  # this worker's own port, named in a target file for Prometheus
    from otel_ratelimit.prometheus import start_http_server

    start_http_server(0, targets_dir=METRICS_DIR, labels={"job": "fastapi_app"})
limiter = RateLimiter(storage=STORAGE, max_wait=30)
app = FastAPI(title="otel_ratelimit example")
app.add_middleware(
    RateLimitMiddleware,
    limiter=limiter,
    deadline=DEADLINE,
    metrics_path="/metrics" if METRICS_DIR else None,
)


def _url(api: str, path: str) -> str:
    base = APIS.get(api)
    if base is None:
        raise HTTPException(404, f"unknown API {api!r}; configured: {sorted(APIS)}")
    return f"{base.rstrip('/')}/{path}"


@app.get("/call/{api}/{path:path}")
async def call(api: str, path: str, request: Request) -> dict[str, Any]:
    """Call the API from async code; waits for quota never block the event loop."""
    started = time.perf_counter()
    response = await request.state.api_client.get(_url(api, path))
    return {"api": api, "status": response.status_code, "seconds": time.perf_counter() - started}


@app.get("/sync/{api}/{path:path}")
def call_sync(api: str, path: str, request: Request) -> dict[str, Any]:
    """Call the API from a sync view (FastAPI runs it in a worker thread)."""
    started = time.perf_counter()
    response = request.state.api_client_sync.get(_url(api, path))
    return {"api": api, "status": response.status_code, "seconds": time.perf_counter() - started}


@app.get("/limits")
def limits() -> dict[str, Any]:
    """Per API: the limit, what is left, when it resets, and any cooldown."""
    known: dict[str, Any] = {}
    for name, base in APIS.items():
        status = limiter.get_status(base)
        known[name] = (
            None
            if status is None
            else {
                "limit": status.limit,
                "remaining": status.remaining,
                "reset_in": status.reset_in,
                "cooldown_until": status.cooldown_until,
                "rate": status.rate,
            }
        )
    return known
