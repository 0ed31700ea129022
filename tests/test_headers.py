"""Tests for otel_ratelimit.headers: every vendor style, every reset encoding, and garbage."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from email.utils import format_datetime

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_ratelimit import headers as h
from otel_ratelimit.headers import (
    MAX_RESET_SECONDS,
    Observation,
    Quota,
    parse_headers,
    parse_reset,
    parse_retry_after,
)

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def iso(offset: float) -> str:
    """RFC 3339 UTC timestamp `offset` seconds after NOW."""
    return datetime.fromtimestamp(NOW + offset, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def http_date(offset: float) -> str:
    """HTTP-date `offset` seconds after NOW."""
    return format_datetime(datetime.fromtimestamp(NOW + offset, tz=timezone.utc), usegmt=True)


def quotas(obs: Observation) -> dict[str, Quota]:
    """The observation's quotas keyed by policy name."""
    return {q.policy: q for q in obs.quotas}


def assert_sane(obs: Observation) -> None:
    """Every number in the observation is within the documented bounds."""
    assert obs.errors >= 0
    if obs.retry_after is not None:
        assert 0 <= obs.retry_after <= MAX_RESET_SECONDS
    for q in obs.quotas:
        assert q.limit is not None or q.remaining is not None
        if q.limit is not None:
            assert math.isfinite(q.limit) and q.limit > 0
        if q.remaining is not None:
            assert math.isfinite(q.remaining) and q.remaining >= 0
            if q.limit is not None:
                assert q.remaining <= q.limit
        if q.reset_after is not None:
            assert 0 <= q.reset_after <= MAX_RESET_SECONDS
        if q.window is not None:
            assert 0 < q.window <= MAX_RESET_SECONDS


# --- vendor styles ------------------------------------------------------------------------


def test_ietf_multiple_policies_per_field() -> None:
    """IETF draft-09+ lists carry several policies per field, joined by policy name."""
    obs = parse_headers(
        httpx.Headers(
            {
                "RateLimit-Policy": '"burst";q=100;w=60, "daily";q=1000;w=86400',
                "RateLimit": '"burst";r=50;t=30, daily;r=999;t=3600',
            }
        ),
        now=NOW,
    )
    assert obs.style == "ietf" and obs.errors == 0
    assert obs.quotas == (
        Quota("burst", 100.0, 50.0, 30.0, 60.0),
        Quota("daily", 1000.0, 999.0, 3600.0, 86400.0),
    )


def test_ietf_repeated_fields_are_joined() -> None:
    """Repeated header lines form one list (HTTP list semantics), whatever their case."""
    obs = parse_headers(
        [
            ("ratelimit-policy", '"a";q=10;w=1'),
            ("RateLimit-Policy", "b;q=20;w=2"),
            ("RATELIMIT", '"b";r=5;t=1'),
        ],
        now=NOW,
    )
    assert quotas(obs) == {
        "a": Quota("a", 10.0, None, None, 1.0),
        "b": Quota("b", 20.0, 5.0, 1.0, 2.0),
    }


def test_ietf_policy_only_has_no_remaining() -> None:
    """A policy named only in RateLimit-Policy yields a quota with remaining=None."""
    obs = parse_headers({"ratelimit-policy": '"default";q=100;w=60'}, now=NOW)
    assert obs.quotas == (Quota("default", 100.0, None, None, 60.0),)


def test_ietf_remaining_clamped_to_quota() -> None:
    """More remaining than the quota is clamped, not counted as an error."""
    obs = parse_headers(
        {"RateLimit-Policy": '"p";q=10', "RateLimit": '"p";r=50;t=0'},
        now=NOW,
    )
    assert obs.quotas == (Quota("p", 10.0, 10.0, 0.0, None),) and obs.errors == 0


def test_ietf_07_dictionary() -> None:
    """Draft-07 `RateLimit: limit=.., remaining=.., reset=..` with a numeric policy window."""
    obs = parse_headers(
        {"RateLimit": "limit=10, remaining=1, reset=7", "RateLimit-Policy": "10;w=1"},
        now=NOW,
    )
    assert obs.style == "ietf-07" and obs.errors == 0
    assert obs.quotas == (Quota("default", 10.0, 1.0, 7.0, 1.0),)


