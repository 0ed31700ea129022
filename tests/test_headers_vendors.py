"""Header parsing: each vendor's header style, and styles combined."""

from __future__ import annotations

import httpx
import pytest
from header_helpers import NOW, http_date, iso, quotas

from otel_ratelimit.headers import Observation, Quota, parse_headers


def test_github() -> None:
    """GitHub: epoch reset, bucket from x-ratelimit-resource."""
    obs = parse_headers(
        {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4999",
            "x-ratelimit-used": "1",
            "x-ratelimit-reset": str(int(NOW) + 3600),
            "x-ratelimit-resource": "core",
        },
        now=NOW,
    )
    assert obs.style == "github" and obs.bucket == "core" and obs.errors == 0
    assert obs.quotas == (Quota("default", 5000.0, 4999.0, 3600.0),)


def test_github_remaining_from_used() -> None:
    """Without x-ratelimit-remaining, GitHub's remaining is limit - used."""
    obs = parse_headers(
        httpx.Headers(
            {"X-RateLimit-Limit": "60", "X-RateLimit-Used": "45", "X-RateLimit-Reset": "0"}
        ),
        now=NOW,
    )
    assert obs.style == "github"
    assert obs.quotas == (Quota("default", 60.0, 15.0, 0.0),)


def test_twitter_mixed_case_tuples() -> None:
    """Twitter: x-rate-limit-* with epoch reset, names in any case."""
    obs = parse_headers(
        [
            ("X-Rate-Limit-Limit", "900"),
            ("x-rate-limit-remaining", "899"),
            ("X-RATE-LIMIT-RESET", str(int(NOW) + 900)),
        ],
        now=NOW,
    )
    assert obs.style == "twitter"
    assert obs.quotas == (Quota("default", 900.0, 899.0, 900.0),)


def test_openai() -> None:
    """OpenAI: requests and tokens policies with Go-duration resets."""
    obs = parse_headers(
        httpx.Headers(
            {
                "x-ratelimit-limit-requests": "60",
                "x-ratelimit-remaining-requests": "59",
                "x-ratelimit-reset-requests": "1s",
                "x-ratelimit-limit-tokens": "150000",
                "x-ratelimit-remaining-tokens": "149984",
                "x-ratelimit-reset-tokens": "6m0s",
            }
        ),
        now=NOW,
    )
    assert obs.style == "openai" and obs.errors == 0
    assert quotas(obs) == {
        "requests": Quota("requests", 60.0, 59.0, 1.0),
        "tokens": Quota("tokens", 150000.0, 149984.0, 360.0),
    }


def test_anthropic() -> None:
    """Anthropic: per-kind policies with RFC 3339 resets."""
    obs = parse_headers(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "49",
            "anthropic-ratelimit-requests-reset": iso(60),
            "anthropic-ratelimit-tokens-limit": "100000",
            "anthropic-ratelimit-tokens-remaining": "99000",
            "anthropic-ratelimit-tokens-reset": "2023-11-14T22:13:21.5Z",
            "Anthropic-RateLimit-Input-Tokens-Limit": "40000",
            "Anthropic-RateLimit-Input-Tokens-Remaining": "39000",
            "Anthropic-RateLimit-Input-Tokens-Reset": "2023-11-14T23:13:30+01:00",
            "anthropic-ratelimit-output-tokens-limit": "8000",
            "anthropic-ratelimit-output-tokens-remaining": "8000",
            "anthropic-ratelimit-output-tokens-reset": iso(-5),
        },
        now=NOW,
    )
    assert obs.style == "anthropic" and obs.errors == 0
    assert quotas(obs) == {
        "requests": Quota("requests", 50.0, 49.0, 60.0),
        "tokens": Quota("tokens", 100000.0, 99000.0, 1.5),
        "input-tokens": Quota("input-tokens", 40000.0, 39000.0, 10.0),
        "output-tokens": Quota("output-tokens", 8000.0, 8000.0, 0.0),
    }


def test_discord_prefers_reset_after() -> None:
    """Discord: Reset-After wins over Reset; bucket and global flag are reported."""
    obs = parse_headers(
        httpx.Headers(
            {
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": f"{NOW + 9:.3f}",
                "X-RateLimit-Reset-After": "1.337",
                "X-RateLimit-Bucket": "abcd1234abcd1234",
                "X-RateLimit-Global": "true",
                "X-RateLimit-Scope": "global",
                "Retry-After": "2",
            }
        ),
        now=NOW,
    )
    assert obs.style == "discord" and obs.errors == 0
    assert obs.bucket == "abcd1234abcd1234" and obs.is_global and obs.retry_after == 2.0
    assert obs.quotas == (Quota("default", 5.0, 0.0, 1.337),)


