"""Header parsing: the IETF RateLimit drafts (-06/Envoy, -07, -09..-11)."""

from __future__ import annotations

from decimal import Decimal

import http_sf
import httpx
from header_helpers import NOW, quotas
from hypothesis import given
from hypothesis import strategies as st

from otel_ratelimit.headers import Quota, parse_headers
from otel_ratelimit.headers._ietf import _simple_list


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


_NAME = st.one_of(
    st.from_regex(r'"[ !#-\[\]-~]{0,6}"', fullmatch=True),  # strings, no escapes
    st.from_regex(r"[A-Za-z*][-a-z0-9:/.*!]{0,5}", fullmatch=True),  # tokens
    st.from_regex(r"[0-9]{1,17}(\.[0-9]{1,4})?", fullmatch=True),  # numbers, some too long
    st.sampled_from(['"a\\"b"', "?1", ":aGk=:", "-5", "tok\t"]),  # what only the parser reads
)
_PARAMS = st.lists(
    st.tuples(
        st.sampled_from(["q", "w", "r", "t", "x-y", "Q"]),
        st.sampled_from(["1", "60", "2.5", "1234567890123456", "?0", "-1", "", '"s"']),
        st.sampled_from([";", "; ", " ;"]),
    ),
    max_size=3,
)
_MEMBER = st.tuples(_NAME, _PARAMS).map(
    lambda m: m[0] + "".join(f"{sep}{k}={v}" if v else f"{sep}{k}" for k, v, sep in m[1])
)


@given(st.lists(_MEMBER, min_size=1, max_size=3), st.sampled_from([",", ", ", " ,  "]))
def test_the_fast_list_reader_agrees_with_the_rfc_9651_parser(members, comma) -> None:
    """Whatever the fast path accepts, the full parser reads the same way (names as text)."""
    text = comma.join(members)
    fast = _simple_list(text)
    if fast is None:
        return  # left to the parser
    parsed = http_sf.parse(text.encode("ascii"), tltype="list")  # must not raise
    assert [(str(item) if not isinstance(item, (int, Decimal)) else item, dict(params))
            for item, params in parsed] == fast  # fmt: skip
