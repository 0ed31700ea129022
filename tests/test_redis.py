"""Redis storage: the Lua engine decides as the Python one, shared by real processes (one server
and a 3-node cluster), two commands per request, TTLs and asyncio. Connecting is tested in
test_redis_connect.py, outages in test_redis_outage.py and test_redis_policies.py."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

redis = pytest.importorskip("redis")

from processes import run_processes  # noqa: E402

from otel_ratelimit import RateLimiter  # noqa: E402
from otel_ratelimit.engine import KeyConfig  # noqa: E402
from otel_ratelimit.headers import Observation, Quota  # noqa: E402
from otel_ratelimit.limits import AdaptiveConfig, Limit  # noqa: E402
from otel_ratelimit.storage import MemoryStorage, SQLiteStorage  # noqa: E402
from otel_ratelimit.storage.redis import PREFIX, RedisStorage  # noqa: E402
from otel_ratelimit.storage.sqlite import _dump, _load  # noqa: E402
from otel_ratelimit.testing import Upstream  # noqa: E402

CONFIGS = [
    KeyConfig(limits=(Limit(5, 2.0, burst=2),), adaptive=AdaptiveConfig()),
    KeyConfig(adaptive=AdaptiveConfig()),  # slow start, first estimate, ramping, AIMD
    KeyConfig(adaptive=AdaptiveConfig(initial_rate=2.0, max_rate=3.0, decrease_factor=0.7),
              cooldown=0.5, max_cooldown=4.0),
    KeyConfig(limits=(Limit(3, 1.0), Limit(10, 5.0, burst=3, name="slow")),
              backoff_status_codes=frozenset({429})),
    KeyConfig(adaptive=None),  # headers only
]  # fmt: skip
dt = st.one_of(st.floats(0, 2), st.sampled_from([0.0, 0.01, 0.1, 0.5, 1.0, 5.0, 30.0]))
quota = st.builds(
    Quota,
    st.sampled_from(["default", "default", "tokens"]),
    st.sampled_from([None, 5, 10, 10.5, 100]),
    st.one_of(st.none(), st.integers(0, 10), st.floats(0, 10), st.integers(0, 100)),
    st.one_of(st.none(), st.sampled_from([0.0, 0.5, 1.0, 3.0, 60.0]), st.floats(0, 10)),
    st.sampled_from([None, 0.0, 1.0, 5.0]),
)
obs = st.builds(
    Observation,
    quotas=st.lists(quota, max_size=2).map(tuple),
    retry_after=st.sampled_from([None, None, None, 0.0, 0.5, 2.0, 1000.0]),
    errors=st.integers(0, 2),
)
acquire_step = st.tuples(
    st.just("acquire"),
    dt,
    st.sampled_from([1, 1, 2, 0, 5, 0.5]),
    st.sampled_from([0.0, 0.5, 5.0, math.inf, math.inf]),
    st.integers(-3, 9),  # which caller in line asks again (< 0: a new caller)
)
observe_step = st.tuples(st.just("observe"), dt,
                         st.sampled_from([200, 200, 200, 429, 429, 503, 500, 404, 0]), obs,
                         st.integers(0, 9))  # fmt: skip
release_step = st.tuples(st.just("release"), dt, st.integers(0, 9))
step = st.one_of(acquire_step, acquire_step, observe_step, observe_step, release_step)


class FakeClock:
    t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(config=st.sampled_from(CONFIGS), steps=st.lists(step, min_size=20, max_size=80))
def test_memory_sqlite_and_redis_decide_alike(config, steps, redis_url, tmp_path_factory):
    """The same acquires, responses and releases give the same Grants, Outcomes and final
    state on memory, SQLite and Redis (the Lua port), on one fake clock."""
    clock, key = FakeClock(), f"diff-{uuid.uuid4()}"
    path = tmp_path_factory.mktemp("db") / "diff.db"
    sqlite = SQLiteStorage(f"sqlite:///{path}", clock=clock)
    redis_store = RedisStorage(redis_url, clock=clock)
    stores = [MemoryStorage(clock=clock), sqlite, redis_store]
    held = []  # grants not yet answered or given back
    places = [1e9]  # places in line of callers told to ask again (and one never issued)
    try:
        for kind, delta, *rest in steps:
            clock.t += delta
            if kind == "acquire":
                place = places.pop(rest[2] % len(places)) if rest[2] >= 0 and places else 0.0
                grants = [s.acquire(key, config, rest[0], rest[1], place) for s in stores]
                assert grants[0] == grants[1] == grants[2]
                held += [grants[0]] if grants[0].ok and not grants[0].again else []
                places += [grants[0].place] if grants[0].place else []
            elif held and kind == "observe":
                ticket = held.pop(rest[2] % len(held)).ticket
                outs = [s.observe(key, config, ticket, rest[0], rest[1]) for s in stores]
                assert outs[0] == outs[1] == outs[2]
            elif held:
                grant = held.pop(rest[0] % len(held))
                [s.release(key, config, grant) for s in stores]
        states = [s.load(key) for s in stores]
        assert states[0] == states[1] == states[2]  # (KeyState, now) or None
        if states[0] is not None:  # and windows in the same order
            assert list(states[0][0].windows) == list(states[2][0].windows)
    finally:
        sqlite.close(), redis_store.clear(key), redis_store.close()


def test_a_request_lost_by_a_dead_process_stops_holding_the_key_back(redis_url):
    """The Lua port of the slow start's time bound: a silent API's request whose process died
    holds the shared key back for PROBE_TIMEOUT (2 s), not for good."""
    clock, key = FakeClock(), f"lost-{uuid.uuid4()}"
    store, config = RedisStorage(redis_url, clock=clock), KeyConfig(adaptive=AdaptiveConfig())
    try:
        first = store.acquire(key, config, 1, 60)
        store.observe(key, config, first.ticket, 200, Observation())
        assert not store.acquire(key, config, 1, 60).again  # its process dies: no answer
        clock.t += 1.0
        assert store.acquire(key, config, 1, 60).policy == "slow_start"
        clock.t += 1.5
        freed = store.acquire(key, config, 1, 60)
        assert not freed.again and freed.wait == 0
    finally:
        store.clear(key), store.close()


@pytest.mark.slow
def test_a_process_killed_mid_request_does_not_stall_the_shared_key(redis_url):
    """A real process sends the first request to a silent API (3 s to answer) through Redis
    and is killed (SIGKILL) while it is out. Another limiter on the same Redis gets its
    request through once the 2 s hold has passed, where it was held back for good before."""
    RedisStorage(redis_url).clear()
    with Upstream("429-only", limit=100, window=1.0, latency=3.0) as up:
        child = subprocess.Popen([sys.executable, "-c", (
            "import sys; from otel_ratelimit import RateLimiter; "
            "RateLimiter(storage=sys.argv[1]).request('GET', sys.argv[2])"
        ), redis_url, up.url + "/x"])  # fmt: skip
        try:
            deadline = time.monotonic() + 10
            while up.total == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert up.total == 1  # its request is out
        finally:
            child.kill()
            child.wait()
        limiter = RateLimiter(storage=redis_url, max_wait=10)
        started = time.monotonic()
        try:
            assert limiter.request("GET", up.url + "/x").status_code == 200
        finally:
            limiter.close()
        assert time.monotonic() - started < 2.5 + 3.0 + 1.0  # the hold, the answer, slack
    assert up.rejected == 0


@pytest.mark.slow
@pytest.mark.parametrize("style", ["github", "ietf", "openai"])
def test_four_processes_share_redis_exactly(style, redis_url):
    """4 processes x 4 threads on one Redis: the upstream never answers 429."""
    limit, window = (10, 1.0) if style == "openai" else (25, 5.0)
    RedisStorage(redis_url).clear()
    with Upstream(style, limit=limit, window=window, latency=0.01) as up:
        run_processes([up], redis_url)
        assert up.rejected == 0
        assert up.ok >= 0.6 * up.allowed(6.0)


@pytest.mark.slow
def test_four_processes_share_a_redis_cluster(redis_cluster_url):
    """The same on a 3-node cluster, three hosts whose keys live on three different nodes."""
    store = RedisStorage(redis_cluster_url)
    store.clear()
    upstreams, nodes = [], set()
    for _ in range(60):  # random ports: keep the hosts whose keys land on a node not yet used
        up = Upstream("openai", limit=10, window=1.0, latency=0.01).start()
        node = store._client.get_node_from_key(f"{PREFIX}{_key(up)}}}").name
        if node in nodes:
            up.stop()
            continue
        nodes.add(node)
        upstreams.append(up)
        if len(nodes) == 3:
            break
    try:
        assert len(nodes) == 3
        run_processes(upstreams, redis_cluster_url)
        for up in upstreams:
            assert up.rejected == 0
            assert up.ok >= 0.6 * up.allowed(6.0)
        assert store.keys() == sorted(_key(up) for up in upstreams)  # SCAN on every primary
        assert asyncio.run(_async_acquire(store, "async.c")).ticket == 1  # redis.asyncio cluster
        store.clear()
        assert store.keys() == []
    finally:
        for up in upstreams:
            up.stop()
        store.close()


def _key(up: Upstream) -> str:
    return up.url.split("//")[1]


async def _async_acquire(store: RedisStorage, key: str):
    grant = await store.aacquire(key, CONFIGS[0], 1, 60)
    await store.aobserve(key, CONFIGS[0], grant.ticket, 200, Observation())
    return grant  # the loop's client closes as asyncio.run shuts the loop down


def test_two_commands_per_request(redis_url):
    """An outbound request costs at most two Redis commands, both EVALSHA; the only others are
    the storage's connection check and its one script load."""
    admin, n = redis.Redis.from_url(redis_url), 30
    with Upstream("github", limit=1000, window=60.0, latency=0.0) as up:
        admin.config_resetstat()
        limiter = RateLimiter(storage=redis_url)
        with limiter.client(base_url=up.url) as client:
            for _ in range(n):
                assert client.get("/x").status_code == 200
        stats = admin.info("commandstats")
        limiter.close()
    calls = {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()}
    # commandstats also counts the commands each script runs: one GET, TIME and SET
    assert calls.pop("get") == calls.pop("time") == calls.pop("set") == calls["evalsha"]
    assert calls.pop("evalsha") + calls.pop("eval", 0) <= 2 * n
    for handshake in ("hello", "client|setinfo", "auth", "select", "config|resetstat"):
        calls.pop(handshake, None)  # opening the one connection (and the test's own reset)
    assert calls == {"ping": 1, "script|load": 1}
    admin.close()


