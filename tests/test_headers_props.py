"""Header parsing: generated vendor headers against a straightforward reading, and caches.

parse_headers caches what to read per set of names, and the reading of repeated texts; these
properties check that the values in the response, in any name case, order or container, and
whatever was parsed before, decide the result alone.
"""

from __future__ import annotations

import random

import httpx
import pytest
from header_helpers import NOW
from hypothesis import given, settings
from hypothesis import strategies as st

import otel_ratelimit
from otel_ratelimit import headers as h
from otel_ratelimit.headers import Observation, Quota, _context, _ietf, _reset, parse_headers
from otel_ratelimit.testing._styles import Decision, response_headers

_COUNTS = st.integers(min_value=0, max_value=10**9)
_EXTRA = [("content-type", "application/json"), ("date", "Tue, 14 Nov 2023 22:14:20 GMT")]


def _send(pairs: list[tuple[str, str]], seed: int) -> object:
    """The same headers as a raw httpx.Headers, a list or a dict, in a random order and case."""
    rng = random.Random(seed)
    pairs = [(rng.choice([str.lower, str.upper, str.title])(k), v) for k, v in pairs + _EXTRA]
    rng.shuffle(pairs)
    return rng.choice([httpx.Headers, list, dict])(pairs)


_GO = st.tuples(st.integers(0, 23), st.integers(0, 59), st.integers(0, 59), st.integers(0, 999))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_COUNTS, _COUNTS, _GO), min_size=2, max_size=2), st.integers())
def test_openai_matches_a_plain_reading(policies, seed) -> None:
    """OpenAI: limit, min(remaining, limit) and the Go duration's seconds, per policy."""
    pairs, expected = [], []
    for name, (limit, left, (hr, mi, s, ms)) in zip(("requests", "tokens"), policies, strict=True):
        reset = f"{hr}h{mi}m{s}s" if ms == 0 else f"{hr}h{mi}m{s}s{ms}ms"
        pairs += [(f"x-ratelimit-limit-{name}", str(limit))] if limit else []
        pairs += [
            (f"x-ratelimit-remaining-{name}", str(left)),
            (f"x-ratelimit-reset-{name}", reset),
        ]
        seconds = hr * 3600.0 + mi * 60.0 + s + ms * 1e-3
        expected.append(Quota(name, limit or None, min(left, limit) if limit else left, seconds))
    obs = parse_headers(_send(pairs, seed), now=NOW)
    assert obs.style == "openai" and obs.errors == 0 and obs.retry_after is None
    assert len(obs.quotas) == 2
    for got, want in zip(obs.quotas, expected, strict=True):
        assert (got.policy, got.limit, got.remaining) == (want.policy, want.limit, want.remaining)
        assert got.reset_after is not None and abs(got.reset_after - want.reset_after) < 1e-9


@settings(max_examples=300, deadline=None)
@given(
    _COUNTS,
    _COUNTS,
    st.integers(-(10**6), 10**6),
    st.sampled_from(["core", "search"]),
    st.integers(),
)
def test_github_matches_a_plain_reading(limit, used, offset, resource, seed) -> None:
    """GitHub: remaining from limit - used, a past epoch reset is 0, the resource is the bucket."""
    reset = int(NOW) + offset
    pairs = [("x-ratelimit-limit", str(limit)), ("x-ratelimit-used", str(used))]
    pairs += [("x-ratelimit-reset", str(reset)), ("x-ratelimit-resource", resource)]
    obs = parse_headers(_send(pairs, seed), now=NOW)
    want = Quota("default", float(limit), max(0.0, limit - used), max(0.0, reset - NOW))
    # A zero limit is garbage (counted), and leaves nothing to compute remaining from.
    assert obs == Observation((want,) if limit else (), None, resource, style="github",
                              errors=0 if limit else 1)  # fmt: skip


