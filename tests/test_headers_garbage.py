"""Header parsing: malformed, absurd and odd input is ignored and counted."""

from __future__ import annotations

import pytest
from header_helpers import NOW, assert_sane

from otel_ratelimit.headers import Observation, Quota, parse_headers

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


@pytest.mark.parametrize(
    ("headers", "errors", "kept"),
    [
        # a reset 10^12 s away: the limit is kept, the reset dropped
        ({"ratelimit-limit": "10", "ratelimit-reset": str(10**12)}, 1, (10.0, None, None)),
        (
            {"ratelimit-policy": '"p";q=10', "ratelimit": f'"p";r=1;t={10**12}'},
            1,
            (10.0, 1.0, None),
        ),
        ({"x-ratelimit-limit": "10", "x-ratelimit-remaining": "-1"}, 1, (10.0, None, None)),
        ({"x-ratelimit-limit": "NaN", "x-ratelimit-remaining": "5"}, 1, (None, 5.0, None)),
        ({"ratelimit-policy": '"p";q=0;w=60', "ratelimit": '"p";r=5;t=30'}, 1, (None, 5.0, 30.0)),
        # each rejected value counts, parameters of one member too
        (
            {"ratelimit-policy": '"p";q=10', "ratelimit": f'"p";r=-1;t={10**12}'},
            2,
            (10.0, None, None),
        ),
        (
            {"x-ratelimit-limit": "nan", "x-ratelimit-remaining": "-1", "x-ratelimit-reset": "3"},
            2,
            None,
        ),
    ],
)
def test_errors_count_each_rejected_value(
    headers: dict[str, str], errors: int, kept: tuple[float | None, ...] | None
) -> None:
    """`errors` is the exact number of rejected values; the sane values beside them are kept."""
    obs = parse_headers(headers, now=NOW)
    assert obs.errors == errors
    assert [(q.limit, q.remaining, q.reset_after) for q in obs.quotas] == ([kept] if kept else [])


def test_errors_ignore_headers_that_are_not_rate_limits() -> None:
    """Garbage in headers no row reads is not a rate-limit error."""
    obs = parse_headers({"x-foo": "nan", "content-length": "-1", "x-ratelimit": "-5"}, now=NOW)
    assert obs == Observation() and obs.errors == 0
    assert parse_headers({"x-foo": "nan", "retry-after": str(10**12)}, now=NOW).errors == 1
