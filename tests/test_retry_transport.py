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


def _mock(statuses: list[int], seen: list[str]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        status = statuses.pop(0)
        if status == 0:
            raise httpx.ConnectError("refused", request=request)
        if status == -1:
            raise httpx.ReadTimeout("no answer", request=request)
        return httpx.Response(status)

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(
    ("method", "statuses", "final", "sent"),
    [
        ("GET", [504, 200], 200, 2),
        ("POST", [504, 200], 504, 1),  # the server may have acted on it
        ("POST", [503, 200], 200, 2),  # it says it did not
        ("POST", [0, 200], 200, 2),  # never reached the server
        ("PUT", [-1, 200], 200, 2),
        ("GET", [500, 200], 500, 1),  # not a configured status
    ],
)
def test_which_answers_are_retried(method, statuses, final, sent):
    """The flow's rules on one function (a MockTransport stands in for the network)."""
    seen: list[str] = []
    config = RetryConfig(base_delay=0.001)
    limiter = RateLimiter(retry=config, backoff_status_codes=())
    with limiter.client(transport=_mock(statuses, seen)) as client:
        assert client.request(method, "http://api.test/x").status_code == final
    assert seen == [method] * sent


def test_a_post_timeout_is_raised_not_retried():
    seen: list[str] = []
    with RateLimiter(retry=RetryConfig(base_delay=0.001)).client(
        transport=_mock([-1, 200], seen)
    ) as client, pytest.raises(httpx.ReadTimeout):  # fmt: skip
        client.post("http://api.test/x")
    assert seen == ["POST"]


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
