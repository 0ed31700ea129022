"""Official SDKs given a limited client: their own retries no longer meet 429s.

Each test runs the SDK from 8 threads against a local stand-in of the vendor's endpoint that
speaks the vendor's rate-limit headers and JSON, first alone and then with the limiter, and
counts the 429s the stand-in had to send. Run with ``-s`` to see both figures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anthropic
import githubkit
import httpx
import notion_client
import openai
import pytest

from otel_ratelimit import RateLimiter
from otel_ratelimit.testing import Upstream

THREADS, CALLS = 8, 40

_OK = {
    "openai": {"id": "chatcmpl-1", "object": "chat.completion", "created": 0,
               "model": "gpt-4o-mini", "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                                 "total_tokens": 2},
               "choices": [{"index": 0, "finish_reason": "stop",
                            "message": {"role": "assistant", "content": "hi"}}]},
    "anthropic": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
                  "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
                  "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1}},
    "notion": {"object": "user", "id": "u-1", "type": "bot", "bot": {}},
    "github": {"login": "octocat", "id": 1},
}  # fmt: skip
_ERROR = {
    "openai": {"error": {"message": "Rate limit reached", "type": "requests",
                         "code": "rate_limit_exceeded"}},
    "anthropic": {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}},
    "notion": {"object": "error", "status": 429, "code": "rate_limited", "message": "slow"},
    "github": {"message": "API rate limit exceeded"},
}  # fmt: skip


class StandIn(Upstream):
    """An Upstream answering with one vendor's JSON bodies (and its header style)."""

    def __init__(self, vendor: str, style: str, *, limit: int, **kw: Any) -> None:
        super().__init__(style, limit=limit, window=1.0, **kw)
        self.vendor = vendor

    def body(self, d: Any) -> dict[str, object]:
        return _OK[self.vendor] if d.admitted else _ERROR[self.vendor]


def _hammer(call: Callable[[], Any], calls: int) -> int:
    """``calls`` calls from THREADS threads; how many raised (the SDK gave up)."""

    def one(_: int) -> int:
        try:
            call()
        except Exception:  # the SDK's own error after its retries ran out
            return 1
        return 0

    with ThreadPoolExecutor(THREADS) as pool:
        return sum(pool.map(one, range(calls)))


def _compare(name: str, apis: tuple[StandIn, StandIn], alone: Callable[[], Any],
             limited: Callable[[], Any], calls: int = CALLS) -> None:  # fmt: skip
    """Run the SDK alone against one stand-in, with the limiter against its twin; compare."""
    failed_alone = _hammer(alone, calls)
    failed = _hammer(limited, calls)
    stats_alone, stats = apis[0].stats(), apis[1].stats()
    share = stats_alone["rejected"] / stats_alone["total"]
    print(f"\n{name}: alone {stats_alone['rejected']}/{stats_alone['total']} responses were "
          f"429 ({share:.0%}), {failed_alone} calls failed; with the limiter "
          f"{stats['rejected']}/{stats['total']}, {failed} failed")  # fmt: skip
    assert stats_alone["rejected"] > 0  # the stand-in does push back on the bare SDK
    assert failed == 0 and stats["ok"] == calls
    assert stats["rejected"] == 0, stats


@pytest.mark.slow
def test_openai_sdk():
    """openai.OpenAI(http_client=limiter.client()) meets no 429 from 8 threads."""
    with StandIn("openai", "openai", limit=20) as a, StandIn("openai", "openai", limit=20) as b:
        bare = openai.OpenAI(api_key="sk-test", base_url=a.url + "/v1", max_retries=5)
        limiter = RateLimiter()
        sdk = openai.OpenAI(api_key="sk-test", base_url=b.url + "/v1", max_retries=5,
                            http_client=limiter.client())  # fmt: skip

        def call(client: openai.OpenAI) -> Callable[[], Any]:
            return lambda: client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )

        _compare("openai", (a, b), call(bare), call(sdk))
        reply = sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert reply.choices[0].message.content == "hi"
        bare.close()
        sdk.close()


@pytest.mark.slow
def test_anthropic_sdk_takes_an_httpx2_client():
    """anthropic.Anthropic accepts only httpx2 clients: limiter.client(package="httpx2")."""
    with StandIn("anthropic", "anthropic", limit=20) as a, \
            StandIn("anthropic", "anthropic", limit=20) as b:  # fmt: skip
        with pytest.raises(TypeError), httpx.Client() as plain:
            anthropic.Anthropic(api_key="k", base_url=a.url, http_client=plain)
        bare = anthropic.Anthropic(api_key="k", base_url=a.url, max_retries=5)
        limiter = RateLimiter()
        sdk = anthropic.Anthropic(api_key="k", base_url=b.url, max_retries=5,
                                  http_client=limiter.client(package="httpx2"))  # fmt: skip

        def call(client: anthropic.Anthropic) -> Callable[[], Any]:
            return lambda: client.messages.create(
                model="claude-x", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
            )

        _compare("anthropic", (a, b), call(bare), call(sdk))
        bare.close()
        sdk.close()


@pytest.mark.slow
def test_notion_client_with_the_notion_preset():
    """notion_client.Client(client=limiter.client()) paced by the Notion preset (3/s)."""
    # Notion documents "an average of 3 requests/second, bursts allowed": a bucket of 4
    # draining 4/s, so that the preset's 3/s (bursts of 3) has some room for timing jitter.
    style = {"style": "retry-after-seconds", "limit": 4, "algorithm": "gcra"}
    with StandIn("notion", **style) as a, StandIn("notion", **style) as b:
        bare = notion_client.Client(auth="secret_x", base_url=a.url)
        # the stand-in is not api.notion.com: give the Notion preset its host
        limiter = RateLimiter(presets={"notion": {"hosts": ("127.0.0.1",)}})
        sdk = notion_client.Client(auth="secret_x", base_url=b.url, client=limiter.client())
        _compare("notion", (a, b), bare.users.me, sdk.users.me, calls=15)
        bare.close()
        sdk.close()


@pytest.mark.slow
def test_githubkit_with_limited_transports():
    """githubkit.GitHub(transport=limiter.shared_transport()) reads GitHub's x-ratelimit headers.

    githubkit closes the client (and so the transport) it builds for each request: a plain
    shared transport fails other threads' requests with "Bad file descriptor".
    """
    with StandIn("github", "github", limit=10) as a, StandIn("github", "github", limit=10) as b:
        bare = githubkit.GitHub("ghp_x", base_url=a.url, http_cache=False)
        limiter = RateLimiter()
        sdk = githubkit.GitHub("ghp_x", base_url=b.url, http_cache=False,
                               transport=limiter.shared_transport())  # fmt: skip

        def call(gh: githubkit.GitHub[Any]) -> Callable[[], Any]:
            return lambda: gh.request("GET", "/users/octocat").json()

        _compare("githubkit", (a, b), call(bare), call(sdk), calls=30)


def test_githubkit_async_with_a_shared_async_transport():
    """githubkit's async client, 16 concurrent coroutines: no 429, no closed-pool errors."""
    with StandIn("github", "github", limit=10) as api:
        limiter = RateLimiter()
        gh = githubkit.GitHub("ghp_x", base_url=api.url, http_cache=False,
                              async_transport=limiter.shared_async_transport())  # fmt: skip

        async def main() -> list[int]:
            calls = (gh.arequest("GET", f"/users/u{i}") for i in range(16))
            return [r.status_code for r in await asyncio.gather(*calls)]

        assert asyncio.run(main()) == [200] * 16
        assert api.stats() == {"ok": 16, "rejected": 0, "total": 16}
