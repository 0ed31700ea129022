"""Shared by the tests/test_headers_*.py files: a fixed clock, date formatting, bounds checks."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from email.utils import format_datetime

from otel_ratelimit.headers import MAX_RESET_SECONDS, Observation, Quota

__all__ = ["NOW", "assert_sane", "http_date", "iso", "quotas"]

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
