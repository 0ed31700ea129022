"""Header parsing: property-based tests over arbitrary names and values."""

from __future__ import annotations

from header_helpers import NOW, assert_sane
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_ratelimit import headers as h
from otel_ratelimit.headers import MAX_RESET_SECONDS, parse_headers, parse_reset, parse_retry_after

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
