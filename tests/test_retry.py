"""Retries: strategies and jitter, which requests may be retried, the budget, the handler."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from otel_ratelimit import ConfigurationError, RateLimitExceeded
from otel_ratelimit.retry import (
    RetriesExhausted,
    RetryConfig,
    RetryHandler,
    RetryPolicy,
    RetryStrategy,
)
from otel_ratelimit.testing import Upstream


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (RetryStrategy.EXPONENTIAL, [0.5, 1.0, 2.0, 4.0, 5.0]),
        (RetryStrategy.LINEAR, [0.5, 1.0, 1.5, 2.0, 2.5]),
        (RetryStrategy.FIXED, [0.5] * 5),
        (RetryStrategy.NONE, [0.0] * 5),
    ],
)
def test_strategies_without_jitter(strategy, expected):
    config = RetryConfig(strategy=strategy, base_delay=0.5, max_delay=5.0, jitter=0.0)
    assert [config.delay(n) for n in range(1, 6)] == expected


def test_full_jitter_is_the_default_and_stays_within_the_delay():
    config = RetryConfig(base_delay=1.0)
    assert config.delay(2, rand=lambda: 0.0) == 2.0
    assert config.delay(2, rand=lambda: 0.75) == pytest.approx(0.5)
    draws = [config.delay(3) for _ in range(2000)]
    assert all(0.0 < d <= 4.0 for d in draws)
    assert 1.6 < sum(draws) / len(draws) < 2.4  # uniform over (0, 4]: mean 2


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"max_retries": -1}, "-1"),
        ({"max_retries": 2.5}, "2.5"),
        ({"base_delay": float("nan")}, "nan"),
        ({"max_delay": float("inf")}, "inf"),
        ({"jitter": 1.5}, "1.5"),
        ({"budget": 3}, "3"),
        ({"retry_on_status": [429, 1000]}, "1000"),
        ({"strategy": "exponential"}, "'exponential'"),
    ],
)
def test_bad_config_names_the_value(kwargs, named):
    with pytest.raises(ConfigurationError, match=named):
        RetryConfig(**kwargs)


def test_smartratelimit_style_list_of_statuses_is_accepted():
    assert RetryConfig(retry_on_status=[429, 500]).retry_on_status == frozenset({429, 500})


def _policy(**kwargs):
    return RetryPolicy(RetryConfig(jitter=0.0, base_delay=0.1, budget=None, **kwargs))


def test_idempotent_requests_retry_on_every_configured_status_and_error():
    policy = _policy()
    for status in (429, 503, 504):
        assert policy.decide("k", "GET", 1, status=status) == 0.1
    assert policy.decide("k", "GET", 1, status=500) is None
    assert policy.decide("k", "GET", 1, status=200) is None
    assert policy.decide("k", "PUT", 2, error=httpx.ReadTimeout("slow")) == 0.2
    assert policy.decide("k", "GET", 4, status=429) is None  # max_retries=3


def test_non_idempotent_requests_retry_only_when_the_server_did_not_act():
    policy = _policy()
    assert policy.decide("k", "POST", 1, status=429) == 0.1
    assert policy.decide("k", "PATCH", 1, status=503) == 0.1
    assert policy.decide("k", "POST", 1, status=504) is None  # may have been processed
    assert policy.decide("k", "POST", 1, error=httpx.ReadTimeout("slow")) is None
    assert policy.decide("k", "POST", 1, error=httpx.ConnectError("refused")) == 0.1
    assert policy.decide("k", "POST", 1, error=RateLimitExceeded("k", 1.0)) == 0.1
    opted_in = _policy(retry_non_idempotent=True)
    assert opted_in.decide("k", "POST", 1, status=504) == 0.1
    assert opted_in.decide("k", "POST", 1, error=httpx.ReadTimeout("slow")) == 0.1


def test_cancellation_and_disabled_error_retries_are_never_retried():
    assert _policy().decide("k", "GET", 1, error=asyncio.CancelledError()) is None
    assert _policy().decide("k", "GET", 1, error=KeyboardInterrupt()) is None
    assert _policy(retry_on_errors=False).decide("k", "GET", 1, error=OSError("x")) is None


def test_budget_caps_retries_at_a_share_of_requests_per_key():
    policy = RetryPolicy(RetryConfig(jitter=0.0, budget=0.1, min_retries=5))
    granted = sum(policy.decide("a", "GET", 1, status=429) is not None for _ in range(50))
    assert granted == 5  # the starting allowance, then nothing without requests
    assert policy.decide("b", "GET", 1, status=429) is not None  # another key has its own
    for _ in range(100):
        policy.sent("a")
    granted = sum(policy.decide("a", "GET", 1, status=429) is not None for _ in range(50))
    assert granted == 5  # 100 requests earn 10, capped at the allowance of 5


def test_budget_keys_are_bounded():
    policy = RetryPolicy(RetryConfig(), max_keys=100)
    for n in range(1000):
        policy.sent(f"host{n}")
    assert len(policy._balance) == 0  # a full allowance is not stored
    for n in range(1000):
        assert policy.decide(f"host{n}", "GET", 1, status=429) is not None
    assert len(policy._balance) == 100


def test_budget_without_a_starting_allowance_grows_from_requests():
    policy = RetryPolicy(RetryConfig(jitter=0.0, budget=0.1, min_retries=0))
    assert policy.decide("a", "GET", 1, status=429) is None
    for _ in range(11):  # 10 x 0.1 is a hair under 1.0 in floating point
        policy.sent("a")
    assert policy.decide("a", "GET", 1, status=429) is not None
    assert policy.decide("a", "GET", 1, status=429) is None


def _client_call(client, url, method="GET"):
    return lambda: client.request(method, url)


def test_handler_honours_retry_after_and_succeeds_against_a_real_limit():
    """Without any limiter, the handler alone gets through a 2/s API by waiting Retry-After."""
    with Upstream("ietf", limit=2, window=1.0, retry_after=1.0) as up, httpx.Client() as client:
        handler = RetryHandler(RetryConfig(max_retries=3, base_delay=0.01))
        start = time.monotonic()
        answers = [handler.retry_sync(_client_call(client, up.url)) for _ in range(3)]
        elapsed = time.monotonic() - start
    assert [r.status_code for r in answers] == [200, 200, 200]
    assert up.rejected == 1 and up.ok == 3
    assert elapsed >= 0.9  # the third waited the announced second, not 10 ms


def test_handler_returns_the_last_response_or_raises_when_configured():
    with Upstream("ietf", limit=0) as up, httpx.Client() as client:
        config = RetryConfig(max_retries=2, base_delay=0.01, budget=None)
        last = RetryHandler(config, max_wait=5).retry_sync(_client_call(client, up.url))
        assert last.status_code == 429 and up.total == 3
        strict = RetryHandler(RetryConfig(max_retries=1, base_delay=0.01, raise_on_failure=True))
        with pytest.raises(RetriesExhausted) as caught:
            strict.retry_sync(_client_call(client, up.url))
    assert caught.value.response.status_code == 429 and caught.value.attempts == 2


def test_handler_stops_when_retry_after_exceeds_max_wait():
    with Upstream("ietf", limit=0, retry_after=30) as up, httpx.Client() as client:
        handler = RetryHandler(RetryConfig(base_delay=0.01), max_wait=1.0)
        start = time.monotonic()
        answer = handler.retry_sync(_client_call(client, up.url))
    assert answer.status_code == 429 and up.total == 1
    assert time.monotonic() - start < 1.0


def test_handler_does_not_retry_a_post_the_server_may_have_processed():
    with Upstream("ietf", limit=10) as up, httpx.Client() as client:
        calls = []

        def flaky():
            calls.append(1)
            raise httpx.ReadTimeout("no answer")

        with pytest.raises(httpx.ReadTimeout):
            RetryHandler(RetryConfig(base_delay=0.01)).retry_sync(flaky)
        assert len(calls) == 4  # unknown method: the caller chose to wrap it, so retried
        answer = RetryHandler(RetryConfig(base_delay=0.01)).retry_sync(
            _client_call(client, up.url, "POST")
        )
    assert answer.status_code == 200


def test_budget_keeps_a_struggling_api_from_being_hammered():
    with Upstream("ietf", limit=0) as up, httpx.Client() as client:
        handler = RetryHandler(RetryConfig(max_retries=5, base_delay=0.001, min_retries=5))
        for _ in range(100):
            handler.retry_sync(_client_call(client, up.url))
    assert up.total <= 100 + 5 + 10  # starting allowance plus 10% of the requests


def test_handler_passes_through_results_that_are_not_responses():
    assert RetryHandler().retry_sync(lambda: 42) == 42


def test_async_handler_retries_with_asyncio_sleep():
    async def main():
        with Upstream("ietf", limit=2, window=1.0, retry_after=1.0) as up:
            async with httpx.AsyncClient() as client:
                handler = RetryHandler(RetryConfig(base_delay=0.01))

                async def call():
                    return await client.get(up.url)

                ticks = 0

                async def heartbeat():
                    nonlocal ticks
                    while True:
                        await asyncio.sleep(0.05)
                        ticks += 1

                beat = asyncio.create_task(heartbeat())
                answers = [await handler.retry_async(call) for _ in range(3)]
                beat.cancel()
                return [a.status_code for a in answers], up.rejected, ticks

    statuses, rejected, ticks = asyncio.run(main())
    assert statuses == [200, 200, 200] and rejected == 1
    assert ticks >= 10  # the event loop kept running while the handler waited
