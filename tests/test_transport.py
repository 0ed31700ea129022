"""The limiter in real httpx/httpx2 clients against a real local upstream enforcing a limit."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from otel_ratelimit import RateLimiter, RateLimitExceeded
from otel_ratelimit.testing import Upstream

WHOLE_SECONDS = {"ietf", "ietf-07", "ietf-06", "github", "twitter", "anthropic", "rapidapi"}


@pytest.fixture
def upstream(request):
    """A local API enforcing a fixed window: 10 per 1 s, or 25 per 5 s for styles whose resets
    have whole-second resolution (a 1 s window cannot be told apart from its rounding)."""
    style = getattr(request, "param", "openai")
    limit, window = (25, 5.0) if style in WHOLE_SECONDS else (10, 1.0)
    with Upstream(style, limit=limit, window=window, latency=0.01) as up:
        yield up


def _hammer_threads(call, threads: int, seconds: float) -> list[BaseException]:
    deadline, errors = time.monotonic() + seconds, []

    def loop() -> None:
        while time.monotonic() < deadline:
            try:
                call()
            except BaseException as exc:
                errors.append(exc)
                return

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return errors


@pytest.mark.parametrize("upstream", ["ietf", "github", "openai", "discord"], indirect=True)
def test_threads_never_over_admit(upstream):
    """Eight threads hammering one client: no 429 from the upstream, and the quota is used."""
    limiter = RateLimiter(max_wait=30)
    with limiter.client(base_url=upstream.url) as client:
        errors = _hammer_threads(lambda: client.get("/x"), 8, 3.0)
    assert errors == []
    assert upstream.rejected == 0
    assert upstream.ok >= 0.8 * upstream.allowed(3.0)


def _hammer_coroutines(url: str, coroutines: int, seconds: float) -> None:
    """``coroutines`` coroutines calling ``url`` on one limited AsyncClient for ``seconds``."""

    async def main() -> None:
        limiter = RateLimiter(max_wait=30)
        async with limiter.async_client(base_url=url) as client:
            deadline = time.monotonic() + seconds

            async def loop() -> None:
                while time.monotonic() < deadline:
                    await client.get("/x")

            await asyncio.gather(*(loop() for _ in range(coroutines)))

    asyncio.run(main())


@pytest.mark.parametrize("upstream", ["openai", "ietf"], indirect=True)
def test_coroutines_never_over_admit(upstream):
    """Thirty-two coroutines on one AsyncClient: no over-admission."""
    _hammer_coroutines(upstream.url, 32, 3.0)
    assert upstream.rejected == 0
    assert upstream.ok >= 0.8 * upstream.allowed(3.0)


def test_coroutines_stay_inside_whole_second_windows_as_they_roll():
    """Thirty-two coroutines for 11 s against 25 per 5 s reset in whole seconds (IETF
    draft-09): slots are booked a window ahead, so every window change counts. A rounded
    reset read as a leaky bucket, and slots booked past a count forgotten, let 7 to 28
    requests of such a run through to a 429 before they were mended."""
    with Upstream("ietf", limit=25, window=5.0, latency=0.01) as upstream:
        _hammer_coroutines(upstream.url, 32, 11.0)
    assert upstream.rejected == 0
    assert upstream.ok >= 0.8 * upstream.allowed(11.0)


def test_httpx2_client_is_limited_the_same_way(upstream):
    """limiter.client(package="httpx2") is an httpx2.Client with the same limiting."""
    httpx2 = pytest.importorskip("httpx2")
    limiter = RateLimiter(max_wait=5)
    with limiter.client(package="httpx2", base_url=upstream.url) as client:
        assert isinstance(client, httpx2.Client)
        assert isinstance(client._transport, httpx2.BaseTransport)
        for _ in range(25):
            assert client.get("/x").status_code == 200
    assert upstream.rejected == 0


def test_wrapping_a_user_transport(upstream):
    """limiter.transport(inner) wraps a transport the user built."""
    limiter = RateLimiter(max_wait=5)
    inner = httpx.HTTPTransport(retries=0)
    with httpx.Client(transport=limiter.transport(inner), base_url=upstream.url) as client:
        codes = [client.get("/x").status_code for _ in range(15)]
    assert codes == [200] * 15


def test_request_and_arequest_helpers(upstream):
    """limiter.request and await limiter.arequest return httpx responses within the limit."""
    limiter = RateLimiter(max_wait=5)
    assert limiter.request("GET", upstream.url + "/a").status_code == 200

    async def main() -> list[int]:
        out = [(await limiter.arequest("GET", upstream.url + "/b")).status_code for _ in range(12)]
        await limiter.aclose()
        return out

    assert asyncio.run(main()) == [200] * 12
    status = limiter.get_status(upstream.url)
    assert status is not None and status.limit == 10 and status.policies[0].source == "header"


@pytest.mark.parametrize("upstream", ["429-only"], indirect=True)
def test_raise_on_limit_raises_with_retry_after(upstream):
    """raise_on_limit=True raises RateLimitExceeded naming the key instead of waiting."""
    with RateLimiter(raise_on_limit=True) as limiter:
        limiter.set_limit(upstream.url, 2, "10s")
        limiter.request("GET", upstream.url)
        with pytest.raises(RateLimitExceeded) as info:
            limiter.request("GET", upstream.url)
    assert info.value.retry_after > 1.0
    assert info.value.key == upstream.url.split("://")[1]


@pytest.mark.parametrize("upstream", ["429-only"], indirect=True)
def test_max_wait_bounds_every_wait(upstream):
    """A wait longer than max_wait is refused at once, not slept."""
    with RateLimiter(max_wait=0.5) as limiter:
        limiter.set_limit(upstream.url, 1, "1m")
        limiter.request("GET", upstream.url)
        started = time.monotonic()
        with pytest.raises(RateLimitExceeded):
            limiter.request("GET", upstream.url)
    assert time.monotonic() - started < 0.5


def test_cancelled_waiters_give_their_place_back(upstream):
    """300 cancelled waiters leave no reservation behind: the next request goes at once."""

    async def main() -> float:
        limiter = RateLimiter(max_wait=1000)
        limiter.set_limit(upstream.url, 1, "2s")
        async with limiter.async_client(base_url=upstream.url) as client:
            await client.get("/first")
            waiters = [asyncio.create_task(client.get("/w")) for _ in range(300)]
            await asyncio.sleep(0.1)
            for task in waiters:
                task.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
            await asyncio.sleep(2.0)
            started = time.monotonic()
            assert (await client.get("/after")).status_code == 200
            return time.monotonic() - started

    assert asyncio.run(main()) < 0.5
    assert upstream.rejected == 0


@pytest.mark.parametrize("upstream", ["retry-after-seconds"], indirect=True)
def test_429_with_retry_after_pauses_every_thread(upstream):
    """After one 429 with Retry-After the whole key pauses; the upstream sees few 429s."""
    limiter = RateLimiter(max_wait=5)
    with limiter.client(base_url=upstream.url) as client:
        errors = _hammer_threads(lambda: client.get("/x"), 8, 3.0)
    assert errors == []
    assert upstream.rejected <= 16  # one burst of in-flight requests at most per learning step
    assert upstream.ok >= 10


def test_a_request_held_behind_a_slow_probe_raises_at_its_max_wait():
    """A new silent API answering in 1.5 s: the first request probes, the next is held until
    it answers, but no longer than its max_wait (0.3 s); it raises RateLimitExceeded then."""
    with Upstream("429-only", limit=100, window=1.0, latency=1.5) as upstream:
        limiter = RateLimiter(max_wait=0.3)
        with limiter.client(base_url=upstream.url) as client:
            first = threading.Thread(target=client.get, args=("/x",))
            first.start()
            deadline = time.monotonic() + 10
            while upstream.total == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert upstream.total == 1  # the probe is out
            started = time.monotonic()
            with pytest.raises(RateLimitExceeded):
                client.get("/x")
            waited = time.monotonic() - started
            first.join()
    assert 0.25 <= waited < 1.0  # its budget, not the probe's 1.5 s
    assert upstream.total == 1
