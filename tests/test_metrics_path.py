"""``metrics_path``: the middlewares answer it with Prometheus text a parser accepts."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

APPS = {
    "asgi": """
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route
        from otel_ratelimit import RateLimiter, RateLimitMiddleware

        async def view(request):
            answer = await request.state.api_client.get("/x")
            return JSONResponse({"status": answer.status_code})

        app = Starlette(routes=[Route("/call", view)])
        app.add_middleware(RateLimitMiddleware, limiter=RateLimiter(), base_url=api.url,
                           metrics_path="/metrics")
        transport = httpx.ASGITransport(app)

        async def main():
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as c:
                for _ in range(3):
                    assert (await c.get("/call")).json() == {"status": 200}
                return await c.get("/metrics")

        answer = asyncio.run(main())
    """,
    "flask": """
        import flask
        from otel_ratelimit import RateLimiter
        from otel_ratelimit.flask import FlaskRateLimit

        app = flask.Flask("demo")
        FlaskRateLimit(app, limiter=RateLimiter(), base_url=api.url, metrics_path="/metrics")

        @app.get("/call")
        def view():
            return {"status": flask.g.api_client.get("/x").status_code}

        with httpx.Client(transport=httpx.WSGITransport(app), base_url="http://app") as c:
            for _ in range(3):
                assert c.get("/call").json() == {"status": 200}
            answer = c.get("/metrics")
    """,
}
HEAD = """
import asyncio
import httpx
from prometheus_client.parser import text_string_to_metric_families
from otel_ratelimit.testing import Upstream

with Upstream("openai", limit=50) as api:
"""
TAIL = """
assert answer.status_code == 200, answer.status_code
assert answer.headers["content-type"].startswith("text/plain")
families = {f.name: f for f in text_string_to_metric_families(answer.text)}
acquired = [s.value for s in families["ratelimit_requests"].samples
            if s.name == "ratelimit_requests_total"
            and s.labels.get("ratelimit_outcome") == "acquired"]
print(sum(acquired), sorted(families))
"""


@pytest.mark.parametrize("kind", sorted(APPS))
def test_metrics_path_serves_the_requests_of_the_app(kind, tmp_path):
    """Three views each call the API once; /metrics says 3 acquired (fresh process: the
    Prometheus registry is per process)."""
    script = HEAD + textwrap.indent(textwrap.dedent(APPS[kind]), "    ") + TAIL
    (tmp_path / "app.py").write_text(script)
    done = subprocess.run([sys.executable, "-W", "error", "app.py"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    total, names = done.stdout.split(" ", 1)
    assert float(total) == 3.0
    assert "ratelimit_wait_duration_seconds" in names
