"""Connecting to Redis: passwords, TLS, ready clients; a wrong URL or a dead server is a clear
ConfigurationError at construction, a server lost mid-use a StorageError, never a password."""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest

redis = pytest.importorskip("redis")

from otel_ratelimit import ConfigurationError, RateLimiter, StorageError  # noqa: E402
from otel_ratelimit.engine import KeyConfig  # noqa: E402
from otel_ratelimit.headers import Observation  # noqa: E402
from otel_ratelimit.limits import Limit  # noqa: E402
from otel_ratelimit.storage import open_storage  # noqa: E402
from otel_ratelimit.storage.redis import PREFIX, RedisStorage  # noqa: E402

CONFIG = KeyConfig(limits=(Limit(5, 2.0, burst=2),))


def _sync_acquire(store, key: str):
    grant = store.acquire(key, CONFIG, 1, 60)
    store.observe(key, CONFIG, grant.ticket, 200, Observation())
    return grant


async def _async_acquire(store, key: str):
    grant = await store.aacquire(key, CONFIG, 1, 60)
    await store.aobserve(key, CONFIG, grant.ticket, 200, Observation())
    return grant  # the loop's client closes as asyncio.run shuts the loop down


@pytest.mark.parametrize("url", ["redis://user:s3cret@127.0.0.1:notaport/0",
                                 "redis://:s3cret@127.0.0.1:{port}/0",
                                 "redis+cluster://:s3cret@127.0.0.1:{port}"])  # fmt: skip
def test_bad_or_unreachable_redis_is_a_configuration_error(url):
    """A wrong URL or a dead port fails at construction, fast, without the password."""
    from conftest import free_port  # noqa: PLC0415

    url, started = url.format(port=free_port()), time.monotonic()
    with pytest.raises(ConfigurationError) as info:
        RateLimiter(storage=url)
    assert "s3cret" not in str(info.value) and "***" in str(info.value)
    assert time.monotonic() - started < 5


def test_passwords_tls_outages_and_ready_clients(redis_factory, redis_url, tmp_path):
    """A password in the URL works (a wrong one is a ConfigurationError); a server that goes
    away mid-use is a StorageError without the password; rediss:// and ready clients work."""
    port, proc = redis_factory("--requirepass", "s3cret",
                               ping_url=lambda p: f"redis://:s3cret@127.0.0.1:{p}")  # fmt: skip
    store = open_storage(f"redis://:s3cret@127.0.0.1:{port}/0")
    assert _sync_acquire(store, "pw.test").ok
    with pytest.raises(ConfigurationError) as info:
        RedisStorage(f"redis://:wrong-pw@127.0.0.1:{port}/0")
    assert "wrong-pw" not in str(info.value)
    proc.terminate()
    proc.wait(5)
    with pytest.raises(StorageError) as failed:
        store.acquire("pw.test", CONFIG, 1, 1)
    assert "s3cret" not in str(failed.value) and f"127.0.0.1:{port}" in str(failed.value)
    store.close()

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
               "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
               "-keyout", str(key), "-out", str(cert)]  # fmt: skip
    subprocess.run(openssl, check=True, capture_output=True)
    tls = f"rediss://127.0.0.1:{{}}/0?ssl_ca_certs={cert}"
    port, _ = redis_factory("--tls-cert-file", str(cert), "--tls-key-file", str(key),
                            "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
                            tls=True, ping_url=tls.format)  # fmt: skip
    store = RedisStorage(tls.format(port))
    assert _sync_acquire(store, "tls.test").ok
    assert asyncio.run(_async_acquire(store, "tls.test")).ticket == 2
    assert store.keys() == ["tls.test"]
    store.close()

    client = redis.Redis.from_url(redis_url)  # a ready client: used, and left open
    limiter = RateLimiter(storage=client)
    limiter.clear("c.test")
    assert _sync_acquire(limiter.storage, "c.test").ok
    assert asyncio.run(_async_acquire(limiter.storage, "c.test")).ticket == 2  # in a thread
    limiter.close()
    assert client.delete(f"{PREFIX}c.test}}") == 1
    client.close()
