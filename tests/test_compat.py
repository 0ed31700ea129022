"""The older libraries' entry points: requests sessions, aiohttp, preset clients, metrics text."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import aiohttp
import httpx
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from otel_ratelimit import PRESETS, ConfigurationError, RateLimiter, make_client_for
from otel_ratelimit.testing import Upstream


class _Recorder(ThreadingHTTPServer):
    """A local API that records each request's headers and answers from a list of statuses."""

    daemon_threads = True

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.seen: list[dict[str, str]] = []
        self.statuses = list(statuses or [])
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _RecordingHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _RecordingHandler(BaseHTTPRequestHandler):
    server: _Recorder

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.seen.append({k.lower(): v for k, v in self.headers.items()})
            status = self.server.statuses.pop(0) if self.server.statuses else 200
        body = json.dumps({"n": len(self.server.seen)}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("RateLimit-Policy", '"default";q=100;w=60')
        self.send_header("RateLimit", '"default";r=90;t=30')
        self.send_header("Set-Cookie", "session=abc; Path=/")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    server = _Recorder()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    thread.join()
    server.server_close()


def test_wrap_session_keeps_auth_headers_and_cookies(recorder):
    """The server sees the session's auth, headers and cookies; the limiter learns the quota."""
    limiter = RateLimiter()
    with requests.Session() as session:
        session.auth = ("user", "pass")
        session.headers["X-Team"] = "blue"
        session.cookies.set("pref", "dark")
        assert limiter.wrap_session(session) is session
        limiter.wrap_session(session)  # a second call does not wrap twice
        assert session.get(recorder.url + "/a").status_code == 200
        assert session.get(recorder.url + "/b").json() == {"n": 2}
    first, second = recorder.seen
    assert first["authorization"].startswith("Basic ") and first["x-team"] == "blue"
    assert "pref=dark" in first["cookie"]
    assert "session=abc" in second["cookie"]  # the cookie the server set came back
    status = limiter.get_status(recorder.url)
    assert (status.limit, status.policies[0].source) == (100, "header")
    adapter = session.get_adapter(recorder.url)
    assert type(adapter).__name__ == "LimitedAdapter"
    assert type(adapter.inner).__name__ == "HTTPAdapter"


def test_wrapped_session_from_8_threads_meets_no_429():
    """A wrapped session shared by 8 threads stays inside a GitHub-style limit."""
    limiter = RateLimiter()
    with Upstream("github", limit=10, window=1.0) as api, requests.Session() as session:
        limiter.wrap_session(session)
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda i: session.get(f"{api.url}/{i}").status_code, range(20)))
        stats = api.stats()
    assert codes.count(200) == 20 and stats["rejected"] == 0, stats


def test_wrap_session_rejects_other_objects():
    """Anything but a requests.Session is a ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match=r"requests\.Session"), httpx.Client() as client:
        RateLimiter().wrap_session(client)


def test_aiohttp_request_and_middleware_meet_no_429():
    """arequest_aiohttp and the session middleware keep 20 concurrent requests under the limit."""

    async def main(url: str, url2: str) -> tuple[list[int], list[int]]:
        limiter = RateLimiter()
        async with aiohttp.ClientSession() as session:
            first = await asyncio.gather(
                *(limiter.arequest_aiohttp(session, "GET", f"{url}/a{i}") for i in range(20))
            )
            codes = [r.status for r in first]
            for r in first:
                r.release()
        limiter2 = RateLimiter()
        async with aiohttp.ClientSession(middlewares=(limiter2.aiohttp_middleware(),)) as s:

            async def one(i: int) -> int:
                async with s.get(f"{url2}/b{i}") as r:
                    return r.status

            codes2 = list(await asyncio.gather(*(one(i) for i in range(20))))
        return codes, codes2

    with Upstream("openai", limit=10, window=1.0) as api, \
            Upstream("discord", limit=10, window=1.0) as api2:  # fmt: skip
        codes, codes2 = asyncio.run(main(api.url, api2.url))
        stats, stats2 = api.stats(), api2.stats()
    assert codes == [200] * 20 and codes2 == [200] * 20
    assert stats == stats2 == {"ok": 20, "rejected": 0, "total": 20}


def test_client_for_applies_the_preset_to_its_base_url():
    """client_for("notion", base_url=local) paces at Notion's 3/s and keeps client.limiter."""
    limiter = RateLimiter()
    with Upstream("429-only", limit=100, window=1.0) as api:
        with limiter.client_for("notion", base_url=api.url) as client:
            assert client.limiter is limiter and client.preset.name == "notion"
            key = f"{client.base_url.host}:{client.base_url.port}"
            assert limiter.config_for(key).limits == PRESETS["notion"].limits
            for _ in range(9):
                assert client.get("/pages/1").status_code == 200
        status = limiter.get_status(api.url)
    assert status.limit == 3 and status.policies[0].source == "configured"


def test_client_for_unknown_preset_names_it():
    """An unknown preset name is a ConfigurationError listing the known ones."""
    with pytest.raises(ConfigurationError, match=r"unknown preset 'nope'.*notion"):
        RateLimiter().client_for("nope")
    with pytest.raises(ConfigurationError, match="backoff_status_codes"):
        RateLimiter().client_for("notion", backoff_status_codes=(200,))


