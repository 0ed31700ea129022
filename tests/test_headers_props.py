"""Header parsing: generated vendor headers against a straightforward reading, and caches.

parse_headers caches what to read per set of names, and the reading of repeated texts; these
properties check that the values in the response, in any name case, order or container, and
whatever was parsed before, decide the result alone.
"""

from __future__ import annotations

import random

import httpx
from header_helpers import NOW
from hypothesis import given, settings
from hypothesis import strategies as st

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
        for cached in (_context._lowered, _context._amount, _reset._instant, _ietf._sf,
                       _ietf._read_policy):  # fmt: skip
            cached.cache_clear()
        assert parse_headers(x, now=NOW) == seen