_NAME = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
_SEP = st.sampled_from([";", "; ", ";  "])
_POLICY = st.tuples(_COUNTS, st.integers(1, 86400), _COUNTS, st.integers(0, 86400))  # q w r t


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(_NAME, _POLICY, min_size=1, max_size=3),
    st.sampled_from([",", ", ", " ,  "]), _SEP, st.booleans(), st.integers(),
)  # fmt: skip
def test_ietf_draft09_matches_a_plain_reading(policies, comma, sep, quoted, seed) -> None:
    """IETF -09: each named policy's q, w, r, t, however the lists are spaced and named."""
    name = (lambda n: f'"{n}"') if quoted else (lambda n: n)
    policy = comma.join(f"{name(p)}{sep}q={q}{sep}w={w}" for p, (q, w, _, _) in policies.items())
    state = comma.join(f"{name(p)}{sep}r={r}{sep}t={t}" for p, (_, _, r, t) in policies.items())
    obs = parse_headers(_send([("RateLimit-Policy", policy), ("RateLimit", state)], seed), now=NOW)
    want = tuple(
        Quota(p, q or None, min(r, q) if q else r, float(t), float(w))
        for p, (q, w, r, t) in policies.items()
    )
    bad = sum(1 for q, _, _, _ in policies.values() if not q)
    assert obs == Observation(want, style="ietf", errors=bad)


_STYLES = st.sampled_from(
    ["openai", "github", "ietf", "ietf-06", "anthropic", "discord", "shopify"]
)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(_STYLES, st.integers(0, 200), st.integers(0, 120)), min_size=2, max_size=12)
)
def test_warm_caches_never_change_a_result(responses) -> None:
    """Parsing after any other responses gives what parsing with every cache cleared gives."""
    headers = [
        httpx.Headers(response_headers(s, Decision(True, 100, min(r, 100), t, t, NOW), window=60,
                                       retry_after=None))
        for s, r, t in responses
    ]  # fmt: skip
    warm = [parse_headers(x, now=NOW) for x in headers]
    for x, seen in zip(headers, warm, strict=True):
        h._PLANS.clear()
        for cached in (_context._lowered, _context._encoded, _context._amount, _reset._instant,
                       _ietf._sf, _ietf._read_policy):  # fmt: skip
            cached.cache_clear()
        assert parse_headers(x, now=NOW) == seen


class _Listless(httpx.Headers):
    """An httpx.Headers subclass: not httpx's own class, so it takes the public path."""


_NAMES = st.sampled_from(["X-RateLimit-Limit-Requests", "x-ratelimit-remaining-requests",
                          "X-RATELIMIT-RESET-REQUESTS", "Retry-After", "RateLimit", "Content-Type",
                          "ratelimit-policy", "x-ratelimit-reset-after"])  # fmt: skip
_VALUES = st.one_of(
    st.sampled_from([b"10", b"0", b"59.5s", b"1m2s", b"17ms", b"2", b'"d";r=3;t=4', b"-1"]),
    st.binary(max_size=8),  # not UTF-8 at times: counted, never raised
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_NAMES, _VALUES), max_size=8))
def test_httpx_private_list_reads_as_the_public_pairs(pairs) -> None:
    """httpx's Headers is read through its private ``_list`` (lowercased names); that reading
    equals reading the same headers through public ``raw`` pairs, a subclass, or str items."""
    headers = httpx.Headers([(k.encode(), v) for k, v in pairs])
    assert _context._lowercased(type(headers)) and not _context._lowercased(_Listless)
    fast = parse_headers(headers, now=NOW)
    assert fast == parse_headers(list(headers.raw), now=NOW)
    assert fast == parse_headers(_Listless(headers), now=NOW)
    broken = httpx.Headers(headers)
    broken._list = tuple(broken._list)  # type: ignore[assignment]  # an httpx that changed it
    assert fast == parse_headers(broken, now=NOW)


def test_quota_and_observation_are_values() -> None:
    """Equal and hashable by value, with a repr naming every field; read-only when compiled."""
    quota = Quota("requests", 10.0, 3.0, 1.5)
    same = Quota("requests", 10.0, 3.0, 1.5, None)
    assert quota == same and hash(quota) == hash(same) and quota != Quota("tokens", 10.0, 3.0, 1.5)
    assert quota.as_dict() == {"policy": "requests", "limit": 10.0, "remaining": 3.0,
                               "reset_after": 1.5, "window": None}  # fmt: skip
    assert (
        repr(quota)
        == "Quota(policy='requests', limit=10.0, remaining=3.0, reset_after=1.5, window=None)"
    )
    obs = Observation((quota,), retry_after=2.0, errors=1)
    assert obs == Observation((same,), 2.0, None, False, None, 1, None) and len({obs, obs}) == 1
    assert "retry_after=2.0" in repr(obs) and not obs.empty and Observation().empty
    assert obs != quota and quota != obs
    if otel_ratelimit.COMPILED:
        with pytest.raises(AttributeError, match="not writable"):
            quota.limit = 5.0  # type: ignore[misc]
        with pytest.raises(AttributeError, match="not writable"):
            obs.errors = 0  # type: ignore[misc]
