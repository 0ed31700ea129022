"""Places in line against the real local upstream: many coroutines on a Shopify-style leaky
bucket wait their turn, so none gives up at a ``max_wait`` that a fair queue fits in."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from otel_ratelimit import RateLimiter, RateLimitExceeded
from otel_ratelimit.testing import Upstream

COROUTINES = 24
ROUNDS = 3


@pytest.mark.slow
def test_coroutines_on_a_shopify_bucket_wait_in_line_and_none_gives_up():
    """24 coroutines, 3 requests each, on Shopify's bucket of 40 draining 2/s: once the bucket
    is full, a fair line holds each request about 24 / 2 = 12 s. With max_wait 20 s nobody is
    refused and the server answers no 429. Before places in line, waiters told the same time
    woke together and whoever asked first won: at max_wait 15 s 1-5 of these 72 requests were
    refused in each of three runs, at 20 s one run in two refused one (waits up to 19.5 s).
    The margin is for the bucket's level, learned from answers the server may count out of
    order under load: that can stretch the line by a few seconds (seen twice in ten runs at a
    load average of 4: 17 s)."""
    waits: list[float] = []
    refused: list[RateLimitExceeded] = []

    async def worker(client: httpx.AsyncClient, url: str) -> None:
        for _ in range(ROUNDS):
            start = time.monotonic()
            try:
                response = await client.get(url)
            except RateLimitExceeded as exc:
                refused.append(exc)
                continue
            assert response.status_code == 200, response.headers
            waits.append(time.monotonic() - start)

    async def main(url: str) -> None:
        limiter = RateLimiter(max_wait=20.0, retry=False)
        try:
            async with limiter.async_client(timeout=20.0) as client:
                await client.get(url)  # first contact: the bucket is learned from headers
                await asyncio.gather(*(worker(client, url) for _ in range(COROUTINES)))
        finally:
            await limiter.aclose()

    with Upstream("shopify", limit=40, window=20.0, latency=0.01) as api:
        asyncio.run(main(api.url))
        stats = api.stats()
    assert not refused, ([exc.retry_after for exc in refused], sorted(waits)[-5:])
    assert stats["rejected"] == 0, stats
    assert len(waits) == COROUTINES * ROUNDS
    assert stats["ok"] == 1 + COROUTINES * ROUNDS
