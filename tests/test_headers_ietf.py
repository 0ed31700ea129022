"""Header parsing: the IETF RateLimit drafts (-06/Envoy, -07, -09..-11)."""

from __future__ import annotations

import httpx
from header_helpers import NOW, quotas

from otel_ratelimit.headers import Quota, parse_headers


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
