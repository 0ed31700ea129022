"""Retries inside the transport: against a real local API, and the flow's rules one by one."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from otel_sdk import providers

from otel_ratelimit import ConfigurationError, RateLimiter, RetriesExhausted, RetryConfig
from otel_ratelimit.testing import Upstream


@pytest.fixture
def otel():
    yield from providers()


def _statuses(client: httpx.Client, n: int, threads: int = 8) -> list[int]:
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda _: client.get("/x").status_code, range(n)))


def test_a_silent_api_s_rare_429s_never_reach_the_caller():
    """An API that announces nothing pushes back a few times while its rate is learned; the
    transport retries those within the budget, so every caller gets a 200."""
    with Upstream("429-only", limit=20) as api:
        limiter = RateLimiter()
        with limiter.client(base_url=api.url) as client:
            statuses = _statuses(client, 120)
    assert statuses == [200] * 120
    assert api.ok == 120
    assert api.rejected <= 10 + 12  # the budget: the starting allowance plus 10% of requests


def test_retry_false_hands_every_answer_to_the_caller():
    with (
        Upstream("429-only", limit=20) as api,
        RateLimiter(retry=False).client(base_url=api.url) as client,
    ):
        statuses = _statuses(client, 120)
    assert statuses.count(429) == api.rejected > 0


def test_retried_attempts_carry_resend_count_and_are_counted(otel):
    """The retry's CLIENT span says ``http.request.resend_count`` 1; ratelimit.retries counts it."""
    with Upstream("retry-after-seconds", limit=0, window=1.0) as api:
        config = RetryConfig(max_retries=1, base_delay=0.01)
        limiter = otel.limiter(retry=config, max_wait=5, adaptive=False)  # waits: Retry-After
        with limiter.client(base_url=api.url) as client:
            answer = client.get("/x")
    assert answer.status_code == 429 and api.total == 2  # tried twice, gave the last answer
    clients = [s for s in otel.spans() if s.kind.name == "CLIENT"]
    assert [s.attributes.get("http.request.resend_count") for s in clients] == [None, 1]
    assert sum(p.value for p in otel.points("ratelimit.retries")) == 1


def test_a_next_try_beyond_max_wait_returns_the_last_answer_at_once():
    with (
        Upstream("retry-after-seconds", limit=0, retry_after=30) as api,
        RateLimiter(max_wait=2).client(base_url=api.url) as client,
    ):
        started = time.monotonic()
        answer = client.get("/x")
    assert answer.status_code == 429 and answer.headers["retry-after"] == "30"
    assert answer.json()["error"] == "rate limited"  # the body was kept for the caller
    assert api.total == 1 and time.monotonic() - started < 1.5


def test_raise_on_failure_raises_retries_exhausted_with_the_response():
    config = RetryConfig(max_retries=2, base_delay=0.01, raise_on_failure=True)
    with (
        Upstream("429-only", limit=0) as api,
        RateLimiter(retry=config, max_wait=5, adaptive=False).client(base_url=api.url) as client,
        pytest.raises(RetriesExhausted) as caught,
    ):
        client.get("/x")
    assert caught.value.response.status_code == 429 and caught.value.attempts == 3


def test_async_transport_retries_too():
    async def main() -> tuple[list[int], int]:
        with Upstream("429-only", limit=20) as api:
            async with RateLimiter().async_client(base_url=api.url) as client:
                answers = await asyncio.gather(*(client.get("/x") for _ in range(60)))
        return [a.status_code for a in answers], api.rejected

    statuses, rejected = asyncio.run(main())
    assert rejected > 0  # the API did push back while its rate was learned...
    assert statuses.count(429) <= min(3, rejected - 1)  # ...and retries absorbed nearly all


def test_bad_retry_option_is_named():
    with pytest.raises(ConfigurationError, match="'often'"):
        RateLimiter(retry="often")  # type: ignore[arg-type]


def test_retries_share_the_request_s_max_wait():
    """max_wait bounds every wait of one request, retries included: with a 1 s Retry-After on
    every answer and max_wait=1.5, one retry fits and a second would not (before, each retry
    got the whole budget again: 4 attempts in 3.1 s)."""
    config = RetryConfig(max_retries=3, base_delay=0.01, jitter=0.0, budget=None)
    with Upstream("retry-after-seconds", limit=0, retry_after=1) as api:
        limiter = RateLimiter(retry=config, max_wait=1.5, adaptive=False)
        started = time.monotonic()
        answer = limiter.request("GET", api.url)
        elapsed = time.monotonic() - started
        limiter.close()
    assert answer.status_code == 429 and api.total == 2
    assert elapsed < 1.5
