"""Long fuzz run: a million hostile header sets through the parsers and the decision engine.

    python benchmarks/fuzz.py [--inputs 1000000] [--seed 1] [--max-wait 60]

Each input is a list of response headers built from real rate-limit header names (any case)
and near-valid values (NaN, inf, 10^12 s resets, negative counts, q=0, structured fields cut
short, dates, bytes), mutated at random. Every input is parsed with ``parse_headers`` (with
and without a ``headers_map``), every value with ``parse_reset`` in each encoding, and the
observation is fed to the engine (memory storage on a fake clock) as the answer to an acquire.
The run fails on the first exception, on any number out of bounds, or on any admitted wait
beyond ``max_wait``. The test suite runs the same loop on a few thousand inputs.

A second loop feeds ``--url-inputs`` mutated storage URLs (every scheme, passwords holding
``@`` and ``/``, odd hosts, ports, databases and options, bytes and unicode) to
``parse_storage_url``: each must give a checked URL or a ConfigurationError that names the
URL without its password.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

from otel_ratelimit.engine import KeyConfig
from otel_ratelimit.errors import ConfigurationError
from otel_ratelimit.headers import (
    MAX_RESET_SECONDS,
    Observation,
    parse_headers,
    parse_reset,
    parse_retry_after,
)
from otel_ratelimit.limits import AdaptiveConfig, Limit
from otel_ratelimit.storage import MemoryStorage, parse_storage_url, redact_url

NAMES = [
    "ratelimit", "ratelimit-policy", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset",
    "retry-after", "retry-after-ms", "x-ratelimit-limit", "x-ratelimit-remaining",
    "x-ratelimit-reset", "x-ratelimit-used", "x-ratelimit-resource", "x-ratelimit-reset-after",
    "x-ratelimit-bucket", "x-ratelimit-global", "x-ratelimit-scope",
    "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-limit", "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset", "x-shopify-shop-api-call-limit",
    "x-ratelimit-requests-limit", "x-ratelimit-requests-remaining", "x-ratelimit-requests-reset",
    "x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset",
    "stripe-rate-limited-reason",
]  # fmt: skip
VALUES = [
    "nan", "NaN", "inf", "-inf", "1e309", "-1e309", "-1", "-0", "0", "1", "60", "0.5", "1e12",
    str(10**12), str(10**15), "999999999999999999999", "1.5e3", "abc", "", " ", "\x00", "1,2",
    "20s", "1m30s", "6m0s", "1h", "-5s", "0.001ms", "99999h", "2026-11-23T15:00:00Z",
    "2026-13-45T99:99:99Z", "Mon, 23 Nov 2026 15:00:00 GMT", "Wed, 21 Oct 2015 07:28:00 GMT",
    "Thu, 01 Jan 1970 00:00:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT", "40/40", "0/40", "41/40",
    "-1/40", "1/0", "nan/40", 'limit=100, remaining=50, reset=30', 'default;r=0;t=0',
    '"default";r=50;t=30', '"a";r=1;t=1, "b";r=-1;t=nan', 'default;q=0;w=0', 'default;q=100;w=60',
    '"burst";q=10;w=1, "daily";q=1000;w=86400', '"x";q=1e309;w=1', ';;;', '"unterminated;r=1',
    "100, 100;w=60", "100;w=60;burst=1000", "true", "false", "global", "user",
]  # fmt: skip
KINDS = ("auto", "delta", "delta-ms", "epoch", "epoch-ms", "duration", "rfc3339", "http-date")
MAPS = [None, {"limit": "x-my-limit", "remaining": "x-my-left", "reset": "x-my-reset"},
        {"retry_after": "x-wait", "used": "x-ratelimit-used"}]  # fmt: skip
STATUSES = (200, 200, 200, 201, 204, 404, 429, 429, 500, 503)


def _value(rng: random.Random) -> str | bytes:
    roll = rng.random()
    base = rng.choice(VALUES)
    if roll < 0.55:
        return base
    if roll < 0.70:
        return base + rng.choice(VALUES)
    if roll < 0.80:
        return f"{base}, {rng.choice(VALUES)}"
    if roll < 0.90:
        cut = rng.randrange(len(base) + 1)
        return base[:cut] + chr(rng.randrange(0x20, 0x7F)) + base[cut:]
    if roll < 0.95:
        return repr(rng.uniform(-1e13, 1e13))
    return bytes(rng.randrange(256) for _ in range(rng.randrange(12)))


def _name(rng: random.Random) -> str | bytes:
    name = rng.choice(NAMES)
    roll = rng.random()
    if roll < 0.2:
        return name.upper()
    if roll < 0.3:
        return name.title()
    if roll < 0.33:
        return name.encode()
    if roll < 0.36:
        return name + "x"
    return name


def inputs(n: int, seed: int) -> Iterator[tuple[list[tuple[str | bytes, str | bytes]], float]]:
    """``n`` header lists, each with a "now" that is sometimes far from today."""
    rng = random.Random(seed)
    for _ in range(n):
        headers = [(_name(rng), _value(rng)) for _ in range(rng.randrange(1, 8))]
        now = rng.choice((1.79e9, 1.79e9, 0.0, 1e12, rng.uniform(0, 4e9)))
        yield headers, now


@dataclass
class Counts:
    inputs: int = 0
    quotas: int = 0
    header_errors: int = 0
    admitted: int = 0
    longest_wait: float = 0.0


def _check_obs(obs: Observation) -> None:
    for q in obs.quotas:
        for x in (q.limit, q.remaining, q.reset_after, q.window):
            if x is not None and not (math.isfinite(x) and x >= 0):
                raise AssertionError(f"quota value out of bounds: {q}")
        if q.reset_after is not None and q.reset_after > MAX_RESET_SECONDS:
            raise AssertionError(f"reset beyond the cap: {q}")
    if obs.retry_after is not None and not 0 <= obs.retry_after <= MAX_RESET_SECONDS:
        raise AssertionError(f"retry_after out of bounds: {obs}")


def run(n: int, seed: int, max_wait: float) -> Counts:
    """The fuzz loop; raises on the first defect, with the input that caused it."""
    clock = [1000.0]
    store = MemoryStorage(clock=lambda: clock[0])
    configs = [
        KeyConfig(limits=(), adaptive=AdaptiveConfig(), backoff_status_codes=frozenset({429, 503})),
        KeyConfig(limits=(Limit(10, 1.0),), adaptive=None, backoff_status_codes=frozenset({429})),
    ]
    rng = random.Random(seed + 1)
    counts = Counts()
    for headers, now in inputs(n, seed):
        try:
            headers_map = MAPS[counts.inputs % len(MAPS)]
            obs = parse_headers(headers, now=now, headers_map=headers_map)  # type: ignore[arg-type]
            _check_obs(obs)
            for _, value in headers[:2]:
                if isinstance(value, str):
                    for kind in KINDS:
                        got = parse_reset(value, now=now, kind=kind)
                        assert got is None or 0 <= got <= MAX_RESET_SECONDS, (kind, got)
                    got = parse_retry_after(value, now=now)
                    assert got is None or 0 <= got <= MAX_RESET_SECONDS, got
            key = f"k{counts.inputs % 7}"
            config = configs[counts.inputs % 2]
            grant = store.acquire(key, config, 1.0, max_wait)
            assert math.isfinite(grant.wait) and grant.wait >= 0, grant
            if grant.ok and not grant.again:
                assert grant.wait <= max_wait, grant
                counts.admitted += 1
                counts.longest_wait = max(counts.longest_wait, grant.wait)
                clock[0] += grant.wait + rng.uniform(0, 0.05)
                store.observe(key, config, grant.ticket, rng.choice(STATUSES), obs)
            else:
                clock[0] += rng.uniform(0, 0.5)
        except Exception as exc:
            raise AssertionError(f"input {counts.inputs}: {headers!r} now={now}") from exc
        counts.inputs += 1
        counts.quotas += len(obs.quotas)
        counts.header_errors += obs.errors
    return counts


URL_PARTS = [
    "redis://", "rediss://", "redis+cluster://", "rediss+cluster://", "sqlite:///", "sqlite:////",
    "memory", "unix://", "REDIS://", "redis:/", "user:", ":", "PLANTED-pw", "@", "@@", "/", "//",
    "127.0.0.1", "[::1]", "[::zz]", "localhost", "h_st", "ünï", ":6379", ":0", ":65536", ":-1",
    ":x", "/0", "/15", "/x", "?socket_timeout=1", "?socket_timeout=abc", "?db=2", "&",
    "?password=PLANTED-pw", "%40", "%", "#frag", " ", "\t", "\x00", "a" * 300,
]  # fmt: skip


def run_urls(n: int, seed: int) -> tuple[int, int]:
    """The URL loop: (accepted, rejected); raises on any other exception or a shown password."""
    rng = random.Random(seed + 2)
    accepted = 0
    for i in range(n):
        url = "".join(rng.choice(URL_PARTS) for _ in range(rng.randrange(1, 9)))
        if rng.random() < 0.1:
            cut = rng.randrange(len(url) + 1)
            url = url[:cut] + chr(rng.randrange(0x110000 - 0x800) % 0xD800) + url[cut:]
        try:
            parsed = parse_storage_url(url)
            accepted += 1
            shown = parsed.location if parsed.scheme.startswith("redis") else ""  # sqlite: a file
        except ConfigurationError as exc:
            shown = str(exc)
        except Exception as exc:
            raise AssertionError(f"url input {i}: {url!r}") from exc
        if "PLANTED" in shown and "PLANTED" not in redact_url(url):
            raise AssertionError(f"url input {i}: {url!r} shown with its password: {shown!r}")
    return accepted, n - accepted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-wait", type=float, default=60.0)
    parser.add_argument("--url-inputs", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    counts = run(args.inputs, args.seed, args.max_wait)
    elapsed = time.perf_counter() - start
    print(f"{counts.inputs} inputs in {elapsed:.1f} s: 0 exceptions; {counts.quotas} quotas read,"
          f" {counts.header_errors} header values rejected; {counts.admitted} acquires admitted,"
          f" longest wait {counts.longest_wait:.2f} s (max_wait {args.max_wait:g})")  # fmt: skip
    start = time.perf_counter()
    accepted, rejected = run_urls(args.url_inputs, args.seed)
    print(
        f"{args.url_inputs} storage URLs in {time.perf_counter() - start:.1f} s: 0 exceptions;"
        f" {accepted} accepted, {rejected} ConfigurationError, no password shown"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