def test_keys_ttl_status_and_clear_across_limiters(redis_url):
    """Two limiters on one Redis see the same keys and status; TTLs are set; clear works."""
    a, b, admin = RateLimiter(storage=redis_url), RateLimiter(storage=redis_url), None
    a.clear()
    with Upstream("github", limit=25, window=5.0) as up, Upstream("ietf") as other:
        with a.client() as client:
            for url in (up.url, up.url, up.url, other.url):
                client.get(url + "/x")
        assert b.storage.keys() == sorted([_key(up), _key(other)])
        status = b.get_status(up.url)
        assert status is not None and status.limit == 25 and status.remaining == 22
        admin = redis.Redis.from_url(redis_url)
        assert 3_500_000 < admin.pttl(f"{PREFIX}{_key(up)}}}") <= 3_600_000
        b.clear(up.url)
        assert a.storage.keys() == [_key(other)] and a.get_status(up.url) is None
        b.clear()
        assert a.storage.keys() == []
    a.close(), b.close(), admin.close()


def test_async_calls_use_redis_asyncio(redis_url, monkeypatch):
    """aacquire/aobserve/arelease run on a redis.asyncio client, never the sync one."""
    store, config = RedisStorage(redis_url), KeyConfig(limits=(Limit(5, 1.0),))
    store.clear()
    monkeypatch.setattr(store, "_script", None)  # any sync call would fail

    async def main():
        first = await store.aacquire("a.test", config, 1, 60)  # the probe: the others wait for it
        assert (first.ticket, first.again) == (1, False)
        assert (await store.aacquire("a.test", config, 1, 60)).policy == "probe"
        assert (await store.aobserve("a.test", config, 1.0, 200, Observation())).backoff is None
        grants = await asyncio.gather(*(store.aacquire("a.test", config, 1, 60) for _ in range(5)))
        assert sorted(g.ticket for g in grants) == [2, 3, 4, 5, 6]
        assert 0.8 < max(g.wait for g in grants) <= 1.0  # 5/s: 5 more slots after the first
        await store.arelease("a.test", config, max(grants, key=lambda g: g.ticket))
        out = await store.aobserve("a.test", config, 1.0, 429, Observation(retry_after=2.0))
        assert out.backoff == "retry_after" and out.cooldown == 2.0
        script, _ = store._loops[asyncio.get_running_loop()]
        assert isinstance(script, redis.commands.core.AsyncScript)
        await store.aclose()
        assert not store._loops

    asyncio.run(main())
    monkeypatch.undo()
    state = store.load("a.test")
    assert state is not None and state[0].sent == 6 and state[0].answered == 3
    store.close()


