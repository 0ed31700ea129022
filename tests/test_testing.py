"""The local rate-limited upstream really enforces its hidden limit and speaks each header style."""

from __future__ import annotations

import email.utils
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import httpx
import pytest

from otel_ratelimit.testing import Upstream

ALGORITHMS = ["fixed", "sliding", "leaky", "gcra"]

# Header names each style must send on a 200 (lower case, as httpx exposes them).
STYLE_HEADERS: dict[str, set[str]] = {
    "ietf": {"ratelimit-policy", "ratelimit"},
    "ietf-07": {"ratelimit"},
    "ietf-06": {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"},
    "github": {
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-used",
        "x-ratelimit-reset",
        "x-ratelimit-resource",
    },
    "twitter": {"x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset"},
    "openai": {
        f"x-ratelimit-{kind}-{unit}"
        for kind in ("limit", "remaining", "reset")
        for unit in ("requests", "tokens")
    },
    "anthropic": {
        "anthropic-ratelimit-requests-limit",
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-requests-reset",
    },
    "discord": {
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "x-ratelimit-reset-after",
        "x-ratelimit-bucket",
    },
    "reddit": {"x-ratelimit-used", "x-ratelimit-remaining", "x-ratelimit-reset"},
    "shopify": {"x-shopify-shop-api-call-limit"},
    "rapidapi": {
        "x-ratelimit-requests-limit",
        "x-ratelimit-requests-remaining",
        "x-ratelimit-requests-reset",
    },
    "stripe": set(),
    "429-only": set(),
    "retry-after-seconds": set(),
    "retry-after-date": set(),
}
PLAIN = {"server", "date", "content-type", "content-length", "connection"}


def burst(upstream: Upstream, n: int) -> list[httpx.Response]:
    """Send ``n`` sequential requests over one keep-alive connection."""
    with httpx.Client(base_url=upstream.url) as client:
        return [client.get(f"/thing/{i}") for i in range(n)]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_burst_gets_exactly_limit_then_429s(algorithm: str) -> None:
    """A burst gets exactly `limit` 200s, then only 429s, and the counters agree."""
    with Upstream(limit=5, window=10.0, algorithm=algorithm, latency=0) as upstream:
        statuses = [r.status_code for r in burst(upstream, 12)]
        assert statuses == [200] * 5 + [429] * 7
        assert (upstream.ok, upstream.rejected, upstream.total) == (5, 7, 12)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_quota_comes_back_after_the_window(algorithm: str) -> None:
    """After one window has passed the full quota is available again."""
    with Upstream(limit=3, window=0.5, algorithm=algorithm, latency=0) as upstream:
        assert [r.status_code for r in burst(upstream, 4)] == [200, 200, 200, 429]
        time.sleep(0.6)
        upstream.reset_counts()
        assert [r.status_code for r in burst(upstream, 4)] == [200, 200, 200, 429]
        assert (upstream.ok, upstream.rejected, upstream.total) == (3, 1, 4)


def test_sliding_window_never_exceeds_limit_across_a_boundary() -> None:
    """Unlike fixed windows, a sliding log refuses a second burst right after a boundary."""
    window = 0.6
    with Upstream(limit=3, window=window, algorithm="sliding", latency=0) as upstream:
        time.sleep(window * 0.6)  # late in the first fixed window
        assert [r.status_code for r in burst(upstream, 3)] == [200] * 3
        time.sleep(window * 0.6)  # past the fixed boundary, still inside the sliding window
        assert burst(upstream, 1)[0].status_code == 429


def test_leaky_bucket_drains_at_limit_per_window() -> None:
    """A full leaky bucket admits one more request after 1/rate seconds."""
    with Upstream(limit=4, window=1.0, algorithm="leaky", latency=0) as upstream:
        assert [r.status_code for r in burst(upstream, 5)] == [200] * 4 + [429]
        time.sleep(0.3)  # drains 4/s: room for one
        assert [r.status_code for r in burst(upstream, 2)] == [200, 429]


def test_concurrent_keepalive_connections_are_counted_in_arrival_order() -> None:
    """40 concurrent keep-alive clients are served in parallel and exactly `limit` succeed."""
    with Upstream(limit=20, window=30.0, latency=0.2) as upstream:
        clients = [httpx.Client(base_url=upstream.url) for _ in range(40)]
        try:
            start = time.monotonic()
            with ThreadPoolExecutor(len(clients)) as pool:
                results = list(
                    pool.map(lambda c: [c.get("/").status_code for _ in range(2)], clients)
                )
            elapsed = time.monotonic() - start
        finally:
            for client in clients:
                client.close()
        statuses = [s for pair in results for s in pair]
        assert statuses.count(200) == 20 and statuses.count(429) == 60
        assert upstream.stats() == {"ok": 20, "rejected": 60, "total": 80}
        assert elapsed < 2.0  # 80 requests of 0.2 s each would take 16 s one at a time


def test_stats_endpoint_is_not_limited_and_any_method_works() -> None:
    """GET /_stats reports the counters without counting; any path and method is limited."""
    with (
        Upstream(limit=2, window=10.0, latency=0) as upstream,
        httpx.Client(base_url=upstream.url) as client,
    ):
        assert client.post("/a/b?c=1", json={"x": 1}).status_code == 200
        assert client.delete("/z").status_code == 200
        head = client.head("/h")
        assert head.status_code == 429 and head.content == b""
        for _ in range(3):
            stats = client.get("/_stats")
            assert stats.status_code == 200
            assert stats.json() == {"ok": 2, "rejected": 1, "total": 3}


@pytest.mark.parametrize("style", Upstream.STYLES)
def test_style_headers_on_200(style: str) -> None:
    """Each style sends exactly its own header names on a 200 (and 429-only styles none)."""
    with Upstream(style, limit=3, window=10.0, latency=0) as upstream:
        response = burst(upstream, 1)[0]
        assert response.status_code == 200
        assert response.json() == {"ok": True}
        assert set(response.headers) - PLAIN == STYLE_HEADERS[style]


def test_header_values() -> None:
    """Header values follow each vendor's format."""

    def first(style: str, window: float = 10.0) -> httpx.Headers:
        with Upstream(style, limit=3, window=window, latency=0) as upstream:
            return burst(upstream, 1)[0].headers

    assert re.fullmatch(r'"default";r=2;t=(9|10)', first("ietf")["ratelimit"])
    assert first("ietf")["ratelimit-policy"] == '"default";q=3;w=10'
    assert first("ietf-06")["ratelimit-limit"] == "3, 3;w=10"
    github = first("github")
    assert (github["x-ratelimit-remaining"], github["x-ratelimit-used"]) == ("2", "1")
    assert 0 < int(github["x-ratelimit-reset"]) - time.time() <= 11
    assert re.fullmatch(r"\d\.\d+s|10s", first("openai")["x-ratelimit-reset-requests"])
    assert first("openai", window=0.25)["x-ratelimit-reset-requests"].endswith("ms")
    assert re.fullmatch(
        r"6m0s|5m59\.9\d*s", first("openai", window=360.0)["x-ratelimit-reset-requests"]
    )
    reset = first("anthropic")["anthropic-ratelimit-requests-reset"]
    when = datetime.strptime(reset, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert 0 < when.timestamp() - time.time() <= 11
    assert first("reddit")["x-ratelimit-remaining"] == "2.0"
    assert first("shopify")["x-shopify-shop-api-call-limit"] == "1/3"


def test_429_headers() -> None:
    """429s carry the style's Retry-After, reason or body; `retry_after` forces the value."""

    def rejected(style: str, **kw: float) -> httpx.Response:
        with Upstream(style, limit=1, window=5.0, latency=0, **kw) as upstream:
            response = burst(upstream, 2)[1]
            assert response.status_code == 429
            return response

    discord = rejected("discord")
    assert discord.headers["retry-after"] == "5"
    assert 4 < discord.json()["retry_after"] <= 5
    assert rejected("stripe").headers["stripe-rate-limited-reason"] == "global-rate"
    assert "retry-after" not in rejected("stripe").headers
    assert set(rejected("429-only").headers) <= PLAIN
    assert rejected("429-only").json() == {"error": "rate limited"}
    assert rejected("retry-after-seconds").headers["retry-after"] == "5"
    assert rejected("github", retry_after=42).headers["retry-after"] == "42"


def test_retry_after_date_parses_with_email_utils() -> None:
    """retry-after-date sends an HTTP-date at the window's reset, whole seconds, in the future."""
    with Upstream("retry-after-date", limit=1, window=3.0, latency=0) as upstream:
        response = burst(upstream, 2)[1]
        expected = time.time() + (upstream.started_at + 3.0 - time.monotonic())
    when = email.utils.parsedate_to_datetime(response.headers["retry-after"])
    assert when.tzinfo is not None
    assert expected <= when.timestamp() < expected + 1.1


def test_allowed() -> None:
    """allowed() gives the most the hidden limit can admit from start."""
    assert Upstream(limit=20, window=1.0).allowed(10) == 200
    assert Upstream(limit=20, window=1.0).allowed(10.5) == 220
    assert Upstream(limit=20, window=1.0, algorithm="sliding").allowed(3) == 60
    assert Upstream(limit=40, window=20.0, algorithm="leaky").allowed(10) == 60
    assert Upstream("shopify", limit=40).allowed(10) == 60  # shopify defaults to leaky, 20 s
    assert Upstream().allowed(0) == 0


def test_rejects_unknown_style_and_algorithm() -> None:
    """Typos in style or algorithm fail loudly."""
    with pytest.raises(ValueError, match="style"):
        Upstream("gitlab")
    with pytest.raises(ValueError, match="algorithm"):
        Upstream(algorithm="token")


def test_stop_frees_the_port_and_ends_keepalive_connections() -> None:
    """stop() returns promptly with a keep-alive connection open, and the port is free."""
    upstream = Upstream(latency=0).start()
    port = int(upstream.url.rsplit(":", 1)[1])
    with httpx.Client() as client:
        assert client.get(upstream.url).status_code == 200  # leaves an idle keep-alive
        before = threading.active_count()
        start = time.monotonic()
        upstream.stop()
        assert time.monotonic() - start < 1.0
        assert threading.active_count() <= before - 2  # server and connection threads gone
        with pytest.raises(httpx.TransportError):
            client.get(upstream.url)
    upstream.stop()  # idempotent
    with socket.socket() as sock:  # same options as any server: SO_REUSEADDR
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
