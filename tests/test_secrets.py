"""Planted secrets (bearer token, API keys, cookie, query values, Redis password) never leave:
every Redis key and value, span, metric point, log record and CLI output is scanned."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

redis = pytest.importorskip("redis")

from conftest import HOST, free_port, start_server, stop_server  # noqa: E402
from otel_sdk import Otel  # noqa: E402

from otel_ratelimit import RateLimitExceeded  # noqa: E402
from otel_ratelimit.credentials import DEFAULT_CREDENTIAL_KEY, CredentialPartition  # noqa: E402
from otel_ratelimit.testing import Upstream  # noqa: E402

BEARER = "tok-PLANTED-bearer-7c1f"
X_API_KEY = "PLANTED-xkey-0d2c"
COOKIE = "PLANTED-cookie-b2e9"
QUERY_KEY = "PLANTED-qkey-41d0"
QUERY_TOKEN = "PLANTED-qtok-93aa"
REDIS_PW = "PLANTED-redispw-5e6a"
MARK = "PLANTED"  # in every secret above, and in nothing else
CLI = [sys.executable, "-m", "otel_ratelimit.cli"]


def _cli(*runs: list[str]) -> list[str]:
    """Run the CLI once per argument list, side by side: each one's exit code and output."""
    procs = [subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for args in runs]  # fmt: skip
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        outputs.append(f"exit {proc.returncode}\n{out}\n{err}")
    return outputs


def _redis_dump(url: str) -> tuple[list[bytes], str]:
    """Every key, and every value (GET of strings, DUMP of anything else) as one text."""
    admin = redis.Redis.from_url(url)
    try:
        keys = list(admin.scan_iter("*", count=1000))
        values = [admin.get(k) if admin.type(k) == b"string" else admin.dump(k) for k in keys]
    finally:
        admin.close()
    return keys, repr(keys) + repr(values)


def _traffic(up: Upstream, limiter, url: str) -> None:
    query = f"{url}/v1/items?api_key={QUERY_KEY}&token={QUERY_TOKEN}&page=2"
    auth = {"Authorization": f"Bearer {BEARER}", "Cookie": f"session={COOKIE}"}
    with limiter.client() as client:
        for _ in range(12):
            client.get(query, headers=auth)
        with contextlib.suppress(RateLimitExceeded):  # a denial, with its span event
            client.post(query, headers=auth, json={"q": 1},
                        extensions={"otel_ratelimit.max_wait": 0})  # fmt: skip

    async def run() -> None:
        async with limiter.async_client(cookies={"s": COOKIE}) as client:
            for _ in range(8):
                await client.get(query, headers={"X-Api-Key": X_API_KEY})

    asyncio.run(run())
    for _ in range(3):
        limiter.request("GET", query, headers=auth)
    dead = f"http://{HOST}:{free_port()}/x?api_key={QUERY_KEY}&token={QUERY_TOKEN}"
    with pytest.raises(httpx.ConnectError):
        limiter.request("GET", dead, headers=auth)


