"""The FastAPI example under uvicorn with 2 workers on Redis, calling a rate-limited upstream."""

from __future__ import annotations

import sys

import pytest
from webservers import measure, serve

from otel_ratelimit.testing import Upstream

pytest.importorskip("uvicorn")
pytest.importorskip("redis")


@pytest.mark.slow
def test_fastapi_example_under_uvicorn_two_workers_stays_within_the_limit(redis_url, tmp_path):
    """Async and sync views in 2 workers share the limit: <= 0.5% 429s, >= 90% goodput."""
    with Upstream("openai", limit=20, window=1.0, latency=0.02) as up:
        env = {"OTEL_RATELIMIT_STORAGE": redis_url, "UPSTREAMS": f"api={up.url}"}
        command = [sys.executable, "-m", "uvicorn", "fastapi_app:app", "--app-dir", "examples",
                   "--workers", "2", "--port", "{port}", "--log-level", "warning"]  # fmt: skip
        with serve(command, env, tmp_path / "uvicorn.log") as url:
            result = measure(url, up, ["/call/api/items/{i}", "/sync/api/items/{i}"])
    print(result)
    assert result["answers"] > 100
    assert result["not_ok"] == []  # every view answered 200 with the upstream's 200
    assert result["rejected_share"] <= 0.005
    assert result["goodput"] >= 0.9
