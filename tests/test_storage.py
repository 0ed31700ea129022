"""Storage backends: the same decisions everywhere, shared across real processes, clear errors."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from processes import run_processes

from otel_ratelimit import ConfigurationError, RateLimiter, StorageError
from otel_ratelimit.engine import KeyConfig
from otel_ratelimit.headers import Observation, Quota
from otel_ratelimit.limits import AdaptiveConfig, Limit
from otel_ratelimit.storage import MemoryStorage, SQLiteStorage, open_storage, redact_url
from otel_ratelimit.testing import Upstream

CONFIG = KeyConfig(limits=(Limit(5, 2.0, burst=2),), adaptive=AdaptiveConfig())

step = st.one_of(
    st.tuples(st.just("acquire"), st.floats(0, 2), st.sampled_from([1, 2]),
              st.sampled_from([0, 1, 5])),
    st.tuples(st.just("observe"), st.floats(0, 2), st.sampled_from([200, 429, 503, 500]),
              st.integers(0, 10)),
)  # fmt: skip


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(step, min_size=1, max_size=40))
def test_memory_and_sqlite_decide_alike(steps, tmp_path_factory):
    """The same generated acquires and responses give the same decisions on memory and SQLite."""
    clock_a, clock_b = FakeClock(), FakeClock()
    path = tmp_path_factory.mktemp("db") / "diff.db"
    stores = [MemoryStorage(clock=clock_a), SQLiteStorage(f"sqlite:///{path}", clock=clock_b)]
    tickets: list[float] = []
    try:
        for kind, dt, a, b in steps:
            clock_a.t += dt
            clock_b.t += dt
            if kind == "acquire":
                grants = [s.acquire("api.test", CONFIG, a, b) for s in stores]
                assert grants[0] == grants[1]
                if grants[0].ok and not grants[0].again:
                    tickets.append(grants[0].ticket)
            elif tickets:
                ticket = tickets.pop(0)
                obs = Observation(quotas=(Quota("default", 10, b, 1.0),))
                outs = [s.observe("api.test", CONFIG, ticket, a, obs) for s in stores]
                assert outs[0] == outs[1]
        memory, sqlite = (s.load("api.test") for s in stores)
        assert (memory and memory[0]) == (sqlite and sqlite[0])
    finally:
        stores[1].close()


def test_sqlite_state_survives_a_restart(tmp_path):
    """A new store on the same file sees what the old one learned."""
    url = f"sqlite:///{tmp_path}/state.db"
    first = SQLiteStorage(url)
    first.acquire("api.test", CONFIG, 1, math.inf)
    first.close()
    again = SQLiteStorage(url)
    assert again.keys() == ["api.test"]
    assert again.load("api.test")[0].seq == 1
    again.clear()
    assert again.keys() == []
    again.close()


def test_sqlite_urls_relative_and_absolute(tmp_path, monkeypatch):
    """sqlite:///x.db lands in the working directory, sqlite:////abs/x.db at the absolute path."""
    monkeypatch.chdir(tmp_path)
    rel = SQLiteStorage("sqlite:///relative.db")
    assert rel.path == tmp_path / "relative.db" and rel.path.exists()
    rel.close()
    (tmp_path / "sub").mkdir()
    absolute = SQLiteStorage(f"sqlite:///{tmp_path}/sub/abs.db")
    assert absolute.path == tmp_path / "sub" / "abs.db"
    absolute.close()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite:///no/such/dir/x.db",
                                 "postgres://x", "redis+mongo://h", "memcached"])  # fmt: skip
def test_wrong_storage_urls_are_configuration_errors(url):
    """A wrong URL fails at construction, naming the URL."""
    with pytest.raises(ConfigurationError) as info:
        RateLimiter(storage=url)
    assert url in str(info.value)


