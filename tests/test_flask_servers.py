"""The Flask example under gunicorn (2 workers x 4 threads) on Redis, calling a limited upstream."""

from __future__ import annotations

import sys

import pytest
from webservers import measure, serve

from otel_ratelimit.testing import Upstream

pytest.importorskip("gunicorn")
pytest.importorskip("redis")


@pytest.mark.slow
def test_flask_example_under_gunicorn_workers_and_threads_stays_within_the_limit(
    redis_url, tmp_path
):
    """8 threads in 2 processes share the limit: <= 0.5% 429s, >= 90% goodput, all answered."""
    with Upstream("openai", limit=20, window=1.0, latency=0.02) as up:
        env = {"OTEL_RATELIMIT_STORAGE": redis_url, "UPSTREAMS": f"api={up.url}"}
        command = [sys.executable, "-m", "gunicorn", "--chdir", "examples", "-w", "2",
                   "--threads", "4", "-b", "127.0.0.1:{port}", "flask_app:app"]  # fmt: skip
        with serve(command, env, tmp_path / "gunicorn.log") as url:
            result = measure(url, up, ["/call/api/items/{i}"])
    print(result)
    assert result["answers"] > 100
    assert result["not_ok"] == []
    assert result["rejected_share"] <= 0.005
    assert result["goodput"] >= 0.9
