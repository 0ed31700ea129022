"""Header parsing: custom header names (headers_map) and how names are read."""

from __future__ import annotations

from header_helpers import NOW

from otel_ratelimit.headers import Observation, Quota, parse_headers

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