def test_make_client_for_honours_backoff_status_codes(recorder):
    """A 502 pauses the key only when 502 is one of the client's backoff_status_codes."""
    recorder.statuses = [502, 502]
    plain = make_client_for("vanta", base_url=recorder.url)
    picky = make_client_for("vanta", base_url=recorder.url, backoff_status_codes=(429, 502))
    with plain, picky:
        assert plain.get("/x").status_code == 502
        assert picky.get("/x").status_code == 502
        assert picky.limiter.snapshot(recorder.url)["cooldown_until"] > 0
        assert plain.limiter.snapshot(recorder.url)["cooldown_until"] == 0.0
        assert picky.limiter.config_for(picky.base_url.host).backoff_status_codes == {429, 502}
    assert picky.preset.adaptive == PRESETS["vanta"].adaptive


def test_async_client_for_is_an_async_client():
    """async_client_for gives an httpx.AsyncClient with the preset's base_url and limits."""

    async def main(url: str) -> list[int]:
        limiter = RateLimiter()
        async with limiter.async_client_for("airtable", base_url=url) as client:
            assert isinstance(client, httpx.AsyncClient)
            responses = await asyncio.gather(*(client.get(f"/v0/t{i}") for i in range(8)))
        return [r.status_code for r in responses]

    with Upstream("429-only", limit=5, window=1.0) as api:
        codes = asyncio.run(main(api.url))
        stats = api.stats()
    assert codes == [200] * 8 and stats["rejected"] == 0, stats


def test_metrics_text_is_accepted_by_the_prometheus_parser():
    """metrics_text() parses with prometheus_client, one sample per key and policy."""
    limiter = RateLimiter(retry=False)  # the 429 reaches the caller: the rate was learned
    with Upstream("openai", limit=20, window=5.0) as openai, \
            Upstream("429-only", limit=1, window=1.0) as silent:  # fmt: skip
        limiter.request("GET", openai.url + "/v1/models")
        with limiter.client(base_url=silent.url) as client:
            codes = [client.get("/x").status_code for _ in range(3)]
    assert 429 in codes
    text = limiter.metrics_text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    names = {"limit", "remaining", "utilization", "reset_seconds", "rate", "cooldown_seconds",
             "exceeded"}  # fmt: skip
    assert {f"ratelimit_status_{n}" for n in names} == set(families)
    assert all(f.type == "gauge" for f in families.values())
    limits = {(s.labels["key"], s.labels["policy"]): s.value
              for s in families["ratelimit_status_limit"].samples}  # fmt: skip
    openai_key = openai.url.split("//")[1]
    assert limits[(openai_key, "requests")] == 20
    assert limits[(openai_key, "tokens")] == 10_000_000
    rates = {s.labels["key"]: s.value for s in families["ratelimit_status_rate"].samples}
    assert rates == {silent.url.split("//")[1]: pytest.approx(limiter.get_status(silent.url).rate)}
    assert text.endswith("\n") and "ratelimit_requests_total" not in text
    limiter.close()


def test_metrics_text_of_an_empty_limiter_still_parses():
    """No keys: only HELP/TYPE lines, still valid."""
    families = list(text_string_to_metric_families(RateLimiter().metrics_text()))
    assert families and all(not f.samples for f in families)


def test_shared_transport_closes_when_the_last_user_is_done():
    """A client closing mid-stream of another leaves the pool open; the last one closes it."""
    limiter = RateLimiter()
    with Upstream("github", limit=50, window=5.0) as api:
        transport = limiter.shared_transport()
        pool = transport.inner.pool._pool  # the httpcore connection pool
        first, second = httpx.Client(transport=transport), httpx.Client(transport=transport)
        with first.stream("GET", api.url + "/a") as streaming:
            assert second.get(api.url + "/b").status_code == 200
            second.close()  # what githubkit does after each request
            assert len(pool.connections) == 2  # still open: the stream is in use
            assert streaming.read() == b'{"ok": true}'
        assert len(pool.connections) == 0  # the last user closed it
        assert first.get(api.url + "/c").status_code == 200  # and it opens again on demand
        first.close()
        assert len(pool.connections) == 0


def test_arequest_aiohttp_partitions_by_credential():
    """Session and call headers both count: each token is its own key, the token in none."""

    async def main(url: str, limiter: RateLimiter) -> list[int]:
        codes = []
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer session-token"}) as s:
            for headers in (None, {"Authorization": "Bearer call-token"}, None):
                response = await limiter.arequest_aiohttp(s, "GET", url, headers=headers)
                codes.append(response.status)
                response.release()
        return codes

    with (
        Upstream("ietf", limit=100, latency=0.0) as up,
        RateLimiter(partition_by_credentials=True, credential_key="k") as limiter,
    ):
        assert asyncio.run(main(up.url, limiter)) == [200, 200, 200]
        keys = limiter.storage.keys()
    assert len(keys) == 2 and all("#" in key for key in keys), keys  # the session's, the call's
    assert not any(token in key for key in keys for token in ("token", "Bearer"))
