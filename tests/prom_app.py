"""A tiny ASGI app for the Prometheus tests: each worker calls local upstreams through a limiter.

GET /call/<i> sends one request to upstream number i (``UPSTREAMS``, comma separated);
GET /metrics is this worker's exposition. Each worker also serves its own metrics port and
writes a file_sd target for it into ``OTEL_RATELIMIT_TARGETS``.
"""

from __future__ import annotations

import os

from otel_ratelimit import RateLimiter, RateLimitExceeded
from otel_ratelimit.prometheus import metrics_asgi_app, start_http_server

UPSTREAMS = os.environ["UPSTREAMS"].split(",")
start_http_server(0, targets_dir=os.environ["OTEL_RATELIMIT_TARGETS"], labels={"job": "app"})
limiter = RateLimiter(os.environ.get("OTEL_RATELIMIT_STORAGE", "memory"), max_wait=30, retry=False)


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/metrics":
        await metrics_asgi_app(scope, receive, send)
        return
    index = int(scope["path"].rsplit("/", 1)[-1])
    try:
        response = await limiter.arequest("GET", UPSTREAMS[index] + "/x")
        body = str(response.status_code).encode()
    except RateLimitExceeded:  # a wait over max_wait: counted as a "timeout" outcome
        body = b"timeout"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
