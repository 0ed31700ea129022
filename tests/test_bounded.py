"""Bounded resources: endless distinct hosts keep memory, keys and metric series bounded."""

from __future__ import annotations

import gc
import tracemalloc

import httpx
import pytest
from otel_sdk import Otel

from otel_ratelimit import RateLimiter
from otel_ratelimit.engine import KeyConfig
from otel_ratelimit.headers import Observation, parse_headers
from otel_ratelimit.limits import AdaptiveConfig, Limit
from otel_ratelimit.storage import MemoryStorage
from otel_ratelimit.telemetry import OTHER
from otel_ratelimit.testing import Upstream

CONFIG = KeyConfig(limits=(Limit(10, 1.0),), adaptive=AdaptiveConfig(),
                   backoff_status_codes=frozenset({429}))  # fmt: skip
HEADERS = [("RateLimit-Policy", '"default";q=50;w=60'), ("RateLimit", '"default";r=49;t=60')]


def _hosts(store: MemoryStorage, start: int, stop: int, obs: Observation) -> None:
    for i in range(start, stop):
        key = f"host-{i}.example.com"
        grant = store.acquire(key, CONFIG, 1.0, 1.0)
        store.observe(key, CONFIG, grant.ticket, 200, obs)


def test_100k_hosts_keep_memory_storage_bounded():
    """Keys stay <= max_keys (LRU) and traced memory does not grow after the warm-up."""
    store = MemoryStorage(max_keys=5_000)
    obs = parse_headers(HEADERS, now=0.0)
    tracemalloc.start()
    try:
        _hosts(store, 0, 20_000, obs)  # warm-up: the LRU is full and evicting
        gc.collect()
        warm, _ = tracemalloc.get_traced_memory()
        _hosts(store, 20_000, 100_000, obs)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    kept = set(store.keys())
    assert len(kept) == 5_000
    assert "host-99999.example.com" in kept and "host-0.example.com" not in kept
    print(f"traced memory: {warm / 2**20:.1f} MB after the warm-up, {after / 2**20:.1f} MB at 100k")
    assert after - warm <= 0.10 * warm, (warm, after)  # flat, not 4x the warm-up


def test_memory_storage_evicts_the_least_recently_used_key():
    """Steps on the key of the step before skip the LRU move: the order stays right, and a
    cleared key starts over."""
    store, config = MemoryStorage(max_keys=2), KeyConfig(limits=(Limit(1000, 1.0),))
    for key in ("a", "b", "a", "a"):  # the second "a" in a row takes the shortcut
        store.acquire(key, config, 1.0, 1.0)
    store.acquire("c", config, 1.0, 1.0)
    assert store.keys() == ["a", "c"]  # b was least recently used
    assert store.acquire("c", config, 1.0, 1.0).again  # the same state: its probe is out
    store.clear("c")
    assert store.keys() == ["a"]
    assert not store.acquire("c", config, 1.0, 1.0).again  # a new state: this is its probe
    store.clear()
    assert store.keys() == [] and store.load("c") is None
    assert not store.acquire("c", config, 1.0, 1.0).again


def _answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers=HEADERS)


def test_limiter_caches_and_metric_series_stay_bounded_over_2000_hosts():
    """Metric series stop at the cap (the rest as _OTHER); every per-key cache is capped."""
    otel = Otel()
    limiter = otel.limiter(retry=True)  # the default cap: 500 keys
    client = httpx.Client(transport=limiter.transport(httpx.MockTransport(_answer)))
    with client:
        for i in range(2_000):
            client.get(f"http://h{i}.example.com/v1")
    keys = set()
    for metric in otel.reader.get_metrics_data().resource_metrics[0].scope_metrics[0].metrics:
        if metric.name == "ratelimit.requests":
            points = metric.data.data_points
            assert not [p for p in points if "otel.metric.overflow" in p.attributes]  # ours only
            keys = {p.attributes.get("ratelimit.key") for p in points}
            other = [p for p in points if p.attributes.get("ratelimit.key") == OTHER]
    assert len(keys) == 501 and OTHER in keys
    assert sum(p.value for p in other) == 1_500  # counted, under the overflow attribute
    assert len(limiter.core.telemetry._labels) == 500
    assert len(limiter.core.retry._balance) <= limiter.core.retry.max_keys
    limiter.close()


def test_limiter_config_cache_is_capped():
    """Configurations of endless distinct hosts are a cache that starts over, not a leak."""
    from otel_ratelimit import limiter as module  # noqa: PLC0415

    limiter = RateLimiter()
    for i in range(module._MAX_CONFIGS + 500):
        limiter.config_for(f"h{i}.example.com")
    assert len(limiter._configs) <= module._MAX_CONFIGS


def test_every_redis_key_has_a_ttl(redis_url):
    """After real traffic and 500 engine-level keys, every key of ours expires by itself."""
    redis = pytest.importorskip("redis")
    from otel_ratelimit.storage.redis import PREFIX, RedisStorage  # noqa: PLC0415

    store = RedisStorage(redis_url)
    obs = parse_headers(HEADERS, now=0.0)
    for i in range(500):
        grant = store.acquire(f"ttl-{i}.example.com", CONFIG, 1.0, 1.0)
        store.observe(f"ttl-{i}.example.com", CONFIG, grant.ticket, 200, obs)
    store.close()
    with Upstream("github", limit=5, latency=0.0) as up, RateLimiter(storage=redis_url) as lim:
        for _ in range(8):
            lim.request("GET", up.url)
    admin = redis.Redis.from_url(redis_url)
    try:
        keys = list(admin.scan_iter(f"{PREFIX}*", count=1000))
        ttls = {k: admin.pttl(k) for k in keys}
    finally:
        admin.close()
    assert len(keys) >= 501
    assert all(ttl > 0 for ttl in ttls.values()), [k for k, t in ttls.items() if t <= 0]