def test_ietf_06_envoy_multi_window() -> None:
    """Envoy's RateLimit-Limit gives the current limit and extra `N;w=W` windows."""
    obs = parse_headers(
        httpx.Headers(
            {
                "RateLimit-Limit": "10, 10;w=1, 1000;w=3600",
                "RateLimit-Remaining": "1",
                "RateLimit-Reset": "7",
            }
        ),
        now=NOW,
    )
    assert obs.style == "ietf-06" and obs.errors == 0
    assert obs.quotas == (
        Quota("default", 10.0, 1.0, 7.0, 1.0),
        Quota("w3600", 1000.0, None, None, 3600.0),
    )


def test_ietf_06_plain_limit() -> None:
    """A bare RateLimit-Limit number has no window."""
    obs = parse_headers({"ratelimit-limit": "60", "ratelimit-remaining": "0"}, now=NOW)
    assert obs.quotas == (Quota("default", 60.0, 0.0, None, None),)


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


# --- combinations -------------------------------------------------------------------------


def test_ietf_plus_retry_after() -> None:
    """Several styles in one response are combined."""
    obs = parse_headers(
        {
            "RateLimit-Policy": '"default";q=100;w=60',
            "RateLimit": '"default";r=0;t=30',
            "Retry-After": "30",
            "X-RateLimit-Limit": "50",
            "X-RateLimit-Remaining": "0",
        },
        now=NOW,
    )
    assert obs.style == "ietf" and obs.retry_after == 30.0
    # generic also reported "default": the earlier (IETF) row wins
    assert obs.quotas == (Quota("default", 100.0, 0.0, 30.0, 60.0),)


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


# --- reset encodings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        ("7", "delta", 7.0),
        ("7.25", "delta", 7.25),
        ("0", "delta", 0.0),
        (" 7 ", "auto", 7.0),
        (str(int(NOW) + 60), "epoch", 60.0),
        (f"{NOW + 1.5:.3f}", "epoch", 1.5),
        (str(int(NOW) + 60), "auto", 60.0),
        (str(int(NOW + 60) * 1000), "auto", 60.0),
        (str(int(NOW + 60) * 1000), "epoch-ms", 60.0),
        ("1500", "delta-ms", 1.5),
        ("2023-11-14T22:14:20Z", "rfc3339", 60.0),
        ("2023-11-14T22:14:20z", "auto", 60.0),
        ("2023-11-14T22:13:20.250Z", "rfc3339", 0.25),
        ("2023-11-14T22:13:20.123456789Z", "rfc3339", 0.123456789),
        ("2023-11-14T23:14:20+01:00", "rfc3339", 60.0),
        ("2023-11-14T22:14:20+00:00", "auto", 60.0),
        ("2023-11-14T21:44:20-00:30", "rfc3339", 60.0),
        ("Tue, 14 Nov 2023 22:14:20 GMT", "http-date", 60.0),
        ("Tue, 14 Nov 2023 22:14:20 GMT", "auto", 60.0),
        ("20ms", "duration", 0.02),
        ("1s", "duration", 1.0),
        ("6m0s", "duration", 360.0),
        ("1h2m3.5s", "duration", 3723.5),
        ("1.5", "duration", 1.5),
        ("250us", "duration", 0.00025),
        ("30", "retry-after", 30.0),
    ],
)
def test_parse_reset_encodings(value: str, kind: str, expected: float) -> None:
    """Each reset encoding turns into seconds from now."""
    assert parse_reset(value, now=NOW, kind=kind) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (str(int(NOW) - 100), "epoch"),
        (str(int(NOW) - 100), "auto"),
        (str(int(NOW - 100) * 1000), "auto"),
        ("2000-01-01T00:00:00Z", "rfc3339"),
        ("Wed, 21 Oct 2015 07:28:00 GMT", "http-date"),
        ("0", "epoch"),
    ],
)
def test_past_reset_is_zero(value: str, kind: str) -> None:
    """A reset in the past means already reset: 0.0, never negative."""
    assert parse_reset(value, now=NOW, kind=kind) == 0.0


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("nan", "auto"),
        ("inf", "delta"),
        ("-inf", "auto"),
        ("1e309", "delta"),
        ("-1", "delta"),
        ("1_000", "delta"),
        ("٣", "delta"),
        (str(10**12), "delta"),
        (str(int(NOW) + 40 * 86400), "epoch"),
        ("9999-12-31T23:59:59Z", "rfc3339"),
        ("2023-13-01T00:00:00Z", "rfc3339"),
        ("2023-11-14T22:14:20", "rfc3339"),
        ("soon", "auto"),
        ("", "auto"),
        ("1m", "delta"),
        ("6m0", "duration"),
        ("-1s", "duration"),
        ("1d", "duration"),
        ("30", "rfc3339"),
        ("30", "http-date"),
        ("30", "no-such-kind"),
        ("1" * 5000, "delta"),
    ],
)
def test_parse_reset_garbage(value: str, kind: str) -> None:
    """Garbage and absurd resets give None."""
    assert parse_reset(value, now=NOW, kind=kind) is None


