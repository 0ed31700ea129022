"""The failure policies against a real redis-server killed mid-test: "local" starts from what
Redis taught and hands back in order, "allow" admits at once, "deny" refuses; any other policy
is a ConfigurationError."""

from __future__ import annotations

import asyncio
import time

import pytest

redis = pytest.importorskip("redis")

from conftest import REDIS_PASSWORD as PASSWORD  # noqa: E402
from conftest import storage_events  # noqa: E402

from otel_ratelimit import ConfigurationError, RateLimiter, StorageError  # noqa: E402
from otel_ratelimit.engine import KeyConfig  # noqa: E402
from otel_ratelimit.headers import Observation, Quota  # noqa: E402
from otel_ratelimit.limits import Limit  # noqa: E402
from otel_ratelimit.storage import FallbackStorage, open_storage  # noqa: E402
from otel_ratelimit.testing import Upstream  # noqa: E402


@pytest.fixture
def server(killable_redis):
    return killable_redis


def test_local_policy_starts_from_what_redis_taught(server):
    """Once Redis is dead, the key's local state holds the cooldown and the window Redis had
    learned: the next request waits out the Retry-After instead of going at once."""
    store, config, key = open_storage(server.url, on_storage_error="local"), KeyConfig(), "s.test"
    grant = store.acquire(key, config, 1, 60)
    told = Observation(quotas=(Quota("default", 10, 4, 30.0),), retry_after=3.0)
    assert store.observe(key, config, grant.ticket, 429, told).cooldown == 3.0
    shared = store.load(key)[0]
    server.kill()
    grant = store.acquire(key, config, 1, 60)
    assert grant.ticket < 0 and grant.policy == "cooldown"  # granted here, after the cooldown
    assert 2.5 < grant.wait <= 3.0
    local = store.load(key)[0]
    assert local.cooldown_until == pytest.approx(shared.cooldown_until, abs=0.2)
    window, learned = local.windows["default"], shared.windows["default"]
    assert (window.limit, window.base) == (learned.limit, learned.base) == (10, 4)
    assert window.end == pytest.approx(learned.end, abs=0.2)
    store.close()


def test_after_the_outage_shared_slots_queue_behind_local_ones(server):
    """Slots granted in the process during the outage go first: the first slot Redis grants
    afterwards waits for the last of them, so the API counts them before it teaches Redis."""
    store, config = open_storage(server.url, "local"), KeyConfig(limits=(Limit(2, 1.0),))
    assert store.acquire("q.test", config, 1, 60).ticket >= 0
    server.kill()
    probe = store.acquire("q.test", config, 1, 60)  # a fresh local state probes first
    store.observe("q.test", config, probe.ticket, 200, Observation())
    local = [store.acquire("q.test", config, 1, 60) for _ in range(3)]  # 2/s: 0.5 s apart
    assert all(g.ticket < 0 for g in local) and local[-1].wait > 1.4
    server.start()
    time.sleep(0.3)  # a probe is due
    shared = store.acquire("q.test", config, 1, 60)
    assert shared.ticket >= 0 and store.down_since is None
    assert shared.wait == pytest.approx(local[-1].at - time.time() + 0.01, abs=0.05)
    store.close()


def test_allow_admits_at_once_and_comes_back(server):
    """With "allow", while Redis is dead, requests go out unlimited; then Redis limits again."""
    limiter = RateLimiter(storage=server.url, on_storage_error="allow", max_wait=30, retry=False)
    events = storage_events(limiter)
    with Upstream("github", limit=5, window=5.0, latency=0.0) as up, limiter.client() as client:
        assert [client.get(up.url).status_code for _ in range(5)] == [200] * 5
        server.kill()
        started = time.monotonic()
        codes = [client.get(up.url).status_code for _ in range(10)]
        assert time.monotonic() - started < 1.0 and codes == [429] * 10  # nobody waited
        server.start()
        time.sleep(0.3)  # the next probe is due
        assert client.get(up.url).status_code == 429  # answered, through Redis
        assert limiter.get_status(up.url) is not None  # the shared state holds the key again
    assert [e for _, e, _ in events if e != "error"] == ["fallback", "recovered"]
    limiter.close()


def test_deny_refuses_until_redis_is_back(server):
    """With "deny", new requests raise StorageError (none reaches the API); a request already
    granted keeps its response; after the restart requests pass again."""
    limiter = RateLimiter(storage=server.url, on_storage_error="deny")
    store, config = limiter.storage, KeyConfig(limits=(Limit(100, 1.0),))
    with Upstream("ietf", limit=50, latency=0.0) as up, limiter.client() as client:
        assert client.get(up.url).status_code == 200
        grant = store.acquire("held.test", config, 1, 1.0)
        server.kill()
        for _ in range(3):
            with pytest.raises(StorageError, match="on_storage_error='deny'") as info:
                client.get(up.url)
            assert PASSWORD not in str(info.value)
        assert up.stats()["total"] == 1
        assert store.observe("held.test", config, grant.ticket, 200, Observation()).backoff is None
        server.start()
        deadline = time.monotonic() + 1.0
        while True:  # the first probe after the restart lets requests through again
            try:
                assert client.get(up.url).status_code == 200
                break
            except StorageError:
                assert time.monotonic() < deadline
                time.sleep(0.02)
    limiter.close()


def test_deny_raises_on_the_first_failure_without_waiting(server):
    """The raw store (no policy) raises StorageError; "deny" raises at once, even for
    coroutines, and a dead store is tried at most every 0.25 s."""
    raw = open_storage(server.url)
    store = open_storage(server.url, on_storage_error="deny")
    config = KeyConfig(limits=(Limit(100, 1.0),))
    server.kill()
    with pytest.raises(StorageError):
        raw.acquire("k", config, 1, 1.0)
    errors = []
    store.listeners.append(lambda e, d: errors.append(e))

    async def calls() -> None:
        for _ in range(50):
            with pytest.raises(StorageError):
                await store.aacquire("k", config, 1, 1.0)
            await asyncio.sleep(0.01)
        await store.aclose()

    started = time.monotonic()
    asyncio.run(calls())
    elapsed = time.monotonic() - started
    assert elapsed < 1.5  # 50 calls with 10 ms pauses: nothing waited on the dead server
    assert 1 <= errors.count("error") <= 2 + elapsed / 0.25  # one try per 0.25 s, not 50
    raw.close(), store.close()


@pytest.mark.parametrize("policy", ["bogus", "", None, "LOCAL"])
def test_unknown_policy_is_a_configuration_error(policy):
    """on_storage_error takes "local", "allow" or "deny" only, for any storage."""
    with pytest.raises(ConfigurationError) as info:
        RateLimiter(on_storage_error=policy)
    assert repr(policy) in str(info.value)


def test_raise_policy_leaves_the_store_unwrapped_and_raises_its_errors(killable_redis):
    """``on_storage_error="raise"`` (the CLI's choice): a dead store is a StorageError."""
    limiter = RateLimiter(killable_redis.url, on_storage_error="raise")
    assert not isinstance(limiter.storage, FallbackStorage)
    killable_redis.kill()
    with pytest.raises(StorageError):
        limiter.storage.keys()
    limiter.close()