def test_discord_epoch_with_millis() -> None:
    """Discord's X-RateLimit-Reset is epoch seconds with a millisecond fraction."""
    obs = parse_headers(
        {
            "x-ratelimit-limit": "5",
            "x-ratelimit-remaining": "4",
            "x-ratelimit-reset": f"{NOW + 2.25:.3f}",
            "x-ratelimit-bucket": "b",
        },
        now=NOW,
    )
    assert obs.style == "discord" and not obs.is_global
    assert obs.quotas[0].reset_after == pytest.approx(2.25)


def test_discord_scope_global_without_limits() -> None:
    """A Discord 429 with only scope and Retry-After still says global."""
    obs = parse_headers({"X-RateLimit-Scope": "global", "Retry-After": "3"}, now=NOW)
    assert obs.is_global and obs.retry_after == 3.0 and obs.quotas == ()
    assert obs.style == "discord"


def test_reddit() -> None:
    """Reddit: used + remaining (float) = limit, delta reset."""
    obs = parse_headers(
        {"X-Ratelimit-Used": "2", "X-Ratelimit-Remaining": "598.0", "X-Ratelimit-Reset": "240"},
        now=NOW,
    )
    assert obs.style == "reddit"
    assert obs.quotas == (Quota("default", 600.0, 598.0, 240.0),)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("32/40", Quota("default", 40.0, 8.0, 16.0, 20.0)),
        ("0/40", Quota("default", 40.0, 40.0, 0.0, 20.0)),
        ("400/400", Quota("default", 400.0, 0.0, 20.0, 20.0)),
        ("50/40", Quota("default", 40.0, 0.0, 20.0, 20.0)),
    ],
)
def test_shopify(value: str, expected: Quota) -> None:
    """Shopify: a leaky bucket that drains capacity/20 per second."""
    obs = parse_headers(httpx.Headers({"X-Shopify-Shop-Api-Call-Limit": value}), now=NOW)
    assert obs.style == "shopify" and obs.quotas == (expected,)


def test_stripe_reason() -> None:
    """Stripe sends no limits, only a reason (and maybe Retry-After) on 429."""
    obs = parse_headers({"Stripe-Rate-Limited-Reason": "global-rate", "Retry-After": "1"}, now=NOW)
    assert obs.reason == "global-rate" and obs.retry_after == 1.0 and obs.quotas == ()
    assert not obs.empty


def test_reason_truncated() -> None:
    """Reasons are truncated to 64 characters."""
    obs = parse_headers({"stripe-rate-limited-reason": "x" * 100}, now=NOW)
    assert obs.reason == "x" * 64 and obs.errors == 0


def test_rapidapi() -> None:
    """RapidAPI: x-ratelimit-requests-* with delta reset, policy "requests"."""
    obs = parse_headers(
        {
            "X-RateLimit-Requests-Limit": "1000",
            "X-RateLimit-Requests-Remaining": "999",
            "X-RateLimit-Requests-Reset": "3600",
        },
        now=NOW,
    )
    assert obs.style == "rapidapi"
    assert obs.quotas == (Quota("requests", 1000.0, 999.0, 3600.0),)


@pytest.mark.parametrize(
    "reset",
    [
        "30",
        "30.0",
        str(int(NOW) + 30),
        str(int(NOW + 30) * 1000),
        iso(30),
        http_date(30),
    ],
)
def test_generic_reset_heuristic(reset: str) -> None:
    """Generic x-ratelimit-*: delta, epoch s, epoch ms, RFC 3339 and HTTP-date all work."""
    obs = parse_headers(
        {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "7", "X-RateLimit-Reset": reset},
        now=NOW,
    )
    assert obs.style == "generic" and obs.errors == 0
    assert obs.quotas == (Quota("default", 100.0, 7.0, 30.0),)


def test_no_rate_limit_headers() -> None:
    """Unrelated headers give an empty observation with no errors."""
    obs = parse_headers(httpx.Headers({"Content-Type": "text/html", "X-Foo": "nan"}), now=NOW)
    assert obs == Observation() and obs.empty


def test_httpx2_headers() -> None:
    """httpx2.Headers works like httpx.Headers."""
    httpx2 = pytest.importorskip("httpx2")
    headers = httpx2.Headers([("RateLimit-Policy", '"a";q=5'), ("ratelimit-policy", '"b";q=6')])
    obs = parse_headers(headers, now=NOW)
    assert [q.policy for q in obs.quotas] == ["a", "b"]


def test_bytes_pairs() -> None:
    """Raw (bytes, bytes) pairs are accepted."""
    obs = parse_headers([(b"X-RateLimit-Limit", b"10"), (b"x-ratelimit-remaining", b"3")], now=NOW)
    assert obs.quotas == (Quota("default", 10.0, 3.0, None),)


def test_openai_and_generic_combine() -> None:
    """Distinct policies from different rows are all kept."""
    obs = parse_headers(
        {
            "x-ratelimit-limit-requests": "10",
            "x-ratelimit-remaining-requests": "9",
            "x-ratelimit-limit": "5",
            "x-ratelimit-remaining": "4",
        },
        now=NOW,
    )
    assert obs.style == "openai"
    assert set(quotas(obs)) == {"requests", "default"}