def test_no_planted_secret_reaches_redis_spans_metrics_logs_or_cli(tmp_path: Path, caplog):
    """A full run through real Redis, the OTel SDK, logging and the CLI leaks none of them."""
    caplog.set_level(logging.DEBUG, logger="otel_ratelimit")
    port = free_port()
    url = f"redis://:{REDIS_PW}@{HOST}:{port}/0"
    proc = start_server(tmp_path, port, "--requirepass", REDIS_PW, ping_url=url)
    otel = Otel()
    up = Upstream("github", limit=20, window=1.0, latency=0.0).start()
    limiter = otel.limiter(storage=url, partition_by_credentials=True, max_wait=3.0)
    try:
        _traffic(up, limiter, up.url)
        keys, stored = _redis_dump(url)
        assert MARK not in stored
        tags = {k.decode().split("#", 1)[1].rstrip("}") for k in keys if b"#" in k}
        partition = CredentialPartition(DEFAULT_CREDENTIAL_KEY)
        assert {partition.tag(f"Bearer {BEARER}"), partition.tag(X_API_KEY)} <= tags

        outputs = _cli(
            ["--storage", url, "status", "--json"],
            ["--storage", url, "status"],
            ["--storage", url.replace(REDIS_PW, REDIS_PW + "-wrong"), "status"],
            ["--storage", url.replace(f"{port}/0", f"{port}/x"), "status"],
            ["probe", f"{up.url}/v1?api_key={QUERY_KEY}&token={QUERY_TOKEN}",
             "-H", f"Authorization: Bearer {BEARER}", "-H", f"Cookie: s={COOKIE}", "--json"],
            ["probe", f"{up.url}/v1?api_key={QUERY_KEY}", "-H", f"X-Api-Key: {X_API_KEY}"],
            ["probe", f"http://{HOST}:{free_port()}/?token={QUERY_TOKEN}",
             "-H", f"Authorization: Bearer {BEARER}"],
        )  # fmt: skip
        assert [o.split("\n", 1)[0] for o in outputs] == [
            "exit 0", "exit 0", "exit 2", "exit 2", "exit 0", "exit 0", "exit 4"]  # fmt: skip
        assert '"endpoint"' in outputs[0] and "#" in outputs[0]  # the CLI saw the partitioned keys
        for output in outputs:
            assert MARK not in output, output

        proc.kill()  # an outage: the failure policy logs about the store (and its URL)
        proc.wait(5)
        _traffic(up, limiter, up.url)
        proc = start_server(tmp_path, port, "--requirepass", REDIS_PW, ping_url=url)
        _traffic(up, limiter, up.url)
    finally:
        limiter.close()
        up.stop()
        stop_server(proc)

    spans = otel.exporter.get_finished_spans()
    assert len(spans) > 40 and any(not s.status.is_ok for s in spans)  # failures recorded too
    assert MARK not in "".join(span.to_json() for span in spans)
    metrics = otel.reader.get_metrics_data().to_json()
    assert "ratelimit.key" in metrics and "#" in metrics
    assert MARK not in metrics
    ours = [r for r in caplog.records if r.name.startswith("otel_ratelimit")]
    assert any("unavailable" in r.getMessage() or "back" in r.getMessage() for r in ours), ours
    formatter = logging.Formatter("%(name)s %(message)s %(args)s")
    assert MARK not in "\n".join(formatter.format(r) for r in ours)


def test_partitions_are_keyed_hashes_of_the_credential(monkeypatch):
    """Same credential and secret: same tag in every process; another secret: another tag."""
    request = httpx.Request("GET", "https://a.io/", headers={"authorization": f"Bearer {BEARER}"})
    tag = CredentialPartition("secret-1")(request)
    assert tag is not None and len(tag) == 12 and int(tag, 16) >= 0
    assert CredentialPartition(b"secret-1")(request) == tag
    assert CredentialPartition("secret-2")(request) != tag
    other = httpx.Request("GET", "https://a.io/", headers={"Authorization": "Bearer other"})
    assert CredentialPartition("secret-1")(other) != tag
    assert CredentialPartition("secret-1")(httpx.Request("GET", "https://a.io/")) is None
    monkeypatch.setenv("OTEL_RATELIMIT_CREDENTIAL_KEY", "secret-1")
    assert CredentialPartition()(request) == tag
    assert "secret-1" not in repr(CredentialPartition())
    line = json.dumps({"tag": tag})
    assert BEARER not in line and MARK not in line


def test_partitioned_keys_keep_their_host_configuration():
    """A partition is limited like its host (set_limit, presets): each token its own quota."""
    from otel_ratelimit import RateLimiter  # noqa: PLC0415

    with (
        Upstream("ietf", limit=100, latency=0.0) as up,
        RateLimiter(partition_by_credentials=True, retry=False, credential_key="k") as limiter,
    ):
        limiter.set_limit(up.url, 2, "1s", burst=2)
        for token in ("a", "b"):
            for _ in range(2):
                limiter.request("GET", up.url, headers={"Authorization": f"Bearer {token}"})
        keys = limiter.storage.keys()
        assert len(keys) == 2 and all("#" in k for k in keys)
        status = limiter.get_status(keys[0])
        assert status is not None and status.limit == 2