def test_async_client_end_to_end(redis_url):
    """A limited httpx.AsyncClient on Redis storage, closed with the limiter."""

    async def main(url: str) -> list[int]:
        limiter = RateLimiter(storage=redis_url)
        async with limiter.async_client(base_url=url) as client:
            codes = [(await client.get("/x")).status_code for _ in range(5)]
        await limiter.aclose()
        return codes

    with Upstream("github", limit=3, window=1.0) as up:
        assert asyncio.run(main(up.url)) == [200] * 5
        assert up.rejected == 0


def test_state_stored_before_places_in_line_loads_on_every_store(redis_url, tmp_path):
    """A key saved without ``line_end``/``line_served`` (an older version) loads as an empty
    line on SQLite and Redis, and the Lua engine queues on it as the Python one does."""
    clock, key = FakeClock(), f"old-{uuid.uuid4()}"
    config = KeyConfig(adaptive=AdaptiveConfig())
    redis_store, admin = RedisStorage(redis_url, clock=clock), redis.Redis.from_url(redis_url)
    try:
        redis_store.acquire(key, config, 1, math.inf)  # the probe
        redis_store.observe(key, config, 1, 200, Observation())
        old = json.loads(admin.get(f"{PREFIX}{key}}}"))
        assert old.pop("line_end") == old.pop("line_served") == 0
        old["rate"] = 2.0  # a learned rate: callers past the horizon wait in line
        admin.set(f"{PREFIX}{key}}}", json.dumps(old))
        memory = MemoryStorage(clock=clock)
        memory._states[key] = state = redis_store.load(key)[0]
        assert (state.line_end, state.line_served) == (0.0, 0.0)
        for store in (memory, redis_store):
            grants = [store.acquire(key, config, 1, math.inf) for _ in range(3)]
            assert [g.again for g in grants] == [False, True, True]
            assert [g.place for g in grants] == [0.0, 1.0, 2.0]
        assert memory.load(key) == redis_store.load(key)
        sqlite_old = json.loads(_dump(state))
        del sqlite_old["line_end"], sqlite_old["line_served"]
        assert _load(json.dumps(sqlite_old)).line_end == 0.0
    finally:
        redis_store.clear(key), redis_store.close(), admin.close()