def test_parse_reset_non_string() -> None:
    """Non-string values give None instead of raising."""
    assert parse_reset(None, now=NOW) is None  # type: ignore[arg-type]
    assert parse_retry_after(b"5", now=NOW) is None  # type: ignore[arg-type]


# --- Retry-After --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("1.5", 1.5),
        ("0", 0.0),
        (http_date(30), 30.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(value: str, expected: float) -> None:
    """Retry-After is delta seconds (int or float) or an HTTP-date."""
    assert parse_retry_after(value, now=NOW) == expected


@pytest.mark.parametrize(
    "value", ["-1", "nan", "soon", str(10**12), "", "2023-11-14T22:14:20Z", http_date(10**8)]
)
def test_parse_retry_after_garbage(value: str) -> None:
    """Negative, absurd or malformed Retry-After values give None."""
    assert parse_retry_after(value, now=NOW) is None


def test_retry_after_ms_preferred() -> None:
    """retry-after-ms is more precise than Retry-After, so it wins."""
    obs = parse_headers({"Retry-After": "2", "retry-after-ms": "1500"}, now=NOW)
    assert obs.retry_after == 1.5 and obs.errors == 0


def test_retry_after_bad_ms_falls_back() -> None:
    """A malformed retry-after-ms is counted, and Retry-After still applies."""
    obs = parse_headers({"Retry-After": "2", "retry-after-ms": "-5"}, now=NOW)
    assert obs.retry_after == 2.0 and obs.errors == 1


@pytest.mark.parametrize("value", ["-3", "nan", "later", "1e309", str(10**9)])
def test_retry_after_garbage_counted(value: str) -> None:
    """Bad Retry-After values are ignored and counted."""
    obs = parse_headers({"Retry-After": value}, now=NOW)
    assert obs.retry_after is None and obs.errors == 1 and obs.empty


# --- custom names -------------------------------------------------------------------------


def test_headers_map() -> None:
    """Custom header names give a "custom" quota, taking precedence over built-in rows."""
    obs = parse_headers(
        {
            "X-Foo-Limit": "10",
            "x-foo-left": "3",
            "x-foo-reset": str(int(NOW) + 5),
            "X-Wait": "2",
            "x-ratelimit-limit": "99",
            "x-ratelimit-remaining": "98",
        },
        now=NOW,
        headers_map={
            "limit": "x-foo-limit",
            "remaining": "X-Foo-Left",
            "reset": "x-foo-reset",
            "retry_after": "x-wait",
        },
    )
    assert obs.style == "custom" and obs.errors == 0 and obs.retry_after == 2.0
    assert obs.quotas == (Quota("default", 10.0, 3.0, 5.0),)


def test_headers_map_used() -> None:
    """A custom `used` header derives remaining from the limit."""
    obs = parse_headers(
        {"x-cap": "100", "x-spent": "40"},
        now=NOW,
        headers_map={"limit": "x-cap", "used": "x-spent"},
    )
    assert obs.quotas == (Quota("default", 100.0, 60.0, None),)


def test_headers_map_absent_falls_back() -> None:
    """When the custom headers are absent, the built-in table applies."""
    obs = parse_headers(
        {"x-ratelimit-limit": "5", "x-ratelimit-remaining": "1"},
        now=NOW,
        headers_map={"limit": "x-foo", "remaining": "{weird}"},
    )
    assert obs.style == "generic" and obs.quotas == (Quota("default", 5.0, 1.0, None),)


# --- garbage ------------------------------------------------------------------------------


GARBAGE = [
    {"x-ratelimit-limit": "nan", "x-ratelimit-remaining": "5"},
    {"x-ratelimit-limit": "0", "x-ratelimit-remaining": "5"},
    {"x-ratelimit-limit": "-10", "x-ratelimit-remaining": "5"},
    {"x-ratelimit-limit": "10", "x-ratelimit-remaining": "-1"},
    {"x-ratelimit-limit": "10", "x-ratelimit-remaining": "inf"},
    {"x-ratelimit-limit": "1e309", "x-ratelimit-remaining": "1"},
    {"x-ratelimit-limit": "ten", "x-ratelimit-remaining": "1"},
    {"x-ratelimit-limit": "10", "x-ratelimit-reset": "tomorrow"},
    {"x-ratelimit-limit": "10", "x-ratelimit-reset": str(int(NOW) + 10**8)},
    {"x-ratelimit-limit": "10", "x-ratelimit-reset": str(10**15 * 1000)},
    {"ratelimit-limit": "10", "ratelimit-reset": str(10**12)},
    {"ratelimit-limit": "10;w=0"},
    {"ratelimit-limit": "10;w=-5"},
    {"ratelimit-limit": f"10;w={10**9}"},
    {"ratelimit-limit": "10,", "ratelimit-remaining": "1"},
    {"x-ratelimit-requests-limit": "10", "x-ratelimit-requests-reset": "1e12"},
    {"ratelimit-policy": '"default";q=0;w=60'},
    {"ratelimit-policy": '"default";q=10;w=0'},
    {"ratelimit-policy": '"default";q=?1'},
    {"ratelimit-policy": '"default";q="10"'},
    {"ratelimit-policy": '"unterminated;q=10'},
    {"ratelimit-policy": "ünïcode;q=10"},
    {"ratelimit-policy": '"p";q=10', "ratelimit": '"p";r=-1;t=5'},
    {"ratelimit-policy": '"p";q=10', "ratelimit": f'"p";r=1;t={10**12}'},
    {"ratelimit": "limit=10, remaining=1, reset=99999999999"},
    {"ratelimit": "limit=0, remaining=1"},
    {"ratelimit": "limit=10 remaining=1"},
    {"x-ratelimit-limit-tokens": "10", "x-ratelimit-reset-tokens": "6m0"},
    {"x-ratelimit-limit-tokens": "10", "x-ratelimit-reset-tokens": "-1s"},
    {"anthropic-ratelimit-tokens-limit": "10", "anthropic-ratelimit-tokens-reset": "yesterday"},
    {
        "anthropic-ratelimit-tokens-limit": "10",
        "anthropic-ratelimit-tokens-reset": "9999-01-01T00:00:00Z",
    },
    {"x-shopify-shop-api-call-limit": "32/0"},
    {"x-shopify-shop-api-call-limit": "32 of 40"},
    {"x-ratelimit-used": "1", "x-ratelimit-remaining": "nan"},
    {"x-ratelimit-global": "maybe", "x-ratelimit-bucket": "a b"},
    {"x-ratelimit-limit": "5", "x-ratelimit-reset-after": "-2"},
    {"stripe-rate-limited-reason": "two words"},
    {"retry-after": "-1"},
    {"retry-after": str(10**12)},
    {"retry-after-ms": "soon"},
    {"x-ratelimit-limit": "1" * 5000},
    {"x-ratelimit-limit": "10, 10"},
]


@pytest.mark.parametrize("headers", GARBAGE)
def test_garbage_is_counted(headers: dict[str, str]) -> None:
    """Each malformed or absurd value is ignored and counted, never raised."""
    obs = parse_headers(headers, now=NOW)
    assert obs.errors > 0
    assert_sane(obs)


def test_remaining_above_limit_is_clamped() -> None:
    """Remaining larger than the limit is clamped without counting an error."""
    obs = parse_headers({"x-rate-limit-limit": "10", "x-rate-limit-remaining": "50"}, now=NOW)
    assert obs.quotas == (Quota("default", 10.0, 10.0, None),) and obs.errors == 0


def test_undecodable_bytes_counted() -> None:
    """Undecodable bytes in a rate-limit header are counted; in other headers, ignored."""
    obs = parse_headers(
        [
            (b"x-ratelimit-limit", b"\xff\xfe"),
            (b"x-other", b"\xff"),
            (b"x-ratelimit-remaining", b"4"),
        ],
        now=NOW,
    )
    assert obs.errors == 1 and obs.quotas == (Quota("default", None, 4.0, None),)


def test_bad_value_counted_once() -> None:
    """A bad value read by two rows (custom and generic) counts once."""
    obs = parse_headers(
        {"x-ratelimit-limit": "nan"}, now=NOW, headers_map={"limit": "x-ratelimit-limit"}
    )
    assert obs.errors == 1


@pytest.mark.parametrize(
    "headers",
    [None, 42, "x-ratelimit-limit: 5", b"abc", [("a",)], [("a", "b", "c")], [1, 2], {"a": 1}],
)
def test_odd_inputs_never_raise(headers: object) -> None:
    """Inputs that are not headers at all still give an observation."""
    obs = parse_headers(headers, now=NOW)  # type: ignore[arg-type]
    assert isinstance(obs, Observation) and obs.quotas == ()


def test_non_text_value_counted() -> None:
    """A non-string value under a rate-limit name is counted."""
    obs = parse_headers({"x-ratelimit-limit": 5}, now=NOW)  # type: ignore[arg-type]
    assert obs.errors == 1 and obs.quotas == ()


def test_empty_property() -> None:
    """`empty` is true only without quotas and without retry_after."""
    assert Observation().empty
    assert Observation(errors=3, reason="x").empty
    assert not Observation(retry_after=0.0).empty
    assert not Observation(quotas=(Quota("default", 1.0, None, None),)).empty


# --- fast paths ---------------------------------------------------------------------------


def test_no_rate_limit_headers_still_counts_bad_pairs() -> None:
    """The early exit for responses without rate-limit headers keeps counting odd pairs."""
    assert parse_headers([("Content-Type", "text/html"), ("a",), 7], now=NOW) == Observation(
        errors=2
    )


def test_names_are_stripped_and_lowercased() -> None:
    """Only exact known names are read, after stripping and lowercasing them."""
    obs = parse_headers(
        [(" X-RateLimit-Limit\t", "10"), (b"X-RATELIMIT-REMAINING ", b"3"), ("x-ratelimit", "1")],
        now=NOW,
    )
    assert obs.style == "generic" and obs.quotas == (Quota("default", 10.0, 3.0, None),)


def test_empty_header_name_is_never_read() -> None:
    """A header without a name is no rate-limit field (not a Retry-After, not a `used`)."""
    obs = parse_headers([("", "5"), (" ", "7"), ("x-ratelimit-limit", "10")], now=NOW)
    assert obs.retry_after is None and obs.errors == 0
    assert obs.quotas == (Quota("default", 10.0, None, None),)
    assert parse_headers({"": "5"}, now=NOW, headers_map={"retry_after": " "}) == Observation()


def test_same_policy_different_ratelimit() -> None:
    """Parsed structured fields are reused across responses without mixing up their values."""
    policy = '"p";q=100;w=60'
    for remaining in (99, 50, 0, 50):
        obs = parse_headers(
            {"RateLimit-Policy": policy, "RateLimit": f'"p";r={remaining};t=9'}, now=NOW
        )
        assert obs.quotas == (Quota("p", 100.0, float(remaining), 9.0, 60.0),)


def test_headers_maps_do_not_leak_between_calls() -> None:
    """Each call reads the names of its own headers_map, whatever maps came before."""
    headers = {"x-a": "10", "x-b": "20", "x-ratelimit-limit": "5"}
    for name, limit in (("x-a", 10.0), ("x-b", 20.0), ("x-a", 10.0), ("x-c", 5.0)):
        obs = parse_headers(headers, now=NOW, headers_map={"limit": name})
        assert obs.quotas == (Quota("default", limit, None, None),)
    assert parse_headers(headers, now=NOW).style == "generic"


# --- property-based -----------------------------------------------------------------------

KNOWN_NAMES = [
    "ratelimit",
    "ratelimit-policy",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "retry-after",
    "retry-after-ms",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-used",
    "x-ratelimit-resource",
    "x-ratelimit-reset-after",
    "x-ratelimit-bucket",
    "x-ratelimit-global",
    "x-ratelimit-scope",
    "x-rate-limit-limit",
    "x-rate-limit-reset",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-tokens-limit",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-tokens-reset",
    "x-shopify-shop-api-call-limit",
    "x-ratelimit-requests-limit",
    "x-ratelimit-requests-reset",
    "stripe-rate-limited-reason",
    "x-custom",
]
NEAR_VALID = [
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e309",
    "-1e309",
    "-1",
    "-0",
    "0",
    "10**12",
    str(10**12),
    str(10**15),
    str(10**30),
    "1e12",
    "1.5",
    ".5",
    "5.",
    "1_000",
    "0x10",
    "١٢",
    "6m0s",
    "1h2m3.5s",
    "-1s",
    "20ms",
    "32/40",
    "40/0",
    "2023-11-14T22:14:20Z",
    "2023-11-14T22:14:20.5+25:99",
    "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:60+00:00",
    "Tue, 14 Nov 2023 22:14:20 GMT",
    "Tue, 14 Nov 9999 22:14:20 +2400",
    "Mon, 01 Jan 0001 00:00:00 -2359",
    '"a";q=10;w=60, "b";q=0',
    '"a";r=-1;t=1e3',
    '"a";q=?1;w=(1 2)',
    "limit=10, remaining=1, reset=7",
    "limit=?0, remaining=-1",
    "10, 10;w=1, 1000;w=3600",
    "10;w=0, 5;w=1000000000",
    "true",
    "global",
    "",
    " ",
]
names = st.one_of(
    st.sampled_from(KNOWN_NAMES),
    st.sampled_from(KNOWN_NAMES).map(str.upper),
    st.text(max_size=30),
    st.binary(max_size=30),
)
values = st.one_of(
    st.sampled_from(NEAR_VALID),
    st.text(max_size=60),
    st.binary(max_size=60),
    st.builds(lambda a, b: f"{a}{b}", st.sampled_from(NEAR_VALID), st.text(max_size=10)),
    st.builds(lambda a, b: f"{a}, {b}", st.sampled_from(NEAR_VALID), st.sampled_from(NEAR_VALID)),
)
pairs = st.lists(st.tuples(names, values), max_size=12)
header_maps = st.none() | st.dictionaries(
    st.sampled_from(["limit", "remaining", "reset", "retry_after", "used", "bogus"]),
    st.sampled_from(KNOWN_NAMES) | st.text(max_size=10),
)
nows = st.sampled_from([NOW, 0.0, 1e12]) | st.floats(
    min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False
)


@settings(max_examples=400, deadline=None)
@given(pairs=pairs, headers_map=header_maps, now=nows)
def test_fuzz_never_raises(
    pairs: list[tuple[str | bytes, str | bytes]], headers_map: dict[str, str] | None, now: float
) -> None:
    """Arbitrary names and values never raise, and every number returned is in bounds."""
    for headers in (pairs, dict(pairs)):
        obs = parse_headers(headers, now=now, headers_map=headers_map)  # type: ignore[arg-type]
        assert_sane(obs)
        # The last-resort guard in parse_headers must not be what keeps us from raising.
        inner = h._parse(headers, now, headers_map)
        assert inner == obs


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(st.sampled_from(NEAR_VALID), st.text(max_size=80)), now=nows)
def test_fuzz_value_parsers(value: str, now: float) -> None:
    """parse_reset and parse_retry_after stay within [0, MAX_RESET_SECONDS] or give None."""
    kinds = ["auto", "delta", "delta-ms", "epoch", "epoch-ms", "duration", "rfc3339", "http-date"]
    for result in [parse_retry_after(value, now=now)] + [
        parse_reset(value, now=now, kind=kind) for kind in kinds
    ]:
        assert result is None or 0 <= result <= MAX_RESET_SECONDS