def test_storage_urls_never_show_passwords():
    """A password in a storage URL is redacted in every error message."""
    assert redact_url("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    with pytest.raises(ConfigurationError) as info:
        open_storage("nosuch://user:s3cret@host/0")
    assert "s3cret" not in str(info.value)


def test_read_only_sqlite_mount_is_a_clear_error(tmp_path):
    """A database opened read-only (as on a read-only mount) fails with StorageError, fast."""
    url = f"sqlite:///{tmp_path}/ro.db"
    store = SQLiteStorage(url)
    store.acquire("k", CONFIG, 1, 1.0)
    store._connect().execute("PRAGMA query_only = ON")
    started = time.monotonic()
    with pytest.raises(StorageError, match=r"ro\.db"):
        store.acquire("k", CONFIG, 1, 1.0)
    with pytest.raises(StorageError, match=r"ro\.db"):
        store.clear()
    assert time.monotonic() - started < 2.0
    store.close()


@pytest.mark.parametrize("style", ["github", "openai"])
def test_four_processes_share_sqlite_exactly(style, tmp_path):
    """4 processes x 4 threads on one SQLite file: the upstream never answers 429."""
    limit, window = (25, 5.0) if style == "github" else (10, 1.0)
    with Upstream(style, limit=limit, window=window, latency=0.01) as up:
        run_processes([up], f"sqlite:///{tmp_path}/s.db")
        assert up.rejected == 0
        assert up.ok >= 0.6 * up.allowed(6.0)


@pytest.mark.parametrize("policy", ["local", "allow", "deny"])
def test_sqlite_failure_follows_the_policy(policy, tmp_path):
    """A SQLite file that turns read-only mid-run: "local" keeps limiting with what it learned,
    "allow" admits at once, "deny" raises StorageError; writable again, it is shared again."""
    url = f"sqlite:///{tmp_path}/s.db"
    limiter = RateLimiter(storage=url, on_storage_error=policy, retry=False)
    events = []
    limiter.storage.listeners.append(lambda e, d: events.append((e, d)))
    conn = limiter.storage.inner._connect()  # this thread's connection: the one requests use
    with Upstream("github", limit=4, window=2.0, latency=0.0) as up, limiter.client() as client:
        assert [client.get(up.url).status_code for _ in range(2)] == [200, 200]
        conn.execute("PRAGMA query_only = ON")
        started = time.monotonic()
        if policy == "deny":
            with pytest.raises(StorageError, match="on_storage_error='deny'"):
                client.get(up.url)
            assert up.stats()["total"] == 2
        else:
            codes = [client.get(up.url).status_code for _ in range(4)]
            if policy == "local":  # 2 left in this window: the other 2 wait for the next one
                assert codes == [200] * 4 and time.monotonic() - started > 0.5
            else:
                assert codes == [200, 200, 429, 429] and time.monotonic() - started < 0.5
        conn.execute("PRAGMA query_only = OFF")
        time.sleep(0.3)  # a probe is due
        other, key = SQLiteStorage(url), up.url.split("//")[1]  # as another process sees it
        sent = other.load(key)[0].sent
        client.get(up.url)
        assert other.load(key)[0].sent == sent + 1  # shared again
        other.close()
    assert [e for e, _ in events if e != "error"] == ["fallback", "recovered"]
    assert {d for _, d in events} == {"OperationalError"}
    limiter.close()


def test_full_sqlite_database_is_a_clear_error_and_the_policy_takes_over(tmp_path):
    """A full database (SQLITE_FULL, here from max_page_count, as from a full disk) raises a
    StorageError naming the file, at once; under the default policy the limiter goes on."""
    url = f"sqlite:///{tmp_path}/full.db"
    store = SQLiteStorage(url)
    conn = store._connect()
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
    started = time.monotonic()
    with pytest.raises(StorageError, match=r"full\.db.*full"):
        for n in range(5000):
            store.acquire(f"api{n}.example", CONFIG, 1, 1.0)
    assert time.monotonic() - started < 5.0
    store.close()
    limiter = RateLimiter(url)  # on_storage_error="local"
    inner = limiter.storage.inner._connect()
    inner.execute(f"PRAGMA max_page_count = {inner.execute('PRAGMA page_count').fetchone()[0]}")
    grants = [limiter.storage.acquire(f"api{n}.example", CONFIG, 1, 1.0) for n in range(5000)]
    assert all(g.ok for g in grants)  # the keys the file could not hold are limited here
    limiter.close()
