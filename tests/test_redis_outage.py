"""The failure policy against a real redis-server killed mid-run and restarted on its port:
"local" keeps every call working and limited, then shares state again within a second;
"allow" and "deny" do what they say."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time

import pytest

redis = pytest.importorskip("redis")

from conftest import HOST, free_port, require_redis, start_server, stop_server  # noqa: E402

from otel_ratelimit import ConfigurationError, RateLimiter, StorageError  # noqa: E402
from otel_ratelimit.engine import KeyConfig  # noqa: E402
from otel_ratelimit.headers import Observation, Quota  # noqa: E402
from otel_ratelimit.limits import Limit  # noqa: E402
from otel_ratelimit.storage import FallbackStorage, open_storage  # noqa: E402
from otel_ratelimit.storage.redis import PREFIX  # noqa: E402
from otel_ratelimit.testing import Upstream  # noqa: E402

PASSWORD = "s3cret"


class Redis:
    """One redis-server (with a password) that the test kills and starts again on its port."""

    def __init__(self, directory) -> None:
        require_redis()
        self.directory, self.port = directory, free_port()
        self.url = f"redis://:{PASSWORD}@{HOST}:{self.port}/0"
        self.proc = None
        self.back_at = 0.0  # time.monotonic() when the restarted server first answered PING

    def start(self) -> None:
        self.proc = start_server(self.directory, self.port, "--requirepass", PASSWORD,
                                 ping_url=self.url)  # fmt: skip
        self.back_at = time.monotonic()

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL: no goodbye to the clients
        self.proc.wait(5)

    def first_evalsha(self, timeout: float = 5.0) -> float:
        """When the (restarted) server first ran a script call: shared limiting again."""
        admin = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        try:
            while "cmdstat_evalsha" not in admin.info("commandstats"):
                assert time.monotonic() < deadline, "no request went through Redis again"
                time.sleep(0.005)
            return time.monotonic()
        finally:
            admin.close()

    def stop(self) -> None:
        if self.proc is not None:
            stop_server(self.proc)


@pytest.fixture
def server(tmp_path):
    srv = Redis(tmp_path)
    srv.start()
    yield srv
    srv.stop()


def _events(limiter: RateLimiter) -> list[tuple[float, str, str]]:
    events: list[tuple[float, str, str]] = []
    assert isinstance(limiter.storage, FallbackStorage)
    limiter.storage.listeners.append(lambda e, d: events.append((time.monotonic(), e, d)))
    return events


def _outage(server: Redis, marks: dict[str, float], up: Upstream, down: float = 1.2) -> None:
    """Kill Redis once traffic has learned the limit, start it again ``down`` s later."""
    time.sleep(1.2)
    marks["before"] = up.stats()["total"]
    server.kill()
    time.sleep(down)
    marks["during"] = up.stats()["total"] - marks["before"]
    server.start()
    marks["shared"] = server.first_evalsha()


def _check(server, up, events, marks, errors, caplog) -> None:
    assert errors == []  # no call failed
    stats = up.stats()
    assert stats["rejected"] <= 0.05 * stats["total"], stats
    assert 10 <= marks["during"] <= 60  # going on while Redis was dead, at ~20/s, not ~300/s
    names = [e for _, e, _ in events]
    assert names.count("fallback") == 1 and names.count("recovered") == 1, events
    assert {d for _, e, d in events} <= {"ConnectionError", "TimeoutError"}
    recovered = next(t for t, e, _ in events if e == "recovered")
    assert recovered - server.back_at < 1.0  # back to shared state within a second
    assert marks["shared"] - server.back_at < 1.0
    admin = redis.Redis.from_url(server.url)
    assert admin.exists(f"{PREFIX}{up.url.split('//')[1]}}}")  # the limit is in Redis again
    admin.close()
    logs = [r for r in caplog.records if r.name == "otel_ratelimit"]
    assert [r.levelno for r in logs] == [logging.WARNING, logging.INFO]
    text = " ".join(r.getMessage() for r in logs)
    assert PASSWORD not in text and f":***@{HOST}:{server.port}" in text
    print(f"outage: {stats}, recovered after {recovered - server.back_at:.3f}s, "
          f"first shared acquire after {marks['shared'] - server.back_at:.3f}s")  # fmt: skip


def _threads(limiter: RateLimiter, up: Upstream, during, n: int = 4):
    """``n`` threads sending requests while ``during()`` runs: (errors, (start, seconds) each)."""
    errors, times, stop = [], [], threading.Event()

    def loop(client) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                client.get("/x")
            except Exception as exc:
                errors.append(repr(exc))
            times.append((started, time.monotonic() - started))

    clients = [limiter.client(base_url=up.url) for _ in range(n)]
    threads = [threading.Thread(target=loop, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    try:
        during()
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        for c in clients:
            c.close()
    return errors, times


@pytest.mark.slow
def test_redis_killed_and_restarted_under_threads(server, caplog):
    """4 threads through one limiter: no call fails, <= 5% 429s, shared again within 1 s."""
    caplog.set_level(logging.INFO, logger="otel_ratelimit")
    limiter = RateLimiter(storage=server.url, max_wait=30)
    events, marks = _events(limiter), {}
    with Upstream("github", limit=20, window=1.0, latency=0.01) as up:
        errors, _ = _threads(limiter, up, lambda: (_outage(server, marks, up), time.sleep(1.0)))
        _check(server, up, events, marks, errors, caplog)
    limiter.close()


@pytest.mark.slow
def test_a_hung_redis_holds_no_request_long(server):
    """A Redis that stops answering (SIGSTOP) costs a request half a second at most: after the
    first timeouts the others limit locally, and one probe at a time waits on the server."""
    limiter = RateLimiter(storage=server.url, max_wait=30)
    events = _events(limiter)

    def hang() -> None:
        time.sleep(0.8)
        server.proc.send_signal(signal.SIGSTOP)
        time.sleep(2.0)
        server.proc.send_signal(signal.SIGCONT)
        time.sleep(0.5)

    with Upstream("github", limit=50, window=1.0, latency=0.01) as up:
        errors, times = _threads(limiter, up, hang)
        assert errors == [] and up.stats()["rejected"] == 0
    slow = [t for _, t in times if t > 0.3]
    assert max(slow) < 0.9  # the socket timeout (0.5 s), never redis-py's retries
    assert len(slow) <= 4 + 2.0 / 0.25  # the calls in flight, then one probe at a time
    assert len(times) > 3 * len(slow)  # everyone else went on
    names = [e for _, e, _ in events]
    assert names.count("fallback") == names.count("recovered") == 1
    limiter.close()


@pytest.mark.slow
def test_redis_killed_and_restarted_under_asyncio(server, caplog):
    """The same with 6 coroutines on redis.asyncio."""
    caplog.set_level(logging.INFO, logger="otel_ratelimit")
    errors, marks = [], {}

    async def main(up: Upstream) -> list[tuple[float, str, str]]:
        limiter = RateLimiter(storage=server.url, max_wait=30)
        events = _events(limiter)
        stop = asyncio.Event()

        async def loop(client) -> None:
            while not stop.is_set():
                try:
                    await client.get("/x")
                except Exception as exc:
                    errors.append(repr(exc))

        async with limiter.async_client(base_url=up.url) as client:
            tasks = [asyncio.create_task(loop(client)) for _ in range(6)]
            await asyncio.to_thread(_outage, server, marks, up)
            await asyncio.sleep(1.0)
            stop.set()
            await asyncio.gather(*tasks)
        await limiter.aclose()
        return events

    with Upstream("openai", limit=20, window=1.0, latency=0.01) as up:
        events = asyncio.run(main(up))
        _check(server, up, events, marks, errors, caplog)


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
    limiter = RateLimiter(storage=server.url, on_storage_error="allow", max_wait=30)
    events = _events(limiter)
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
